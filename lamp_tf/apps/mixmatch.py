r"""lamp-tf-mixmatch: zero-pair translation across RGB, depth and segmentation; recolouring.

  lamp-tf-mixmatch --flagfile=flags/mixmatch_scenes.cfg --workdir=runs/mixmatch

Trains mix-and-match networks on (RGB, segmentation) and (RGB, depth) pairs of procedural
scenes (per --side_info and --seeds), the pix2pix cascades and CycleGAN on the same data and
budget, and the 11-colour recolouring; scores zero-pair depth -> segmentation, the cascades and
multi-modal inputs on held-out scenes; writes REPORT.md, results.json, panels and TensorBoard;
exports the main model with a signature per (source, target) modality pair. The experiment is
lamp_tf.mixmatch.experiment.train_and_evaluate; this program turns its flags into the config.
"""

from absl import flags

from lamp_tf.mixmatch import experiment
from lamp_tf.runtime import flags as runtime_flags, settings

runtime_flags.define_runtime_flags("mixmatch")
flags.adopt_module_key_flags(runtime_flags)
settings.define_flags(experiment.ExperimentConfig)


def experiment_config():
  """The ExperimentConfig of the parsed flags (its fields define them)."""
  return settings.from_flags(experiment.ExperimentConfig)


main = runtime_flags.experiment_main(experiment, experiment_config)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
