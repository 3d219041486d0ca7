"""R-EWC rotations: same function, more diagonal Fisher, merge back to a plain network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import fisher, rotation
from lamp_tf.data import preprocess, sources
from lamp_tf.nets import classifiers
from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense
from tests import numerics


@pytest.fixture(scope="module")
def trained_lenet():
  """LeNet trained briefly on real digits 0-4 (a Fisher worth rotating)."""
  keras.utils.set_random_seed(1)
  ex = sources.load_examples("mnist5k", "train")
  idx = np.flatnonzero(ex.labels < 5)
  x = preprocess.prepare(ex.images[idx], 32, "pad", value_range="0,1").numpy()
  y = ex.labels[idx]
  model = classifiers.lenet((32, 32, 1), 10)
  opt = keras.optimizers.Adam(1e-3)
  mask = tf.constant(np.arange(10) < 5)

  @tf.function
  def step(xb, yb):
    with tf.GradientTape() as tape:
      logits = tf.where(mask[None], model(xb, training=True), -1e9)
      loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, True))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables))

  rng = np.random.default_rng(0)
  for _ in range(60):
    b = rng.choice(len(x), 100, replace=False)
    step(x[b], y[b])
  return model, x[:200], y[:200], np.arange(10) < 5


@pytest.mark.parametrize("variant,factor", [("all", "channel"), ("all_no_last", "channel"),
                                            ("fc", "channel"), ("conv", "patch")])
def test_rotated_network_computes_the_same_function(trained_lenet, variant, factor):
  model, x, _, mask = trained_lenet
  rotated = rotation.rotated_copy(model, rotation.layers_to_rotate(model, variant), factor)
  rotation.set_bases(rotated, rotation.compute_bases(rotated, x, seed=0, class_mask=mask))
  names = {l.name for l in rotated.layers if isinstance(l, rotation.ROTATED)}
  assert names == set(rotation.layers_to_rotate(model, variant))
  # Non-trivial rotations were installed...
  layers = [l for l in rotated.layers if isinstance(l, rotation.ROTATED)]
  assert max(np.abs(l.u1.numpy() - np.eye(l.u1.shape[0])).max() for l in layers) > 0.1
  # ...and the function is unchanged; merging gives a plain network with the same outputs.
  # Float32 forward passes: the plain LeNet sums K = 784 terms along its longest chain (fan-ins
  # 25, 150, 400, 120, 84 and a bias per layer); a rotated layer adds the fan-ins of its two maps
  # (400 + 120 for fc1) and the float32 rounding of U1, W', U2: K <= 1700 for every variant.
  # f32(1700) of the logits' size is ~3e-3 here; a wrong rotation moves logits by their size.
  expected = model(x, training=False).numpy()
  atol = numerics.f32(1700) * np.abs(expected).max()
  np.testing.assert_allclose(rotated(x, training=False).numpy(), expected, rtol=0, atol=atol)
  plain = rotation.plain_copy(rotated)
  assert not any(isinstance(l, rotation.ROTATED) for l in plain.layers)
  np.testing.assert_allclose(plain(x, training=False).numpy(), expected, rtol=0, atol=atol)


def test_rotations_are_orthonormal_eigenbases(trained_lenet):
  model, x, _, mask = trained_lenet
  names = ["fc1", "conv2"]
  factors = rotation.kronecker_factors(model, x, names, seed=0, class_mask=mask)
  # The float32 terms an entry of a factor sums per batch of 100 examples (batches are summed
  # in float64): (L, M) over the examples for fc1, and also over conv2's 14x14 input and 10x10
  # output positions for conv2.
  terms = {"fc1": (100, 100), "conv2": (100 * 14 * 14, 100 * 10 * 10)}
  for name in names:
    l, m = factors[name]
    u1, u2 = rotation.eigenbases({name: (l, m)})[name]
    for a, u, k in ((l, u1, terms[name][0]), (m, u2, terms[name][1])):
      n = len(u)
      # A = sum_i v_i v_i^T is symmetric only up to rounding: the kernels sum A_jk and A_kj in
      # different orders, each within (K - 1) u sum_i |v_ij v_ik| <= K u sqrt(A_jj A_kk)
      # (Cauchy-Schwarz), u = eps32 / 2; how much depends on the CPU's kernels. So eigenbases
      # diagonalises the symmetric part S, and S is what the eigenbasis is checked against.
      diag = np.sqrt(np.diag(a))
      assert np.all(np.abs(a - a.T) <= numerics.f32(k) * np.outer(diag, diag))
      s = (a + a.T) / 2
      # float64 eigh (LAPACK syevd) is backward stable: U^T U = I + E1 and U^T S U = Lambda + E2
      # with |E1|, |E2| / ||S||_2 = O(n eps64), and forming U^T S U adds rounding of the same
      # order: 50 n eps64 (~4e-12 for n = 400) bounds both. A basis that is not S's eigenbasis
      # leaves off-diagonal entries of the order of ||S||_2.
      bound = 50 * numerics.f64(n)
      norm = np.linalg.norm(s, 2)
      np.testing.assert_allclose(u.T @ u, np.eye(n), rtol=0, atol=bound)  # orthonormal
      d = u.T @ s @ u
      assert np.abs(d - np.diag(np.diag(d))).max() <= bound * norm  # an eigenbasis of S
      # Columns by decreasing eigenvalue: the diagonal is S's spectrum, largest first.
      np.testing.assert_allclose(np.diag(d), np.linalg.eigvalsh(s)[::-1], rtol=0,
                                 atol=bound * norm)
  assert factors["conv2"][0].shape == (6, 6) and factors["conv2"][1].shape == (16, 16)
  assert factors["fc1"][0].shape == (400, 400) and factors["fc1"][1].shape == (120, 120)


def test_patch_factors_have_im2col_size(trained_lenet):
  model, x, _, mask = trained_lenet
  factors = rotation.kronecker_factors(model, x[:50], ["conv2"], factor="patch", class_mask=mask)
  assert factors["conv2"][0].shape == (5 * 5 * 6, 5 * 5 * 6)


def _energy(model, x, mask):
  kernels = [l.kernel for l in model.layers if isinstance(l, rotation.ROTATED + rotation.PLAIN)
             and l.name in ("fc1", "fc2", "conv2")]
  labels = fisher.sample_labels(model, tf.constant(x), tf.constant([5, 0], tf.int64), mask)
  return fisher.diagonal_energy(fisher.per_example_gradients(model, x, labels, kernels, mask))


def test_rotation_concentrates_fisher_energy_on_the_diagonal(trained_lenet):
  model, x, _, mask = trained_lenet
  rotated = rotation.rotated_copy(model, ["conv2", "fc1", "fc2"])
  before = _energy(rotated, x, mask)
  rotation.set_bases(rotated, rotation.compute_bases(rotated, x, seed=0, class_mask=mask))
  after = _energy(rotated, x, mask)
  print(f"diagonal energy before {before:.4f} after {after:.4f}")
  assert after > 2 * before, (before, after)


def test_reference_code_output_rotation_is_the_transpose_and_less_diagonal(trained_lenet):
  """The authors' code (utils/lenet_utils.py compute_svd) stores Wp = Q1 W Q2 with
  Q1 = (U1^T U1)^-1 U1^T and Q2 = U2^T (U2 U2^T)^-1 and computes x U1 Wp U2."""
  model, x, _, mask = trained_lenet
  rotated = rotation.rotated_copy(model, ["conv2", "fc1", "fc2"])
  factors = rotation.kronecker_factors(model, x, ["fc1"], seed=0, class_mask=mask)
  u1, u2 = rotation.eigenbases(factors)["fc1"]  # U1, U2 as the paper (eigenvectors are
  q1 = np.linalg.inv(u1.T @ u1) @ u1.T            # unique up to sign: take ours for both)
  q2 = u2.T @ np.linalg.inv(u2 @ u2.T)
  w = model.get_layer("fc1").kernel.numpy().astype(np.float64)
  wp = q1 @ w @ q2  # the reference's rotated kernel
  # float64 products of 400 x 400 orthonormal matrices (and inverses of U^T U = I + O(n eps64)):
  # errors ~ n^2 eps64 max|w| ~ 1e-11 at worst; 1e-9 leaves room and is 1e6 times below the
  # 1e-3 by which the two conventions differ (checked below).
  np.testing.assert_allclose(u1 @ wp @ u2, w, atol=1e-9)  # the reference's forward map
  ref = rotation.eigenbases(factors, "reference_code")["fc1"]
  np.testing.assert_allclose(rotation.rotate_kernel(w, *ref), wp, atol=1e-9)
  np.testing.assert_allclose(rotation.unrotate_kernel(wp, *ref, w.shape), w, atol=1e-9)
  assert np.abs(rotation.rotate_kernel(w, u1, u2) - wp).max() > 1e-3  # the paper's differs
  energies = {}
  for kind in rotation.OUTPUT_ROTATIONS:
    rotation.set_bases(rotated, rotation.compute_bases(rotated, x, seed=0, class_mask=mask,
                                                       output_rotation=kind))
    energies[kind] = _energy(rotated, x, mask)
  print(energies)
  assert energies["paper"] > energies["reference_code"], energies
  with pytest.raises(ValueError, match="--output_rotation"):
    rotation.eigenbases(factors, "transposed")


def test_rotated_layers_have_fixed_non_trainable_maps():
  layer = RotatedDense(3)
  layer.build((None, 4))
  assert {v.name for v in layer.trainable_variables} == {"kernel", "bias"}
  assert {v.name for v in layer.non_trainable_variables} == {"u1", "u2"}
  conv = RotatedConv2D(2, 3, factor="patch")
  conv.build((None, 8, 8, 3))
  assert conv.u1.shape == (27, 27) and conv.kernel.shape == (27, 2)
  with pytest.raises(ValueError, match="rotation factor"):
    RotatedConv2D(2, 3, factor="pixel")


def test_unknown_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="--rotate='everything'"):
    rotation.layers_to_rotate(classifiers.mlp((4,), 3), "everything")
