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
  positions for a convolution). For a dense layer that is an outer product, whose elementwise
  square is (a_i^2)^T (g_i^2), so the Fisher's sum over examples is one matmul (a^2)^T (g^2)
  and no per-example gradient is formed. A convolution's square does not factor: its
  per-example gradients are formed kernel tap by kernel tap (the input under tap (i, j), a
  strided slice, times g: [B, C_in, C_out] each; with one input channel, all taps at once as
  a depthwise filter gradient with the examples as channels), squared and summed over the
  batch;
- any other model falls back to `GradientTape.jacobian` (vectorised with pfor), which is exact
  but several times slower on CPU for convolutions.
The batched functions are traced once per model and example shape (for any batch size) and
kept while the model lives (`compiled`), not traced again on every call.
`class_mask` restricts p(y|x) to some classes (the classes a task trains on): the logits of the
other classes get no probability and their parameters zero Fisher.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense

KINDS = ("true", "empirical")
DENSE = (keras.layers.Dense, RotatedDense)
CONV = (keras.layers.Conv2D, RotatedConv2D)
LINEAR = DENSE + CONV
ROTATED = (RotatedDense, RotatedConv2D)

# {model: {key: tf.function}}: weak in the model, so a function lives as long as its model.
_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, build):
  """The function `build(model_ref)` made for `model` under `key`: built on the first call, then
  the same one (traced functions are reused, not traced again on every call).

  Kept in a table weak in the model, so it goes when the model goes: a sweep that makes a model
  per run does not keep them alive. `build` gets a weak reference to the model and must not hold
  the model itself (a function holding its own key would keep it alive for ever).
  """
  functions = _COMPILED.setdefault(model, {})
  if key not in functions:
    functions[key] = build(weakref.ref(model))
  return functions[key]


def batch_key(x, labels=None):
  """The part of a compiled function's key that its input signature depends on."""
  return tuple(x.shape[1:]), x.dtype.name, labels is None


def batch_function(body, x, labels=None):
  """A tf.function of `body(x, labels, seed)` for batches shaped like `x` of any size (first
  dimension None, so a last smaller batch is not traced again): called as (x, seed) when
  `labels` is None (`body` gets None: it samples them), else as (x, labels, seed)."""
  x_spec = tf.TensorSpec([None, *x.shape[1:]], x.dtype)
  seed_spec = tf.TensorSpec([2], tf.int64)
  if labels is None:

    def sampled(x, seed):
      return body(x, None, seed)

    return tf.function(sampled, input_signature=[x_spec, seed_spec])
  return tf.function(body, input_signature=[x_spec, tf.TensorSpec([None], tf.int64), seed_spec])


def call_batch(fn, x, labels, seed):
  """Calls a `batch_function` with or without labels."""
  return fn(x, seed) if labels is None else fn(x, labels, seed)


def mask_key(class_mask):
  """A class mask as a key of `compiled`."""
  return None if class_mask is None else tuple(np.asarray(class_mask, bool).tolist())


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


def _closed_form(layer):
  """True when a layer's per-example gradients are computed here from its input and output
  gradient: Dense, Conv2D or their rotated forms whose output is their affine map (no built-in
  non-linear activation, as in Dense(16, activation="relu"): the gradient recorded at the output
  must be the one at a_i^T W), and for Conv2D a plain convolution (no dilation, no groups,
  channels last: the taps are read that way)."""
  if not isinstance(layer, LINEAR):
    return False
  if getattr(layer, "activation", None) not in (None, keras.activations.linear):
    return False
  if isinstance(layer, keras.layers.Conv2D):
    return (tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
            and layer.data_format == "channels_last")
  return True


def layerwise_supported(model):
  """True when every trainable layer of a Sequential model has a closed-form per-example
  gradient here (see `_closed_form`; an activation as its own layer is fine)."""
  return isinstance(model, keras.Sequential) and all(
      _closed_form(l) or not l.trainable_weights for l in model.layers)


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


def _output_size(layer, h, w):
  """(output height, width, padding [[top, bottom], [left, right]]) of a convolution on an
  input of spatial size h x w (TensorFlow's 'SAME' puts an odd pixel at the bottom and right)."""
  (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
  if layer.padding.upper() == "SAME":
    oh, ow = -(-h // sh), -(-w // sw)
    ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
    return oh, ow, [[ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2]]
  return (h - kh) // sh + 1, (w - kw) // sw + 1, [[0, 0], [0, 0]]


def taps(layer, x):
  """A convolution's input under each kernel tap (i, j), in row-major tap order: a list of
  kh*kw tensors [B, positions, C] (strided slices of the zero-padded input).

  Concatenated along channels they are the im2col patches (order i, j, c: a HWIO kernel
  reshaped to [kh*kw*C, filters]). Slices are several times faster on CPU than
  tf.image.extract_patches, most for few channels, and used tap by tap they need no
  [B, positions, kh*kw*C] tensor. The input's spatial size must be known when traced.
  """
  (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
  oh, ow, padding = _output_size(layer, *x.shape[1:3])
  x = tf.pad(x, [[0, 0], *padding, [0, 0]])
  b = tf.shape(x)[0]
  return [tf.reshape(x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw],
                     [b, oh * ow, x.shape[-1]])
          for i in range(kh) for j in range(kw)]


def patches(layer, x):
  """im2col patches [B, positions, kh*kw*C] of a convolution's input."""
  return tf.concat(taps(layer, x), axis=-1)


def _patch_rotated(layer):
  return isinstance(layer, RotatedConv2D) and layer.factor == "patch"


def _in_kernel_basis(layer, a, g):
  """(a, g, bias gradient) of a linear layer in float32 (also when it computes in bfloat16 or
  float16), as its trainable kernel sees them: g [B, positions, out] (positions 1 for a dense
  layer), rotated by U2 and `a` by U1 for a rotated layer (but for a patch-rotated convolution,
  whose U1 acts on patches); the bias is not rotated, its per-example gradient [B, out] is the
  sum of g over positions."""
  a, g = tf.cast(a, tf.float32), tf.cast(g, tf.float32)
  g = tf.reshape(g, [tf.shape(g)[0], -1, g.shape[-1]])
  bias = tf.reduce_sum(g, axis=1)
  if isinstance(layer, ROTATED):
    g = tf.tensordot(g, layer.u2, axes=1)  # gradient at the rotated kernel's output
    if not _patch_rotated(layer):
      a = tf.tensordot(a, layer.u1, axes=1)
  return a, g, bias


def _kernel_parts(layer, a, g):
  """Per-example gradients of a linear layer's kernel as pieces [B, rows, out] that, stacked
  along rows, are the kernel flattened to [rows, out]: one for a dense layer (a_i^T g_i, summed
  over positions where the input has more than one), one per kernel tap for a convolution
  ([B, C, out]: the tap's input times g, summed over positions), one for a patch-rotated
  convolution (U1^T times the stacked taps). `a`, `g` as `_in_kernel_basis` returns them."""
  if isinstance(layer, DENSE):
    return [tf.matmul(tf.reshape(a, [tf.shape(a)[0], -1, a.shape[-1]]), g, transpose_a=True)]
  if a.shape[-1] == 1 and layer.strides[0] == layer.strides[1]:
    parts = [_one_channel_products(layer, a, g)]
  else:
    parts = [tf.matmul(t, g, transpose_a=True) for t in taps(layer, a)]
  if _patch_rotated(layer):
    return [tf.einsum("kl,bko->blo", layer.u1, tf.concat(parts, axis=1))]
  return parts


def _one_channel_products(layer, a, g):
  """Per-example kernel gradients [B, kh*kw, out] of a convolution with one input channel (a
  first layer on grey images) as the filter gradient of one depthwise convolution with the
  examples as its channels: 2-2.5x faster on CPU than tap-by-tap [B, 1, out] products. (With
  more channels g would have to be copied per channel, which costs more than it saves.)"""
  (kh, kw), b, out = layer.kernel_size, tf.shape(a)[0], g.shape[-1]
  oh, ow, _ = _output_size(layer, *a.shape[1:3])
  x = tf.transpose(a, [3, 1, 2, 0])  # [1, H, W, B]
  # Output channel b * out + o of the depthwise convolution is example b's output o.
  dy = tf.reshape(tf.transpose(tf.reshape(g, [b, oh, ow, out]), [1, 2, 0, 3]), [1, oh, ow, -1])
  f = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
      input=x, filter_sizes=tf.stack([kh, kw, b, out]), out_backprop=dy,
      strides=[1, *layer.strides, 1], padding=layer.padding.upper())
  return tf.transpose(tf.reshape(f, [kh * kw, b, out]), [1, 0, 2])


def _by_variable(layer, kernel, bias):
  out = {id(layer.kernel): kernel}
  if getattr(layer, "bias", None) is not None:
    out[id(layer.bias)] = bias
  return out


def _per_example(layer, a, g):
  """{id(variable): per-example gradients [B, *shape]} of a linear layer's kernel and bias."""
  a, g, bias = _in_kernel_basis(layer, a, g)
  kernel = tf.concat(_kernel_parts(layer, a, g), axis=1)
  kernel = tf.reshape(kernel, tf.concat([tf.shape(g)[:1], tf.shape(layer.kernel)], 0))
  return _by_variable(layer, kernel, bias)


def _squared_sums(layer, a, g):
  """{id(variable): sum over the batch of squared per-example gradients} of a linear layer's
  kernel and bias, without forming a dense layer's per-example gradients."""
  a, g, bias = _in_kernel_basis(layer, a, g)
  if isinstance(layer, DENSE) and a.shape.rank == 2:
    # a_i^T g_i is an outer product, so (a_i^T g_i)^2 = (a_i^2)^T (g_i^2) elementwise: exact.
    kernel = tf.matmul(tf.square(a), tf.square(g[:, 0]), transpose_a=True)
  else:
    kernel = tf.concat([tf.reduce_sum(tf.square(p), axis=0)
                        for p in _kernel_parts(layer, a, g)], axis=0)
  return _by_variable(layer, tf.reshape(kernel, tf.shape(layer.kernel)),
                      tf.reduce_sum(tf.square(bias), axis=0))


def _layerwise(model, variables, class_mask, x, labels, seed, of_layer):
  """[of_layer(layer, a, g)[id(v)] for v in variables] from one recorded pass (traceable)."""
  wanted = {id(v) for v in variables}
  layers = [l for l in model.layers
            if isinstance(l, LINEAR) and any(id(w) in wanted for w in l.trainable_weights)]
  inputs, grads, _ = record(model, x, {l.name for l in layers}, class_mask, labels, seed)
  out = {}
  for layer in layers:
    out.update(of_layer(layer, inputs[layer.name], grads[layer.name]))
  return [out[id(v)] for v in variables]


def _jacobian(model, variables, class_mask, x, labels, seed):
  """Per-example gradients [B, *shape] of `variables` by a vectorised Jacobian (traceable)."""
  with tf.GradientTape() as tape:
    log_probs = masked_log_probs(model(x, training=False), class_mask)
    if labels is None:
      labels = tf.random.stateless_categorical(tf.stop_gradient(log_probs), 1, seed=seed,
                                               dtype=tf.int64)[:, 0]
    per_example = tf.gather(log_probs, labels, axis=1, batch_dims=1)
  return tape.jacobian(per_example, variables, experimental_use_pfor=True)


def gradient_function(model, variables, x, labels=None, class_mask=None, squared=False):
  """The compiled function (see `batch_function`; labels None: sampled) giving per-example
  gradients [B, *shape] of `variables`, or with `squared` their squares summed over the batch;
  one per model, variables, mask and example shape (`compiled`)."""
  key = ("squared" if squared else "per_example", tuple(id(v) for v in variables),
         mask_key(class_mask), batch_key(x, labels))

  def build(model_ref):

    def body(x, labels, seed):
      model = model_ref()
      if layerwise_supported(model):
        return _layerwise(model, variables, class_mask, x, labels, seed,
                          _squared_sums if squared else _per_example)
      grads = _jacobian(model, variables, class_mask, x, labels, seed)
      return [tf.reduce_sum(tf.square(g), axis=0) for g in grads] if squared else grads

    return batch_function(body, x, labels)

  return compiled(model, key, build)


def diagonal_fisher(model, images, labels=None, *, kind="true", seed=0, batch_size=100,
                    class_mask=None, variables=None):
  """Diagonal Fisher of `variables` (default: the trainable ones) as NumPy float32 arrays.

  Args:
    model: a Keras classifier returning logits.
    images: model inputs [N, ...] (already preprocessed).
    labels: true labels [N]; needed for kind='empirical'.
    kind: 'true' (labels sampled from the model) or 'empirical' (true labels).
    seed: seed of the sampled labels (int); batch b uses [seed, b].
    batch_size: examples per batch (memory: their activations, and their per-example
      gradients of a convolution kernel, formed tap by tap, or for the Jacobian fallback of
      all parameters).
    class_mask: boolean [num_classes] or None.
  """
  if kind not in KINDS:
    raise ValueError(f"--fisher={kind!r}: choose one of {', '.join(KINDS)}.")
  if kind == "empirical" and labels is None:
    raise ValueError("the empirical Fisher needs the true labels.")
  variables = model.trainable_variables if variables is None else variables
  sums = [np.zeros(v.shape, np.float64) for v in variables]
  n = len(images)
  for b, start in enumerate(range(0, n, batch_size)):
    x = tf.convert_to_tensor(images[start:start + batch_size])
    y = None if kind == "true" else tf.constant(np.asarray(labels[start:start + batch_size]),
                                                tf.int64)
    fn = gradient_function(model, variables, x, y, class_mask, squared=True)
    for s, g in zip(sums, call_batch(fn, x, y, tf.constant([seed, b], tf.int64))):
      s += g.numpy()
  return [(s / n).astype(np.float32) for s in sums]


def per_example_gradients(model, images, labels, variables, class_mask=None):
  """[N, #params] per-example gradients of log p(label|x), flattened and concatenated."""
  x = tf.convert_to_tensor(images)
  y = tf.convert_to_tensor(labels, tf.int64)
  grads = gradient_function(model, variables, x, y, class_mask)(x, y, tf.constant([0, 0],
                                                                                   tf.int64))
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
