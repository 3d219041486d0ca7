r"""lamp-tf-mergan: sequential class-conditional GANs without forgetting (MeRGAN) and baselines.

  lamp-tf-mergan --flagfile=flags/mergan_mnist_5tasks.cfg --workdir=runs/mergan_mnist_5tasks

Runs every --methods entry (jt, sft, ewc, dgr, jtr, ra) for every seed over the tasks, each
resumable mid-task; after every task it scores the generator on the classes seen so far
(accuracy of a real-data classifier on its samples, reverse accuracy, FID/KID on that
classifier's features). Writes the table in the shape of the paper's Table 1 (rows: data set and
number of tasks; columns: methods), the fixed-z grids (one row per class, one column per task,
same z throughout), the t-SNE of task-1 samples after the last task and accuracy-per-task curves
to REPORT.md / results.json / TensorBoard, and exports the best continual generator as a
SavedModel `generate(z, label) -> images`.
"""

import dataclasses

from absl import flags

from lamp_tf.apps import gan_flags
from lamp_tf.continual import mergan, mergan_experiment
from lamp_tf.data import tasks as tasks_lib
from lamp_tf.runtime import flags as runtime_flags, settings

FLAGS = flags.FLAGS

runtime_flags.define_runtime_flags("mergan")
flags.adopt_module_key_flags(runtime_flags)
gan_flags.define_network_flags()
gan_flags.define_training_flags()
gan_flags.define_scoring_flags()
flags.adopt_module_key_flags(gan_flags)
settings.define_flags(mergan.MerganConfig)
settings.define_flags(mergan_experiment.ExperimentConfig)


def _valid_tasks(spec):
  try:
    tasks_lib.parse_tasks(spec)
  except ValueError as e:
    raise flags.ValidationError(str(e).replace(f"--tasks={spec!r}: ", "")) from None
  return True


flags.register_validator("tasks", _valid_tasks)


def experiment_config():
  """The ExperimentConfig of the parsed flags (its fields and MerganConfig's define them; the
  networks', the WGAN-GP training's and the scores' come from gan_flags)."""
  cfg = settings.from_flags(mergan_experiment.ExperimentConfig, train=mergan.MerganConfig(),
                            gan=gan_flags.gan_config(None, conditioning=FLAGS.conditioning))
  return dataclasses.replace(cfg, train=settings.from_flags(
      mergan.MerganConfig, method=cfg.methods[0], seed=cfg.seeds[0]))


main = runtime_flags.experiment_main(mergan_experiment, experiment_config)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
