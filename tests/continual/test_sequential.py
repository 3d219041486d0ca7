"""Sequential training: FT forgets, EWC/R-EWC hold task 1 better, and a crashed run resumes."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import sequential
from lamp_tf.data import preprocess, sources, tasks as tasks_lib
from lamp_tf.metrics import evaluators
from lamp_tf.runtime import flags as runtime_flags
from tests import numerics


@pytest.fixture(scope="module")
def data():
  train = sources.load_examples("mnist5k", "train")
  test = sources.load_examples("mnist5k", "test")
  keep = np.arange(0, len(train), 2)  # 2,000 training images

  def prep(x):
    return preprocess.prepare(x, 32, "pad", value_range="0,1").numpy()

  val = np.arange(1, len(train), 10)  # 400 held-out images for the Fisher and rotations
  return sequential.TaskData(prep(train.images[keep]), train.labels[keep], prep(test.images),
                             test.labels, ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)), 10, (28, 28, 1),
                             val_x=prep(train.images[val]), val_y=train.labels[val])


def _rt(path):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(path),
                               export_dir="", log_every_secs=1e9, checkpoint_every=10)


CFG = sequential.RunConfig(method="ft", seed=0, epochs=4, batch_size=50, fisher_samples=100)


def test_methods_share_the_first_task_and_penalties_reduce_forgetting(data, tmp_path):
  rt = _rt(tmp_path)
  first = sequential.train_first_task(rt, CFG, data, str(tmp_path / "first"))
  # Learning outcomes, not rounding: far from their thresholds (task 1 ~0.97, FT forgets ~0.4,
  # EWC and R-EWC keep ~0.78 and ~0.96 of task 1 against FT's ~0.57), where another CPU's
  # rounding moves a trained accuracy by a few test images at most.
  assert first[1][0] > 0.9 and np.isnan(first[1][1])
  records = {}
  for cfg in (CFG, dataclasses.replace(CFG, method="ewc", lam=1e4),
              dataclasses.replace(CFG, method="rewc", rotate="all_no_last", lam=1e4)):
    records[cfg.method], _ = sequential.run(rt, cfg, data, str(tmp_path / cfg.name), first)
  for r in records.values():  # the same stored first task, evaluated the same way: equal
    assert r["accuracy_matrix"][0][0] == pytest.approx(first[1][0])
  ft, ewc_r, rewc_r = records["ft"], records["ewc"], records["rewc"]
  assert ft["forgetting"] > 0.3  # fine-tuning forgets task 1
  assert ewc_r["task_accuracy"][0] > ft["task_accuracy"][0]
  assert rewc_r["task_accuracy"][0] > ft["task_accuracy"][0]
  assert rewc_r["fisher_energy_after"] > rewc_r["fisher_energy_before"]


class Crash(Exception):
  pass


def test_run_crashed_mid_task_resumes_to_the_same_result(data, tmp_path):
  rt = _rt(tmp_path)
  cfg = dataclasses.replace(CFG, method="rewc", rotate="all", lam=100.0, epochs=2)
  first = sequential.train_first_task(rt, cfg, data, str(tmp_path / "first"))
  full, full_model = sequential.run(rt, cfg, data, str(tmp_path / "full"), first)

  def crash(step):
    raise Crash(step)

  rt_crash = _rt(tmp_path)
  original = sequential.loop.train_loop

  def crashing_loop(*args, **kwargs):
    return original(*args, **{**kwargs, "actions": [(25, crash)]})

  sequential.loop.train_loop = crashing_loop
  try:
    with pytest.raises(Crash):
      sequential.run(rt_crash, cfg, data, str(tmp_path / "crashed"), first)
  finally:
    sequential.loop.train_loop = original
  resumed, resumed_model = sequential.run(rt, cfg, data, str(tmp_path / "crashed"), first)
  # One process, one machine: the checkpoint restores every variable, the batches and the
  # random streams exactly, so the resumed run computes what the uninterrupted one did with
  # the same kernels: bit-identical (0 difference here). The tolerances (one test image of
  # 500; 1e-3 of the weights) are loose, yet far below what a step trained twice or skipped,
  # or an optimiser not restored, changes.
  assert resumed["task_accuracy"] == pytest.approx(full["task_accuracy"], abs=2e-3)
  for a, b in zip(full_model.get_weights(), resumed_model.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_a_checkpoint_counting_steps_from_task_2_is_refused_not_resumed_at_the_wrong_step(
    data, tmp_path, monkeypatch):
  """Before the shared task loop, R-EWC's global step started at 0 on task 2. Such a checkpoint
  resumed with today's code would start its batches and its end at the wrong step."""
  rt = _rt(tmp_path)
  cfg = dataclasses.replace(CFG, epochs=1)
  first = sequential.train_first_task(rt, cfg, data, str(tmp_path / "first"))
  real = sequential.task_loop.starts
  first_steps = sequential.task_steps(cfg, data, 0)
  assert first_steps > 2
  # The old convention: task 2 starts at step 0.
  monkeypatch.setattr(sequential.task_loop, "starts",
                      lambda steps: [0] + [b - steps[0] for b in real(steps)[1:]])
  original = sequential.loop.train_loop

  def crash(step):
    raise Crash(step)

  monkeypatch.setattr(sequential.loop, "train_loop",
                      lambda *a, **k: original(*a, **{**k, "actions": [(2, crash)]}))
  with pytest.raises(Crash):
    sequential.run(rt, cfg, data, str(tmp_path / "old"), first)
  monkeypatch.setattr(sequential.task_loop, "starts", real)
  monkeypatch.setattr(sequential.loop, "train_loop", original)
  with pytest.raises(ValueError, match="counts steps from task 2"):
    sequential.run(_rt(tmp_path), cfg, data, str(tmp_path / "old"), first)


def test_with_sgd_rewc_at_lambda_0_follows_ft_and_with_adam_it_does_not(data, tmp_path):
  """An orthogonal re-parameterisation is invisible to plain gradient descent, not to Adam."""
  rt = _rt(tmp_path)
  weights = {}
  for opt, lr in (("sgd", 0.1), ("adam", 1e-3)):
    base = dataclasses.replace(CFG, epochs=1, optimizer=opt, lr=lr, fisher_split="train")
    first = sequential.train_first_task(rt, base, data, str(tmp_path / base.first_task_name))
    for method in ("ft", "rewc"):
      cfg = dataclasses.replace(base, method=method, rotate="all", lam=0.0)
      _, model = sequential.run(rt, cfg, data, str(tmp_path / cfg.name), first)
      weights[opt, method] = sequential.plain_model(model).get_weights()
  start = [np.asarray(w) for w in first[0]]

  def gap(opt):  # largest difference FT vs R-EWC, relative to how far task 2 moved the weights
    return max(np.abs(a - b).max() / np.abs(a - s).max()
               for a, b, s in zip(weights[opt, "ft"], weights[opt, "rewc"], start))

  # With SGD the two differ by rounding only: each step's gradient through the rotated LeNet
  # (K ~ 3,000 float32 terms, tests/continual/test_fisher.py) is within f32(K) of FT's, so to
  # first order the weights stay within f32(K) of how far they moved; 10 f32(K) ~ 4e-3 leaves
  # room for the training's amplification over the epoch. Adam's gap is 25 times that.
  bound = 10 * numerics.f32(3000)
  assert gap("sgd") < bound, gap("sgd")
  assert gap("adam") > 25 * bound, gap("adam")


def test_validation_split_is_stratified_disjoint_and_fixed():
  labels = np.repeat(np.arange(4), [10, 20, 30, 40])
  train, val = tasks_lib.validation_split(labels, 0.1, seed=0)
  assert np.bincount(labels[val]).tolist() == [1, 2, 3, 4]
  assert not set(train) & set(val) and len(train) + len(val) == len(labels)
  again = tasks_lib.validation_split(labels, 0.1, seed=0)
  assert np.array_equal(again[1], val)
  with pytest.raises(ValueError, match="--validation_fraction"):
    tasks_lib.validation_split(labels, 0.01, seed=0)  # class 0 would get none


def test_fisher_images_come_from_the_chosen_split(data):
  for split, x in (("train", data.train_x), ("validation", data.val_x)):
    images, labels = sequential.fisher_images(dataclasses.replace(CFG, fisher_split=split),
                                              data, 0)
    assert len(images) == CFG.fisher_samples and set(labels) == set(data.tasks[0])
    assert all((x == im).all(axis=(1, 2, 3)).any() for im in images[:5])  # copies: exact


def test_task_loss_never_covers_learned_classes(data):
  logits = tf.Variable(tf.random.normal([4, 10]))
  labels = tf.constant([5, 6, 9, 7], tf.int64)
  assert data.loss_classes(0, "unseen") == tuple(range(10))
  assert data.loss_classes(1, "unseen") == (5, 6, 7, 8, 9)
  assert data.loss_classes(0, "task") == (0, 1, 2, 3, 4)
  for kind in sequential.LOSSES:
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(sequential.task_loss(logits, labels, data.loss_classes(1, "unseen"),
                                                kind))
    grad = tape.gradient(loss, logits).numpy()
    # Exactly 0: the learned classes' logits are left out of the loss (no gradient reaches them).
    assert np.all(grad[:, :5] == 0) and np.all(np.abs(grad[:, 5:]).sum(axis=1) > 0)
  # Sigmoid: every covered logit is pushed towards its one-hot target.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(sequential.task_loss(logits, labels, tuple(range(10)), "sigmoid"))
  grad = tape.gradient(loss, logits).numpy()
  assert grad[0, 5] < 0 and grad[0, 0] > 0 and grad[0, 9] > 0


@pytest.mark.parametrize("field, value", [("loss", "hinge"), ("loss_classes", "all"),
                                          ("fisher_split", "test"), ("epochs", 0),
                                          ("optimizer", "rmsprop"), ("method", "si")])
def test_run_config_rejects_values_outside_their_range_naming_the_flag(field, value):
  flag = {"method": "methods"}.get(field, field)
  with pytest.raises(ValueError, match=f"--{flag}"):
    sequential.RunConfig(**{field: value})


def test_a_first_task_stored_before_the_task_aware_accuracy_gets_it_from_its_weights(data,
                                                                                      tmp_path):
  model, _ = sequential.build_model(CFG, data, tf.distribute.get_strategy())
  weights = model.get_weights()
  os.makedirs(tmp_path / "first")
  np.savez(tmp_path / "first" / "first_task.npz", accuracy=np.array([0.5, np.nan]),
           **{f"w{i}": w for i, w in enumerate(weights)})  # as written before
  got_weights, accuracy, aware = sequential.train_first_task(_rt(tmp_path), CFG, data,
                                                             str(tmp_path / "first"))
  assert len(got_weights) == len(weights) and accuracy[0] == 0.5
  expected = evaluators.make("task_accuracy", data)(model, task=0)["task_aware_accuracy"]
  # The same weights, model and evaluation in one process: equal.
  np.testing.assert_array_equal(aware, expected)
