"""The batched exact diagonal Fisher against a naive one-example-at-a-time computation."""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import fisher, rotation
from lamp_tf.data import sources, preprocess
from lamp_tf.nets import classifiers
from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense
from tests import numerics

# The batched Fisher and the one-example loop compute each per-example gradient with other
# kernels (another batch size, im2col products instead of the convolution's own gradient), so
# they agree to rounding. Float32 terms summed along the longest chain, conv1's kernel gradient
# of LeNet: forward 784 (fan-ins 25, 150, 400, 120, 84 and biases), backward to conv1's output
# 10 + 84 + 120 + 400, then 784 positions: ~2200; rotations add their maps' fan-ins (<= 850) and
# the layer-norm network's normalisation sums 784 values each way: K = 4000 covers them all.
# A square doubles a relative error, so RTOL = 2 f32(K) ~ 1e-3, and ATOL the same of the
# largest entry for entries that cancel. A wrong Fisher (the squared mean gradient, gradients
# paired with the wrong inputs, a missing mask) is off by a factor, not by 1e-3.
RTOL = 2 * numerics.f32(4000)


@pytest.fixture(scope="module")
def lenet_and_images():
  keras.utils.set_random_seed(0)
  model = classifiers.lenet((32, 32, 1), 10)
  ex = sources.load_examples("mnist5k", "test").take(np.arange(0, 1000, 40))
  return model, preprocess.prepare(ex.images, 32, "pad", value_range="0,1").numpy(), ex.labels


def _naive(model, images, labels, mask):
  sums = [np.zeros(v.shape, np.float64) for v in model.trainable_variables]
  for x, y in zip(images, labels):
    with tf.GradientTape() as tape:
      log_probs = fisher.masked_log_probs(model(x[None], training=False), mask)
      loss = log_probs[0, int(y)]
    for s, g in zip(sums, tape.gradient(loss, model.trainable_variables)):
      s += np.square(g.numpy().astype(np.float64))
  return [s / len(images) for s in sums]


@pytest.mark.parametrize("mask", [None, np.arange(10) < 5])
def test_true_fisher_matches_per_example_loop(lenet_and_images, mask):
  model, images, _ = lenet_and_images
  # The same sampled labels the batched routine draws (batch b uses seed [3, b]).
  labels = np.concatenate([
      fisher.sample_labels(model, tf.constant(images[i:i + 10]), tf.constant([3, b], tf.int64),
                           mask).numpy() for b, i in enumerate(range(0, len(images), 10))])
  if mask is not None:
    assert mask[labels].all()
  batched = fisher.diagonal_fisher(model, images, kind="true", seed=3, batch_size=10,
                                   class_mask=mask)
  for a, b in zip(batched, _naive(model, images, labels, mask)):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())


def test_layers_with_built_in_activations_match_the_loop():
  # Dense/Conv2D with activation="relu"/"tanh" inside the layer: the gradient at the layer's
  # output is not the pre-activation one, so the closed form would be wrong there.
  keras.utils.set_random_seed(1)
  model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(16, activation="tanh"),
                            keras.layers.Dense(5)])
  assert not fisher.layerwise_supported(model)
  images = np.random.default_rng(0).normal(size=(12, 8, 8, 1)).astype(np.float32)
  labels = np.arange(12) % 5
  batched = fisher.diagonal_fisher(model, images, labels, kind="empirical", batch_size=5)
  for a, b in zip(batched, _naive(model, images, labels, None)):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())


def test_empirical_fisher_matches_and_is_not_the_squared_mean_gradient(lenet_and_images):
  model, images, labels = lenet_and_images
  batched = fisher.diagonal_fisher(model, images, labels, kind="empirical", batch_size=7)
  naive = _naive(model, images, labels, None)
  for a, b in zip(batched, naive):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())
  # The common bug: square of the batch-mean gradient, which is much smaller.
  with tf.GradientTape() as tape:
    lp = tf.nn.log_softmax(model(images, training=False))
    mean = tf.reduce_mean(tf.gather(lp, labels, axis=1, batch_dims=1))
  wrong = [np.square(g.numpy()) for g in tape.gradient(mean, model.trainable_variables)]
  assert sum(w.sum() for w in wrong) < 0.5 * sum(b.sum() for b in batched)


def test_masked_classes_get_zero_fisher_in_the_last_layer(lenet_and_images):
  model, images, _ = lenet_and_images
  mask = np.arange(10) < 5
  f = fisher.diagonal_fisher(model, images, kind="true", seed=0, class_mask=mask)
  kernel, bias = f[-2], f[-1]
  # Exactly zero in any arithmetic: the masked logits are replaced by -inf (tf.where), which
  # passes them no gradient.
  assert np.all(kernel[:, 5:] == 0) and np.all(bias[5:] == 0)
  assert np.all(kernel[:, :5].sum(axis=0) > 0)


def test_bad_kind_and_missing_labels():
  model = classifiers.mlp((4,), 3, hidden=(5,))
  with pytest.raises(ValueError, match="--fisher='exact'"):
    fisher.diagonal_fisher(model, np.zeros([2, 4], np.float32), kind="exact")
  with pytest.raises(ValueError, match="true labels"):
    fisher.diagonal_fisher(model, np.zeros([2, 4], np.float32), kind="empirical")


def test_diagonal_energy():
  g = np.random.default_rng(0).normal(size=[50, 6])
  f = g.T @ g / 50
  expected = np.sum(np.diag(f) ** 2) / np.sum(f ** 2)
  # float64 sums of 50 and 36 positive terms either way: ~f64(100) ~ 2e-14 relative.
  assert fisher.diagonal_energy(g) == pytest.approx(expected, rel=1e-10)
  assert fisher.diagonal_energy(np.eye(4) * [1, 2, 3, 4]) == pytest.approx(1.0)  # diagonal


def _rotated(model, names, factor, seed):
  rotated = rotation.rotated_copy(model, names, factor)
  rng = np.random.default_rng(seed)
  bases = {}
  for l in rotated.layers:
    if isinstance(l, rotation.ROTATED):
      bases[l.name] = tuple(np.linalg.qr(rng.normal(size=u.shape))[0] for u in (l.u1, l.u2))
  rotation.set_bases(rotated, bases)
  return rotated


def _with_layer_norm():
  keras.utils.set_random_seed(2)
  return keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 5, strides=2),
                           keras.layers.LayerNormalization(), keras.layers.ReLU(),
                           keras.layers.Flatten(), keras.layers.Dense(10)])


@pytest.mark.parametrize("variant", ["rotated_channel", "rotated_patch", "fallback"])
def test_rotated_layers_and_the_jacobian_fallback_match_the_loop(lenet_and_images, variant):
  model, images, labels = lenet_and_images
  if variant == "rotated_channel":
    model = _rotated(model, ["conv1", "conv2", "fc1", "fc2", "logits"], "channel", 0)
  elif variant == "rotated_patch":
    model = _rotated(model, ["conv2", "fc1"], "patch", 1)
  else:
    model = _with_layer_norm()
  assert fisher.layerwise_supported(model) == (variant != "fallback")
  batched = fisher.diagonal_fisher(model, images, labels, kind="empirical", batch_size=9)
  for a, b in zip(batched, _naive(model, images, labels, None)):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())


def test_per_example_gradients_match_single_example_gradients(lenet_and_images):
  model, images, labels = lenet_and_images
  model = _rotated(model, ["conv2", "fc2"], "channel", 3)
  kernels = [model.get_layer("conv2").kernel, model.get_layer("fc2").kernel]
  grads = fisher.per_example_gradients(model, images[:5], labels[:5], kernels)
  for i in range(5):
    with tf.GradientTape() as tape:
      lp = tf.nn.log_softmax(model(images[i:i + 1], training=False))[0, int(labels[i])]
    expected = np.concatenate([g.numpy().ravel() for g in tape.gradient(lp, kernels)])
    tol = numerics.f32(4000)  # gradients themselves, not squares: half the Fisher's RTOL
    np.testing.assert_allclose(grads[i], expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("case", ["dense_on_sequences", "dilated_convolution"])
def test_dense_on_sequences_and_dilated_convolutions_match_the_loop(case):
  # A Dense layer on [B, T, in] sums a_t^T g_t over t (its square does not factor); a dilated
  # convolution's taps are not read here, so it falls back to the Jacobian.
  keras.utils.set_random_seed(4)
  L = keras.layers
  if case == "dense_on_sequences":
    shape, body = (5, 3), [L.Dense(4), L.ReLU(), L.Flatten()]
  else:
    shape, body = (9, 9, 2), [L.Conv2D(3, 3, dilation_rate=2), L.ReLU(), L.Flatten()]
  model = keras.Sequential([keras.Input(shape), *body, L.Dense(4)])
  assert fisher.layerwise_supported(model) == (case == "dense_on_sequences")
  images = np.random.default_rng(1).normal(size=(11, *shape)).astype(np.float32)
  labels = np.arange(11) % 4
  batched = fisher.diagonal_fisher(model, images, labels, kind="empirical", batch_size=4)
  # Tiny networks (fan-ins <= 162 along the chain, forward and back): K = 400 float32 terms,
  # squared: 2 f32(400) ~ 1e-4; a sum over t squared instead of per example is off by O(1).
  tol = 2 * numerics.f32(400)
  for a, b in zip(batched, _naive(model, images, labels, None)):
    np.testing.assert_allclose(a, b, rtol=tol, atol=1e-12 + tol * np.abs(b).max())


def _small_convnet(seed, channels=2):
  keras.utils.set_random_seed(seed)
  L = keras.layers
  return keras.Sequential([
      keras.Input((10, 10, channels)), L.Conv2D(4, 3, strides=2, padding="same", name="conv"),
      L.ReLU(),
      L.Conv2D(5, 3, padding="same", name="rconv"), L.ReLU(), L.Flatten(),
      L.Dense(8, name="fc"), L.ReLU(), L.Dense(6, name="rfc")])


def test_functions_are_traced_once_per_model_and_freed_with_it(monkeypatch):
  traces = []
  record = fisher.record

  def counting_record(*args, **kwargs):
    traces.append(1)  # runs when a function is traced, not when it runs
    return record(*args, **kwargs)

  monkeypatch.setattr(fisher, "record", counting_record)
  model = _small_convnet(5)
  images = np.random.default_rng(2).normal(size=(10, 10, 10, 2)).astype(np.float32)
  first = fisher.diagonal_fisher(model, images, batch_size=4)  # batches of 4, 4 and 2
  assert len(traces) == 1
  again = fisher.diagonal_fisher(model, images, batch_size=4)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  fisher.diagonal_fisher(model, images, batch_size=3, seed=1)
  assert len(traces) == 1  # the same function, whatever the batch size and seed
  fisher.diagonal_fisher(model, images, np.arange(10) % 6, kind="empirical")
  assert len(traces) == 2  # labels given: another signature
  for _ in range(2):
    rotation.kronecker_factors(model, images, ["conv", "fc"], batch_size=4)
  assert len(traces) == 3
  functions = list(fisher._COMPILED[model].values())
  assert len(functions) == 3
  assert [f.experimental_get_tracing_count() for f in functions] == [1, 1, 1]
  other = _small_convnet(6)
  fisher.diagonal_fisher(other, images, batch_size=4)
  assert len(traces) == 4  # a second model has its own function
  assert fisher._COMPILED[other] is not fisher._COMPILED[model]
  # Dropping a model drops its functions (and the model: they do not hold it).
  dropped = weakref.ref(model)
  del functions
  gc.collect()  # models of other tests that were waiting for a collection
  count = len(fisher._COMPILED)
  del model
  gc.collect()
  assert dropped() is None
  assert len(fisher._COMPILED) == count - 1


def _torch_forward(model):
  """The model's function in PyTorch, f(params, x NHWC) -> logits, with params {variable path:
  tensor} holding the trainable variables in Keras's layouts (HWIO kernels, converted to OIHW
  for torch.nn.functional.conv2d; NCHW activations, flattened in Keras's NHWC order) and the
  fixed rotations U1, U2 as constants."""
  import torch
  F = torch.nn.functional
  const = lambda v: torch.tensor(np.asarray(v), dtype=torch.float32)

  def conv(layer, params, h):
    kernel, bias = params[layer.kernel.path], params[layer.bias.path]
    if isinstance(layer, RotatedConv2D) and layer.factor == "channel":
      h = torch.einsum("bchw,cd->bdhw", h, const(layer.u1))
    elif isinstance(layer, RotatedConv2D):
      kernel = (const(layer.u1) @ kernel).reshape(*layer.kernel_size, h.shape[1], -1)
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    if layer.padding.upper() == "SAME":  # TensorFlow's: the odd pixel at the bottom and right
      ph = max((-(-h.shape[2] // sh) - 1) * sh + kh - h.shape[2], 0)
      pw = max((-(-h.shape[3] // sw) - 1) * sw + kw - h.shape[3], 0)
      h = F.pad(h, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    h = F.conv2d(h, kernel.permute(3, 2, 0, 1), stride=(sh, sw))
    if isinstance(layer, RotatedConv2D):
      h = torch.einsum("bohw,po->bphw", h, const(layer.u2))
    return h + bias[None, :, None, None]

  def dense(layer, params, h):
    kernel, bias = params[layer.kernel.path], params[layer.bias.path]
    if isinstance(layer, RotatedDense):
      return h @ const(layer.u1) @ kernel @ const(layer.u2).T + bias
    return h @ kernel + bias

  def forward(params, x):
    h = x.permute(0, 3, 1, 2)
    for layer in model.layers:
      if isinstance(layer, fisher.CONV):
        h = conv(layer, params, h)
      elif isinstance(layer, fisher.DENSE):
        h = dense(layer, params, h)
      elif isinstance(layer, keras.layers.ReLU):
        h = F.relu(h)
      elif isinstance(layer, keras.layers.Flatten):
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
      else:
        raise NotImplementedError(layer)
    return h

  return forward


@pytest.mark.parametrize("factor,channels,rotate", [
    ("channel", 2, "rconv"), ("patch", 2, "rconv"), ("channel", 1, "rconv"),
    ("patch", 1, "conv")])
def test_fisher_is_exact_against_torch_func_per_example_gradients(factor, channels, rotate):
  torch = pytest.importorskip("torch")  # not in CI (`.[test]`); `make bench` installs it
  # Every layer kind: Conv2D, RotatedConv2D (one of them strided with 'same' padding, the other
  # 'same'), Dense, RotatedDense; a first convolution on one channel (a depthwise filter
  # gradient) or two (tap by tap), plain or patch-rotated.
  model = _rotated(_small_convnet(7, channels), [rotate, "rfc"], factor, 8)
  kinds = {type(l) for l in model.layers}
  assert {keras.layers.Conv2D, RotatedConv2D, keras.layers.Dense, RotatedDense} <= kinds
  assert fisher.layerwise_supported(model)
  images = np.random.default_rng(3).normal(size=(12, 10, 10, channels)).astype(np.float32)
  labels = np.arange(12) % 6
  forward = _torch_forward(model)
  params = {v.path: torch.tensor(v.numpy()) for v in model.trainable_variables}
  x, y = torch.tensor(images), torch.tensor(labels)
  # The same small convnet in two frameworks: K ~ 1000 float32 terms along its chain (fan-ins
  # of convolutions, rotations and dense layers), f32(1000) of the logits' size.
  tol = numerics.f32(1000)
  logits = model(images).numpy()
  np.testing.assert_allclose(forward(params, x).detach().numpy(), logits, rtol=tol,
                             atol=tol * np.abs(logits).max())

  def log_likelihood(params, xi, yi):
    return torch.log_softmax(forward(params, xi[None]), dim=-1)[0].gather(0, yi[None])[0]

  per_example = torch.func.vmap(torch.func.grad(log_likelihood), in_dims=(None, 0, 0))(
      params, x, y)
  ours = fisher.diagonal_fisher(model, images, labels, kind="empirical", batch_size=5)
  ours_per_example = fisher.per_example_gradients(model, images, labels,
                                                  model.trainable_variables)
  offset = 0
  for v, f in zip(model.trainable_variables, ours):
    g = per_example[v.path].numpy()
    # Both sides in float32, summing the same products in different orders (per-tap matmuls
    # and (a^2)^T (g^2) here, torch's convolution backward there): within f32(1000) of the
    # largest entry per example (measured: 5e-7), twice that for the squares of the Fisher; a
    # wrong layout, basis, tap order or scale is off by O(1) of it.
    expected = np.mean(np.square(g.astype(np.float64)), axis=0)
    np.testing.assert_allclose(f, expected, rtol=2 * tol,
                               atol=2 * tol * np.abs(expected).max())
    size = int(np.prod(v.shape))
    got = ours_per_example[:, offset:offset + size].reshape(g.shape)
    np.testing.assert_allclose(got, g, rtol=tol, atol=tol * np.abs(g).max())
    offset += size
