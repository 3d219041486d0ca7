"""Checkpoints and resume (including SIGKILL), the non-finite guard, progress and summaries."""

import glob
import signal

import numpy as np
import pytest
import tensorflow as tf
from absl import logging as absl_logging

from lamp_tf.runtime import flags as runtime_flags
from lamp_tf.runtime import loop
from tests.runtime import helpers, tiny_program


def _weights(path):
  w = np.load(path)
  return [w[k] for k in w.files]


@pytest.mark.slow
def test_sigkill_then_restart_resumes_and_matches_uninterrupted_run(tmp_path):
  common = ["--steps=30", "--checkpoint_every=10", "--deterministic"]
  full = helpers.run_tiny(*common, f"--workdir={tmp_path / 'full'}",
                          f"--export_dir={tmp_path / 'full_export'}")
  assert full.returncode == 0, full.stdout[-3000:]

  killed = helpers.run_tiny(*common, "--kill_at_step=17", f"--workdir={tmp_path / 'killed'}",
                            f"--export_dir={tmp_path / 'killed_export'}")
  assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:]
  ckpts = tmp_path / "killed" / "train" / "checkpoints"
  assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-10")
  assert not (tmp_path / "killed" / "weights_worker0.npz").exists()

  resumed = helpers.run_tiny(*common, f"--workdir={tmp_path / 'killed'}",
                             f"--export_dir={tmp_path / 'killed_export'}")
  assert resumed.returncode == 0, resumed.stdout[-3000:]
  assert "restored" in resumed.stdout and "ckpt-10" in resumed.stdout
  # --deterministic, the same program in processes of the same kind on this machine, the
  # checkpoint restoring every variable and random stream: bit-identical by construction.
  for a, b in zip(_weights(tmp_path / "full" / "weights_worker0.npz"),
                  _weights(tmp_path / "killed" / "weights_worker0.npz")):
    np.testing.assert_array_equal(a, b)


def _runtime(workdir):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               export_dir="", checkpoint_every=5, log_every_secs=1e9)


def test_non_finite_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
  with pytest.raises(loop.NonFiniteLossError) as err:
    tiny_program.train(_runtime(tmp_path), 20, nan_at_step=8)
  message = str(err.value)
  assert "non-finite" in message and "step 8" in message and "ckpt-5" in message
  ckpt = tf.train.latest_checkpoint(str(tmp_path / "train" / "checkpoints"))
  assert ckpt.endswith("ckpt-5")
  reader = tf.train.load_checkpoint(ckpt)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.isfinite(value).all(), name


def test_save_refuses_non_finite_weights(tmp_path):
  module = tf.Module()
  module.v = v = tf.Variable([1.0, 2.0])
  metric = tf.Variable([np.nan])  # a bare variable may hold NaN (undefined entries)
  state = loop.TrainState(str(tmp_path), seed=0, weights=module, metric=metric)
  state.save()
  v.assign([1.0, np.inf])
  with pytest.raises(loop.NonFiniteLossError, match="not finite"):
    state.save()
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-0")


def test_restore_continues_the_random_sequence(tmp_path):
  state = loop.TrainState(str(tmp_path), seed=3)
  state.rng.make_seeds(2)
  state.save()
  expected = state.rng.make_seeds(1).numpy()
  fresh = loop.TrainState(str(tmp_path), seed=3)
  assert fresh.restore()
  np.testing.assert_array_equal(fresh.rng.make_seeds(1).numpy(), expected)


def _truncate(prefix):
  for data in glob.glob(prefix + ".data-*"):
    with open(data, "r+b") as f:
      f.truncate(3)


def test_a_damaged_checkpoint_falls_back_to_the_one_before_then_refuses_clearly(tmp_path):
  def state_with(value):
    module = tf.Module()
    module.v = tf.Variable(value)
    return module, loop.TrainState(str(tmp_path), seed=0, weights=module)

  module, state = state_with([1.0, 2.0])
  state.step.assign(4)
  state.save()
  module.v.assign([3.0, 4.0])
  state.step.assign(8)
  state.save()
  _truncate(str(tmp_path / "ckpt-8"))
  module, fresh = state_with([0.0, 0.0])
  assert fresh.restore()
  assert int(fresh.step) == 4
  np.testing.assert_array_equal(module.v.numpy(), [1.0, 2.0])  # restored bits: exact
  _truncate(str(tmp_path / "ckpt-4"))
  (tmp_path / "checkpoint").write_text("garbage {")  # a damaged index too
  with pytest.raises(loop.DamagedCheckpointError, match=r"ckpt-8, ckpt-4.*delete that directory"):
    state_with([0.0, 0.0])[1].restore()


def test_loop_writes_summaries_and_progress(tmp_path, caplog, monkeypatch):
  absl_logging.set_verbosity(absl_logging.INFO)
  caplog.set_level("INFO")
  rt = _runtime(tmp_path)
  rt.summary_every = 2
  rt.log_every_secs = 0.0
  progress = tmp_path / "progress.json"
  monkeypatch.setenv(loop.PROGRESS_FILE_ENV, str(progress))
  assert loop.read_progress(str(progress)) is None
  tiny_program.train(rt, 6)
  events = glob.glob(str(tmp_path / "train" / "events.out.tfevents.*"))
  assert events
  steps = [e.step for ev in events for e in tf.compat.v1.train.summary_iterator(ev)
           for v in e.summary.value if v.tag == "train/loss"]
  assert sorted(steps) == [1, 2, 4, 6]  # the first step, every 2 and the last
  assert any("steps/s" in r.message and "ETA" in r.message for r in caplog.records)
  # Issue #31: the progress as data, what lamp-tf-reproduce reads (no log line parsed back).
  record = loop.read_progress(str(progress))
  assert record["phase"] == "train" and (record["step"], record["total"]) == (6, 6)
  assert record["rate"] > 0 and record["eta_s"] == 0.0
  assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_models_whose_weights_a_checkpoint_cannot_reach_are_refused(tmp_path):
  import keras

  class ListHolder(keras.Model):
    def __init__(self):
      super().__init__()
      self.first = keras.layers.Dense(2)
      self.rest = [keras.layers.Dense(3)]  # Keras 3 does not checkpoint this one

    def call(self, x):
      return self.rest[0](self.first(x))

  model = ListHolder()
  model(tf.zeros([1, 4]))
  with pytest.raises(ValueError, match="1 weights would not be checkpointed|2 weights would not"):
    loop.TrainState(str(tmp_path), 0, model=model)


def _spc_runtime(workdir, steps_per_call, checkpoint_every=5):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               export_dir="", checkpoint_every=checkpoint_every,
                               summary_every=4, log_every_secs=1e9,
                               steps_per_call=steps_per_call)


def test_several_steps_per_call_train_the_same_steps_with_checkpoints_in_place(tmp_path):
  one, _ = tiny_program.train(_spc_runtime(tmp_path / "one", 1), 23)
  many, state = tiny_program.train(_spc_runtime(tmp_path / "many", 7), 23)
  # One process: both run the same step function with the same kernels (several to a call
  # only loop it), so the same arithmetic: bit-identical (0 difference here). The tolerance
  # is loose; a step skipped or repeated moves the weights by ~lr = 1e-2 (Adam).
  for a, b in zip(one.get_weights(), many.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(state.step) == 23
  numbers = sorted(int(p.split("ckpt-")[1].split(".")[0]) for p in glob.glob(
      str(tmp_path / "many" / "train" / "checkpoints" / "ckpt-*.index")))
  assert numbers[-2:] == [20, 23]  # every 5 steps and the last, as with one step per call


def test_the_loop_compiles_several_steps_for_the_replicas_of_the_strategy_it_is_given(
    tmp_path, monkeypatch):
  """Issue #31: the programs call train_loop outside `strategy.scope()`, so the replica count
  that chooses the multi-step compilation (a graph loop for one replica, unrolled for several)
  must come from the run's strategy, not from the ambient default one."""
  seen = []

  def spy(state, step_fn, batches, replicas):
    seen.append(replicas)
    return lambda n: ({"loss": tf.constant(0.0)}, tf.constant(0))

  monkeypatch.setattr(loop, "_multi_step", spy)
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # conftest's two CPUs
  rt = runtime_flags.Runtime(strategy=mirrored, workdir=str(tmp_path), export_dir="",
                             checkpoint_every=1000, summary_every=1000, log_every_secs=1e9,
                             steps_per_call=3)
  state = rt.train_state("train", 0)
  step_fn = tf.function(lambda batch, seed: {"loss": tf.constant(0.0)})
  batches = iter(tf.data.Dataset.range(10))
  assert tf.distribute.get_strategy().num_replicas_in_sync == 1  # called outside the scope
  loop.train_loop(state, step_fn, batches, 6, **rt.loop_kwargs())
  assert seen == [2]
  assert int(state.step) == 6


def test_non_finite_loss_inside_a_multi_step_call_names_its_step(tmp_path):
  with pytest.raises(loop.NonFiniteLossError, match="step 8"):
    tiny_program.train(_spc_runtime(tmp_path, 10, checkpoint_every=6), 20, nan_at_step=8)
  assert tf.train.latest_checkpoint(str(tmp_path / "train" / "checkpoints")).endswith("ckpt-6")


def test_values_reach_the_host_only_at_summaries_checkpoints_and_the_end(tmp_path, monkeypatch):
  """A host sync is a device tensor read into Python (`float`, `int`, `bool`, `.numpy()`: each
  goes through EagerTensor._numpy). Issue #31: the old test counted calls of `float` in the
  loop's module only, blind to `int(...)` or `.numpy()` anywhere. Here every read in the
  process is counted: 20 steps with boundaries (summary, checkpoint) every 10 read as often as
  40 steps with boundaries every 20, so nothing is read per step."""
  from tensorflow.python.framework import ops
  read = ops._EagerTensorBase._numpy
  reads = []

  def counting(self):
    reads.append(1)
    return read(self)

  def count(workdir, steps, every):
    rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               export_dir="", checkpoint_every=every, summary_every=every,
                               log_every_secs=1e9)
    model, optimizer = tiny_program.build(rt, 1e-2, 0)
    state = rt.train_state("train", 0, model=model, optimizer=optimizer)
    x, y = tiny_program.data()
    batches = iter(tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32))

    @tf.function
    def step_fn(batch, seed):
      with tf.GradientTape() as tape:
        logits = model(batch[0], training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch[1], logits))
      optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                    model.trainable_variables))
      return {"loss": loss}

    step_fn(next(batches), tf.constant([0, 0], tf.int64))  # traced outside the count
    reads.clear()
    monkeypatch.setattr(ops._EagerTensorBase, "_numpy", counting)
    loop.train_loop(state, step_fn, batches, steps, writer=rt.writer("train"),
                    **rt.loop_kwargs())
    monkeypatch.setattr(ops._EagerTensorBase, "_numpy", read)
    assert int(state.step) == steps
    return len(reads)

  short, long = count(tmp_path / "a", 20, 10), count(tmp_path / "b", 40, 20)
  assert short > 0  # the reads are seen: the loss and the finiteness check, at boundaries
  assert short == long


def test_launch_to_first_step_is_measured_once_and_reported(tmp_path, monkeypatch):
  import time
  import lamp_tf
  from lamp_tf.runtime import results
  monkeypatch.setattr(loop, "_FIRST_STEP", {})
  assert loop.launch_to_first_step_s() is None
  before = time.time() - lamp_tf.LAUNCH_TIME
  tiny_program.train(_runtime(tmp_path / "a"), 3)
  first = loop.launch_to_first_step_s()
  assert before <= first <= time.time() - lamp_tf.LAUNCH_TIME
  tiny_program.train(_runtime(tmp_path / "b"), 3)  # a later training keeps the process's first
  assert loop.launch_to_first_step_s() == first
  written = results.write_results(str(tmp_path), "p", {}, [])
  assert written["launch_to_first_step_s"] == first
  results.write_report(str(tmp_path), "T", [("S", "body")])
  assert f"first training step {first:.1f} s after launch" in (tmp_path / "REPORT.md").read_text()
