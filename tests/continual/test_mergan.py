"""MeRGAN pieces: replay alignment, joint replay, the generator's Fisher, DGR sampling, resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import mergan
from lamp_tf.metrics import features as features_lib, seen_classes
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import flags as runtime_flags
from lamp_tf.runtime import strategy as strategy_lib

SMALL = dict(architecture="dcgan", num_classes=4, conditioning="cbn", channels=1, resolution=32,
             g_width=16, d_width=8)


def _pair(seed=0):
  keras.utils.set_random_seed(seed)
  g, d = gan_nets.make_gan(**SMALL)
  prev, _ = gan_nets.make_gan(**SMALL)
  mergan.copy_weights(prev, g)
  return g, d, prev


def _in_replica(fn, *args):
  strategy = tf.distribute.get_strategy()
  return strategy.run(fn, args=args)


def test_replay_alignment_matches_the_reference_sum_and_is_zero_for_equal_generators():
  g, _, prev = _pair()
  extra = mergan.replay_alignment(g, prev, [0, 2], batch=6, weight=1e-3, z_dim=128)
  seed = tf.constant([3, 4], tf.int64)
  assert float(_in_replica(extra, seed)["ra"]) == pytest.approx(0.0, abs=1e-12)
  fc = g.get_layer("fc")
  fc.kernel.assign(fc.kernel + 0.05)
  z = tf.random.stateless_normal([6, 128], seed=seed)
  c = tf.constant([0, 2, 0, 2, 0, 2], tf.int64)  # spread evenly over the old classes
  diff = (g(z, c, training=False) - prev(z, c, training=False)).numpy()
  expected = 1e-3 * 2 * 0.5 * np.sum(diff ** 2)  # weight * n_old * l2_loss(batch)
  assert float(_in_replica(extra, seed)["ra"]) == pytest.approx(expected, rel=1e-5)
  assert expected > 0


def test_joint_replay_appends_previous_generator_samples_of_old_classes():
  _, _, prev = _pair()
  replay = mergan.Replayer(prev, [1, 3], 128)
  real = tf.zeros([4, 32, 32, 1])
  labels = tf.constant([2, 2, 2, 2], tf.int64)
  seed = tf.constant([5, 6], tf.int64)
  images, out_labels = _in_replica(replay, real, labels, seed)
  assert images.shape == (8, 32, 32, 1)
  np.testing.assert_array_equal(out_labels.numpy(), [2, 2, 2, 2, 1, 3, 1, 3])
  z = tf.random.stateless_normal([4, 128], seed=seed)
  np.testing.assert_allclose(images[4:].numpy(), prev(z, out_labels[4:], training=False),
                             atol=1e-6)


def test_generator_fisher_matches_a_per_sample_loop():
  g, d, _ = _pair(1)
  fisher = mergan.generator_fisher(g, d, [0, 1, 2], samples=6, seed=0, z_dim=128,
                                   ac_weight=1.0, batch=4)
  rng = np.random.default_rng(0)
  z = np.concatenate([rng.normal(size=[4, 128]), rng.normal(size=[2, 128])]).astype(np.float32)
  labels = np.array([0, 1, 2, 0, 1, 2])
  sums = [np.zeros(v.shape) for v in g.trainable_variables]
  for zi, ci in zip(z, labels):
    with tf.GradientTape() as tape:
      value, logits = d(g(zi[None], tf.constant([ci], tf.int64), training=False))
      loss = -value[0] + tf.nn.sparse_softmax_cross_entropy_with_logits([ci], logits)[0]
    for s, grad in zip(sums, tape.gradient(loss, g.trainable_variables)):
      s += np.square(tf.convert_to_tensor(grad).numpy())
  for a, b in zip(fisher, sums):
    np.testing.assert_allclose(a, b / 6, rtol=1e-4, atol=1e-9 + 1e-4 * np.abs(b).max() / 6)


def test_dgr_rejection_sampling_returns_solver_labelled_samples():
  keras.utils.set_random_seed(2)
  g, _ = gan_nets.make_gan(**{**SMALL, "num_classes": None, "conditioning": None})
  solver = features_lib.classifier_model((32, 32, 1), 4)
  labels = np.array([0, 0, 1, 3, 3, 3])
  images = mergan.dgr_generate(g, solver, labels, seed=0, seen=[0, 1, 3], z_dim=128,
                               max_draws=20)
  assert images.shape == (6, 32, 32, 1)
  logits = solver(images, training=False)[0].numpy()[:, [0, 1, 3]]
  picked = np.array([0, 1, 3])[logits.argmax(axis=1)]
  # Every requested class the solver ever picks comes back labelled as requested.
  for c in set(picked):
    assert np.all(picked[labels == c] == c) or c not in labels


def _data():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 12)
  images = rng.uniform(-1, 1, [48, 32, 32, 1]).astype(np.float32)
  return images, labels


class Crash(Exception):
  pass


def _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every, samples_per_class,
                           reverse_steps):
  """A default-strategy Runtime in tmp_path and a tiny 4-class seen-classes evaluator."""
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                             export_dir="", log_every_secs=1e9, checkpoint_every=checkpoint_every)
  clf = features_lib.DomainClassifier.train(images, labels, images, labels, 4, steps=2)
  return rt, seen_classes.SeenClassesEvaluator(clf, images, labels, 4,
                                               samples_per_class=samples_per_class,
                                               reverse_steps=reverse_steps)


@pytest.mark.parametrize("method", ["ewc", "dgr", "jtr"])  # RA: below; JT, SFT: program test
def test_methods_with_their_own_machinery_run_two_tasks_and_report(method, tmp_path):
  images, labels = _data()
  rt, evaluator = _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every=2,
                                         samples_per_class=3, reverse_steps=2)
  cfg = mergan.MerganConfig(method=method, iterations=2, batch_size=4, n_critic=2,
                            fisher_samples=4, solver_steps=2, dgr_max_draws=2)
  record = mergan.run(rt, cfg, SMALL, images, labels, ((0, 1), (2, 3)), str(tmp_path / "run"),
                      evaluator, np.zeros([4, 128], np.float32))
  assert record["method"] == method and len(record["accuracy_per_task"]) == 2
  matrix = record["accuracy_matrix"]
  assert matrix[0][2] is None and matrix[0][0] is not None and None not in matrix[1]
  assert np.load(tmp_path / "run" / "grids.npy").shape == (2, 4, 32, 32, 1)


def test_a_run_killed_mid_task_resumes_there(tmp_path, monkeypatch):
  images, labels = _data()
  rt, evaluator = _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every=1,
                                         samples_per_class=2, reverse_steps=1)
  cfg = mergan.MerganConfig(method="ra", iterations=3, batch_size=4, n_critic=1)
  args = (SMALL, images, labels, ((0, 1), (2, 3)))
  full = mergan.run(rt, cfg, *args, str(tmp_path / "full"), evaluator,
                    np.zeros([4, 128], np.float32))
  original = mergan.loop.train_loop

  def crash_at_5(*a, **k):
    def crash(step):
      if step == 5:
        raise Crash()
    return original(*a, **{**k, "actions": [(1, crash)]})

  monkeypatch.setattr(mergan.loop, "train_loop", crash_at_5)
  with pytest.raises(Crash):
    mergan.run(rt, cfg, *args, str(tmp_path / "crashed"), evaluator,
               np.zeros([4, 128], np.float32))
  monkeypatch.setattr(mergan.loop, "train_loop", original)
  resumed = mergan.run(rt, cfg, *args, str(tmp_path / "crashed"), evaluator,
                       np.zeros([4, 128], np.float32))
  assert resumed["accuracy_per_task"][0] == full["accuracy_per_task"][0]  # task 1 not redone
  g_full = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 2, str(tmp_path / "full"))
  g_res = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 2, str(tmp_path / "crashed"))
  for a, b in zip(g_full.generator.get_weights(), g_res.generator.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
