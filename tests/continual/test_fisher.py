"""The batched exact diagonal Fisher against a naive one-example-at-a-time computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import fisher, rotation
from lamp_tf.data import sources, preprocess
from lamp_tf.nets import classifiers
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
