"""The training loop, kept apart from the step it runs.

`TrainState` is everything a run needs to resume: models, optimisers and any other trackables
the method adds, plus a global step, the task index and a `tf.random.Generator`, all in one
`tf.train.Checkpoint` managed by a `CheckpointManager`.

`train_loop` runs a compiled step function (see `strategy.distributed_step`) until a step count,
drawing a fresh seed for every step from the state's generator, and owns checkpoints, summaries,
the progress line, periodic actions and the non-finite guard.
"""

import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf
from absl import logging


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainState:
  """Checkpointed state of one training run.

  Args:
    directory: where checkpoints go (on the chief; other workers write to a scratch directory
      that is deleted after every save, as MultiWorkerMirroredStrategy requires).
    seed: seeds the random generator of a fresh run (a restored run continues its sequence).
    trackables: models, optimisers, variables: anything `tf.train.Checkpoint` accepts.
  """

  def __init__(self, directory, seed, *, is_chief=True, worker=0, max_to_keep=2, **trackables):
    self.directory = directory
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.task = tf.Variable(0, dtype=tf.int64, trainable=False, name="task")
    self.rng = tf.random.Generator.from_seed(int(seed))
    self.trackables = trackables
    self.checkpoint = tf.train.Checkpoint(step=self.step, task=self.task, rng=self.rng,
                                          **trackables)
    self._check_reachable()
    self._write_dir = directory if is_chief else os.path.join(directory, f".worker{worker}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, self._write_dir, max_to_keep)
    self._is_chief = is_chief

  def _check_reachable(self):
    """Every weight of every model must be in the checkpoint. Keras 3 does not checkpoint
    layers held in Python lists or dicts of a subclassed model: they would be silently lost on
    resume, so this fails loudly instead."""
    reachable = {id(o) for o in tf.train.TrackableView(self.checkpoint).descendants()}
    for name, obj in self.trackables.items():
      missing = [v.path for v in getattr(obj, "weights", []) if id(v) not in reachable]
      if missing:
        raise ValueError(f"{name!r}: {len(missing)} weights would not be checkpointed (e.g. "
                         f"{missing[:3]}): Keras 3 does not checkpoint layers kept in Python "
                         "lists or dicts; assign each layer to its own attribute.")

  def restore(self, partial=False):
    """Restores the latest checkpoint of `directory`; returns True when there was one.

    Every object of this state must be in the checkpoint; with `partial` the checkpoint may hold
    more (e.g. restoring only the model of a training checkpoint for export).
    """
    latest = tf.train.latest_checkpoint(self.directory)
    if latest is None:
      return False
    status = self.checkpoint.restore(latest)
    status.assert_existing_objects_matched()
    if partial:
      status.expect_partial()
    logging.info("restored %s (step %d, task %d)", latest, int(self.step), int(self.task))
    return True

  def _check_finite(self):
    """Models, optimisers and modules must be finite; bare variables (e.g. an accuracy matrix
    that is NaN where undefined) are not checked."""
    for name, obj in self.trackables.items():
      if isinstance(obj, tf.Variable):
        continue
      for v in getattr(obj, "variables", []):
        if tf.as_dtype(v.dtype).is_floating and not bool(tf.reduce_all(tf.math.is_finite(v))):
          raise NonFiniteLossError(
              f"variable {v.name!r} of {name!r} is not finite at step {int(self.step)}; not "
              f"saving it. Last good checkpoint: {self.latest}.")

  @property
  def latest(self):
    return tf.train.latest_checkpoint(self.directory)

  def save(self):
    """Saves a checkpoint numbered by the step, after checking every float variable is finite."""
    self._check_finite()
    path = self.manager.save(checkpoint_number=int(self.step))
    if not self._is_chief:
      shutil.rmtree(self._write_dir, ignore_errors=True)
    return path


class Progress:
  """Logs 'step i/n, steps/s, ETA and values' at most every `every_secs` seconds."""

  def __init__(self, name, start, total, every_secs=10.0):
    self.name, self.total, self.every_secs = name, total, every_secs
    self._t0, self._s0 = time.monotonic(), start
    self._last = self._t0

  def rate(self, step):
    elapsed = time.monotonic() - self._t0
    return (step - self._s0) / elapsed if elapsed > 0 else 0.0

  def update(self, step, values, force=False):
    now = time.monotonic()
    if not force and now - self._last < self.every_secs:
      return
    self._last = now
    rate = self.rate(step)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    logging.info("%s: step %d/%d (%.0f%%) %.2f steps/s ETA %s %s", self.name, step, self.total,
                 100.0 * step / max(self.total, 1), rate, _duration(eta), shown)


def _duration(seconds):
  if not math.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def train_loop(state, step_fn, batches, until_step, *, writer=None, checkpoint_every=1000,
               summary_every=100, actions=(), name="train", log_every_secs=10.0):
  """Runs `step_fn(batch, seed)` from `state.step` until `until_step`.

  Args:
    state: the `TrainState`; its step is incremented after every step.
    step_fn: compiled step returning {name: scalar}; every value is checked to be finite.
    batches: an iterator of batches starting at the state's current step (see
      `data.pipeline.distribute_batches(start_step=...)`).
    until_step: the global step at which to stop (steps are global across tasks).
    writer: a `MetricWriter` for the step values, every `summary_every` steps.
    checkpoint_every: checkpoint period in steps; the last step is always saved.
    actions: (every_steps, fn(step)) pairs run after the step, e.g. evaluations and samples.

  Returns the values of the last step (a dict of floats), or {} when nothing was left to run.
  Raises NonFiniteLossError on a NaN or infinite value, before anything of that step is saved.
  """
  step = int(state.step)
  progress = Progress(name, step, until_step, log_every_secs)
  values = {}
  while step < until_step:
    seed = state.rng.make_seeds(1)[:, 0]
    out = step_fn(next(batches), seed)
    values = {k: float(v) for k, v in out.items()}
    bad = {k: v for k, v in values.items() if not np.isfinite(v)}
    if bad:
      raise NonFiniteLossError(
          f"{name}: non-finite {bad} at step {step + 1}. The last good checkpoint is kept "
          f"({state.latest or 'none yet'}); rerunning resumes from it. Lower the learning rate "
          "or check the data for NaNs before rerunning.")
    step += 1
    state.step.assign(step)
    if writer is not None and (step % summary_every == 0 or step == until_step):
      writer.write_scalars(step, {f"{name}/{k}": v for k, v in values.items()})
    for every, fn in actions:
      if step % every == 0:
        fn(step)
    if step % checkpoint_every == 0 or step == until_step:
      state.save()
    progress.update(step, values, force=step == until_step)
  return values
