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
from lamp_tf.gan import transfer
from lamp_tf.transfer_gan import experiment
from lamp_tf.runtime import flags as runtime_flags

FLAGS = flags.FLAGS

runtime_flags.define_runtime_flags("transfer_gan")
flags.adopt_module_key_flags(runtime_flags)
gan_flags.define_network_flags()
gan_flags.define_training_flags()
gan_flags.define_scoring_flags()
flags.adopt_module_key_flags(gan_flags)
flags.DEFINE_multi_string("sources", ["fashion_mnist:0,1,2,3,4", "mnist5k"],
                          "Pretraining source '<data set>[:<classes>]'; repeat the flag for "
                          "several; the first is the one of the configs and limited experiments.")
flags.DEFINE_string("target", "fashion_mnist:5,6,7,8,9", "Target '<data set>[:<classes>]'.")
flags.DEFINE_list("experiments", list(experiment.EXPERIMENTS),
                 "Which of configs, limited, sources to run.")
flags.DEFINE_list("configs", list(transfer.CONFIGS), "Configurations for the configs experiment.")
flags.DEFINE_integer("main_size", 100, "Target images per class (configs, sources); 0: all.",
                     lower_bound=0)
flags.DEFINE_list("target_sizes", ["10", "100", "1000", "0"],
                  "Target images per class for the limited experiment (0: all).")
flags.DEFINE_list("seeds", ["0"], "Seeds (tables: mean and std).")
flags.DEFINE_integer("pretrain_iterations", 5000, "Generator updates on the source.",
                     lower_bound=1)
flags.DEFINE_float("pretrain_lr", 0.0, "Adam learning rate on the source (0: --lr). The "
                   "reference fine-tunes at 1e-5 from sources trained at the usual 1e-4.",
                   lower_bound=0.0)
flags.DEFINE_integer("pretrain_batch_size", 0, "Batch size on the source (0: --batch_size).",
                     lower_bound=0)
flags.DEFINE_integer("iterations", 2000, "Generator updates on the target.", lower_bound=1)
flags.DEFINE_float("ema_decay", 0.0, "EMA generator decay (0: none).", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("freeze_critic", 0, "FreezeD: freeze the first k critic layers of "
                     "pretrained critics.", lower_bound=0)
flags.DEFINE_integer("eval_every", 500, "FID curve period in generator updates.", lower_bound=0)
flags.DEFINE_integer("num_samples", 5000, "Generated images per score.", lower_bound=10)
flags.DEFINE_integer("iw_steps", 500, "Training steps of the IW critic.", lower_bound=1)
flags.DEFINE_enum("target_mode", "unconditional", list(experiment.TARGET_MODES),
                  "Target GAN: unconditional (the paper's Table 1) or class-conditional AC-GAN "
                  "(the pretrained unconditional batch norm copied to every class).")
flags.DEFINE_list("iw_curve", [], "Critic steps at which IW is measured for the first seed's "
                  "configs runs (a figure and table to choose --iw_steps from; empty: none).")


def experiment_config():
  """The ExperimentConfig of the parsed flags (each field from the flag of its name)."""
  ints = runtime_flags.ints
  return runtime_flags.config_from_flags(
      experiment.ExperimentConfig, sources=tuple(FLAGS.sources),
      experiments=tuple(FLAGS.experiments), configs=tuple(FLAGS.configs),
      target_sizes=tuple(ints(FLAGS.target_sizes, "target_sizes", minimum=0)),
      seeds=tuple(ints(FLAGS.seeds, "seeds", minimum=0, distinct=True)),
      iw_curve=tuple(ints(FLAGS.iw_curve, "iw_curve", minimum=1, distinct=True)))


def main(argv):
  del argv
  cfg = experiment_config().validate()
  rt = runtime_flags.runtime_from_flags()
  if FLAGS.export_only:
    experiment.export_only(rt, cfg, FLAGS.workdir, FLAGS.export_dir,
                           runtime_flags.flag_values())
    return
  experiment.train_and_evaluate(rt, cfg, FLAGS.workdir, export_dir=FLAGS.export_dir,
                                flags=runtime_flags.flag_values())


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
