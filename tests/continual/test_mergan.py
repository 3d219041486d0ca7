"""MeRGAN pieces: replay alignment, joint replay, the generator's Fisher, DGR sampling, resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import mergan
from lamp_tf.metrics import features as features_lib, seen_classes
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import flags as runtime_flags
from tests import numerics

SMALL = dict(architecture="dcgan", num_classes=4, conditioning="cbn", channels=1, resolution=32,
             g_width=16, d_width=8)
# The code under test and the reference below compute the same images and critic values with
# other batch shapes (all classes in one batch, or one per call), so with other kernels: they
# agree to rounding (tests/numerics.py). Float32 terms along the critic's longest chain:
# convolution fan-ins 25, 200, 400 and the heads' 512, with biases.
K_CRITIC = 1150


def _k_generator(rows):
  """Float32 terms along SMALL's generator: fc 128, the transposed convolutions' fan-ins
  (<= 9 x 16, 9 x 8, 9 x 4) and biases, ~400; with class moments over `rows` rows per class
  (0: moving statistics), each batch norm's mean and variance sums over rows x 4x4, 8x8, 16x16
  positions, ~6 N with the normalisation (an error in the mean counts |x - mean| / std <= ~4
  times, one in the variance half as much)."""
  return 400 + 6 * rows * (16 + 64 + 256)


def _pair(seed=0):
  keras.utils.set_random_seed(seed)
  g, d = gan_nets.make_gan(**SMALL)
  prev, _ = gan_nets.make_gan(**SMALL)
  mergan.copy_weights(prev, g)
  return g, d, prev


def _in_replica(fn, *args):
  strategy = tf.distribute.get_strategy()
  return strategy.run(fn, args=args)


def _reference_generate(g, z, c):
  """The reference's conditional batch norm: one class per call, normalised with that batch's
  own moments (`tf.nn.moments`), i.e. Keras batch norm in training mode on a single-class
  batch (run on a copy so moving averages of `g` are untouched)."""
  return g(z, tf.fill([len(z)], tf.constant(c, tf.int64)), training=True)


def _perturb(g, amount=0.05):
  fc = g.get_layer("fc")
  fc.kernel.assign(fc.kernel + amount)


@pytest.mark.parametrize("replay_batch", ["split", "per_class"])
def test_replay_alignment_is_the_reference_formula(replay_batch):
  g, _, prev = _pair()
  old, batch, weight = [0, 2, 3], 7, 1e-3
  extra = mergan.replay_alignment(g, prev, old, batch=batch, weight=weight, z_dim=128,
                                  replay_batch=replay_batch, moments="class")
  seed = tf.constant([3, 4], tf.int64)
  # The same weights, noise and kernels for both generators: old - new is exactly 0.
  assert float(_in_replica(extra, seed)["ra"]) == pytest.approx(0.0, abs=1e-12)
  _perturb(g)
  got = float(_in_replica(extra, seed)["ra"])
  # Reference (mergan.py RA_loss_fn): num_samples = batch // n_old with REDUCE_BATCH, else a
  # batch; RA = RA_FACTOR * sum_i tf.nn.l2_loss(old_i - new_i), divided by n_old when reduced.
  n_old = len(old)
  per = batch // n_old if replay_batch == "split" else batch
  z = tf.random.stateless_normal([n_old * per, 128], seed=seed).numpy()
  costs, diffs = [], []
  for k, i in enumerate(old):
    zi = z[k * per:(k + 1) * per]
    new_i = _reference_generate(g, zi, i).numpy()
    old_i = _reference_generate(prev, zi, i).numpy()
    diffs.append(old_i - new_i)
    costs.append(0.5 * np.sum((old_i - new_i) ** 2))  # tf.nn.l2_loss
  expected = sum(costs) * weight
  expected = expected / n_old if replay_batch == "split" else expected
  assert expected > 0
  # Each image pixel (|x| <= 1) is within f32(K) of the reference's, so old - new within
  # 2 f32(K); RA sums its squares: relative error <= 2 x 2 f32(K) / rms(old - new), plus the
  # sum itself, f32(#pixels). A few per cent here; a wrong RA (no 1/2 or 1/n_old, other
  # moments or noise) is off by a factor.
  d = np.concatenate(diffs)
  rel = 4 * numerics.f32(_k_generator(per)) / float(np.sqrt(np.mean(d ** 2)))
  rel += numerics.f32(d.size)
  assert got == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize("replay_batch", ["split", "per_class"])
def test_joint_replay_is_the_reference_formula(replay_batch):
  g, d, prev = _pair()
  _perturb(g)
  old, batch = [1, 3], 6
  critic_extra, generator_extra = mergan.joint_replay(
      g, prev, d, old, batch, 128, ac_weight=1.0, replay_batch=replay_batch, moments="class")
  seed = tf.constant([7, 8], tf.int64)
  c_terms = {k: float(v) for k, v in _in_replica(critic_extra, seed).items()}
  g_terms = {k: float(v) for k, v in _in_replica(generator_extra, seed).items()}
  # Reference (mergan.py JTR_loss_fn), per old class i with the same noise for both generators:
  # critic  mean D(new_i) - mean D(old_i) + mean CE(C(old_i), i)
  # gen     -mean D(new_i) + mean CE(C(new_i), i)
  # summed over the old classes with REDUCE_BATCH (batch // n_old each), else averaged.
  n_old = len(old)
  per = batch // n_old if replay_batch == "split" else batch
  z = tf.random.stateless_normal([n_old * per, 128], seed=seed).numpy()
  ce = lambda logits, i: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.fill([per], i), logits)).numpy()
  disc, disc_ac, gen, values, ces = [], [], [], [], []
  for k, i in enumerate(old):
    zi = z[k * per:(k + 1) * per]
    v_old, l_old = d(_reference_generate(prev, zi, i))
    v_new, l_new = d(_reference_generate(g, zi, i))
    disc.append(np.mean(v_new) - np.mean(v_old))
    disc_ac.append(ce(l_old, i))
    gen.append(-np.mean(v_new) + ce(l_new, i))
    values += [float(np.abs(v_old).max()), float(np.abs(v_new).max())]
    ces += [float(disc_ac[-1]), float(ce(l_new, i))]
  combine = (lambda x: np.sum(x)) if replay_batch == "split" else (lambda x: np.mean(x))
  # Critic values and cross-entropies through generator and critic: each within f32(K) of
  # its size; a term adds up to 2 n_old of them. A wrong sign, mean or combination moves a term
  # by at least its own size, which stays above twice the tolerance (checked for jtr, a
  # difference of close values).
  tol = numerics.f32(_k_generator(per) + K_CRITIC) * 2 * n_old
  assert abs(combine(disc)) > 2 * tol * max(values)
  assert c_terms["jtr"] == pytest.approx(combine(disc), rel=0, abs=tol * max(values))
  assert c_terms["jtr_ac"] == pytest.approx(combine(disc_ac), rel=0, abs=tol * max(ces))
  assert g_terms["jtr"] == pytest.approx(combine(gen), rel=0, abs=tol * (max(values) + max(ces)))


def test_reference_jtr_gives_each_old_class_the_weight_of_the_current_data():
  """With 'split', an old class's critic term is a mean over its batch // n_old samples, so it
  weighs as much as the current class's mean term, whatever n_old (the union variant gives it
  1 / (2 n_old))."""
  g, d, prev = _pair()
  _perturb(g)
  for old in ([0], [0, 1, 2, 3]):
    critic_extra, _ = mergan.joint_replay(g, prev, d, old, 64, 128, replay_batch="split",
                                          moments="class")
    labels, scale = mergan.replay_labels(old, 64, "split")
    assert scale == len(old) and len(labels) == 64 // len(old) * len(old)
    assert np.all(np.bincount(labels, minlength=4)[old] == 64 // len(old))


def test_class_batch_norm_normalises_each_class_with_its_own_moments():
  keras.utils.set_random_seed(3)
  g, _ = gan_nets.make_gan(**SMALL)
  z = tf.random.normal([10, 128])
  labels = tf.constant([0, 0, 0, 0, 2, 2, 2, 1, 1, 1], tf.int64)
  mixed = g(z, labels, moments="class").numpy()
  atol = numerics.f32(_k_generator(4))  # images in [-1, 1]; at most 4 rows per class
  for c in (0, 1, 2):
    rows = np.flatnonzero(labels.numpy() == c)
    alone = _reference_generate(g, tf.gather(z, rows).numpy(), c).numpy()
    np.testing.assert_allclose(mixed[rows], alone, rtol=0, atol=atol)
  # Moving statistics (the other choice) do depend on nothing in the batch but differ, by far
  # more than the tolerance.
  assert np.abs(g(z, labels, training=False).numpy() - mixed).max() > 10 * atol


def test_calibrated_statistics_serve_single_rows_as_the_calibration_batch():
  keras.utils.set_random_seed(4)
  g, _ = gan_nets.make_gan(**SMALL)
  _perturb(g, 0.2)
  gan_nets.calibrate_class_moments(g, [0, 1], seed=5, samples=32)
  # The calibration batch of class 1 is this noise: its stored moments are that batch's.
  z = tf.random.stateless_normal([32, 128], seed=[5, 1])
  labels = tf.ones([32], tf.int64)
  batch = g(z, labels, moments="class").numpy()
  rows = [0, 17, 31]
  one_by_one = np.concatenate([g(z[i:i + 1], labels[:1], moments="calibrated").numpy()
                               for i in rows])
  atol = numerics.f32(_k_generator(32))  # the moments of 32 rows, computed twice
  np.testing.assert_allclose(one_by_one, batch[rows], rtol=0, atol=atol)
  assert np.abs(g(z[:1], labels[:1], training=False).numpy() - batch[:1]).max() > 10 * atol


def test_joint_replay_appends_previous_generator_samples_of_old_classes():
  _, _, prev = _pair()
  replay = mergan.Replayer(prev, [1, 3], 128)  # jtr='union', moving statistics
  real = tf.zeros([4, 32, 32, 1])
  labels = tf.constant([2, 2, 2, 2], tf.int64)
  seed = tf.constant([5, 6], tf.int64)
  images, out_labels = _in_replica(replay, real, labels, seed)
  assert images.shape == (8, 32, 32, 1)
  np.testing.assert_array_equal(out_labels.numpy(), [2, 2, 2, 2, 1, 3, 1, 3])
  z = tf.random.stateless_normal([4, 128], seed=seed)
  np.testing.assert_allclose(images[4:].numpy(), prev(z, out_labels[4:], training=False),
                             rtol=0, atol=numerics.f32(_k_generator(0)))  # moving statistics


def test_generator_fisher_matches_a_per_sample_loop():  # moving statistics
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
  # Squared per-sample gradients of -D(G(z)) + CE: forward through G (moving statistics) and
  # D, back through both, then a kernel gradient's sum over up to 32x32 positions: K ~ 4000;
  # squares double relative errors. A wrong Fisher (squared mean gradient, wrong loss or
  # labels) is off by a factor.
  rtol = 2 * numerics.f32(2 * (_k_generator(0) + K_CRITIC) + 1024)
  for a, b in zip(fisher, sums):
    np.testing.assert_allclose(a, b / 6, rtol=rtol, atol=rtol * np.abs(b).max() / 6)


def _nearest_centre_solver(centres, unseen_class):
  """A fixed solver over 4 classes: from an image's mean intensity m, class c's logit is
  2 a_c m - a_c^2 (the argmax is the centre a_c nearest to m, since -(m - a_c)^2 differs from
  it by -m^2, the same for every class); the unseen class's logit is +100 everywhere, so it
  would win every argmax that did not leave it out."""
  x = keras.Input((32, 32, 1))
  m = keras.layers.GlobalAveragePooling2D()(x)
  logits = keras.layers.Dense(4, name="logits")(m)
  model = keras.Model(x, [logits, m])
  a = np.array(centres, np.float32)
  bias = -a ** 2
  bias[unseen_class] = 100.0
  model.get_layer("logits").set_weights([(2 * a)[None], bias])
  return model


def test_dgr_rejection_sampling_returns_solver_labelled_samples():
  """Issue #31: the old test checked only the classes an untrained solver happened to pick.
  With a fixed solver that picks each seen class for a third of the generator's draws, every
  sample returned for every requested label is one the solver labels as requested."""
  keras.utils.set_random_seed(2)
  g, _ = gan_nets.make_gan(**{**SMALL, "num_classes": None, "conditioning": None})
  means = g(tf.random.normal([512, 128]), tf.zeros([512], tf.int64),
            training=False).numpy().mean(axis=(1, 2, 3))
  seen = [0, 1, 3]
  centres = np.zeros(4)
  centres[seen] = np.quantile(means, [1 / 6, 1 / 2, 5 / 6])  # a third of the draws each
  solver = _nearest_centre_solver(centres, unseen_class=2)
  labels = np.array([0, 0, 1, 3, 3, 3])
  images = mergan.dgr_generate(g, solver, labels, seed=0, seen=seen, z_dim=128, max_draws=20)
  assert images.shape == (6, 32, 32, 1)
  picked = np.array(seen)[solver(images)[0].numpy()[:, seen].argmax(axis=1)]
  np.testing.assert_array_equal(picked, labels)
  assert len({images[i].tobytes() for i in range(6)}) == 6  # distinct draws, none repeated


def _data():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 12)
  images = rng.uniform(-1, 1, [48, 32, 32, 1]).astype(np.float32)
  return images, labels


GRID_Z = np.random.default_rng(0).normal(size=[4, 8, 128]).astype(np.float32)


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


@pytest.mark.parametrize("method,jtr", [
    pytest.param("ewc", "reference", marks=pytest.mark.slow),
    pytest.param("dgr", "reference", marks=pytest.mark.slow),
    pytest.param("jtr", "reference", marks=pytest.mark.slow), ("jtr", "union")])
def test_methods_with_their_own_machinery_run_two_tasks_and_report(method, jtr, tmp_path):
  images, labels = _data()
  rt, evaluator = _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every=2,
                                         samples_per_class=3, reverse_steps=2)
  cfg = mergan.MerganConfig(method=method, iterations=2, batch_size=4, n_critic=2,
                            fisher_samples=4, solver_steps=2, dgr_max_draws=2, jtr=jtr)
  record = mergan.run(rt, cfg, SMALL, images, labels, ((0, 1), (2, 3)), str(tmp_path / "run"),
                      evaluator, GRID_Z)
  assert record["method"] == method and len(record["accuracy_per_task"]) == 2
  matrix = record["accuracy_matrix"]
  assert matrix[0][2] is None and matrix[0][0] is not None and None not in matrix[1]
  assert np.load(tmp_path / "run" / "grids.npy").shape == (2, 4, 32, 32, 1)


@pytest.mark.slow
def test_a_run_killed_mid_task_resumes_there(tmp_path, monkeypatch):
  images, labels = _data()
  rt, evaluator = _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every=1,
                                         samples_per_class=2, reverse_steps=1)
  cfg = mergan.MerganConfig(method="ra", iterations=3, batch_size=4, n_critic=1)
  args = (SMALL, images, labels, ((0, 1), (2, 3)))
  full = mergan.run(rt, cfg, *args, str(tmp_path / "full"), evaluator,
                    GRID_Z)
  original = mergan.loop.train_loop

  def crash_at_5(*a, **k):
    def crash(step):
      if step == 5:
        raise Crash()
    return original(*a, **{**k, "actions": [(1, crash)]})

  monkeypatch.setattr(mergan.loop, "train_loop", crash_at_5)
  with pytest.raises(Crash):
    mergan.run(rt, cfg, *args, str(tmp_path / "crashed"), evaluator,
               GRID_Z)
  monkeypatch.setattr(mergan.loop, "train_loop", original)
  resumed = mergan.run(rt, cfg, *args, str(tmp_path / "crashed"), evaluator,
                       GRID_Z)
  # One process, one machine: the checkpoint restores weights, optimiser slots and random
  # streams exactly, so the resumed run repeats the uninterrupted one's arithmetic with the same
  # kernels: bit-identical (0 difference here), so the weight tolerance below (about one Adam
  # step, lr = 1e-4, on weights of ~0.1) holds on any CPU.
  assert resumed["accuracy_per_task"][0] == full["accuracy_per_task"][0]  # task 1 not redone
  g_full = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 2, str(tmp_path / "full"))
  g_res = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 2, str(tmp_path / "crashed"))
  for a, b in zip(g_full.generator.get_weights(), g_res.generator.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_a_run_started_from_the_shared_first_task_equals_one_that_trains_it(tmp_path):
  images, labels = _data()
  rt, evaluator = _runtime_and_evaluator(tmp_path, images, labels, checkpoint_every=10,
                                         samples_per_class=4, reverse_steps=1)
  cfg = mergan.MerganConfig(method="ra", iterations=2, first_task_iterations=3, batch_size=4,
                            n_critic=1)
  tasks = ((0,), (1,), (2,))
  args = (SMALL, images, labels)
  rt.seed(0)
  own = mergan.run(rt, cfg, *args, tasks, str(tmp_path / "own"), evaluator, GRID_Z)
  rt.seed(0)
  first = mergan.run(rt, mergan.MerganConfig(method="sft", iterations=2, first_task_iterations=3,
                                             batch_size=4, n_critic=1),
                     *args, tasks[:1], str(tmp_path / "first"), evaluator, GRID_Z)
  rt.seed(0)
  shared = mergan.run(rt, cfg, *args, tasks, str(tmp_path / "shared"), evaluator, GRID_Z,
                      init_from=str(tmp_path / "first"))
  # The same seeded first task, trained in this process or restored exactly from a
  # checkpoint, then the same steps with the same kernels: bit-identical (as above).
  assert shared["shared_first_task"] and not own["shared_first_task"]
  assert shared["accuracy_per_task"][0] == first["accuracy_per_task"][0]
  assert own["accuracy_per_task"][0] == first["accuracy_per_task"][0]
  g_own = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 3, str(tmp_path / "own"))
  g_shared = mergan.restore_networks(rt, cfg, SMALL, (32, 32, 1), 3, str(tmp_path / "shared"))
  for a, b in zip(g_own.generator.get_weights(), g_shared.generator.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  # 3 + 2 + 2 generator updates: the first task has its own budget.
  state = tf.train.load_checkpoint(str(tmp_path / "shared" / "checkpoints"))
  assert state.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 7


@pytest.mark.parametrize("field,value", [("method", "nope"), ("sample_bn", "x"),
                                         ("replay_batch", "all"), ("jtr", "both"),
                                         ("iterations", 0), ("ra_weight", -1.0),
                                         ("ewc_weight", -1.0), ("first_task_iterations", -2)])
def test_config_rejects_values_outside_their_range_naming_the_flag(field, value):
  with pytest.raises(ValueError, match=f"--{'methods' if field == 'method' else field}"):
    mergan.MerganConfig(**{field: value})


def test_split_replays_need_a_sample_per_old_class():
  with pytest.raises(ValueError, match="--batch_size=4"):
    mergan.replay_labels(list(range(6)), 4, "split")


def test_instance_memory_against_the_reference_computation():
  """Issue #33's measure, written out: the distances between samples of the same fixed (z, c)
  and, as 'another instance', between each first-task sample and the next z's of its class."""
  rng = np.random.default_rng(0)
  per_class = 4
  first = rng.uniform(-1, 1, [2 * per_class, 16, 16, 1]).astype(np.float32)
  now = np.clip(first + rng.normal(0, 0.1, first.shape), -1, 1).astype(np.float32)
  features = lambda x: x.reshape(len(x), -1)[:, :10] * 3.0  # any fixed map of the images
  out = mergan.instance_memory(now, first, per_class, features)

  def ssim(a, b):
    return float(np.mean(tf.image.ssim(tf.constant((a + 1) / 2), tf.constant((b + 1) / 2), 1.0)))

  other = np.stack([first[0 * per_class + (i + 1) % per_class] for i in range(per_class)] +
                   [first[1 * per_class + (i + 1) % per_class] for i in range(per_class)])
  for got, (a, b) in ((out, (now, first)), (out["reference"], (other, first))):
    assert np.isclose(got["mse"], np.mean((a - b) ** 2), rtol=1e-6)
    assert np.isclose(got["ssim"], ssim(a, b), rtol=1e-6)
    assert np.isclose(got["feature"], np.mean(np.sqrt(np.sum(
        (features(a) - features(b)) ** 2, axis=1))), rtol=1e-5)
  same = mergan.instance_memory(first, first, per_class, features)
  assert same["mse"] == 0 and same["feature"] == 0 and np.isclose(same["ssim"], 1.0)
  assert out["mse"] < out["reference"]["mse"]  # a small change keeps the instance
