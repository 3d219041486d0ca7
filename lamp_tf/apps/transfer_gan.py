r"""lamp-tf-transfer-gan: what to transfer when training a GAN on little data.

  lamp-tf-transfer-gan --flagfile=flags/transfer_gan_table1.cfg --workdir=runs/transfer_gan

Pretrains an unconditional WGAN-GP on each source, trains GANs on the target from scratch or from
the pretrained generator and/or critic (unconditional as the paper's Table 1, or a
class-conditional AC-GAN), scores them (FID, KID, IW), writes REPORT.md / results.json / figures
and exports the best generator as a SavedModel (`generate(z, label) -> images`). The experiment
is lamp_tf.transfer_gan.experiment.train_and_evaluate; this program turns its flags into the config.
"""

from absl import flags

from lamp_tf.apps import gan_flags
from lamp_tf.runtime import flags as runtime_flags, settings
from lamp_tf.transfer_gan import experiment

runtime_flags.define_runtime_flags("transfer_gan")
flags.adopt_module_key_flags(runtime_flags)
gan_flags.define_network_flags()
gan_flags.define_scoring_flags()
flags.adopt_module_key_flags(gan_flags)
settings.define_flags(experiment.ExperimentConfig)


def experiment_config():
  """The ExperimentConfig of the parsed flags (its fields and `train`'s define them; the
  networks' and the scores' come from gan_flags)."""
  return settings.from_flags(experiment.ExperimentConfig)


main = runtime_flags.experiment_main(experiment, experiment_config)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
