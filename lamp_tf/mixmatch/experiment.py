r"""A mix-and-match experiment: zero-pair translation across RGB, depth and segmentation, the
baselines on the same data and budget, and the many-to-many recolouring.

`train_and_evaluate(rt, cfg)` is what `lamp-tf-mixmatch` runs (the program only turns
its flags into an `ExperimentConfig`); tests and notebooks call it directly. It renders the
procedural scenes (a TFDS data set, built once), trains mix-and-match networks on (RGB,
segmentation) pairs and (RGB, depth) pairs from disjoint scenes (once per side information:
pooling indices, skip connections, none, and per seed), with the objective of the authors' code
by default (see lamp_tf.mixmatch.train), and the baselines: a cascade of two paired pix2pix
translators (depth -> RGB -> segmentation, with the PatchGAN: 'pix2pix'; reconstruction only:
'pix2pix_l1') and an unpaired CycleGAN depth <-> segmentation. On held-out scenes: per-class
IoU, mIoU and global accuracy of depth -> segmentation for zero-pair, cascades and multi-modal
(RGB, depth) inputs, each with test-time batch statistics and with moving averages; RMSE and
delta < 1.25 of depth outputs. `ablation` walks from the project's earlier objective to the
reference's one change at a time. Then the 11-colour recolouring (11 encoders + 11 decoders
trained through one anchor colour) with colour-name accuracy and luminance SSIM, trained pairs
against never-trained ones. Tables (mean ± std over seeds), image panels, REPORT.md,
results.json, TensorBoard; exports the mix-and-match model (`main_side_info`, first seed) with
a signature per (source, target) modality pair. Every run resumes from its checkpoint.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.data import colours, preprocess, rgbd, scenes, scenes_tfds, sources
from lamp_tf.metrics import evaluators, features as features_lib
from lamp_tf.mixmatch import (baselines, domains as domains_lib, evaluate, losses,
                              model as mm_model, report as tables, trace as trace_lib, train)
from lamp_tf.nets import segnet
from lamp_tf.runtime import export, figures, flags as runtime_flags, results, settings
from lamp_tf.runtime.settings import setting

PROGRAM = "lamp-tf-mixmatch"
BASELINES = ("pix2pix", "pix2pix_l1", "cyclegan")


# The settings an intervention may change: those of the mix-and-match model's training (not the
# data, the baselines or the evaluation).
INTERVENABLE = ("steps", "warm_start", "widths", "lr", "seg_weight", "depth_weight",
                "auto_weight", "rgb_weight", "rgb_recon_weight", "latent_weight",
                "disc_weight", "latent_levels", "align_at", "align_scale", "max_feature",
                "latent_noise", "rgb_adversarial", "disc_width", "rgb_loss", "seg_ce",
                "depth_loss", "rgb_side_info")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """The settings of a mix-and-match experiment; each is also the program's flag."""

  resolution: int = setting(
      64, "Scene resolution in pixels; divisible by 2^(number of --widths).", lower=16, upper=512)
  num_scenes: int = setting(2000, "Training scenes (half RGB-seg, half RGB-depth).", lower=4)
  num_test_scenes: int = setting(300, "Held-out test scenes.", lower=1)
  scenes_version: int = setting(
      1, "Procedural scenes version: 1 = windows and pictures painted on the walls (every "
      "result before 2026-12-07), 2 = windows set into the walls and picture frames off them "
      "(the class relief table: lamp_tf/data/scenes.py).", lower=min(scenes.VERSIONS),
      upper=max(scenes.VERSIONS))
  widths: tuple = setting(
      (32, 64, 128, 128), "Encoder block widths (one 2x2 pool each; the latent is resolution / "
      "2^len(widths) pixels wide).", item=int, lower=1, nonempty=True)
  side_info: tuple = setting(
      segnet.SIDE_INFO, "Side information variants to train: indices, skip, none.",
      choices=segnet.SIDE_INFO, nonempty=True)
  main_side_info: str = setting(
      "indices", "The variant of the main table, the ablation and the export.",
      choices=segnet.SIDE_INFO)
  steps: int = setting(3000, "Training steps of each mix-and-match model.", lower=1)
  warm_start: float = setting(
      1 / 3, "Fraction of --steps that first train the networks on the paired translations "
      "alone (RGB <-> segmentation, RGB <-> depth, pix2pix-style); the mix-and-match objective "
      "then starts from them with a fresh discriminator and optimisers, as the reference "
      "restores its generators from a trained pix2pix model (default on, as the reference; "
      "its length, a third, is the project's choice). 0: no warm start.", lower=0.0,
      upper=0.9)
  baseline_steps: int = setting(3000, "Training steps of each baseline.", lower=1)
  baselines: tuple = setting(
      BASELINES, "Baselines: pix2pix (U-Net cascade with the PatchGAN, the paper's), pix2pix_l1 "
      "(reconstruction only), cyclegan.", choices=BASELINES)
  batch_size: int = setting(16, "Global batch size (per pair type).", lower=1)
  lr: float = setting(2e-4, "Adam learning rate (beta1 0.5).", lower=0.0)
  seg_weight: float = setting(
      100.0, "Weight of RGB -> segmentation cross-entropy (reference 100).", lower=0.0)
  depth_weight: float = setting(10.0, "Weight of RGB -> depth (reference 10).", lower=0.0)
  auto_weight: float = setting(
      10.0, "Weight of the segmentation and depth autoencoders (reference 10).", lower=0.0)
  rgb_weight: float = setting(10.0, "Weight of the RGB outputs' term (reference 10).", lower=0.0)
  rgb_recon_weight: float = setting(
      10.0, "Weight of the RGB reconstruction inside the RGB term (reference 10).", lower=0.0)
  latent_weight: float = setting(
      10.0, "Weight of the latent alignment of paired encodings (reference 10).", lower=0.0)
  disc_weight: float = setting(
      10.0, "Weight of the RGB discriminator's loss (reference 10).", lower=0.0)
  latent_levels: int = setting(
      3, "Deepest pooled outputs aligned (reference 3: pool3, pool4, pool5).", lower=1)
  align_at: str = setting(
      "pooled", "Maps the latent alignment compares: pooled = the deepest --latent_levels pooled "
      "outputs (reference); features = every block's pre-pool feature maps, whose 2x2 argmax "
      "are the pooling indices.", choices=losses.ALIGN_AT)
  align_scale: str = setting(
      "raw", "Latent alignment: raw mean squared difference (reference); normalized: each "
      "channel standardised over the batch and positions first; relative: divided by the two "
      "maps' variance across the batch's scenes (raw maps can shrink or turn scene-independent "
      "instead of aligning).", choices=losses.ALIGN_SCALE)
  max_feature: bool = setting(True, "The reference's max-feature term on the deepest latent.")
  latent_noise: float = setting(
      0.5, "Std s of |N(0, s)| added to the RGB latent on the RGB -> segmentation and RGB -> depth "
      "paths (reference 0.5; 0: none).", lower=0.0)
  rgb_adversarial: bool = setting(True, "LSGAN discriminator on RGB outputs (reference).")
  disc_width: int = setting(
      0, "Width of the discriminators' first layer (0: the first of --widths, as the reference's "
      "df_dim = gf_dim).", lower=0)
  rgb_loss: str = setting(
      "l2", "Reconstruction of RGB outputs (reference: squared error).",
      choices=losses.RGB_LOSSES)
  seg_ce: str = setting(
      "pixel", "Cross-entropy averaged over the labelled pixels of the batch (reference) or per "
      "image.", choices=losses.SEG_CE)
  depth_loss: str = setting(
      "l1", "Loss of depth outputs (the reference's berHu threshold is the largest error, i.e. "
      "L1).", choices=losses.DEPTH_LOSSES)
  test_bn: str = setting(
      "batch", "Batch norm at test for the main tables: batch = each test batch's own moments "
      "(reference), moving = moving averages. Both are always measured.",
      choices=mm_model.TEST_BN)
  rgb_side_info: str = setting(
      "none", "RGB decoder: none = no side information (reference), same = --side_info like the "
      "others.", choices=mm_model.RGB_SIDE_INFO)
  seeds: tuple = setting((0,), "Seeds (tables: mean ± std).", item=int, lower=0, distinct=True,
                         nonempty=True)
  interventions: tuple = setting(
      (), "Interventions trained beside the model of the flags (--main_side_info, every seed), "
      "each a set of flag changes joined by '+', e.g. align_scale=relative+latent_weight=100 "
      "(only settings of the mix-and-match training: " + ", ".join(INTERVENABLE) + ").",
      distinct=True)
  ablation: bool = setting(
      False, "Also train the steps from the project's earlier objective to the reference's, one "
      "change at a time (--main_side_info).")
  recolour: bool = setting(True, "Run the many-to-many recolouring experiment (first seed).")
  recolour_steps: int = setting(3000, "Recolouring training steps.", lower=1)
  recolour_anchor: str = setting("grey", "Anchor colour.", choices=colours.NAMES)
  recolour_width: int = setting(64, "Recolouring network width.", lower=4)
  panel_scenes: int = setting(4, "Test scenes shown in the image panels.", lower=1)
  data_dir: str = None  # the runtime's
  download: bool = False

  @property
  def critic_width(self):
    """Width of the discriminators' first layer (disc_width, or the first encoder block's)."""
    return self.disc_width or self.widths[0]

  @property
  def latent_size(self):
    return self.resolution // 2 ** len(self.widths)


MODEL_NAMES = {"mm_zero_pair": "M&MNet zero-pair D→S", "mm_cascade": "M&MNet cascade D→R→S",
               "mm_multimodal": "M&MNet multi-modal (R,D)→S",
               "mm_rgb2seg": "M&MNet R→S (paired)",
               "pix2pix_cascade": "2× pix2pix cascade D→R→S (PatchGAN)",
               "pix2pix_l1_cascade": "2× pix2pix-style cascade D→R→S (no GAN)",
               "cyclegan": "CycleGAN D↔S (unpaired)"}


@dataclasses.dataclass(frozen=True)
class Variant:
  """A mix-and-match training: objective, test-time batch norm, RGB decoder side information."""

  name: str
  weights: train.Weights
  test_bn: str
  rgb_side_info: str
  warm_start_steps: int = 0


def intervention_config(cfg, intervention):
  """`cfg` with the changes of one intervention ('name=value+name=value', INTERVENABLE names,
  values as on the command line); a ValueError naming --interventions otherwise."""
  fields = {f.name: f for f in dataclasses.fields(cfg)}
  changes = {}
  for change in intervention.split("+"):
    name, eq, value = change.partition("=")
    name, value = name.strip(), value.strip()
    if not eq or name not in INTERVENABLE:
      raise ValueError(f"--interventions={intervention}: {change!r} is not name=value with a "
                       f"name among {', '.join(INTERVENABLE)}.")
    default = fields[name].default
    try:
      if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
          raise ValueError
        changes[name] = value.lower() in ("true", "1")
      elif isinstance(default, tuple):
        changes[name] = tuple(fields[name].metadata["item"](v) for v in value.split(":"))
      else:
        changes[name] = type(default)(value)
    except ValueError:
      raise ValueError(f"--interventions={intervention}: {value!r} is not a valid value of "
                       f"--{name} (list items are joined by ':').") from None
  return settings.check(dataclasses.replace(cfg, **changes))


def reference_variant(cfg):
  """The objective the flags describe (the reference's by default)."""
  return Variant("flags", train.Weights(
      seg=cfg.seg_weight, depth=cfg.depth_weight, auto=cfg.auto_weight,
      rgb=cfg.rgb_weight, rgb_recon=cfg.rgb_recon_weight, latent=cfg.latent_weight,
      disc=cfg.disc_weight, latent_levels=cfg.latent_levels, align_at=cfg.align_at,
      align_scale=cfg.align_scale, max_feature=cfg.max_feature,
      latent_noise=cfg.latent_noise, rgb_adversarial=cfg.rgb_adversarial,
      rgb_loss=cfg.rgb_loss, seg_ce=cfg.seg_ce, depth_loss=cfg.depth_loss),
      cfg.test_bn, cfg.rgb_side_info, round(cfg.warm_start * cfg.steps))


PROJECT = train.Weights(seg=1, depth=1, auto=1, rgb=1, rgb_recon=1, latent=0.1, latent_levels=1,
                        max_feature=False, latent_noise=0.0, rgb_adversarial=False,
                        rgb_loss="l1", seg_ce="image")


def ablation_steps(steps=None):
  """From the project's earlier objective to the reference's, one change at a time (each step
  keeps the changes before it); the last step is the reference, whose warm start takes the
  default fraction of `steps` (the default config's steps when None)."""
  w = PROJECT
  out = [Variant("0 project (earlier)", w, "moving", "same"),
         Variant("1 + batch statistics at test", w, "batch", "same")]
  w = dataclasses.replace(w, seg=100, depth=10, auto=10, rgb=10, rgb_recon=10, latent=10,
                          rgb_loss="l2", seg_ce="pixel")
  out.append(Variant("2 + reference loss weights", w, "batch", "same"))
  w = dataclasses.replace(w, latent_levels=3, max_feature=True)
  out.append(Variant("3 + alignment at 3 levels + max-feature", w, "batch", "same"))
  w = dataclasses.replace(w, latent_noise=0.5)
  out.append(Variant("4 + |N(0, 0.5)| noise on RGB paths", w, "batch", "same"))
  out.append(Variant("5 + RGB decoder without side information", w, "batch", "none"))
  w = dataclasses.replace(w, rgb_adversarial=True)
  out.append(Variant("6 + LSGAN on RGB outputs", w, "batch", "none"))
  default = ExperimentConfig()
  warm = round(default.warm_start * (default.steps if steps is None else steps))
  out.append(Variant("7 + warm start on the paired translations (reference)", w, "batch",
                     "none", warm))
  return out


def trains_like(a, b):
  """Whether two variants train the same model (same objective and architecture; the name and
  the test-time batch norm, an evaluation choice, may differ)."""
  return (a.weights == b.weights and a.rgb_side_info == b.rgb_side_info and
          a.warm_start_steps == b.warm_start_steps)


def train_mixmatch(rt, cfg, pairs, side_info, seed, variant, run_name):
  """Trains (or resumes, or reuses) one mix-and-match model of `variant`; returns it with its
  training trace (`model.training_trace`).

  With `variant.warm_start_steps` (the reference's warm start: its training restores every
  encoder and decoder from a trained pix2pix model, `RGBD/model.py` `train`), the networks first
  train for that many steps on the paired translations alone (`train.paired_translations`) in
  `<run>/warm_start`; then the mix-and-match objective starts from those encoders and decoders
  with a fresh discriminator and fresh optimisers, as the reference's restore of its generator
  variables only, for the rest of `cfg.steps`."""
  with rt.strategy.scope():
    model = mm_model.MixMatch(cfg.widths, side_info, test_bn=variant.test_bn,
                              rgb_side_info=variant.rgb_side_info).build(cfg.resolution)
  run_dir = os.path.join(rt.workdir, "runs", run_name)
  warm = min(variant.warm_start_steps, cfg.steps - 1)
  main_state = os.path.join(run_dir, "checkpoints")
  if warm > 0 and tf.train.latest_checkpoint(main_state) is None:
    warm_dir = os.path.join(run_dir, "warm_start")
    _train_phase(rt, cfg, model, train.paired_translations(variant.weights), pairs, warm_dir,
                 f"{run_name}_warm_start", warm, seed, variant)
  trace = _train_phase(rt, cfg, model, variant.weights, pairs, run_dir, run_name,
                       cfg.steps - max(warm, 0), seed, variant)
  # The trace's steps count the mix-and-match objective's steps, after the warm start's.
  model.training_trace = {**trace.summary(), "warm_start_steps": max(warm, 0)}
  return model


def _train_phase(rt, cfg, model, weights, pairs, run_dir, name, steps, seed, variant):
  """Trains `model` on `weights` for `steps` in `run_dir` (its own discriminator, optimisers,
  checkpoints and trace); returns the trace."""
  opt = train.adam(rt.strategy, cfg.lr, model.trainable_variables)
  trackables = {**model.trackables, "optimizer": opt}
  disc = d_opt = None
  if weights.rgb_adversarial:
    with rt.strategy.scope():
      disc = mm_model.RGBDiscriminator(cfg.critic_width, name="disc_rgb")
      disc(tf.zeros([2, cfg.resolution, cfg.resolution, 3]))
    d_opt = train.adam(rt.strategy, cfg.lr, disc.trainable_variables)
    trackables.update(disc_rgb=disc, d_opt=d_opt)
  # The reference updates the discriminator on odd iterations: steps 0, 2, 4, ... here.
  step = tuple(train.mixmatch_step(model, opt, weights, cfg.batch_size, disc, d_opt,
                                   update_disc=d) for d in ((True, False) if disc else (False,)))
  trace = training_trace(rt, cfg, model, variant, pairs, run_dir)
  train.fit(rt, run_dir, name, trackables, step if len(step) > 1 else step[0],
            [pairs.rgb_seg, pairs.rgb_depth], cfg.batch_size, steps, seed, writer=trace,
            actions=trace.actions(steps))
  trace.probe_at(steps)
  return trace


PROBE_PAIRS = 128  # training (RGB, depth) pairs on which the alignment is probed while training


def training_trace(rt, cfg, model, variant, pairs, run_dir):
  """The run's TrainingTrace: loss terms, and the depth and RGB encoders' agreement on the first
  PROBE_PAIRS training (RGB, depth) pairs before training and at four points during it."""
  probe = {"rgb": rgbd.encode_rgb(pairs.rgb_depth["rgb"][:PROBE_PAIRS]).numpy(),
           "depth": rgbd.encode_depth(pairs.rgb_depth["depth"][:PROBE_PAIRS]).numpy()}
  agreement = evaluators.make("encoder_agreement", probe, "depth", "rgb", cfg.batch_size,
                              variant.weights.latent_levels, variant.weights.align_at)
  trace = trace_lib.TrainingTrace(run_dir, rt.writer(os.path.relpath(run_dir, rt.workdir)),
                                  lambda: agreement(model), enabled=rt.is_chief)
  if tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")) is None:
    trace.probe_at(0)  # a fresh run: the untrained encoders
  return trace


def train_unet(rt, cfg, name, src, dst, arrays, seed, gan):
  with rt.strategy.scope():
    unet = baselines.UNet(src, dst, cfg.widths, name).build(cfg.resolution)
  opt = train.adam(rt.strategy, cfg.lr, unet.trainable_variables)
  trackables = {**unet.trackables(name), "optimizer": opt}
  disc = d_opt = None
  if gan:
    with rt.strategy.scope():
      disc = baselines.PatchDiscriminator(cfg.critic_width, name=f"{name}_disc")
      disc(tf.zeros([1, cfg.resolution, cfg.resolution,
                     rgbd.CHANNELS[src] + rgbd.CHANNELS[dst]]))
    d_opt = train.adam(rt.strategy, cfg.lr, disc.trainable_variables)
    trackables.update(disc=disc, d_opt=d_opt)
  run = f"{name}_seed{seed}"
  train.fit(rt, os.path.join(rt.workdir, "runs", run), run, trackables,
            baselines.paired_step(unet, opt, cfg.batch_size, disc, d_opt), [arrays],
            cfg.batch_size, cfg.baseline_steps, seed)
  return unet


def train_cyclegan(rt, cfg, pairs, seed):
  with rt.strategy.scope():
    cyc = baselines.CycleGAN(cfg.widths).build(cfg.resolution)
  g_opt = train.adam(rt.strategy, cfg.lr, cyc.generator_variables)
  d_opt = train.adam(rt.strategy, cfg.lr, cyc.discriminator_variables)
  seg_only = {"seg": pairs.rgb_seg["seg"]}
  depth_only = {"depth": pairs.rgb_depth["depth"]}
  run = f"cyclegan_seed{seed}"
  train.fit(rt, os.path.join(rt.workdir, "runs", run), run,
            {**cyc.trackables(), "g_opt": g_opt, "d_opt": d_opt},
            cyc.step(g_opt, d_opt, cfg.batch_size), [seg_only, depth_only], cfg.batch_size,
            cfg.baseline_steps, seed)
  return cyc


def seg_record(cfg, method, side_info, seed, s, **extra):
  """A run's record from its segmentation scores `s` (evaluate.Segmentation)."""
  return {"method": method, "side_info": side_info, "seed": seed, "miou": s["miou"],
          "global_accuracy": s["global_accuracy"], "per_class_iou": s["per_class_iou"],
          "confusion": s["confusion"], "latent_size": cfg.latent_size,
          "resolution": cfg.resolution, **extra}


def evaluate_mixmatch(cfg, model, side_info, seed, test_inputs, labels, depth_m, objective,
                      full=True, train_rgb_depth=None):
  """Records of depth -> segmentation (zero-pair, cascade, multi-modal, paired R->S) with
  test-time batch statistics and with moving averages, on the same trained model; in full,
  also with the depth encoder's latent or side information swapped for the RGB encoder's, and
  how far apart the two encoders' encodings are (on the test scenes and, given
  `train_rgb_depth`, on the training (RGB, depth) pairs the alignment loss saw)."""
  records = []
  bn_modes = ("batch", "moving")
  seg = evaluators.make("segmentation", test_inputs, labels, cfg.batch_size)
  depth_of = evaluators.make("depth", test_inputs, depth_m, cfg.batch_size)
  keep = model.test_bn
  try:
    for test_bn in bn_modes:
      model.test_bn = test_bn
      t = lambda src, dst: lambda b: model.translate(b[src], src, dst)
      extra = dict(test_bn=test_bn, objective=objective)
      recs = [seg_record(cfg, "mm_zero_pair", side_info, seed, seg(t("depth", "seg")), **extra),
              seg_record(cfg, "mm_cascade", side_info, seed,
                         seg(lambda b: model.cascade(b["depth"], ("depth", "rgb", "seg"))),
                         **extra)]
      if full:
        recs += [seg_record(cfg, "mm_multimodal", side_info, seed, seg(
                     lambda b: model.fuse({"rgb": b["rgb"], "depth": b["depth"]}, "seg")),
                     **extra),
                 seg_record(cfg, "mm_rgb2seg", side_info, seed, seg(t("rgb", "seg")), **extra)]
        # Which of the two things zero-pair takes from the depth encoder costs it: the latent
        # or the side information (each swapped for the RGB encoder's of the same scenes).
        def swapped(latent_from, side_from):
          def fn(b):
            latent, _ = model.encode(b[latent_from], latent_from)
            return model.decode(latent, model.encode(b[side_from], side_from)[1], "seg")
          return fn
        recs += [seg_record(cfg, "mm_depth_latent_rgb_side", side_info, seed,
                            seg(swapped("depth", "rgb")), **extra),
                 seg_record(cfg, "mm_rgb_latent_depth_side", side_info, seed,
                            seg(swapped("rgb", "depth")), **extra)]
        agreement = evaluators.make("encoder_agreement", test_inputs, "depth", "rgb",
                                    cfg.batch_size)(model)
        if train_rgb_depth is not None:
          agreement["latent_distance_train"] = evaluators.make(
              "encoder_agreement", train_rgb_depth, "depth", "rgb",
              cfg.batch_size)(model)["latent_distance"]
        recs[0].update(agreement)
        recs[0].update(getattr(model, "training_trace", {}))
        depth = {"paired_rgb2depth": depth_of(t("rgb", "depth")),
                 "zero_pair_seg2depth": depth_of(t("seg", "depth"))}
        for r in recs:
          r.update({f"depth_{k}_{m}": v[m] for k, v in depth.items() for m in v})
      records += recs
  finally:
    model.test_bn = keep
  return records


def export_mixmatch(rt, cfg, model, export_dir, metrics=None, flags=None):
  r = cfg.resolution
  specs = {"rgb": tf.TensorSpec([None, r, r, 3], tf.uint8, name="rgb"),
           "depth": tf.TensorSpec([None, r, r], tf.float32, name="depth"),
           "seg": tf.TensorSpec([None, r, r], tf.uint8, name="seg")}

  def outputs(dst, y):
    if dst == "seg":
      return {"labels": tf.argmax(y, axis=-1), "probabilities": tf.nn.softmax(y)}
    if dst == "depth":
      return {"depth": rgbd.decode_depth(y)}
    return {"rgb": preprocess.unscale(y)}

  def encoded(modality, x):
    """The model input of a served tensor; depth must be finite and >= 0 metres, labels ids of
    the 13 classes or void (13), else an InvalidArgumentError."""
    if modality == "depth":
      checks = [tf.debugging.assert_all_finite(x, "depth must be finite (metres)"),
                tf.debugging.assert_non_negative(x, message="depth must be >= 0 (metres)")]
    elif modality == "seg":
      checks = [tf.debugging.assert_less_equal(
          x, tf.constant(rgbd.VOID, tf.uint8),
          message=f"segmentation labels must be class ids 0..{rgbd.VOID - 1} or void "
                  f"({rgbd.VOID})")]
    else:
      checks = []
    with tf.control_dependencies(checks):
      return rgbd.ENCODE[modality](tf.identity(x))

  signatures = {}
  for src in rgbd.MODALITIES:
    for dst in rgbd.MODALITIES:
      if src != dst:
        fn = (lambda s, d: tf.function(
            lambda x: outputs(d, model.translate(encoded(s, x), s, d)),
            input_signature=[specs[s]]))(src, dst)
        signatures[f"{src}_to_{dst}"] = fn
  signatures["rgbd_to_seg"] = tf.function(
      lambda rgb, depth: outputs("seg", model.fuse(
          {"rgb": encoded("rgb", rgb), "depth": encoded("depth", depth)}, "seg")),
      input_signature=[specs["rgb"], specs["depth"]])
  card = runtime_flags.model_card(PROGRAM, metrics, flags=flags or {},
                                  side_info=cfg.main_side_info, test_bn=model.test_bn,
                                  resolution=cfg.resolution, segmentation={
                                      "classes": list(scenes.CLASSES), "void": rgbd.VOID,
                                      "colours": label_colours(np.arange(rgbd.VOID + 1))},
                                  depth_unit="metres")
  return export.export_saved_model(export_dir, {"depth_to_seg": signatures.pop("depth_to_seg"),
                                                **signatures}, list(model.trackables.values()),
                                   version=rt.export_version, card=card,
                                   formats=rt.export_format, input_ranges={
                                       "depth": (0.5, 2 * rgbd.DEPTH_SCALE),  # metres
                                       "seg": (0, rgbd.VOID + 1)})


def run_recolouring(rt, cfg, seed):
  """Trains (or resumes) the 11-colour model; returns (scores, model, test items)."""
  train_items = sources.load_examples("fashion_mnist", "train", data_dir=cfg.data_dir,
                                      download=cfg.download)
  test_items = sources.load_examples("fashion_mnist", "test", data_dir=cfg.data_dir,
                                     download=cfg.download)
  limit = min(len(train_items), max(1100, cfg.num_scenes * 11))
  domains_named = colours.make_domains(train_items.images[:limit], seed=seed)
  domains = [domains_named[name] for name in colours.NAMES]
  model = domains_lib.DomainMixMatch(len(colours.NAMES), cfg.recolour_width).build()
  pairs = domains_lib.star_pairs(colours.NAMES.index(cfg.recolour_anchor), len(colours.NAMES))
  train.fit_unpaired(rt, os.path.join("runs", "recolour"), "recolour", model, domains, pairs,
                     cfg.batch_size, cfg.recolour_steps, cfg.lr, seed)
  labels = np.concatenate([np.full(len(d), i) for i, d in enumerate(domains)])
  rng = np.random.default_rng(seed)
  test_colour = rng.integers(0, len(colours.NAMES), 1100)
  test_x = np.concatenate([colours.recolour(test_items.images[i:i + 1], colours.NAMES[c])
                           for i, c in enumerate(test_colour)])
  classifier = features_lib.DomainClassifier.train_or_load(
      features_lib.cache_dir(), domains_lib.to_model(np.concatenate(domains)),
      labels, domains_lib.to_model(test_x), test_colour, len(colours.NAMES), steps=600)
  scores = evaluators.make("recolouring", classifier, test_items.images[1100:], pairs)(model)
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


def load_pairs(rt, cfg):
  """The rendered scenes split into (RGB, seg) and (RGB, depth) training pairs and the test set."""
  rt.seed(cfg.seeds[0])
  data = scenes_tfds.load_scenes(cfg.resolution, cfg.num_scenes, cfg.num_test_scenes,
                                 cfg.data_dir, cfg.scenes_version)
  return rgbd.split_pairs(data)


def _slug(text):
  """A directory name for an intervention ('align_scale=relative+latent_weight=100' ->
  'align_scale-relative_latent_weight-100')."""
  return "".join(c if c.isalnum() or c in "._" else "-" if c in "=:" else "_" for c in text)


def _main_run(cfg, seed):
  return f"mixmatch_{cfg.main_side_info}_seed{seed}"


def validate(cfg):
  """A ValueError naming the flag for a setting that cannot run."""
  settings.check(cfg)
  if cfg.resolution % 2 ** len(cfg.widths):
    raise ValueError(f"--resolution={cfg.resolution}: must be divisible by 2^(number of "
                     f"--widths) = {2 ** len(cfg.widths)}, one 2x2 pooling per width.")
  variant = reference_variant(cfg)
  mm_model.MixMatch((8,), "indices", test_bn=variant.test_bn,
                    rgb_side_info=variant.rgb_side_info)
  for intervention in cfg.interventions:
    changed = intervention_config(cfg, intervention)
    if changed.resolution % 2 ** len(changed.widths):
      raise ValueError(f"--interventions={intervention}: --resolution={cfg.resolution} is not "
                       f"divisible by 2^(number of widths) = {2 ** len(changed.widths)}.")
  return cfg


def export_only(rt, cfg, *, flags=None):
  """Re-exports the finished main model of `rt.workdir` to `rt.export_dir` (restored from its
  last checkpoint; never trains)."""
  runtime_flags.finished_results(rt.workdir)
  pairs = load_pairs(rt, cfg)
  seed = cfg.seeds[0]
  return export_mixmatch(rt, cfg, train_mixmatch(rt, cfg, pairs, cfg.main_side_info, seed,
                                                 reference_variant(cfg), _main_run(cfg, seed)),
                         rt.export_dir, flags=flags)


def train_and_evaluate(rt, cfg, *, flags=None):
  """Trains (or reuses) every model, writes results.json, REPORT.md and the figures into
  `rt.workdir` and exports the main model to `rt.export_dir` (when set). `flags`: the program's
  flag values, kept in results.json and the model card. Returns the records."""
  validate(cfg)
  workdir, export_dir = rt.workdir, rt.export_dir
  seeds = list(cfg.seeds)
  variant = reference_variant(cfg)
  pairs = load_pairs(rt, cfg)
  main_run = lambda seed: _main_run(cfg, seed)
  test_inputs = evaluate.encoded(pairs.test)
  train_rgb_depth = {"rgb": rgbd.encode_rgb(pairs.rgb_depth["rgb"]).numpy(),
                     "depth": rgbd.encode_depth(pairs.rgb_depth["depth"]).numpy()}
  labels, depth_m = pairs.test["seg"], pairs.test["depth"]
  records, outputs, n = [], {}, min(cfg.panel_scenes, len(labels))
  seg = evaluators.make("segmentation", test_inputs, labels, cfg.batch_size)
  panel_inputs = {k: v[:n] for k, v in test_inputs.items()}
  main_models = {}
  for seed in seeds:
    rt.seed(seed)
    for side in cfg.side_info:
      model = train_mixmatch(rt, cfg, pairs, side, seed, variant, f"mixmatch_{side}_seed{seed}")
      records += evaluate_mixmatch(cfg, model, side, seed, test_inputs, labels, depth_m, "flags",
                                   train_rgb_depth=train_rgb_depth)
      if side == cfg.main_side_info:
        main_models[seed] = model
    if cfg.main_side_info not in cfg.side_info:
      main_models[seed] = train_mixmatch(rt, cfg, pairs, cfg.main_side_info, seed, variant,
                                         main_run(seed))
    for intervention in cfg.interventions:
      icfg = intervention_config(cfg, intervention)
      model = train_mixmatch(rt, icfg, pairs, cfg.main_side_info, seed,
                             dataclasses.replace(reference_variant(icfg), name=intervention),
                             f"intervention_{_slug(intervention)}_{cfg.main_side_info}_seed{seed}")
      records += evaluate_mixmatch(icfg, model, cfg.main_side_info, seed, test_inputs, labels,
                                   depth_m, intervention, train_rgb_depth=train_rgb_depth)
    for name in ("pix2pix", "pix2pix_l1"):
      if name in cfg.baselines:
        gan = name == "pix2pix"
        d2r = train_unet(rt, cfg, f"{name}_d2r", "depth", "rgb", pairs.rgb_depth, seed, gan)
        r2s = train_unet(rt, cfg, f"{name}_r2s", "rgb", "seg", pairs.rgb_seg, seed, gan)
        cascade = lambda b: r2s(tf.cast(d2r(b["depth"]), tf.float32))
        records.append(seg_record(cfg, f"{name}_cascade", "skip", seed, seg(cascade),
                                  test_bn="moving", objective="baseline"))
        if seed == seeds[0]:
          outputs[f"{name} cascade"] = cascade(panel_inputs).numpy()
    if "cyclegan" in cfg.baselines:
      cyc = train_cyclegan(rt, cfg, pairs, seed)
      records.append(seg_record(cfg, "cyclegan", "skip", seed,
                                seg(lambda b: cyc.d2s(b["depth"])), test_bn="moving",
                                objective="baseline"))
      if seed == seeds[0]:
        outputs["CycleGAN"] = cyc.d2s(panel_inputs["depth"]).numpy()
    if cfg.ablation:
      for k, step in enumerate(ablation_steps(cfg.steps)):
        if k == 1:  # the same trained model as step 0, evaluated with batch statistics
          continue
        if trains_like(step, variant):  # e.g. the last step under the default flags
          model = main_models[seed]
        else:
          model = train_mixmatch(rt, cfg, pairs, cfg.main_side_info, seed, step,
                                 f"ablation{k}_{cfg.main_side_info}_seed{seed}")
        for r in evaluate_mixmatch(cfg, model, cfg.main_side_info, seed, test_inputs, labels,
                                   depth_m, step.name, full=False):
          if k == 0:  # step 1 is step 0's model with batch statistics
            r["objective"] = (step.name if r["test_bn"] == "moving" else
                              ablation_steps(cfg.steps)[1].name)
          records.append(r)
  main_model = main_models[seeds[0]]
  outputs = {"M&M zero-pair": main_model.translate(panel_inputs["depth"], "depth",
                                                   "seg").numpy(),
             "M&M multi-modal": main_model.fuse({"rgb": panel_inputs["rgb"],
                                                 "depth": panel_inputs["depth"]}, "seg").numpy(),
             "M&M cascade": main_model.cascade(panel_inputs["depth"],
                                               ("depth", "rgb", "seg")).numpy(), **outputs}
  if cfg.recolour:  # every worker trains it
    recolour_scores, rmodel, items = run_recolouring(rt, cfg, seeds[0])
  else:
    recolour_scores = None
  if not rt.is_chief:  # one writer of the workdir's files and the export
    return records
  writer = rt.writer("summary")
  figs = []
  results.save_figure(scene_panel(pairs.test, outputs, n),
                      os.path.join(workdir, "panel_depth_to_seg.png"), writer)
  figs.append("panel_depth_to_seg.png")
  if cfg.recolour:
    acc = 100 * np.array(recolour_scores["accuracy"])
    results.save_figure(figures.heatmap(acc, colours.NAMES, colours.NAMES,
                                        "Colour-name accuracy %, source (rows) -> target"),
                        os.path.join(workdir, "recolour_accuracy.png"), writer)
    src = colours.NAMES.index("red" if cfg.recolour_anchor != "red" else "blue")
    x = domains_lib.to_model(colours.recolour(items[:6], colours.NAMES[src]))
    rows = [domains_lib.from_model(x)] + [
        domains_lib.from_model(rmodel.translate(tf.constant(x), src, b))
        for b in range(len(colours.NAMES)) if b != src]
    grid = figures.image_grid(np.concatenate([np.stack(r) for r in zip(*rows)]), 6, len(rows))
    results.save_figure(figures.image(grid, f"{colours.NAMES[src]} items (first column) to "
                                            "every other colour"),
                        os.path.join(workdir, "recolour_samples.png"), writer)
    figs += ["recolour_accuracy.png", "recolour_samples.png"]
    records.append({"method": "recolouring", "side_info": "none", "seed": seeds[0],
                    "miou": None, "global_accuracy": None, "per_class_iou": None,
                    **{k: v for k, v in recolour_scores.items()
                       if not isinstance(v, list)}})
  writer.flush()
  claim_list = claims(cfg, records, recolour_scores)
  results.write_results(workdir, PROGRAM, flags or {}, records, figs, claim_list)
  results.write_report(workdir, "Mix-and-match networks", report_sections(
      cfg, records, recolour_scores, figs, len(pairs.rgb_seg["seed"]),
      len(pairs.rgb_depth["seed"]), len(labels), seeds), claim_list)
  zero_pair = tables.select(records, method="mm_zero_pair", side_info=cfg.main_side_info,
                      test_bn=cfg.test_bn, objective="flags", seed=seeds[0])
  if export_dir:
    path = export_mixmatch(rt, cfg, main_model, export_dir, {
        "zero_pair_depth_to_seg_miou": zero_pair[0]["miou"] if zero_pair else None}, flags)
    logging.info("exported mix-and-match (%s) to %s", cfg.main_side_info, path)
  return records


def _cascades(records, main, bn, objective="flags"):
  """{name: records} of the cascades zero-pair is compared with: the M&M cascade of the models
  of `objective` and the baseline cascades (present ones only)."""
  out = {"M&M cascade": tables.select(records, method="mm_cascade", side_info=main, test_bn=bn,
                                      objective=objective),
         "pix2pix cascade": tables.select(records, method="pix2pix_cascade"),
         "pix2pix-style cascade (no GAN)": tables.select(records, method="pix2pix_l1_cascade")}
  return {k: v for k, v in out.items() if v}


def claims(cfg, records, recolour_scores):
  """The talk's claims on mix-and-match (mean over seeds; the main side information and
  test-time batch norm); the zero-pair claim also for each intervention's models."""
  main, bn = cfg.main_side_info, cfg.test_bn
  miou = lambda rs: [100 * r["miou"] for r in rs] or None  # per seed
  out = []
  zero = None
  for objective in ("flags",) + tuple(cfg.interventions):
    z = miou(tables.select(records, method="mm_zero_pair", side_info=main, test_bn=bn,
                           objective=objective))
    cascades = {k: miou(v) for k, v in _cascades(records, main, bn, objective).items()}
    zero = z if objective == "flags" else zero
    if z is None or not cascades:
      continue
    seeds = f" ({len(z)} seed{'s' if len(z) > 1 else ''})"
    out.append(results.claim(
        "Zero-pair depth → segmentation beats the cascades" +
        ("" if objective == "flags" else f" (intervention {objective})"),
        f"mean mIoU{seeds}: zero-pair {np.mean(z):.1f}%, " + ", ".join(
            f"{k} {np.mean(v):.1f}%{results.spread_note(z, v)}" for k, v in cascades.items()),
        all(results.above(z, v) for v in cascades.values())))
  seeds = f" ({len(zero)} seed{'s' if len(zero or []) > 1 else ''})" if zero else ""
  sides = {s: miou(tables.select(records, method="mm_zero_pair", side_info=s, test_bn=bn,
                           objective="flags")) for s in ("indices", "skip")}
  if None not in sides.values():
    ind, skip = sides["indices"], sides["skip"]
    out.append(results.claim("Pooling indices beat skip connections as side information",
                             f"zero-pair mean mIoU{seeds}: indices {np.mean(ind):.1f}%, skip "
                             f"{np.mean(skip):.1f}%{results.spread_note(ind, skip)}",
                             results.above(ind, skip)))
  if recolour_scores is not None:
    chance = 100 / len(colours.NAMES)
    acc = 100 * recolour_scores["accuracy_zero_pair"]
    out.append(results.claim(
        "Mix-and-match recolours pairs it never saw, with 22 networks instead of 110",
        f"colour-name accuracy on never-trained pairs {acc:.1f}% (chance {chance:.1f}%; "
        f"trained pairs {100 * recolour_scores['accuracy_trained']:.1f}%)", acc > 2 * chance))
  return out


def report_sections(cfg, records, recolour_scores, figs, n_rs, n_rd, n_test, seeds):
  """REPORT.md's sections, one named step each."""
  sections = [("Setup", _setup_text(cfg, n_rs, n_rd, n_test)),
              ("Depth → segmentation on held-out scenes (IoU %)",
               _depth_to_seg_table(cfg, records)),
              ("Side information (zero-pair depth → segmentation)",
               _side_info_table(cfg, records))]
  sections += _swap_sections(cfg, records)
  sections += tables.alignment_sections(records, cfg.side_info, cfg.test_bn)
  if cfg.interventions:
    sections.append(tables.interventions_section(
        records, cfg.interventions, cfg.main_side_info, cfg.test_bn,
        lambda objective: _cascades(records, cfg.main_side_info, cfg.test_bn, objective)))
  sections.append(("Batch norm at test: the same trained models, both ways (mIoU %)",
                   _test_bn_table(cfg, records)))
  sections += _ablation_sections(cfg, records)
  if recolour_scores is not None:
    sections.append(_recolour_section(cfg, recolour_scores, seeds))
  sections.append(("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)))
  return sections


def _setup_text(cfg, n_rs, n_rd, n_test):
  """The data, networks, budget and objective of the run."""
  return (f"Procedural scenes at {cfg.resolution}x{cfg.resolution}: {n_rs} "
          f"(RGB, segmentation) training scenes and {n_rd} (RGB, depth) training scenes, "
          f"disjoint; {n_test} held-out test scenes with all three modalities. Encoders "
          f"with blocks {','.join(map(str, cfg.widths))} (latent "
          f"{cfg.latent_size}x{cfg.latent_size}; the paper: 256 px, 5 VGG blocks, an 8x8 "
          f"latent, pretrained), {cfg.steps} steps per model, baselines "
          f"{cfg.baseline_steps} steps, batch {cfg.batch_size}, Adam {cfg.lr:g} (0.5, "
          f"0.999); seeds {', '.join(map(str, cfg.seeds))} (mean ± std). Objective: "
          f"RGB→seg ×{cfg.seg_weight:g}, RGB→depth ×{cfg.depth_weight:g}, "
          f"autoencoders ×{cfg.auto_weight:g}, RGB outputs ×{cfg.rgb_weight:g} "
          f"({cfg.rgb_loss} ×{cfg.rgb_recon_weight:g}"
          f"{' + LSGAN' if cfg.rgb_adversarial else ''}), latent alignment "
          f"×{cfg.latent_weight:g} at {cfg.latent_levels} levels"
          f"{' + max-feature' if cfg.max_feature else ''}, latent noise "
          f"|N(0, {cfg.latent_noise:g})|, RGB decoder side information: "
          f"{cfg.rgb_side_info}; test-time batch norm in the main tables: {cfg.test_bn}. "
          "Scores ignore void pixels; mIoU averages the classes present.")


def _depth_to_seg_table(cfg, records):
  """Per-class IoU of every method, then zero-pair minus each cascade."""
  main, bn = cfg.main_side_info, cfg.test_bn
  other = "skip" if main != "skip" else "indices"
  rows = []
  order = [("cyclegan", "skip", "moving", "baseline"),
           ("pix2pix_cascade", "skip", "moving", "baseline"),
           ("pix2pix_l1_cascade", "skip", "moving", "baseline"),
           ("mm_cascade", main, bn, "flags"), ("mm_cascade", other, bn, "flags"),
           ("mm_zero_pair", main, bn, "flags"), ("mm_multimodal", main, bn, "flags"),
           ("mm_rgb2seg", main, bn, "flags")]
  for method, side, test_bn, objective in order:
    recs = tables.select(records, method=method, side_info=side, test_bn=test_bn,
                         objective=objective)
    if not recs:
      continue
    name = MODEL_NAMES[method] + (f" ({side})" if method.startswith("mm_") else "")
    per_class = np.array([[np.nan if v is None else v for v in r["per_class_iou"]]
                          for r in recs], np.float64)
    cls = [f"{100 * np.nanmean(c):.1f}" if np.isfinite(c).any() else "-" for c in per_class.T]
    rows.append([name, tables.cell(recs, "miou"), tables.cell(recs, "global_accuracy")] + cls)
  zero = tables.select(records, method="mm_zero_pair", side_info=main, test_bn=bn,
                       objective="flags")
  for name, (method, side, test_bn, objective) in (
      ("zero-pair minus M&M cascade", ("mm_cascade", main, bn, "flags")),
      ("zero-pair minus 2× pix2pix cascade (PatchGAN)", order[1]),
      ("zero-pair minus 2× pix2pix-style cascade (no GAN)", order[2])):
    row = tables.difference_row(name, zero, tables.select(
        records, method=method, side_info=side, test_bn=test_bn, objective=objective))
    if row is not None:
      rows.append(row)
  return results.markdown_table(["method", "mIoU %", "global %"] + list(scenes.CLASSES), rows) + (
      "\n\nThe rows 'zero-pair minus ...' pair the seeds: mIoU points (mean ± std, and the "
      "seeds where zero-pair is below), then the mean per-class IoU difference in points. Each "
      "record in results.json also holds its confusion matrix (rows: true class, columns: "
      "predicted, void pixels left out).")


def _side_info_table(cfg, records):
  """Zero-pair, the M&M cascade and the depth scores per side information."""
  bn = cfg.test_bn
  return results.markdown_table(
      ["side information", "zero-pair D→S mIoU %", "global %", "M&M cascade mIoU %",
       "R→D RMSE m", "R→D δ<1.25 %", "zero-pair S→D RMSE m"],
      [[side, tables.cell(z, "miou"), tables.cell(z, "global_accuracy"),
        tables.cell(tables.select(records, method="mm_cascade", side_info=side, test_bn=bn,
                                  objective="flags"), "miou"),
        tables.cell(z, "depth_paired_rgb2depth_rmse", 1.0),
        tables.cell(z, "depth_paired_rgb2depth_delta1"),
        tables.cell(z, "depth_zero_pair_seg2depth_rmse", 1.0)]
       for side in cfg.side_info
       for z in [tables.select(records, method="mm_zero_pair", side_info=side, test_bn=bn,
                               objective="flags")]])


def _swap_sections(cfg, records):
  """What zero-pair loses: each encoder's latent and side information swapped (0 or 1
  section)."""
  bn = cfg.test_bn
  swap_rows = []
  zero_all = [r for r in tables.select(records, method="mm_zero_pair", test_bn=bn,
                                       objective="flags") if "latent_distance_constant" in r]
  for side in cfg.side_info:
    sel = lambda m: tables.select(records, method=m, side_info=side, test_bn=bn, objective="flags")
    zero = [r for r in sel("mm_zero_pair") if "latent_distance" in r]
    if zero:
      agreement = np.mean([r["indices_agreement"] for r in zero], axis=0)
      swap_rows.append([side, tables.cell(zero, "miou"),
                        tables.cell(sel("mm_depth_latent_rgb_side"), "miou"),
                        tables.cell(sel("mm_rgb_latent_depth_side"), "miou"),
                        tables.cell(sel("mm_rgb2seg"), "miou"),
                        tables.cell(zero, "latent_distance", 1.0),
                        tables.cell(zero, "latent_distance_train", 1.0),
                        " / ".join(f"{100 * a:.0f}" for a in agreement)])
  if swap_rows:
    return [(
        "What zero-pair loses: the depth encoder's latent and side information, each swapped "
        "for the RGB encoder's (mIoU %)",
        results.markdown_table(
            ["side information", "zero-pair: depth latent, depth side", "depth latent, RGB side",
             "RGB latent, depth side", "R→S: RGB latent, RGB side",
             "latent distance, test scenes", "latent distance, training pairs",
             "indices agreement % per block"], swap_rows) +
        "\n\nOne trained model per row and seed; the segmentation decoder gets the latent of one "
        "encoder and the side information (pooling indices, skip features) of the other, for "
        "the same test scenes. Latent distance: mean |z_depth − z_RGB|² over the RGB latents' "
        "variance across scenes: 0 identical, 1 what the constant mean RGB latent scores (no "
        "information about the scene), 2 what another scene's RGB latent scores (computed on "
        "the same latents: constant " + " / ".join(
            tables.cell([r for r in zero_all if side in r["side_info"]],
                        "latent_distance_constant", 1.0) for side in cfg.side_info) +
        ", another scene " + " / ".join(
            tables.cell([r for r in zero_all if side in r["side_info"]],
                        "latent_distance_other_scene", 1.0) for side in cfg.side_info) +
        ", per side information as in the rows); on the "
        "held-out scenes and on the (RGB, depth) training pairs the alignment loss saw. Indices "
        "agreement: the share of 2x2 max-pooling winners on which the two encoders agree, per "
        "block from the first (chance about 25 %).")]
  return []


def _test_bn_table(cfg, records):
  """The same trained models scored with batch statistics and with moving averages."""
  bn_rows = []
  for method in ("mm_zero_pair", "mm_cascade", "mm_multimodal", "mm_rgb2seg"):
    for side in cfg.side_info:
      cells = [tables.cell(tables.select(records, method=method, side_info=side, test_bn=m,
                                         objective="flags"), "miou") for m in ("batch", "moving")]
      if cells != ["-", "-"]:
        bn_rows.append([MODEL_NAMES[method], side] + cells)
  return results.markdown_table(
      ["method", "side information", "mIoU % batch statistics", "mIoU % moving averages"],
      bn_rows)


def _ablation_sections(cfg, records):
  """From the project's earlier objective to the reference's, one change at a time (0 or 1
  section)."""
  if not cfg.ablation:
    return []
  rows = []
  for step in ablation_steps(cfg.steps):
    z = tables.select(records, method="mm_zero_pair", objective=step.name, test_bn=step.test_bn)
    c = tables.select(records, method="mm_cascade", objective=step.name, test_bn=step.test_bn)
    rows.append([step.name, tables.cell(z, "miou"), tables.cell(z, "global_accuracy"),
                 tables.cell(c, "miou")])
  pix = tables.select(records, method="pix2pix_cascade")
  return [(f"From the project's earlier objective to the reference's, one change at a time "
           f"({cfg.main_side_info}; mIoU %)", results.markdown_table(
               ["step", "zero-pair D→S mIoU", "global", "M&M cascade mIoU"], rows) + (
                   f"\n\nFor comparison, the pix2pix cascade: {tables.cell(pix, 'miou')} mIoU."
                   if pix else ""))]


def _recolour_section(cfg, recolour_scores, seeds):
  """The many-to-many recolouring: trained and never-trained colour pairs."""
  s = recolour_scores
  return ("Many-to-many recolouring", results.markdown_table(
      ["pairs", "colour-name accuracy %", "luminance SSIM vs input",
       "luminance SSIM vs true recolouring"],
      [["trained (with the anchor)", 100 * s["accuracy_trained"], s["ssim_input_trained"],
        s["ssim_target_trained"]],
       ["never trained together (zero-pair)", 100 * s["accuracy_zero_pair"],
        s["ssim_input_zero_pair"], s["ssim_target_zero_pair"]]]) +
      f"\n\nColour names by a classifier trained on the 11 real colour domains (test accuracy "
      f"{s['colour_classifier_test_accuracy']:.4f}). Anchor colour: "
      f"{cfg.recolour_anchor}; seed {seeds[0]}, {cfg.recolour_steps} steps.\n\n" +
      results.markdown_table(
          ["approach", "networks for all 11 colours"],
          [["mix-and-match", "11 encoders + 11 decoders = 22"],
           ["CycleGAN per colour pair", "55 pairs x 2 generators = 110"]]))


