"""FID against the closed form, KID against a direct computation, IW's sign and ordering."""

import numpy as np
import pytest

from lamp_tf.metrics import fid, iw


def test_frechet_distance_closed_form_for_commuting_covariances():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=[4, 4]))
  d1, d2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 1.0, 4.0, 9.0])
  s1, s2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T  # same eigenvectors
  m1, m2 = np.zeros(4), np.array([1.0, -2.0, 0.0, 3.0])
  expected = np.sum((m1 - m2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))
  # float64, 4 x 4, well conditioned (eigenvalues 0.5 to 36): sqrtm and the traces are within
  # ~100 n eps64 ~ 1e-13 of the values (size ~10); a wrong formula is off by O(1).
  assert fid.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
  assert fid.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_works_with_scipy_1_18_sqrtm(monkeypatch):
  # SciPy 1.18 removes sqrtm's `disp` argument; a call passing it raises TypeError there.
  real_sqrtm = fid.scipy.linalg.sqrtm

  def sqrtm_1_18(a, *, blocksize=64):
    return real_sqrtm(a)

  m1, m2 = np.array([0.0, 1.0]), np.array([1.0, 1.0])
  s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
  monkeypatch.setattr(fid.scipy.linalg, "sqrtm", sqrtm_1_18)
  # Diagonal covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2.
  expected = 1.0 + (1.0 - 2.0) ** 2 + (2.0 - 1.0) ** 2
  assert fid.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)  # as above
  # A singular product takes the regularised path, also without `disp`: with the 1e-6 offset
  # the value is 0 up to float64 rounding of terms of size 1e-6.
  assert fid.frechet_distance(m1, np.zeros((2, 2)), m1, np.zeros((2, 2))) == \
      pytest.approx(0.0, abs=1e-5)


def test_fid_of_samples_approaches_the_closed_form():
  rng = np.random.default_rng(1)
  a = rng.normal(0.0, 1.0, [20000, 3])
  b = rng.normal([1.0, 0.0, 0.0], 2.0, [20000, 3])
  expected = 1.0 + 3 * (1 + 4 - 2 * 2)
  # Sampling error of 20,000 fixed draws (~1e-2), not rounding (float64: ~1e-12).
  assert fid.fid(a, b) == pytest.approx(expected, rel=0.05)


def test_kid_matches_a_direct_computation():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=[30, 5]), rng.normal(0.5, 1.0, size=[30, 5])

  def k(u, v):
    return (u @ v / 5 + 1.0) ** 3

  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  # float64 sums of 900 kernel values each (size ~1 to 10), whose difference MMD^2 is a few
  # times smaller: ~f64(900) x 10 ~ 2e-12 relative; std of one subset is exactly 0.
  assert fid.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
  mean, std = fid.kid(x, y, subsets=1, subset_size=100)
  assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-10) and std == 0.0


def test_iw_is_near_zero_for_the_same_distribution_and_negative_for_a_different_one():
  rng = np.random.default_rng(3)
  real = np.clip(rng.normal(0.0, 0.3, [400, 16, 16, 1]), -1, 1).astype(np.float32)
  same = np.clip(rng.normal(0.0, 0.3, [400, 16, 16, 1]), -1, 1).astype(np.float32)
  other = np.clip(rng.normal(0.5, 0.3, [400, 16, 16, 1]), -1, 1).astype(np.float32)
  close = iw.independent_wasserstein(real, same, steps=150, width=8)
  far = iw.independent_wasserstein(real, other, steps=150, width=8)
  # Outcomes of training a critic, far from the thresholds (close ~0.01, far ~-1.5): another
  # CPU's rounding changes them by far less than the margins.
  assert far < close - 1.0
  assert abs(close) < 0.5 * abs(far)


def test_iw_curve_gives_the_iw_of_a_critic_trained_each_length():
  rng = np.random.default_rng(4)
  real = np.clip(rng.normal(0.0, 0.3, [200, 16, 16, 1]), -1, 1).astype(np.float32)
  other = np.clip(rng.normal(0.4, 0.3, [200, 16, 16, 1]), -1, 1).astype(np.float32)
  curve = iw.iw_curve(real, other, [60, 20], width=8)  # any order; one critic trained once
  alone = [iw.independent_wasserstein(real, other, steps=n, width=8) for n in (60, 20)]
  # The same seeded training by the same code in one process: the same numbers by
  # construction; the tolerance is far below the change of IW between 20 and 60 steps.
  np.testing.assert_allclose(curve, alone, rtol=1e-4, atol=1e-4)
  assert curve[0] != curve[1]
  with pytest.raises(ValueError, match="critic steps"):
    iw.iw_curve(real, other, [0])


def test_inception_features_from_a_local_weights_file(tmp_path):
  import keras
  from lamp_tf.metrics import features
  path = str(tmp_path / "inception_notop.weights.h5")
  keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                  input_shape=(299, 299, 3)).save_weights(path)
  extractor = features.InceptionFeatures(path)
  f = extractor.features(np.random.default_rng(0).uniform(-1, 1, [3, 32, 32, 1]).astype(
      np.float32))
  assert f.shape == (3, 2048) and np.isfinite(f).all()
  assert features.describe(extractor) == "FID (Inception-v3 features)"
  with pytest.raises(FileNotFoundError, match="--inception_weights"):
    features.InceptionFeatures(str(tmp_path / "missing.h5"))


def test_cached_classifier_is_not_reused_for_other_training_data(tmp_path):
  from lamp_tf.metrics import features
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, [40, 8, 8, 1]).astype(np.float32)
  y = np.repeat(np.arange(2), 20)
  first = features.DomainClassifier.train_or_load(str(tmp_path), x, y, x, y, 2, steps=2,
                                                  batch_size=8)
  again = features.DomainClassifier.train_or_load(str(tmp_path), x, y, x, y, 2, steps=2,
                                                  batch_size=8)
  for a, b in zip(first.model.get_weights(), again.model.get_weights()):
    np.testing.assert_array_equal(a, b)  # same data and settings: the cache (a bitwise copy)
  other = features.DomainClassifier.train_or_load(str(tmp_path), -x, 1 - y, x, y, 2, steps=2,
                                                  batch_size=8, seed=1)
  assert len(list(tmp_path.iterdir())) == 2  # another target with as many classes: its own
  assert any(not np.array_equal(a, b) for a, b in zip(first.model.get_weights(),
                                                      other.model.get_weights()))


def test_cached_classifier_is_not_reused_by_other_code_that_builds_or_trains_it(monkeypatch):
  """Issue #31: the cache (the tests' is shared across runs and checkouts in the temporary
  directory) was keyed by data and settings only: a classifier cached by another architecture
  or training loop with the same input shapes was loaded as if it were this code's."""
  from lamp_tf.metrics import features
  x = np.zeros([4, 8, 8, 1], np.float32)
  y = np.arange(4) % 2
  key = lambda: features.DomainClassifier.cache_key(x, y, 2, 10, 8, 0)
  before = key()
  assert key() == before  # deterministic

  original = features.classifier_model

  def wider(image_shape, num_classes, width=32):  # another architecture, the same interface
    return original(image_shape, num_classes, width)

  monkeypatch.setattr(features, "classifier_model", wider)
  assert key() != before
  monkeypatch.undo()
  assert key() == before

  class OtherTraining(features.DomainClassifier):
    @classmethod
    def train(cls, *args, **kwargs):  # another training loop
      return super().train(*args, **kwargs)

  assert OtherTraining.cache_key(x, y, 2, 10, 8, 0) != before
