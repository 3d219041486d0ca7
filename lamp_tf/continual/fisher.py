"""The exact diagonal Fisher information of a Keras classifier over a data set.

F_i = E_x E_{y ~ p(y|x)} [(d log p(y|x) / d theta_i)^2]   (true Fisher, the paper's choice)
F_i = E_{(x, y) ~ data} [(d log p(y|x) / d theta_i)^2]     (empirical Fisher, an option)

Per-example gradients are exact and batched, never the square of a mini-batch mean gradient
(which is not the Fisher) and never a Python loop over examples:
- for Sequential models whose trainable layers are Dense, Conv2D or their R-EWC rotated forms
  (without a built-in non-linear activation: the recorded output gradient must be the
  pre-activation one), one forward pass records every layer's input `a` and one backward pass
  of the summed log-likelihood gives every example's output gradient `g` (examples are
  independent); a layer linear in its kernel has per-example gradient a_i^T g_i (summed over
  positions for a convolution, via im2col patches), so squares are sums of outer products;
- any other model falls back to `GradientTape.jacobian` (vectorised with pfor), which is exact
  but several times slower on CPU for convolutions.
`class_mask` restricts p(y|x) to some classes (the classes a task trains on): the logits of the
other classes get no probability and their parameters zero Fisher.
"""

import keras
import numpy as np
import tensorflow as tf

from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense

KINDS = ("true", "empirical")
LINEAR = (keras.layers.Dense, keras.layers.Conv2D, RotatedDense, RotatedConv2D)


def masked_log_probs(logits, class_mask=None):
  """log softmax over the classes where `class_mask` is True (others get -inf)."""
  logits = tf.cast(logits, tf.float32)
  if class_mask is not None:
    logits = tf.where(tf.constant(class_mask)[None], logits, -np.inf)
  return tf.nn.log_softmax(logits)


def sample_labels(model, images, seed, class_mask=None):
  """Labels drawn from the model's own predictive distribution (stateless in `seed`)."""
  logits = masked_log_probs(model(images, training=False), class_mask)
  return tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int64)[:, 0]


def _linear_output(layer):
  """True when the layer's output is its affine map (no built-in non-linear activation, as in
  Dense(16, activation="relu")), so the gradient recorded at its output is the one at a_i^T W."""
  return getattr(layer, "activation", None) in (None, keras.activations.linear)


def layerwise_supported(model):
  """True when every trainable layer of a Sequential model has a closed-form per-example
  gradient here: Dense, Conv2D or their rotated forms without a built-in non-linear activation
  (an activation as its own layer is fine)."""
  return isinstance(model, keras.Sequential) and all(
      (isinstance(l, LINEAR) and _linear_output(l)) or not l.trainable_weights
      for l in model.layers)


def record(model, x, names, class_mask, labels=None, seed=None):
  """Inputs and per-example output gradients of the layers `names` (traceable).

  Labels are `labels` when given, else sampled from the model with `seed`. Returns
  ({name: input}, {name: d log p(label|x) / d output}, labels).
  """
  inputs, outputs = {}, {}
  with tf.GradientTape() as tape:
    h = x
    for layer in model.layers:
      if layer.name in names:
        inputs[layer.name] = h
        h = layer(h, training=False)
        tape.watch(h)
        outputs[layer.name] = h
      else:
        h = layer(h, training=False)
    log_probs = masked_log_probs(h, class_mask)
    if labels is None:
      labels = tf.random.stateless_categorical(tf.stop_gradient(log_probs), 1, seed=seed,
                                               dtype=tf.int64)[:, 0]
    # Examples are independent, so the gradient of the sum holds each example's gradient.
    total = tf.reduce_sum(tf.gather(log_probs, labels, axis=1, batch_dims=1))
  return inputs, tape.gradient(total, outputs), labels


def patches(layer, x):
  """im2col patches [B, positions, kh*kw*C] of a convolution's input."""
  kh, kw = layer.kernel_size
  sh, sw = layer.strides
  p = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, 1, 1, 1],
                               layer.padding.upper())
  return tf.reshape(p, [tf.shape(x)[0], -1, p.shape[-1]])


def _per_example(layer, a, g):
  """{id(variable): per-example gradients [B, *shape]} of a linear layer's kernel and bias
  (in float32, also when the layer computes in bfloat16 or float16)."""
  a, g = tf.cast(a, tf.float32), tf.cast(g, tf.float32)
  b = tf.shape(g)[0]
  bias = tf.reduce_sum(tf.reshape(g, [b, -1, g.shape[-1]]), axis=1)
  if isinstance(layer, (RotatedDense, RotatedConv2D)):
    g = tf.tensordot(g, layer.u2, axes=1)  # gradient at the rotated kernel's output
  if isinstance(layer, (keras.layers.Dense, RotatedDense)):
    if isinstance(layer, RotatedDense):
      a = tf.matmul(a, layer.u1)
    kernel = tf.einsum("bi,bo->bio", a, g)
  else:
    if isinstance(layer, RotatedConv2D) and layer.factor == "channel":
      a = tf.tensordot(a, layer.u1, axes=1)
    p = patches(layer, a)
    if isinstance(layer, RotatedConv2D) and layer.factor == "patch":
      p = tf.tensordot(p, layer.u1, axes=1)
    kernel = tf.einsum("bpk,bpc->bkc", p, tf.reshape(g, [b, -1, g.shape[-1]]))
  kernel = tf.reshape(kernel, tf.concat([[b], tf.shape(layer.kernel)], 0))
  return {id(layer.kernel): kernel, id(layer.bias): bias}


def _layerwise_grads(model, variables, class_mask):
  """tf.function (images, labels-or-None, seed) -> per-example gradients of `variables`."""
  layers = [l for l in model.layers if isinstance(l, LINEAR)]
  names = {l.name for l in layers}

  @tf.function
  def fn(x, labels, seed):
    inputs, grads, _ = record(model, x, names, class_mask, labels, seed)
    per = {}
    for layer in layers:
      per.update(_per_example(layer, inputs[layer.name], grads[layer.name]))
    return [per[id(v)] for v in variables]

  return fn


def _jacobian_grads(model, variables, class_mask):

  @tf.function
  def fn(x, labels, seed):
    with tf.GradientTape() as tape:
      log_probs = masked_log_probs(model(x, training=False), class_mask)
      if labels is None:
        labels = tf.random.stateless_categorical(tf.stop_gradient(log_probs), 1, seed=seed,
                                                 dtype=tf.int64)[:, 0]
      per_example = tf.gather(log_probs, labels, axis=1, batch_dims=1)
    return tape.jacobian(per_example, variables, experimental_use_pfor=True)

  return fn


def per_example_gradient_fn(model, variables, class_mask=None):
  """A tf.function (x, labels or None, seed) -> [per-example gradients [B, *shape]]."""
  if layerwise_supported(model):
    return _layerwise_grads(model, variables, class_mask)
  return _jacobian_grads(model, variables, class_mask)


def diagonal_fisher(model, images, labels=None, *, kind="true", seed=0, batch_size=100,
                    class_mask=None, variables=None):
  """Diagonal Fisher of `variables` (default: the trainable ones) as NumPy float32 arrays.

  Args:
    model: a Keras classifier returning logits.
    images: model inputs [N, ...] (already preprocessed).
    labels: true labels [N]; needed for kind='empirical'.
    kind: 'true' (labels sampled from the model) or 'empirical' (true labels).
    seed: seed of the sampled labels (int); batch b uses [seed, b].
    batch_size: examples per batch (memory: batch_size x #parameters floats).
    class_mask: boolean [num_classes] or None.
  """
  if kind not in KINDS:
    raise ValueError(f"--fisher={kind!r}: choose one of {', '.join(KINDS)}.")
  if kind == "empirical" and labels is None:
    raise ValueError("the empirical Fisher needs the true labels.")
  variables = model.trainable_variables if variables is None else variables
  grads_fn = per_example_gradient_fn(model, variables, class_mask)

  @tf.function
  def squared_sums(x, y, seed):
    return [tf.reduce_sum(tf.square(g), axis=0) for g in grads_fn(x, y, seed)]

  sums = [np.zeros(v.shape, np.float64) for v in variables]
  n = len(images)
  for b, start in enumerate(range(0, n, batch_size)):
    x = tf.convert_to_tensor(images[start:start + batch_size])
    y = None if kind == "true" else tf.constant(np.asarray(labels[start:start + batch_size]),
                                                tf.int64)
    for s, g in zip(sums, squared_sums(x, y, tf.constant([seed, b], tf.int64))):
      s += g.numpy()
  return [(s / n).astype(np.float32) for s in sums]


def per_example_gradients(model, images, labels, variables, class_mask=None):
  """[N, #params] per-example gradients of log p(label|x), flattened and concatenated."""
  fn = per_example_gradient_fn(model, variables, class_mask)
  x = tf.convert_to_tensor(images)
  grads = fn(x, tf.convert_to_tensor(labels, tf.int64), tf.constant([0, 0], tf.int64))
  return tf.concat([tf.reshape(g, [x.shape[0], -1]) for g in grads], axis=1).numpy()


def diagonal_energy(gradients):
  """Share of the sample Fisher's energy on its diagonal: ||diag F||^2 / ||F||_F^2.

  F = G^T G / N for per-example gradients G [N, P]; computed through the N x N Gram matrix
  (||F||_F = ||G G^T||_F / N), so no P x P matrix is formed.
  """
  g = np.asarray(gradients, np.float64)
  diag = np.sum(g * g, axis=0)
  gram = g @ g.T
  total = np.sum(gram * gram)
  return float(np.sum(diag * diag) / total) if total > 0 else float("nan")


def diagonal_fisher_from_losses(per_example_loss, variables, batches):
  """E_i[(d loss_i / d theta)^2] for any per-example loss (e.g. a generator's, see MeRGAN's
  EWC): `per_example_loss(batch) -> [B]`, exact per-example gradients by a vectorised Jacobian,
  averaged over all examples of `batches` (an iterable of batches). NumPy float32 arrays."""

  @tf.function
  def squared_sums(batch):
    with tf.GradientTape() as tape:
      losses = per_example_loss(batch)
    jac = tape.jacobian(losses, variables, experimental_use_pfor=True)
    return [tf.reduce_sum(tf.square(j), axis=0) for j in jac], tf.shape(losses)[0]

  sums = [np.zeros(v.shape, np.float64) for v in variables]
  n = 0
  for batch in batches:
    grads, count = squared_sums(batch)
    for s, g in zip(sums, grads):
      s += g.numpy()
    n += int(count)
  return [(s / max(n, 1)).astype(np.float32) for s in sums]
