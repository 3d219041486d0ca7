"""The shared continual task loop: hook order, one start per task across a resume, optimiser
resets, and the global step convention."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import task_loop
from lamp_tf.runtime import loop


def test_starts_count_global_steps_from_the_first_task():
  assert task_loop.starts([3, 5, 2]) == [0, 3, 8, 10]


def _state(tmp_path, optimizer, task_started):
  return loop.TrainState(str(tmp_path / "ckpt"), 0, optimizer=optimizer,
                         task_started=task_started)


def test_a_run_killed_mid_task_resumes_without_starting_the_task_again(tmp_path):
  weight = tf.Variable([1.0, 2.0])
  optimizer = keras.optimizers.Adam(0.1)
  optimizer.build([weight])
  task_started = tf.Variable(False, trainable=False)
  state = _state(tmp_path, optimizer, task_started)
  calls = []
  crash = {"at": 1}

  def start(t):
    calls.append(("start", t, int(optimizer.iterations)))

  def train(t):
    calls.append(("train", t, int(optimizer.iterations)))
    optimizer.apply([tf.ones(2)], [weight])  # one update: the slots and counter move
    state.step.assign_add(1)
    state.save()
    if crash["at"] == t:
      crash["at"] = None
      raise KeyboardInterrupt("killed")

  def finish(t):
    calls.append(("finish", t, int(state.task)))

  with pytest.raises(KeyboardInterrupt):
    task_loop.run_tasks(state, task_started, 3, [optimizer], start, train, finish)
  # A new process: fresh objects restored from the checkpoint.
  weight = tf.Variable([0.0, 0.0])
  optimizer2 = keras.optimizers.Adam(0.1)
  optimizer2.build([weight])
  task_started2 = tf.Variable(False, trainable=False)
  state2 = _state(tmp_path, optimizer2, task_started2)
  assert state2.restore() and int(state2.task) == 1 and bool(task_started2)
  optimizer, state = optimizer2, state2  # what the hooks see from now on
  task_loop.run_tasks(state2, task_started2, 3, [optimizer2], start, train, finish)
  assert [c[:2] for c in calls] == [
      ("start", 0), ("train", 0), ("finish", 0),
      ("start", 1), ("train", 1),             # killed after its update
      ("train", 1), ("finish", 1),            # resumed: task 1 is not started again
      ("start", 2), ("train", 2), ("finish", 2)]
  # Each start sees the optimiser as the previous task left it (reset right after start); each
  # task trains from a reset optimiser, except the resumed one, which keeps its update.
  assert [c[2] for c in calls if c[0] == "start"] == [0, 1, 2]
  assert [c[2] for c in calls if c[0] == "train"] == [0, 0, 1, 0]
  assert [c[2] for c in calls if c[0] == "finish"] == [0, 1, 2]  # tasks finished so far
  assert int(state2.task) == 3 and not bool(task_started2) and int(state2.step) == 4
  np.testing.assert_array_equal(optimizer2.iterations.numpy(), 1)
