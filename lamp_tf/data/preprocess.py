"""Image preprocessing shared by all models: pad or resize to a square size, set channels, scale.

Functions take uint8 image tensors [..., H, W, C] (one image or a batch) and are pure TF ops, so
they work eagerly, inside `tf.data` and inside `tf.function`.
"""

import tensorflow as tf

VALUE_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0)}


def pad_to(images, size, constant=0):
  """Pads H and W symmetrically up to `size` with `constant` (MNIST 28 -> 32 as in LeNet-5)."""
  h, w = images.shape[-3], images.shape[-2]
  if h > size or w > size:
    raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}: use resize instead.")
  top, left = (size - h) // 2, (size - w) // 2
  rank = len(images.shape)
  paddings = [[0, 0]] * (rank - 3) + [[top, size - h - top], [left, size - w - left], [0, 0]]
  return tf.pad(images, paddings, constant_values=constant)


def center_square(image):
  """The central square crop of one image [H, W, C] (H and W may be dynamic)."""
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.minimum(h, w)
  return tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)


def set_channels(images, channels):
  """Converts between 1 and 3 channels; a matching count is returned unchanged."""
  have = images.shape[-1]
  if channels is None or have == channels:
    return images
  if have == 1 and channels == 3:
    return tf.image.grayscale_to_rgb(images)
  if have == 3 and channels == 1:
    return tf.image.rgb_to_grayscale(images)
  raise ValueError(f"cannot convert {have}-channel images to {channels} channels.")


def scale(images, value_range="-1,1"):
  """uint8 [0, 255] -> float32 in `value_range` ('-1,1' or '0,1')."""
  if value_range not in VALUE_RANGES:
    raise ValueError(f"value_range must be one of {sorted(VALUE_RANGES)}, not {value_range!r}.")
  lo, hi = VALUE_RANGES[value_range]
  return tf.cast(images, tf.float32) / 255.0 * (hi - lo) + lo


def unscale(images, value_range="-1,1"):
  """Inverse of `scale`, clipped, as uint8 (for image summaries and PNGs)."""
  lo, hi = VALUE_RANGES[value_range]
  x = (tf.convert_to_tensor(images, tf.float32) - lo) / (hi - lo) * 255.0
  return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


RESIZE = ("pad", "resize")


def prepare(images, size=None, mode="pad", channels=None, value_range="-1,1"):
  """uint8 images -> float32 model inputs: to `size` by 'pad' or 'resize', channels, scale.
  Padding comes after scaling, with the value of a uint8 0 (the same numbers as padding the
  uint8 images, in ops TFLite has kernels for: it has no uint8 padding)."""
  images = set_channels(tf.convert_to_tensor(images), channels)
  pad = False
  if size is not None and (images.shape[-3] != size or images.shape[-2] != size):
    if mode == "pad":
      pad = True
    elif mode == "resize":
      images = tf.image.resize(tf.cast(images, tf.float32), [size, size], antialias=True)
      images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
    else:
      raise ValueError(f"mode must be one of {', '.join(RESIZE)}, not {mode!r}.")
  x = scale(images, value_range)
  return pad_to(x, size, constant=VALUE_RANGES[value_range][0]) if pad else x
