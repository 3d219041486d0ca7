"""Segmentation and depth scores: confusion matrix, per-class IoU, mIoU, global accuracy;
depth RMSE and the delta < 1.25 accuracy."""

import numpy as np


def confusion_matrix(labels, predictions, num_classes, ignore=None):
  """[num_classes, num_classes] counts (rows: ground truth), pixels labelled `ignore` skipped."""
  y, p = np.asarray(labels).ravel().astype(np.int64), np.asarray(predictions).ravel().astype(
      np.int64)
  keep = (y != ignore) if ignore is not None else np.ones_like(y, bool)
  keep &= (y >= 0) & (y < num_classes) & (p >= 0) & (p < num_classes)
  return np.bincount(y[keep] * num_classes + p[keep],
                     minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(confusion):
  """per-class IoU (NaN for classes absent from labels and predictions), mIoU over the others,
  global (pixel) accuracy."""
  cm = np.asarray(confusion, np.float64)
  tp = np.diag(cm)
  union = cm.sum(0) + cm.sum(1) - tp
  iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
  return {"per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
          "miou": float(np.nanmean(iou)), "global_accuracy": float(tp.sum() / max(cm.sum(), 1))}


def depth_scores(true_m, pred_m, min_depth=1e-3):
  """RMSE in metres and the share of pixels with max(p/t, t/p) < 1.25."""
  t = np.asarray(true_m, np.float64).ravel()
  p = np.maximum(np.asarray(pred_m, np.float64).ravel(), min_depth)
  ratio = np.maximum(p / t, t / p)
  return {"rmse": float(np.sqrt(np.mean((p - t) ** 2))), "delta1": float(np.mean(ratio < 1.25))}
