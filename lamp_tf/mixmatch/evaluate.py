"""Held-out evaluation of translations to segmentation and depth, of recolouring, and of how
far two encoders agree: evaluators (`metrics.evaluators`) registered as "segmentation",
"depth", "recolouring" and "encoder_agreement"."""

import numpy as np
import tensorflow as tf

from lamp_tf.data import colours, rgbd
from lamp_tf.metrics import evaluators, segmentation as seg_metrics
from lamp_tf.mixmatch import domains, losses


def batched(fn, inputs, batch=64):
  """Applies fn to {modality: array} inputs in batches; returns the concatenated outputs."""
  n = len(next(iter(inputs.values())))
  outs = []
  for i in range(0, n, batch):
    outs.append(np.asarray(fn({k: v[i:i + batch] for k, v in inputs.items()})))
  return np.concatenate(outs)


def encoded(test):
  """Test scenes as model inputs."""
  return {"rgb": rgbd.encode_rgb(test["rgb"]).numpy(),
          "depth": rgbd.encode_depth(test["depth"]).numpy(),
          "seg": rgbd.encode_seg(test["seg"]).numpy()}


@evaluators.register("segmentation")
class Segmentation(evaluators.Evaluator):
  """Segmentation of held-out scenes. model: a function of a batch of `inputs` ({modality:
  array}) to segmentation logits; scores of its argmax against `labels` (void ignored): mIoU,
  global accuracy, per-class IoU and the confusion matrix."""

  def __init__(self, inputs, labels, batch=64):
    self.inputs, self.labels, self.batch = inputs, labels, batch

  def __call__(self, model):
    pred = np.argmax(batched(model, self.inputs, self.batch), axis=-1)
    cm = seg_metrics.confusion_matrix(self.labels, pred, rgbd.NUM_CLASSES, ignore=rgbd.VOID)
    return {**seg_metrics.scores(cm), "confusion": cm.tolist()}


@evaluators.register("depth")
class Depth(evaluators.Evaluator):
  """Depth of held-out scenes. model: a function of a batch of `inputs` to encoded depth;
  its decoded metres scored against `depth_m` (metrics.segmentation.depth_scores)."""

  def __init__(self, inputs, depth_m, batch=64):
    self.inputs, self.depth_m, self.batch = inputs, depth_m, batch

  def __call__(self, model):
    pred = batched(model, self.inputs, self.batch)
    return seg_metrics.depth_scores(self.depth_m, rgbd.decode_depth(tf.constant(pred)).numpy())


@evaluators.register("recolouring")
class Recolouring(evaluators.Evaluator):
  """Colour-name accuracy (a colour classifier) and luminance SSIM for every ordered pair of
  colours. model: a DomainMixMatch over the colours (`translate(x, a, b)`).

  Returns {"accuracy": [11, 11], "ssim_input": [11, 11], "ssim_target": [11, 11]} (NaN on the
  diagonal) with SSIM of the output's luminance against the input's and against the same item's
  true recolouring in the target colour, and their means over the `pairs_trained` and over the
  zero pairs.
  """

  def __init__(self, classifier, test_items, pairs_trained, per_pair=100):
    self.classifier, self.pairs_trained = classifier, pairs_trained
    self.items = test_items[:per_pair]

  def __call__(self, model):
    classifier, items, pairs_trained = self.classifier, self.items, self.pairs_trained
    n = len(colours.NAMES)
    truth = {c: colours.recolour(items, name) for c, name in enumerate(colours.NAMES)}
    acc, ssim_in, ssim_tgt = (np.full([n, n], np.nan) for _ in range(3))
    for a in range(n):
      x = domains.to_model(truth[a])
      for b in range(n):
        if a == b:
          continue
        out = domains.from_model(model.translate(tf.constant(x), a, b))
        acc[a, b] = float(np.mean(classifier.predict(domains.to_model(out)) == b))
        lum_out = colours.luminance(out)[..., None]
        ssim_in[a, b] = float(tf.reduce_mean(tf.image.ssim(
            lum_out, colours.luminance(truth[a])[..., None], 1.0)))
        ssim_tgt[a, b] = float(tf.reduce_mean(tf.image.ssim(
            lum_out, colours.luminance(truth[b])[..., None], 1.0)))
    trained = np.zeros([n, n], bool)
    for a, b in pairs_trained:
      trained[a, b] = True
    unseen = ~trained & ~np.eye(n, dtype=bool)
    scores = (("accuracy", acc), ("ssim_input", ssim_in), ("ssim_target", ssim_tgt))
    summary = {f"{k}_{group}": float(np.nanmean(m[mask])) for k, m in scores
               for group, mask in (("trained", trained), ("zero_pair", unseen))}
    return {"accuracy": acc.tolist(), "ssim_input": ssim_in.tolist(),
            "ssim_target": ssim_tgt.tolist(), **summary}


@evaluators.register("encoder_agreement")
class EncoderAgreement(evaluators.Evaluator):
  """How close encoder `a`'s encodings of the scenes `inputs` are to encoder `b`'s of the same
  scenes (zero-pair a -> seg relies on both: the decoder was trained on b's). model: a
  mix-and-match model (`encode(x, modality)`), in its test-time batch norm.
  - "latent_distance": the deepest latent's mean squared distance |z_a - z_b|^2 over the scenes,
    divided by z_b's variance across scenes (summed over units). 0: identical; 1: what the
    constant mean latent of b scores (no information about the scene); 2: what another scene's
    z_b scores on average. The two reference points are computed beside it on the same latents
    ("latent_distance_constant": z_b's mean; "latent_distance_other_scene": z_b of the next
    scene in the set, the last wrapping to the first).
  - "indices_agreement": per encoder block, the fraction of max-pooling indices (which of the
    2x2 positions won, per channel) that agree (chance: 1/4 for unrelated maps).
  - "alignment_raw" / "alignment_relative": the latent alignment loss (unweighted, as
    `losses.latent_alignment` at the given `levels` and `at`) of the two encodings, raw (the
    reference's) and relative to their variance across each batch's scenes, averaged over the
    batches' scenes."""

  def __init__(self, inputs, a="depth", b="rgb", batch=64, levels=3, at="pooled"):
    self.inputs, self.a, self.b, self.batch = inputs, a, b, batch
    self.levels, self.at = levels, at

  def __call__(self, model):
    inputs, a, b, batch = self.inputs, self.a, self.b, self.batch
    n = len(inputs[a])
    z_a, z_b, agree, align = [], [], None, {"raw": 0.0, "relative": 0.0}
    for i in range(0, n, batch):
      za, side_a = model.encode(tf.constant(inputs[a][i:i + batch]), a)
      zb, side_b = model.encode(tf.constant(inputs[b][i:i + batch]), b)
      z_a.append(np.asarray(za, np.float64))
      z_b.append(np.asarray(zb, np.float64))
      m = len(z_b[-1])
      level = [m * float(tf.reduce_mean(tf.cast(tf.equal(x["indices"], y["indices"]),
                                                tf.float32))) for x, y in zip(side_a, side_b)]
      agree = level if agree is None else [p + q for p, q in zip(agree, level)]
      for scale in align:  # the loss of a batch, as the objective takes it, times its size
        align[scale] += m * float(losses.latent_alignment(side_a, side_b, self.levels, m,
                                                          self.at, scale))
    z_a, z_b = np.concatenate(z_a), np.concatenate(z_b)
    variance = float(np.sum(z_b.var(axis=0)))
    distance = lambda x, y: float(np.mean(np.sum((x - y) ** 2, axis=(1, 2, 3)))) / variance
    return {"latent_distance": distance(z_a, z_b),
            "latent_distance_constant": distance(z_b.mean(axis=0, keepdims=True), z_b),
            "latent_distance_other_scene": distance(np.roll(z_b, 1, axis=0), z_b),
            "indices_agreement": [x / n for x in agree],
            **{f"alignment_{k}": v / n for k, v in align.items()}}
