"""Losses of the mix-and-match outputs and latents.

Per-example losses (summed and divided by the global batch by the caller):
- segmentation: cross-entropy averaged over the labelled pixels of each image (void ignored);
- depth: L1 or berHu (reverse Huber, threshold 0.2 of the batch's largest error) on the encoded
  depth;
- RGB: L1 or the squared error.

Batch-level losses after the authors' code (yaxingwang/Mix-and-match-networks `RGBD/model.py`),
each returning this replica's share of the global-batch value:
- `segmentation_pixel_mean`: `annotation_loss`, cross-entropy averaged over every labelled
  pixel of the batch (images with more labelled pixels weigh more);
- `latent_alignment`: `feature_loss`, the mean squared difference of two encodings at the
  deepest `levels` pooled outputs (the reference: pool3, pool4 and pool5), summed over levels.
  Variants of the project, each behind a flag: `at='features'` aligns the pre-pool feature
  maps of every block (whose 2x2 argmax are the pooling indices the decoder unpools with)
  instead; `scale='normalized'` compares the two maps after standardising each channel over the
  batch and positions (the invariance of the decoders' batch norm); `scale='relative'` divides
  the mean squared difference by the two maps' variance across the batch's scenes (the latent
  distance of `evaluate.EncoderAgreement`). The raw difference falls when both encodings
  shrink or turn into the same scene-independent pattern, neither of which aligns anything;
  the relative one does not, and 'normalized' is blind to the scale only;
- `max_feature_map`: `max_feature_map_loss` on the deepest pooled outputs, written as the
  reference computes it: channels whose spatial sum is >= a tenth of itself (every channel of a
  non-negative map) are compared, sum of squares / (batch * H * W * number of selected
  (image, channel) entries);
- `lsgan_generator` / `lsgan_discriminator`: least-squares GAN terms (real label 1).
"""

import tensorflow as tf

from lamp_tf.data import rgbd

SEG_CE = ("pixel", "image")
ALIGN_AT = ("pooled", "features")
ALIGN_SCALE = ("raw", "normalized", "relative")
RGB_LOSSES = ("l2", "l1")
DEPTH_LOSSES = ("l1", "berhu")


def _global_sum(value):
  """Sum of a per-replica value over the replicas (the value itself on one device)."""
  ctx = tf.distribute.get_replica_context()
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value) if ctx is not None else value


def _ce_and_valid(logits, labels):
  labels = tf.cast(labels, tf.int32)
  valid = tf.cast(labels != rgbd.VOID, tf.float32)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.minimum(labels, rgbd.NUM_CLASSES - 1),
                                                      tf.cast(logits, tf.float32))
  return ce * valid, valid


def segmentation(logits, labels):
  ce, valid = _ce_and_valid(logits, labels)
  return tf.reduce_sum(ce, axis=[1, 2]) / tf.maximum(tf.reduce_sum(valid, [1, 2]), 1.0)


def segmentation_pixel_mean(logits, labels):
  """This replica's share of the cross-entropy averaged over all labelled pixels of the
  global batch."""
  ce, valid = _ce_and_valid(logits, labels)
  return tf.reduce_sum(ce) / tf.maximum(_global_sum(tf.reduce_sum(valid)), 1.0)


def l1(pred, target):
  return tf.reduce_mean(tf.abs(tf.cast(pred, tf.float32) - target), axis=[1, 2, 3])


def l2(pred, target):
  return tf.reduce_mean(tf.square(tf.cast(pred, tf.float32) - target), axis=[1, 2, 3])


def berhu(pred, target):
  err = tf.abs(tf.cast(pred, tf.float32) - target)
  c = tf.stop_gradient(0.2 * tf.reduce_max(err)) + 1e-6
  return tf.reduce_mean(tf.where(err <= c, err, (err ** 2 + c ** 2) / (2 * c)), axis=[1, 2, 3])


def reconstruction(modality, pred, target, depth_loss="l1", rgb_loss="l1"):
  """Per-example loss of an output of `modality` against its target (labels for seg)."""
  if modality == "seg":
    return segmentation(pred, target)
  if modality == "depth" and depth_loss == "berhu":
    return berhu(pred, target)
  if modality == "rgb" and rgb_loss == "l2":
    return l2(pred, target)
  return l1(pred, target)


def standardized(x, eps=1e-5):
  """x with each channel standardised over the global batch and positions (zero mean, unit
  variance: batch norm without its affine parameters)."""
  x = tf.cast(x, tf.float32)
  axes = list(range(len(x.shape) - 1))
  count = _global_sum(tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32))
  mean = _global_sum(tf.reduce_sum(x, axes)) / count
  var = _global_sum(tf.reduce_sum(tf.square(x - mean), axes)) / count
  return (x - mean) * tf.math.rsqrt(var + eps)


def scene_variance(x):
  """The variance of x across the global batch's examples, averaged over its units (positions
  and channels): how much it changes from scene to scene."""
  x = tf.cast(x, tf.float32)
  n = _global_sum(tf.cast(tf.shape(x)[0], tf.float32))
  mean = _global_sum(tf.reduce_sum(x, 0)) / n
  return tf.reduce_mean(_global_sum(tf.reduce_sum(tf.square(x - mean), 0)) / n)


def aligned_maps(side, levels, at="pooled"):
  """The maps of an encoder's side information that the latent alignment compares: the
  deepest `levels` pooled outputs (the reference) or every block's pre-pool features."""
  if at not in ALIGN_AT:
    raise ValueError(f"--align_at={at!r}: choose one of {', '.join(ALIGN_AT)}.")
  return [s["pooled"] for s in side[-levels:]] if at == "pooled" else [s["features"]
                                                                       for s in side]


def latent_alignment(side_a, side_b, levels, global_batch, at="pooled", scale="raw"):
  """This replica's share of the sum over the aligned maps (`aligned_maps`) of the mean squared
  difference of two encoders' maps (`side_*`: their side information, see
  nets.segnet.Encoder): raw (the reference), with each map standardised per channel
  ('normalized'), or over their mean variance across the global batch's scenes ('relative';
  each replica's share then adds up to the global value)."""
  if scale not in ALIGN_SCALE:
    raise ValueError(f"--align_scale={scale!r}: choose one of {', '.join(ALIGN_SCALE)}.")
  total = 0.0
  for a, b in zip(aligned_maps(side_a, levels, at), aligned_maps(side_b, levels, at)):
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    if scale == "normalized":
      a, b = standardized(a), standardized(b)
    term = tf.reduce_sum(tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])) / global_batch
    if scale == "relative":
      term /= 0.5 * (scene_variance(a) + scene_variance(b)) + 1e-6
    total += term
  return total


def max_feature_map(a, b, global_batch):
  """This replica's share of the reference's `max_feature_map_loss(a, b)` (module docstring);
  `a` is the RGB encoding that selects the channels."""
  a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
  sums = tf.reduce_sum(a, axis=[1, 2], keepdims=True)
  mask = tf.cast(sums >= sums / 10.0, tf.float32)
  selected = _global_sum(tf.reduce_sum(mask))
  hw = tf.cast(tf.shape(a)[1] * tf.shape(a)[2], tf.float32)
  return tf.reduce_sum(tf.square(a * mask - b * mask)) / (global_batch * hw * selected)


def lsgan_generator(fake_scores):
  """Per-example mean of (D(fake) - 1)^2."""
  return tf.reduce_mean(tf.square(tf.cast(fake_scores, tf.float32) - 1.0), axis=[1, 2, 3])


def lsgan_discriminator(real_scores, fake_scores):
  """Per-example (mean (D(real) - 1)^2 + mean D(fake)^2) / 2."""
  real = tf.reduce_mean(tf.square(tf.cast(real_scores, tf.float32) - 1.0), axis=[1, 2, 3])
  fake = tf.reduce_mean(tf.square(tf.cast(fake_scores, tf.float32)), axis=[1, 2, 3])
  return 0.5 * (real + fake)
