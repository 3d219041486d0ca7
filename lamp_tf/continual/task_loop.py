"""The continual-learning task loop of R-EWC (`sequential`) and MeRGAN (`mergan`).

One convention for both: the run's `TrainState` counts global steps from the start of the first
task (task t, 0-based, runs from `starts(steps)[t]` to `starts(steps)[t + 1]`), and its `task` is the
number of tasks finished. A method supplies three hooks; the loop owns the order, the optimiser
reset and the saves, so a run killed anywhere resumes where it stopped:

  start(t)   before task t's first step, once (not again when resuming mid-task): e.g. the
             previous task's Fisher, the rotations, a frozen copy of the generator;
  train(t)   trains task t up to its last step, resuming from `state.step`;
  finish(t)  after task t's training: evaluation, figures, files.
"""

from lamp_tf.runtime import strategy as strategy_lib


def starts(task_steps):
  """Global start step of each task and the end of the last: [0, n_0, n_0 + n_1, ...]."""
  out = [0]
  for n in task_steps:
    out.append(out[-1] + n)
  return out


def run_tasks(state, task_started, num_tasks, optimizers, start, train, finish):
  """Runs tasks `state.task` .. num_tasks - 1 with the hooks above; `task_started` (a boolean
  tf.Variable in the state's checkpoint) records that `start` ran and the optimisers were reset
  for the current task."""
  for t in range(int(state.task), num_tasks):
    if not bool(task_started):
      start(t)
      for optimizer in optimizers:
        strategy_lib.reset_optimizer(optimizer)
      task_started.assign(True)
      state.save()
    train(t)
    finish(t)
    state.task.assign(t + 1)
    task_started.assign(False)
    state.save()
