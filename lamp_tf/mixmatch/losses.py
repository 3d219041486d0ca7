"""Per-example losses of the mix-and-match outputs.

- segmentation: cross-entropy averaged over the labelled pixels (void ignored);
- depth: L1 or berHu (reverse Huber, threshold 0.2 of the batch's largest error) on the encoded
  depth;
- RGB: L1.
"""

import tensorflow as tf

from lamp_tf.data import rgbd


def segmentation(logits, labels):
  labels = tf.cast(labels, tf.int32)
  valid = tf.cast(labels != rgbd.VOID, tf.float32)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.minimum(labels, rgbd.NUM_CLASSES - 1),
                                                      logits)
  return tf.reduce_sum(ce * valid, axis=[1, 2]) / tf.maximum(tf.reduce_sum(valid, [1, 2]), 1.0)


def l1(pred, target):
  return tf.reduce_mean(tf.abs(pred - target), axis=[1, 2, 3])


def berhu(pred, target):
  err = tf.abs(pred - target)
  c = tf.stop_gradient(0.2 * tf.reduce_max(err)) + 1e-6
  return tf.reduce_mean(tf.where(err <= c, err, (err ** 2 + c ** 2) / (2 * c)), axis=[1, 2, 3])


def reconstruction(modality, pred, target, depth_loss="l1"):
  """Per-example loss of an output of `modality` against its target (labels for seg)."""
  if modality == "seg":
    return segmentation(pred, target)
  if modality == "depth" and depth_loss == "berhu":
    return berhu(pred, target)
  return l1(pred, target)
