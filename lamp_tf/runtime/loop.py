"""The training loop, kept apart from the step it runs.

`TrainState` is everything a run needs to resume: models, optimisers and any other trackables
the method adds, plus a global step, the task index and a `tf.random.Generator`, all in one
`tf.train.Checkpoint` managed by a `CheckpointManager`.

`train_loop` runs a compiled step function (see `strategy.distributed_step`) until a step count,
drawing a fresh seed for every step from the state's generator, and owns checkpoints, summaries,
the progress line, periodic actions and the non-finite guard.
"""

import json
import math
import os
import shutil
import time

import tensorflow as tf
from absl import logging

import lamp_tf

_FIRST_STEP = {}  # this process's first training step: seconds after launch


def launch_to_first_step_s():
  """Seconds from this process's launch (lamp_tf's import, before TensorFlow's) to the end of
  its first training step: imports, data, model building and tracing. None before any step."""
  return _FIRST_STEP.get("s")


def _first_step_done(name):
  if "s" not in _FIRST_STEP:
    _FIRST_STEP["s"] = time.time() - lamp_tf.LAUNCH_TIME
    logging.info("%s: first training step done %.1f s after launch", name, _FIRST_STEP["s"])


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN or infinite; the last good checkpoint is kept."""


class DamagedCheckpointError(OSError):
  """No checkpoint of a run directory can be read; the message says how to start over."""


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
    """Restores the latest readable checkpoint of `directory`; returns True when there was one.

    A damaged (truncated, unreadable) checkpoint is skipped with a warning for the one before it
    (the manager keeps `max_to_keep`); when none is readable this raises DamagedCheckpointError
    naming the directory. Every object of this state must be in the checkpoint; with `partial`
    the checkpoint may hold more (e.g. restoring only the model of a training checkpoint).
    """
    candidates = self._checkpoints()
    if not candidates:
      return False
    for path in candidates:
      try:
        status = self.checkpoint.restore(path)
      except (tf.errors.OpError, IndexError) as e:  # IndexError: a truncated data file
        logging.warning("checkpoint %s is damaged or unreadable (%s); trying the one before it.",
                        path, str(e).strip().splitlines()[0][:200])
        continue
      status.assert_existing_objects_matched()
      if partial:
        status.expect_partial()
      logging.info("restored %s (step %d, task %d)", path, int(self.step), int(self.task))
      return True
    tried = ", ".join(os.path.basename(p) for p in candidates)
    raise DamagedCheckpointError(
        f"no readable checkpoint in {self.directory} (tried {tried}): the files are damaged; "
        "delete that directory to train this run again from the start.")

  def _checkpoints(self):
    """Checkpoint prefixes in `directory`, newest first: those the manager's index lists, and any
    other complete one (an index file) when the index itself is missing or damaged."""
    listed = []
    try:
      state = tf.train.get_checkpoint_state(self.directory)
      listed = list(state.all_model_checkpoint_paths) if state else []
    except (tf.errors.OpError, ValueError):  # a damaged 'checkpoint' index file
      pass
    found = [p[:-len(".index")] for p in tf.io.gfile.glob(os.path.join(self.directory,
                                                                       "*.index"))]
    paths = {os.path.join(self.directory, os.path.basename(p)) for p in listed + found}

    def number(path):
      tail = path.rsplit("-", 1)[-1]
      return int(tail) if tail.isdigit() else -1

    return sorted(paths, key=number, reverse=True)

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


# Where a program's training progress goes as data (a JSON record, replaced atomically at every
# progress line), when set: `lamp-tf-reproduce` sets it for each program it runs and reads it.
PROGRESS_FILE_ENV = "LAMP_TF_PROGRESS_FILE"


def read_progress(path):
  """The progress record at `path` ({"phase", "step", "total", "rate", "eta_s"}; eta_s None
  when unknown), or None before the first one (or when unreadable)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


class Progress:
  """Logs 'step i/n, steps/s, ETA and values' at most every `every_secs` seconds, and writes
  the same progress as a record to $LAMP_TF_PROGRESS_FILE when that is set (`read_progress`)."""

  def __init__(self, name, start, total, every_secs=10.0):
    self.name, self.total, self.every_secs = name, total, every_secs
    self._t0, self._s0 = time.monotonic(), start
    self._last = self._t0

  def rate(self, step):
    elapsed = time.monotonic() - self._t0
    return (step - self._s0) / elapsed if elapsed > 0 else 0.0

  def due(self):
    return time.monotonic() - self._last >= self.every_secs

  def update(self, step, values, force=False):
    now = time.monotonic()
    if not force and now - self._last < self.every_secs:
      return
    self._last = now
    rate = self.rate(step)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    logging.info("%s: step %d/%d (%.0f%%) %.2f steps/s ETA %s %s", self.name, step, self.total,
                 100.0 * step / max(self.total, 1), rate, duration_text(eta), shown)
    path = os.environ.get(PROGRESS_FILE_ENV)
    if path:
      record = {"phase": self.name, "step": int(step), "total": int(self.total),
                "rate": float(rate), "eta_s": float(eta) if math.isfinite(eta) else None}
      tmp = f"{path}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        json.dump(record, f)
      os.replace(tmp, path)  # a reader sees the old record or the new one, never half


def duration_text(seconds):
  """'1h02m03s' / '2m03s' (None or infinite: '?')."""
  if seconds is None or not math.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _all_finite(out):
  return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                                 for v in out.values()]))


def traceable(batches):
  """True when `batches` can be drawn from inside a compiled function (tf.data and distributed
  iterators, or an object that says so with `traceable = True`)."""
  return getattr(batches, "traceable", False) or isinstance(
      batches, (tf.data.Iterator, tf.distribute.DistributedIterator))


def _first_bad(first, ok, index):
  """The 1-based index of the first non-finite step so far (0: none)."""
  return tf.where(tf.logical_and(tf.equal(first, 0), tf.logical_not(ok)), index, first)


def _multi_step(state, step_fn, batches, replicas):
  """A compiled call running n >= 1 steps: (values of the last step, the 1-based index of its
  first step with a non-finite value, or 0)."""

  def one(first, index):
    out = step_fn(next(batches), state.rng.make_seeds(1)[:, 0])
    return out, _first_bad(first, _all_finite(out), index)

  @tf.function
  def run(n):  # one replica: a graph loop over a tensor n (traced once)
    out, first = one(tf.constant(0), tf.constant(1))
    for i in tf.range(2, n + 1):
      out, first = one(first, i)
    return out, first

  @tf.function
  def run_unrolled(n):  # several replicas cannot synchronise inside a graph loop: unrolled
    out, first = one(tf.constant(0), tf.constant(1))
    for i in range(2, n + 1):
      out, first = one(first, tf.constant(i))
    return out, first

  if replicas == 1:
    return lambda n: run(tf.constant(n, tf.int32))
  return run_unrolled  # traced once per distinct n


def train_loop(state, step_fn, batches, until_step, *, writer=None, checkpoint_every=1000,
               summary_every=100, actions=(), name="train", log_every_secs=10.0,
               steps_per_call=1, strategy=None):
  """Runs `step_fn(batch, seed)` from `state.step` until `until_step`.

  Args:
    state: the `TrainState`; its step is incremented after every step.
    step_fn: compiled step returning {name: scalar}; every value is checked to be finite.
    batches: an iterator of batches starting at the state's current step (see
      `data.pipeline.distribute_batches(start_step=...)`).
    until_step: the global step at which to stop (steps are global across tasks).
    writer: a `MetricWriter` for the step values, every `summary_every` steps, at the first
      step of the run and at the last.
    checkpoint_every: checkpoint period in steps; the last step is always saved.
    actions: (every_steps, fn(step)) pairs run after the step, e.g. evaluations and samples.
    steps_per_call: steps run by one compiled call (Orbit's steps_per_loop), when `step_fn` is a
      tf.function and `batches` can be drawn inside one (see `traceable`); calls stop at every
      summary, checkpoint and action step, so those stay where they were.
    strategy: the tf.distribute strategy `step_fn` runs under (`Runtime.loop_kwargs` passes
      the run's); its replica count chooses how several steps are compiled into one call. None:
      the strategy in scope where the loop is called.

  The values are read on the host only at summary, checkpoint and action steps, when the
  progress line is due, and at the end (no sync per step); finiteness is checked on the device
  at every step and read there.

  Returns the values of the last step (a dict of floats), or {} when nothing was left to run.
  Raises NonFiniteLossError on a NaN or infinite value, before anything of those steps is
  saved.
  """
  step = int(state.step)
  progress = Progress(name, step, until_step, log_every_secs)
  values = {}
  multi = None
  if steps_per_call > 1:
    if isinstance(step_fn, tf.types.experimental.PolymorphicFunction) and traceable(batches):
      replicas = (strategy or tf.distribute.get_strategy()).num_replicas_in_sync
      multi = _multi_step(state, step_fn, batches, replicas)
    else:
      logging.info("%s: one step per call (the step or its batches cannot be compiled into "
                   "a multi-step call)", name)
  periods = [summary_every, checkpoint_every] + [every for every, _ in actions]
  first_bad = tf.constant(0)  # first non-finite step since the last check (0: none)
  while step < until_step:
    if multi is not None:
      to_boundary = min(p - step % p for p in periods)
      n = max(1, min(steps_per_call, until_step - step, to_boundary))
      out, bad = multi(n)
      first_bad = _first_bad(first_bad, tf.equal(bad, 0), bad + step)
    else:
      n = 1
      seed = state.rng.make_seeds(1)[:, 0]
      out = step_fn(next(batches), seed)
      first_bad = _first_bad(first_bad, _all_finite(out), step + 1)
    _first_step_done(name)
    step += n
    state.step.assign(step)
    # The run's very first step is written too, so every curve starts where training did.
    summary = writer is not None and (step % summary_every == 0 or step == until_step or
                                      step == n)
    due = [fn for every, fn in actions if step % every == 0]
    save = step % checkpoint_every == 0 or step == until_step
    if summary or due or save or step == until_step or progress.due():
      if int(first_bad):
        raise NonFiniteLossError(
            f"{name}: non-finite loss at step {int(first_bad)}. The last good checkpoint is "
            f"kept ({state.latest or 'none yet'}); rerunning resumes from it. Lower the "
            "learning rate or check the data for NaNs before rerunning.")
      values = {k: float(v) for k, v in out.items()}
      if summary:
        writer.write_scalars(step, {f"{name}/{k}": v for k, v in values.items()})
      for fn in due:
        fn(step)
      if save:
        state.save()
      progress.update(step, values, force=step == until_step)
  return values
