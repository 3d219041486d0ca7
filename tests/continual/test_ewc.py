"""The EWC penalty: value, gradient, replace/accumulate, invariance to later rotations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import ewc, rotation
from lamp_tf.nets import classifiers
from tests import numerics

# The penalty is a float32 sum of positive terms F (theta - theta*)^2, each within a few
# roundings, over up to 48,120 entries (fc1's kernel): in any summation order within (K - 1) u of
# the exact sum, so TF's and NumPy's sums differ by at most f32(K) ~ 6e-3 relative. A wrong
# penalty (no 1/2, the wrong anchor or Fisher, a term dropped or counted twice) is off by a
# factor.
PENALTY_RTOL = numerics.f32(48200)


def _model(seed=0):
  keras.utils.set_random_seed(seed)
  return classifiers.lenet((32, 32, 1), 10)


def _random_fisher(model, seed):
  rng = np.random.default_rng(seed)
  return [rng.random(v.shape).astype(np.float32) for v in model.trainable_variables]


def _perturb(model, seed, scale=0.05):
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign(v.numpy() + scale * rng.normal(size=v.shape).astype(np.float32))


def test_penalty_value_and_gradient():
  model = _model()
  penalty = ewc.EWCPenalty(model)
  assert float(penalty()) == 0.0  # no term yet
  fisher = _random_fisher(model, 0)
  anchor = [v.numpy() for v in model.trainable_variables]
  penalty.add_term(fisher)
  assert float(penalty()) == 0.0  # at the anchor: theta - theta* is exactly 0
  _perturb(model, 1)
  expected = 0.5 * sum(np.sum(f * (v.numpy() - a) ** 2)
                       for f, v, a in zip(fisher, model.trainable_variables, anchor))
  assert float(penalty()) == pytest.approx(expected, rel=PENALTY_RTOL)
  with tf.GradientTape() as tape:
    value = penalty()
  # Elementwise, no sums: the same difference theta - theta* and a few roundings, ~4 eps32
  # relative; 1e-4 is loose, and a wrong gradient (a factor 2, the wrong Fisher) is off by O(1).
  for g, f, v, a in zip(tape.gradient(value, model.trainable_variables), fisher,
                        model.trainable_variables, anchor):
    np.testing.assert_allclose(g.numpy(), f * (v.numpy() - a), rtol=1e-4, atol=1e-7)


def test_replace_keeps_one_term_and_accumulate_sums_terms():
  model = _model()
  f1, f2 = _random_fisher(model, 0), _random_fisher(model, 1)
  replace = ewc.EWCPenalty(model, "replace", max_terms=3)
  accumulate = ewc.EWCPenalty(model, "accumulate", max_terms=3)
  a1 = [v.numpy() for v in model.trainable_variables]
  replace.add_term(f1)
  accumulate.add_term(f1)
  _perturb(model, 2)
  a2 = [v.numpy() for v in model.trainable_variables]
  replace.add_term(f2)
  accumulate.add_term(f2)
  _perturb(model, 3)
  cur = [v.numpy() for v in model.trainable_variables]

  def term(f, a):
    return 0.5 * sum(np.sum(fi * (c - ai) ** 2) for fi, c, ai in zip(f, cur, a))

  assert int(replace.count) == 1 and int(accumulate.count) == 2
  assert float(replace()) == pytest.approx(term(f2, a2), rel=PENALTY_RTOL)
  assert float(accumulate()) == pytest.approx(term(f1, a1) + term(f2, a2), rel=PENALTY_RTOL)


def test_accumulated_rotated_terms_penalise_the_same_weights_after_new_rotations():
  model = _model()
  rotated = rotation.rotated_copy(model, rotation.layers_to_rotate(model, "all"))
  rng = np.random.default_rng(0)

  def random_bases():
    out = {}
    for l in rotated.layers:
      if isinstance(l, rotation.ROTATED):
        out[l.name] = tuple(np.linalg.qr(rng.normal(size=u.shape))[0] for u in (l.u1, l.u2))
    return out

  rotation.set_bases(rotated, random_bases())
  penalty = ewc.EWCPenalty(rotated, "accumulate", max_terms=2)
  penalty.add_term(_random_fisher(rotated, 0))
  _perturb(rotated, 1)
  before = float(penalty())
  x = np.random.default_rng(1).random([4, 32, 32, 1]).astype(np.float32)
  out = rotated(x).numpy()
  rotation.set_bases(rotated, random_bases())  # new rotations, same function
  # Two float32 passes through rotated LeNets: K <= 1700 terms each (see test_rotation.py).
  np.testing.assert_allclose(rotated(x).numpy(), out, rtol=0,
                             atol=numerics.f32(1700) * np.abs(out).max())
  # The old term maps each kernel back to its basis, U1_k^T U1 W' U2^T U2_k in float32: ~1100
  # more terms for fc1's weights, an error ~f32(1100) |w| ~ 1e-5 against theta - theta* ~ 0.05,
  # ~1e-3 relative in the penalty once squared; with the two sums, f32(60000) ~ 7e-3. Reading
  # the new kernels in the old basis instead changes the penalty many times over.
  assert float(penalty()) == pytest.approx(before, rel=numerics.f32(60000))


def test_bad_mode_and_mismatched_fisher():
  model = _model()
  with pytest.raises(ValueError, match="--fisher_mode='online'"):
    ewc.EWCPenalty(model, "online")
  with pytest.raises(ValueError, match="Fisher arrays"):
    ewc.EWCPenalty(model).add_term([np.zeros(1)])
