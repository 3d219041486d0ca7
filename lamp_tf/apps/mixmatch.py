r"""lamp-tf-mixmatch: zero-pair translation across RGB, depth and segmentation; recolouring.

  lamp-tf-mixmatch --flagfile=flags/mixmatch_scenes.cfg --workdir=runs/mixmatch

Renders the procedural scenes (a TFDS data set, built once), trains mix-and-match networks on
(RGB, segmentation) pairs and (RGB, depth) pairs from disjoint scenes (once per --side_info:
pooling indices, skip connections, none), and the baselines on the same data: a cascade of two
paired pix2pix-style U-Nets (depth -> RGB -> segmentation) and an unpaired CycleGAN depth <->
segmentation. On held-out scenes: per-class IoU, mIoU and global accuracy of depth ->
segmentation for zero-pair, cascades and multi-modal (RGB, depth) inputs; RMSE and delta < 1.25
of depth outputs. Then many-to-many recolouring between 11 colours (11 encoders + 11 decoders
trained through one anchor colour) with colour-name accuracy and luminance SSIM, trained pairs
against never-trained ones. Tables, image panels, REPORT.md, results.json, TensorBoard; exports
the mix-and-match model (--main_side_info) with a signature per (source, target) modality pair.
"""

import os

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from lamp_tf.data import colours, rgbd, scenes, scenes_tfds, sources
from lamp_tf.gan import transfer
from lamp_tf.metrics import features as features_lib
from lamp_tf.mixmatch import baselines, evaluate, model as mm_model, recolour, train
from lamp_tf.nets import segnet
from lamp_tf.runtime import export, figures, flags as runtime_flags, loop, results

FLAGS = flags.FLAGS
PROGRAM = "lamp-tf-mixmatch"

runtime_flags.define_runtime_flags("mixmatch")
flags.adopt_module_key_flags(runtime_flags)
flags.DEFINE_integer("resolution", 64, "Scene resolution (pixels).", lower_bound=16,
                     upper_bound=512)
flags.DEFINE_integer("num_scenes", 2000, "Training scenes (half RGB-seg, half RGB-depth).",
                     lower_bound=4)
flags.DEFINE_integer("num_test_scenes", 300, "Held-out test scenes.", lower_bound=1)
flags.DEFINE_list("widths", ["32", "64", "128", "128"], "Encoder block widths (one pool each).")
flags.DEFINE_list("side_info", list(segnet.SIDE_INFO), "Side information variants to train.")
flags.DEFINE_enum("main_side_info", "indices", list(segnet.SIDE_INFO),
                  "The variant of the main table and the export.")
flags.DEFINE_integer("steps", 3000, "Training steps of each mix-and-match model.", lower_bound=1)
flags.DEFINE_integer("baseline_steps", 3000, "Training steps of each baseline.", lower_bound=1)
flags.DEFINE_list("baselines", ["pix2pix", "cyclegan"], "Baselines: pix2pix, cyclegan.")
flags.DEFINE_integer("batch_size", 16, "Global batch size (per pair type).", lower_bound=1)
flags.DEFINE_float("lr", 2e-4, "Adam learning rate (beta1 0.5).", lower_bound=0.0)
flags.DEFINE_float("seg_weight", 1.0, "Weight of segmentation outputs.", lower_bound=0.0)
flags.DEFINE_float("depth_weight", 1.0, "Weight of depth outputs.", lower_bound=0.0)
flags.DEFINE_float("rgb_weight", 1.0, "Weight of RGB outputs.", lower_bound=0.0)
flags.DEFINE_float("latent_weight", 0.1, "Weight of the latent consistency of pairs.",
                   lower_bound=0.0)
flags.DEFINE_float("latent_noise", 0.0, "Std of Gaussian noise on RGB latents.", lower_bound=0.0)
flags.DEFINE_enum("depth_loss", "l1", ["l1", "berhu"], "Loss of depth outputs.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_bool("recolour", True, "Run the many-to-many recolouring experiment.")
flags.DEFINE_integer("recolour_steps", 3000, "Recolouring training steps.", lower_bound=1)
flags.DEFINE_enum("recolour_anchor", "grey", list(colours.NAMES), "Anchor colour.")
flags.DEFINE_integer("recolour_width", 64, "Recolouring network width.", lower_bound=4)
flags.DEFINE_integer("panel_scenes", 4, "Test scenes shown in the image panels.", lower_bound=1)

MODEL_NAMES = {"mm_zero_pair": "M&MNet zero-pair D→S", "mm_cascade": "M&MNet cascade D→R→S",
               "mm_multimodal": "M&MNet multi-modal (R,D)→S",
               "mm_rgb2seg": "M&MNet R→S (paired)",
               "pix2pix_cascade": "2× pix2pix-style cascade D→R→S",
               "cyclegan": "CycleGAN-style D↔S (unpaired)"}


def widths():
  try:
    return tuple(int(w) for w in FLAGS.widths)
  except ValueError:
    raise app.UsageError(f"--widths={','.join(FLAGS.widths)}: expected integers.") from None


def check_flags():
  bad = set(FLAGS.side_info) - set(segnet.SIDE_INFO)
  if bad:
    raise app.UsageError(f"--side_info: unknown {sorted(bad)}; choose from {segnet.SIDE_INFO}.")
  bad = set(FLAGS.baselines) - {"pix2pix", "cyclegan"}
  if bad:
    raise app.UsageError(f"--baselines: unknown {sorted(bad)}; choose from pix2pix, cyclegan.")
  if FLAGS.resolution % 2 ** len(widths()):
    raise app.UsageError(f"--resolution={FLAGS.resolution} must be divisible by "
                         f"2^{len(widths())} (one pooling per --widths entry).")


def mixmatch_model(rt, side_info):
  with rt.strategy.scope():
    return mm_model.MixMatch(widths(), side_info).build(FLAGS.resolution)


def train_mixmatch(rt, pairs, side_info):
  model = mixmatch_model(rt, side_info)
  opt = train.adam(rt.strategy, FLAGS.lr, model.trainable_variables)
  weights = train.Weights(FLAGS.seg_weight, FLAGS.depth_weight, FLAGS.rgb_weight,
                          FLAGS.latent_weight, FLAGS.latent_noise, FLAGS.depth_loss)
  run_dir = os.path.join(FLAGS.workdir, "runs", f"mixmatch_{side_info}")
  train.fit(rt, run_dir, f"mixmatch {side_info}", {**model.trackables, "optimizer": opt},
            train.mixmatch_step(model, opt, weights, FLAGS.batch_size),
            [pairs.rgb_seg, pairs.rgb_depth], FLAGS.batch_size, FLAGS.steps, FLAGS.seed)
  return model


def train_unet(rt, name, src, dst, arrays):
  with rt.strategy.scope():
    unet = baselines.UNet(src, dst, widths(), name).build(FLAGS.resolution)
  opt = train.adam(rt.strategy, FLAGS.lr, unet.trainable_variables)
  train.fit(rt, os.path.join(FLAGS.workdir, "runs", name), name,
            {**unet.trackables(name), "optimizer": opt},
            baselines.paired_step(unet, opt, FLAGS.batch_size), [arrays], FLAGS.batch_size,
            FLAGS.baseline_steps, FLAGS.seed)
  return unet


def train_cyclegan(rt, pairs):
  with rt.strategy.scope():
    cyc = baselines.CycleGAN(widths()).build(FLAGS.resolution)
  g_opt = train.adam(rt.strategy, FLAGS.lr, cyc.generator_variables)
  d_opt = train.adam(rt.strategy, FLAGS.lr, cyc.discriminator_variables)
  seg_only = {"seg": pairs.rgb_seg["seg"]}
  depth_only = {"depth": pairs.rgb_depth["depth"]}
  train.fit(rt, os.path.join(FLAGS.workdir, "runs", "cyclegan"), "cyclegan",
            {**cyc.trackables(), "g_opt": g_opt, "d_opt": d_opt},
            cyc.step(g_opt, d_opt, FLAGS.batch_size), [seg_only, depth_only], FLAGS.batch_size,
            FLAGS.baseline_steps, FLAGS.seed)
  return cyc


def seg_record(method, side_info, logits, labels):
  s = evaluate.segmentation_scores(logits, labels)
  return {"method": method, "side_info": side_info, "seed": FLAGS.seed, "miou": s["miou"],
          "global_accuracy": s["global_accuracy"], "per_class_iou": s["per_class_iou"]}


def evaluate_mixmatch(model, side_info, test_inputs, labels, depth_m):
  t = lambda src, dst: lambda b: model.translate(b[src], src, dst)
  recs = [
      seg_record("mm_zero_pair", side_info, evaluate.batched(t("depth", "seg"), test_inputs),
                 labels),
      seg_record("mm_cascade", side_info, evaluate.batched(
          lambda b: model.cascade(b["depth"], ("depth", "rgb", "seg")), test_inputs), labels),
      seg_record("mm_multimodal", side_info, evaluate.batched(
          lambda b: model.fuse({"rgb": b["rgb"], "depth": b["depth"]}, "seg"), test_inputs),
          labels),
      seg_record("mm_rgb2seg", side_info, evaluate.batched(t("rgb", "seg"), test_inputs),
                 labels)]
  depth = {"paired_rgb2depth": evaluate.depth_scores(
               evaluate.batched(t("rgb", "depth"), test_inputs), depth_m),
           "zero_pair_seg2depth": evaluate.depth_scores(
               evaluate.batched(t("seg", "depth"), test_inputs), depth_m)}
  for r in recs:
    r.update({f"depth_{k}_{m}": v[m] for k, v in depth.items() for m in v})
  return recs


def export_mixmatch(model, export_dir):
  r = FLAGS.resolution
  specs = {"rgb": tf.TensorSpec([None, r, r, 3], tf.uint8, name="rgb"),
           "depth": tf.TensorSpec([None, r, r], tf.float32, name="depth"),
           "seg": tf.TensorSpec([None, r, r], tf.uint8, name="seg")}

  def outputs(dst, y):
    if dst == "seg":
      return {"labels": tf.argmax(y, axis=-1), "probabilities": tf.nn.softmax(y)}
    if dst == "depth":
      return {"depth": rgbd.decode_depth(y)}
    return {"rgb": tf.cast(tf.clip_by_value(tf.round((y + 1) * 127.5), 0, 255), tf.uint8)}

  signatures = {}
  for src in rgbd.MODALITIES:
    for dst in rgbd.MODALITIES:
      if src != dst:
        fn = (lambda s, d: tf.function(
            lambda x: outputs(d, model.translate(rgbd.ENCODE[s](x), s, d)),
            input_signature=[specs[s]]))(src, dst)
        signatures[f"{src}_to_{dst}"] = fn
  signatures["rgbd_to_seg"] = tf.function(
      lambda rgb, depth: outputs("seg", model.fuse(
          {"rgb": rgbd.encode_rgb(rgb), "depth": rgbd.encode_depth(depth)}, "seg")),
      input_signature=[specs["rgb"], specs["depth"]])
  weights = {name: transfer.named_weights(m) for name, m in model.trackables.items()}
  export.export_saved_model(export_dir, {"depth_to_seg": signatures.pop("depth_to_seg"),
                                         **signatures}, {"weights": weights})


class RecolourBatches:
  """Deterministic batches for step s: an ordered training pair and a batch of each colour."""

  def __init__(self, domains, pairs, batch, seed, start):
    self.domains, self.pairs, self.batch, self.seed, self.step = domains, pairs, batch, seed, start

  def __next__(self):
    rng = np.random.default_rng([self.seed, self.step])
    self.step += 1
    a, b = self.pairs[rng.integers(len(self.pairs))]
    pick = lambda d: recolour.to_model(self.domains[d][rng.integers(0, len(self.domains[d]),
                                                                     self.batch)])
    return (tf.constant(pick(a)), tf.constant(pick(b)), tf.constant(a, tf.int32),
            tf.constant(b, tf.int32))


def run_recolouring(rt, writer):
  """Trains (or resumes) the 11-colour model; returns (scores, model, test items)."""
  train_items = sources.load_examples("fashion_mnist", "train", data_dir=FLAGS.data_dir,
                                      download=FLAGS.download)
  test_items = sources.load_examples("fashion_mnist", "test", data_dir=FLAGS.data_dir,
                                     download=FLAGS.download)
  limit = min(len(train_items), max(1100, FLAGS.num_scenes * 11))
  domains_named = colours.make_domains(train_items.images[:limit], seed=FLAGS.seed)
  domains = [domains_named[name] for name in colours.NAMES]
  model = recolour.Recolouring(FLAGS.recolour_width).build()
  g_opt = train.adam(tf.distribute.get_strategy(), FLAGS.lr, model.generator_variables)
  d_opt = train.adam(tf.distribute.get_strategy(), FLAGS.lr, model.critic.trainable_variables)
  run_dir = os.path.join(FLAGS.workdir, "runs", "recolour")
  state = loop.TrainState(os.path.join(run_dir, "checkpoints"), FLAGS.seed, is_chief=rt.is_chief,
                          g_opt=g_opt, d_opt=d_opt, **model.trackables())
  state.restore()
  pairs = recolour.star_pairs(FLAGS.recolour_anchor)
  step = model.step(g_opt, d_opt)
  loop.train_loop(state, lambda batch, seed: step(*batch),
                  RecolourBatches(domains, pairs, FLAGS.batch_size, FLAGS.seed, int(state.step)),
                  FLAGS.recolour_steps, writer=rt.writer(os.path.relpath(run_dir, rt.workdir)),
                  name="recolour", **rt.loop_kwargs())
  labels = np.concatenate([np.full(len(d), i) for i, d in enumerate(domains)])
  rng = np.random.default_rng(FLAGS.seed)
  test_colour = rng.integers(0, len(colours.NAMES), 1100)
  test_x = np.concatenate([colours.recolour(test_items.images[i:i + 1], colours.NAMES[c])
                           for i, c in enumerate(test_colour)])
  classifier = features_lib.DomainClassifier.train_or_load(
      os.path.join(FLAGS.workdir, "colour_classifier"), recolour.to_model(np.concatenate(domains)),
      labels, recolour.to_model(test_x), test_colour, len(colours.NAMES), steps=600)
  scores = evaluate.recolouring_scores(model, classifier, test_items.images[1100:], pairs)
  scores["colour_classifier_test_accuracy"] = classifier.test_accuracy
  return scores, model, test_items.images[1100:]


def label_colours(labels):
  palette = (np.array(figures.plt.get_cmap("tab20").colors)[:rgbd.NUM_CLASSES] * 255).astype(
      np.uint8)
  palette = np.concatenate([palette, [[0, 0, 0]]]).astype(np.uint8)  # void: black
  return palette[np.asarray(labels, np.int64)]


def scene_panel(test, outputs, n):
  """Rows: scenes; columns: RGB, depth, ground truth, each method's segmentation."""
  cols = ["RGB", "depth", "ground truth"] + list(outputs)
  fig, axes = figures.plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.7 * n),
                                   squeeze=False)
  for i in range(n):
    row = [test["rgb"][i], test["depth"][i], label_colours(test["seg"][i])] + [
        label_colours(np.argmax(o[i], axis=-1)) for o in outputs.values()]
    for j, (ax, img) in enumerate(zip(axes[i], row)):
      ax.imshow(img, cmap="viridis" if j == 1 else None)
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(cols[j], fontsize=7)
  return fig


def main(argv):
  del argv
  check_flags()
  rt = runtime_flags.runtime_from_flags()
  rt.seed(FLAGS.seed)
  data = scenes_tfds.load_scenes(FLAGS.resolution, FLAGS.num_scenes, FLAGS.num_test_scenes,
                                 FLAGS.data_dir)
  pairs = rgbd.split_pairs(data)
  if FLAGS.export_only:
    export_mixmatch(train_mixmatch(rt, pairs, FLAGS.main_side_info), FLAGS.export_dir)
    return
  test_inputs = evaluate.encoded(pairs.test)
  labels, depth_m = pairs.test["seg"], pairs.test["depth"]
  records, outputs, n = [], {}, min(FLAGS.panel_scenes, len(labels))
  panel_inputs = {k: v[:n] for k, v in test_inputs.items()}
  models = {}
  for side in FLAGS.side_info:
    model = train_mixmatch(rt, pairs, side)
    models[side] = model
    records += evaluate_mixmatch(model, side, test_inputs, labels, depth_m)
  main_model = models.get(FLAGS.main_side_info) or train_mixmatch(rt, pairs, FLAGS.main_side_info)
  outputs["M&M zero-pair"] = main_model.translate(panel_inputs["depth"], "depth", "seg").numpy()
  outputs["M&M multi-modal"] = main_model.fuse(
      {"rgb": panel_inputs["rgb"], "depth": panel_inputs["depth"]}, "seg").numpy()
  outputs["M&M cascade"] = main_model.cascade(panel_inputs["depth"],
                                              ("depth", "rgb", "seg")).numpy()
  if "pix2pix" in FLAGS.baselines:
    d2r = train_unet(rt, "pix2pix_d2r", "depth", "rgb", pairs.rgb_depth)
    r2s = train_unet(rt, "pix2pix_r2s", "rgb", "seg", pairs.rgb_seg)
    cascade = lambda b: r2s(tf.cast(d2r(b["depth"]), tf.float32))
    records.append(seg_record("pix2pix_cascade", "skip", evaluate.batched(cascade, test_inputs),
                              labels))
    outputs["pix2pix cascade"] = cascade(panel_inputs).numpy()
  if "cyclegan" in FLAGS.baselines:
    cyc = train_cyclegan(rt, pairs)
    records.append(seg_record("cyclegan", "skip", evaluate.batched(
        lambda b: cyc.d2s(b["depth"]), test_inputs), labels))
    outputs["CycleGAN"] = cyc.d2s(panel_inputs["depth"]).numpy()
  writer = rt.writer("summary")
  figs = []
  results.save_figure(scene_panel(pairs.test, outputs, n),
                      os.path.join(FLAGS.workdir, "panel_depth_to_seg.png"), writer)
  figs.append("panel_depth_to_seg.png")
  recolour_scores = None
  if FLAGS.recolour:
    recolour_scores, rmodel, items = run_recolouring(rt, writer)
    acc = 100 * np.array(recolour_scores["accuracy"])
    results.save_figure(figures.heatmap(acc, colours.NAMES, colours.NAMES,
                                        "Colour-name accuracy %, source (rows) -> target"),
                        os.path.join(FLAGS.workdir, "recolour_accuracy.png"), writer)
    src = colours.NAMES.index("red" if FLAGS.recolour_anchor != "red" else "blue")
    x = recolour.to_model(colours.recolour(items[:6], colours.NAMES[src]))
    rows = [recolour.from_model(x)] + [recolour.from_model(rmodel.translate(tf.constant(x), src,
                                                                            b))
                                       for b in range(len(colours.NAMES)) if b != src]
    grid = figures.image_grid(np.concatenate([np.stack(r) for r in zip(*rows)]), 6, len(rows))
    results.save_figure(figures.image(grid, f"{colours.NAMES[src]} items (first column) to "
                                            "every other colour"),
                        os.path.join(FLAGS.workdir, "recolour_samples.png"), writer)
    figs += ["recolour_accuracy.png", "recolour_samples.png"]
    records.append({"method": "recolouring", "side_info": "none", "seed": FLAGS.seed,
                    "miou": None, "global_accuracy": None, "per_class_iou": None,
                    **{k: v for k, v in recolour_scores.items()
                       if not isinstance(v, list)}})
  writer.flush()
  results.write_results(FLAGS.workdir, PROGRAM, runtime_flags.flag_values(), records, figs)
  results.write_report(FLAGS.workdir, "Mix-and-match networks", report_sections(
      records, recolour_scores, figs, len(pairs.rgb_seg["seed"]), len(pairs.rgb_depth["seed"]),
      len(labels)))
  export_mixmatch(main_model, FLAGS.export_dir)
  logging.info("exported mix-and-match (%s) to %s", FLAGS.main_side_info, FLAGS.export_dir)


def report_sections(records, recolour_scores, figs, n_rs, n_rd, n_test):
  main = FLAGS.main_side_info
  rows = []
  order = [("cyclegan", "skip"), ("pix2pix_cascade", "skip"), ("mm_cascade", main),
           ("mm_cascade", "skip" if main != "skip" else "indices"), ("mm_zero_pair", main),
           ("mm_multimodal", main), ("mm_rgb2seg", main)]
  for method, side in order:
    for r in records:
      if r["method"] == method and r["side_info"] == side:
        name = MODEL_NAMES[method] + (f" ({side})" if method.startswith("mm_") else "")
        rows.append([name] + [100 * v if v is not None else "-" for v in r["per_class_iou"]] +
                    [100 * r["miou"], 100 * r["global_accuracy"]])
  quantitative = results.markdown_table(["method"] + list(scenes.CLASSES) + ["mIoU",
                                                                             "global"], rows)
  ablation = results.markdown_table(
      ["side information", "zero-pair D→S mIoU %", "global %", "R→D RMSE m", "R→D δ<1.25 %",
       "zero-pair S→D RMSE m"],
      [[r["side_info"], 100 * r["miou"], 100 * r["global_accuracy"],
        r["depth_paired_rgb2depth_rmse"], 100 * r["depth_paired_rgb2depth_delta1"],
        r["depth_zero_pair_seg2depth_rmse"]]
       for r in records if r["method"] == "mm_zero_pair"])
  sections = [
      ("Setup", f"Procedural scenes at {FLAGS.resolution}x{FLAGS.resolution}: {n_rs} "
                f"(RGB, segmentation) training scenes and {n_rd} (RGB, depth) training scenes, "
                f"disjoint; {n_test} held-out test scenes with all three modalities. Encoders "
                f"with blocks {FLAGS.widths}, {FLAGS.steps} steps per model, baselines "
                f"{FLAGS.baseline_steps} steps, batch {FLAGS.batch_size}, Adam {FLAGS.lr:g}. "
                "Scores ignore void pixels; mIoU averages the classes present."),
      ("Depth → segmentation on held-out scenes (IoU %)", quantitative),
      ("Side information (zero-pair depth → segmentation)", ablation)]
  if recolour_scores is not None:
    s = recolour_scores
    sections.append(("Many-to-many recolouring", results.markdown_table(
        ["pairs", "colour-name accuracy %", "luminance SSIM vs input",
         "luminance SSIM vs true recolouring"],
        [["trained (with the anchor)", 100 * s["accuracy_trained"], s["ssim_input_trained"],
          s["ssim_target_trained"]],
         ["never trained together (zero-pair)", 100 * s["accuracy_zero_pair"],
          s["ssim_input_zero_pair"], s["ssim_target_zero_pair"]]]) +
        f"\n\nColour names by a classifier trained on the 11 real colour domains (test accuracy "
        f"{s['colour_classifier_test_accuracy']:.4f}). Anchor colour: "
        f"{FLAGS.recolour_anchor}.\n\n" + results.markdown_table(
            ["approach", "networks for all 11 colours"],
            [["mix-and-match", "11 encoders + 11 decoders = 22"],
             ["CycleGAN per colour pair", "55 pairs x 2 generators = 110"]])))
  sections.append(("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)))
  return sections


def run():
  app.run(main)


if __name__ == "__main__":
  run()
