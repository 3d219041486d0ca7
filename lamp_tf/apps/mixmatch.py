r"""lamp-tf-mixmatch: zero-pair translation across RGB, depth and segmentation; recolouring.

  lamp-tf-mixmatch --flagfile=flags/mixmatch_scenes.cfg --workdir=runs/mixmatch

Trains mix-and-match networks on (RGB, segmentation) and (RGB, depth) pairs of procedural
scenes (per --side_info and --seeds), the pix2pix cascades and CycleGAN on the same data and
budget, and the 11-colour recolouring; scores zero-pair depth -> segmentation, the cascades and
multi-modal inputs on held-out scenes; writes REPORT.md, results.json, panels and TensorBoard;
exports the main model with a signature per (source, target) modality pair. The experiment is
lamp_tf.mixmatch.experiment.train_and_evaluate; this program turns its flags into the config.
"""

from absl import app, flags

from lamp_tf.data import colours
from lamp_tf.mixmatch import experiment, model as mm_model
from lamp_tf.nets import segnet
from lamp_tf.runtime import flags as runtime_flags

FLAGS = flags.FLAGS
BASELINES = experiment.BASELINES

runtime_flags.define_runtime_flags("mixmatch")
flags.adopt_module_key_flags(runtime_flags)
flags.DEFINE_integer("resolution", 64, "Scene resolution in pixels; divisible by 2^(number of "
                     "--widths).", lower_bound=16, upper_bound=512)
flags.DEFINE_integer("num_scenes", 2000, "Training scenes (half RGB-seg, half RGB-depth).",
                     lower_bound=4)
flags.DEFINE_integer("num_test_scenes", 300, "Held-out test scenes.", lower_bound=1)
flags.DEFINE_list("widths", ["32", "64", "128", "128"], "Encoder block widths (one 2x2 pool "
                  "each; the latent is resolution / 2^len(widths) pixels wide).")
flags.DEFINE_list("side_info", list(segnet.SIDE_INFO), "Side information variants to train: "
                  "indices, skip, none.")
flags.DEFINE_enum("main_side_info", "indices", list(segnet.SIDE_INFO),
                  "The variant of the main table, the ablation and the export.")
flags.DEFINE_integer("steps", 3000, "Training steps of each mix-and-match model.", lower_bound=1)
flags.DEFINE_integer("baseline_steps", 3000, "Training steps of each baseline.", lower_bound=1)
flags.DEFINE_list("baselines", list(BASELINES), "Baselines: pix2pix (U-Net cascade with the "
                  "PatchGAN, the paper's), pix2pix_l1 (reconstruction only), cyclegan.")
flags.DEFINE_integer("batch_size", 16, "Global batch size (per pair type).", lower_bound=1)
flags.DEFINE_float("lr", 2e-4, "Adam learning rate (beta1 0.5).", lower_bound=0.0)
flags.DEFINE_float("seg_weight", 100.0, "Weight of RGB -> segmentation cross-entropy "
                   "(reference 100).", lower_bound=0.0)
flags.DEFINE_float("depth_weight", 10.0, "Weight of RGB -> depth (reference 10).",
                   lower_bound=0.0)
flags.DEFINE_float("auto_weight", 10.0, "Weight of the segmentation and depth autoencoders "
                   "(reference 10).", lower_bound=0.0)
flags.DEFINE_float("rgb_weight", 10.0, "Weight of the RGB outputs' term (reference 10).",
                   lower_bound=0.0)
flags.DEFINE_float("rgb_recon_weight", 10.0, "Weight of the RGB reconstruction inside the RGB "
                   "term (reference 10).", lower_bound=0.0)
flags.DEFINE_float("latent_weight", 10.0, "Weight of the latent alignment of paired encodings "
                   "(reference 10).", lower_bound=0.0)
flags.DEFINE_float("disc_weight", 10.0, "Weight of the RGB discriminator's loss (reference 10).",
                   lower_bound=0.0)
flags.DEFINE_integer("latent_levels", 3, "Deepest pooled outputs aligned (reference 3: pool3, "
                     "pool4, pool5).", lower_bound=1)
flags.DEFINE_bool("max_feature", True, "The reference's max-feature term on the deepest "
                  "latent.")
flags.DEFINE_float("latent_noise", 0.5, "Std s of |N(0, s)| added to the RGB latent on the "
                   "RGB -> segmentation and RGB -> depth paths (reference 0.5; 0: none).",
                   lower_bound=0.0)
flags.DEFINE_bool("rgb_adversarial", True, "LSGAN discriminator on RGB outputs (reference).")
flags.DEFINE_integer("disc_width", 0, "Width of the discriminators' first layer (0: the first "
                     "of --widths, as the reference's df_dim = gf_dim).", lower_bound=0)
flags.DEFINE_enum("rgb_loss", "l2", ["l2", "l1"], "Reconstruction of RGB outputs (reference: "
                  "squared error).")
flags.DEFINE_enum("seg_ce", "pixel", ["pixel", "image"], "Cross-entropy averaged over the "
                  "labelled pixels of the batch (reference) or per image.")
flags.DEFINE_enum("depth_loss", "l1", ["l1", "berhu"], "Loss of depth outputs (the reference's "
                  "berHu threshold is the largest error, i.e. L1).")
flags.DEFINE_enum("test_bn", "batch", list(mm_model.TEST_BN), "Batch norm at test for the main "
                  "tables: batch = each test batch's own moments (reference), moving = moving "
                  "averages. Both are always measured.")
flags.DEFINE_enum("rgb_side_info", "none", list(mm_model.RGB_SIDE_INFO), "RGB decoder: none = "
                  "no side information (reference), same = --side_info like the others.")
flags.DEFINE_list("seeds", ["0"], "Seeds (tables: mean ± std).")
flags.DEFINE_bool("ablation", False, "Also train the steps from the project's earlier "
                  "objective to the reference's, one change at a time (--main_side_info).")
flags.DEFINE_bool("recolour", True, "Run the many-to-many recolouring experiment (first seed).")
flags.DEFINE_integer("recolour_steps", 3000, "Recolouring training steps.", lower_bound=1)
flags.DEFINE_enum("recolour_anchor", "grey", list(colours.NAMES), "Anchor colour.")
flags.DEFINE_integer("recolour_width", 64, "Recolouring network width.", lower_bound=4)
flags.DEFINE_integer("panel_scenes", 4, "Test scenes shown in the image panels.", lower_bound=1)


def _int_list(values, positive=True):
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise flags.ValidationError("expected integers.") from None
  if positive and any(v < 1 for v in out):
    raise flags.ValidationError("expected positive integers.")
  return out


def _valid_seeds(values):
  seeds = _int_list(values, positive=False)
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise flags.ValidationError("give each seed (an integer >= 0) once, at least one.")
  return True


flags.register_validator("widths", lambda v: bool(_int_list(v)) or True)
flags.register_validator("seeds", _valid_seeds)
flags.register_validator("side_info", lambda v: bool(v) and set(v) <= set(segnet.SIDE_INFO),
                         f"choose from {', '.join(segnet.SIDE_INFO)} (comma-separated).")
flags.register_validator("baselines", lambda v: set(v) <= set(BASELINES),
                         f"choose from {', '.join(BASELINES)} (comma-separated).")
flags.register_multi_flags_validator(
    ["resolution", "widths"],
    lambda f: f["resolution"] % 2 ** len(f["widths"]) == 0,
    "--resolution must be divisible by 2^(number of --widths), one 2x2 pooling per width.")


def experiment_config():
  """The ExperimentConfig of the parsed flags (each field from the flag of its name)."""
  return runtime_flags.config_from_flags(
      experiment.ExperimentConfig, widths=tuple(int(w) for w in FLAGS.widths),
      side_info=tuple(FLAGS.side_info), baselines=tuple(FLAGS.baselines),
      seeds=tuple(int(s) for s in FLAGS.seeds))


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  try:
    cfg = experiment.validate(experiment_config())
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.export_only:
    experiment.export_only(rt, cfg, FLAGS.workdir, FLAGS.export_dir, runtime_flags.flag_values())
    return
  experiment.train_and_evaluate(rt, cfg, FLAGS.workdir, export_dir=FLAGS.export_dir,
                                flags=runtime_flags.flag_values())


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
