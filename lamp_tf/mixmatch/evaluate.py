"""Held-out evaluation of translations to segmentation and depth, and of recolouring."""

import numpy as np
import tensorflow as tf

from lamp_tf.data import colours, rgbd
from lamp_tf.metrics import segmentation as seg_metrics
from lamp_tf.mixmatch import recolour


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


def segmentation_scores(logits, labels):
  """Scores of argmax predictions against labels (void ignored), plus the confusion matrix."""
  pred = np.argmax(logits, axis=-1)
  cm = seg_metrics.confusion_matrix(labels, pred, rgbd.NUM_CLASSES, ignore=rgbd.VOID)
  return {**seg_metrics.scores(cm), "confusion": cm.tolist()}


def depth_scores(pred, depth_m):
  return seg_metrics.depth_scores(depth_m, rgbd.decode_depth(tf.constant(pred)).numpy())


def recolouring_scores(model, classifier, test_items, pairs_trained, per_pair=100):
  """Colour-name accuracy (a colour classifier) and luminance SSIM for every ordered pair.

  Returns {"accuracy": [11, 11], "ssim_input": [11, 11], "ssim_target": [11, 11]} (NaN on the
  diagonal) with SSIM of the output's luminance against the input's and against the same item's
  true recolouring in the target colour.
  """
  n = len(colours.NAMES)
  items = test_items[:per_pair]
  truth = {c: colours.recolour(items, name) for c, name in enumerate(colours.NAMES)}
  acc, ssim_in, ssim_tgt = (np.full([n, n], np.nan) for _ in range(3))
  for a in range(n):
    x = recolour.to_model(truth[a])
    for b in range(n):
      if a == b:
        continue
      out = recolour.from_model(model.translate(tf.constant(x), a, b))
      acc[a, b] = float(np.mean(classifier.predict(recolour.to_model(out)) == b))
      lum_out = colours.luminance(out)[..., None]
      ssim_in[a, b] = float(tf.reduce_mean(tf.image.ssim(
          lum_out, colours.luminance(truth[a])[..., None], 1.0)))
      ssim_tgt[a, b] = float(tf.reduce_mean(tf.image.ssim(
          lum_out, colours.luminance(truth[b])[..., None], 1.0)))
  trained = np.zeros([n, n], bool)
  for a, b in pairs_trained:
    trained[a, b] = True
  unseen = ~trained & ~np.eye(n, dtype=bool)
  summary = {f"{k}_{group}": float(np.nanmean(m[mask]))
             for k, m in (("accuracy", acc), ("ssim_input", ssim_in), ("ssim_target", ssim_tgt))
             for group, mask in (("trained", trained), ("zero_pair", unseen))}
  return {"accuracy": acc.tolist(), "ssim_input": ssim_in.tolist(),
          "ssim_target": ssim_tgt.tolist(), **summary}
