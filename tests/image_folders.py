"""Folders of small generated images for the `folder:PATH` data source's tests.

Class k's images are a bright horizontal bar at a class-specific height over noise, so a
classifier can tell the classes apart after a few steps; encoded by TensorFlow (PNG or JPEG).
"""

import os

import numpy as np
import tensorflow as tf


def class_images(k, n, size=16, channels=3, seed=0):
  """uint8 [n, size, size, channels] images of class k."""
  rng = np.random.default_rng([seed, k])
  images = rng.integers(0, 60, [n, size, size, channels]).astype(np.uint8)
  rows = max(1, size // 8)
  top = (2 * k * rows) % (size - rows)
  images[:, top:top + rows] = 230
  if channels == 3:  # and a class colour
    images[..., k % 3] = np.maximum(images[..., k % 3], 90)
  return images


def write_image(path, image, fmt=None):
  fmt = fmt or os.path.splitext(path)[1].lstrip(".").lower()
  encoded = tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=95)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, encoded)


def write_folder(root, classes=("a", "b", "c"), per_class=12, size=16, channels=3,
                 split=None, fmt="png", seed=0):
  """Writes root[/split]/<class>/<i>.<fmt>; returns {class: uint8 images} in file order (the
  names sort as the indices: 000.png, 001.png, ...)."""
  written = {}
  for k, name in enumerate(classes):
    images = class_images(k, per_class, size, channels, seed)
    for i, image in enumerate(images):
      write_image(os.path.join(root, *([split] if split else []), name, f"{i:03d}.{fmt}"),
                  image, fmt)
    written[name] = images
  return written
