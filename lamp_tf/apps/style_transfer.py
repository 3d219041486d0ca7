r"""lamp-tf-style-transfer: mix-and-match style transfer between photo, Monet, van Gogh, Ukiyo-e
and Cézanne (5 encoders + 5 decoders through one latent; painter -> painter is zero-pair).

  lamp-tf-style-transfer --flagfile=flags/style_transfer_procedural.cfg \
      --workdir=runs/style_transfer_procedural

Trains the mix-and-match model on the anchor's pairs (per seed) and a CycleGAN per pair it never
trained, scores every ordered pair (target-domain accuracy of a domain classifier, SSIM of
luminance, FID on the classifier's features), writes REPORT.md / results.json / figures (the
5x5 grid of one input through every decoder) and exports a SavedModel with a signature
'<source>_to_<target>' per ordered pair (uint8 images in and out). Data: the procedural stand-in
(nothing to download) or TFDS `cycle_gan` (--style_source=cycle_gan). See
lamp_tf/mixmatch/style_experiment.py.
"""

from absl import flags

from lamp_tf.data import styles
from lamp_tf.mixmatch import style_experiment
from lamp_tf.runtime import flags as runtime_flags

FLAGS = flags.FLAGS

runtime_flags.define_runtime_flags("style_transfer")
flags.adopt_module_key_flags(runtime_flags)
flags.DEFINE_enum("style_source", "procedural", list(styles.SOURCES),
                  "Data: procedural (the five rendered styles, built offline as the TFDS data "
                  "set procedural_styles) or cycle_gan (TFDS cycle_gan/<painter>2photo, "
                  "prepared with `tfds build`).")
flags.DEFINE_list("domains", list(styles.DOMAINS),
                  f"Domains, at least 3 of {', '.join(styles.DOMAINS)}.")
flags.DEFINE_string("anchor", "photo", "The domain trained with every other (one of --domains); "
                    "pairs without it are zero-pair.")
flags.DEFINE_enum("pairs", "star", list(style_experiment.PAIRS),
                  "Training pairs: star = anchor <-> each other domain (zero-pair elsewhere), "
                  "all = every pair (the non-zero-pair upper bound).")
flags.DEFINE_integer("resolution", 32, "Image size in pixels (divisible by 4).", lower_bound=8,
                     upper_bound=512)
flags.DEFINE_integer("num_train", 400, "Training images per domain (cycle_gan: at most; 0: all).",
                     lower_bound=0)
flags.DEFINE_integer("num_test", 200, "Test images per domain (cycle_gan: at most; 0: all).",
                     lower_bound=0)
flags.DEFINE_integer("steps", 3000, "Training steps of the mix-and-match model.", lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Images per domain per step.", lower_bound=1)
flags.DEFINE_float("lr", 2e-4, "Adam learning rate (beta1 0.5), every network.", lower_bound=0.0)
flags.DEFINE_integer("width", 64, "Encoder / decoder width (channels of the latent).",
                     lower_bound=4)
flags.DEFINE_integer("critic_width", 32, "Width of the PatchGAN critic's first layer.",
                     lower_bound=4)
flags.DEFINE_float("cycle_weight", 10.0, "Weight of cycle consistency (paper: 10).",
                   lower_bound=0.0)
flags.DEFINE_float("latent_weight", 1.0, "Weight of latent consistency.", lower_bound=0.0)
flags.DEFINE_float("rec_weight", 10.0, "Weight of autoencoding (reconstruction).",
                   lower_bound=0.0)
flags.DEFINE_integer("res_blocks", 6, "Residual blocks ending each encoder, at the latent's "
                     "resolution (the authors' CycleGAN-style generator: 6; 0: none).",
                     lower_bound=0)
flags.DEFINE_enum("baseline_pairs", "zero_pair", list(style_experiment.BASELINE_PAIRS),
                  "CycleGAN baseline on: zero_pair (the pairs mix-and-match never trained), "
                  "all pairs, or none.")
flags.DEFINE_integer("baseline_steps", 1500, "Training steps of each CycleGAN.", lower_bound=1)
flags.DEFINE_integer("classifier_steps", 1000, "Training steps of the domain classifier.",
                     lower_bound=1)
flags.DEFINE_list("seeds", ["0"], "Seeds of the mix-and-match model (tables: mean ± std); the "
                  "baseline and the export use the first.")


def experiment_config():
  """The ExperimentConfig of the parsed flags (each field from the flag of its name)."""
  return runtime_flags.config_from_flags(
      style_experiment.ExperimentConfig, domains=tuple(FLAGS.domains),
      seeds=tuple(runtime_flags.ints(FLAGS.seeds, "seeds", minimum=0, distinct=True)))


def main(argv):
  del argv
  cfg = experiment_config().validate()
  rt = runtime_flags.runtime_from_flags()
  if FLAGS.export_only:
    style_experiment.export_only(rt, cfg, FLAGS.workdir, FLAGS.export_dir,
                                 runtime_flags.flag_values())
    return
  style_experiment.train_and_evaluate(rt, cfg, FLAGS.workdir, export_dir=FLAGS.export_dir,
                                      flags=runtime_flags.flag_values())


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
