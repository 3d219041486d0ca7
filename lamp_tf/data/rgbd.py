"""RGB / depth / segmentation data for mix-and-match: modality encodings and the pair sets.

Training data are two disjoint sets of scenes: (RGB, segmentation) pairs and (RGB, depth)
pairs; no training example ever holds depth and segmentation together (the zero-pair setting).
Test scenes hold all three. Encodings: RGB in [-1, 1]; depth in metres scaled to
depth / DEPTH_SCALE - 1; segmentation as class ids (13 = void) and one-hot inputs.
"""

import dataclasses

import tensorflow as tf

from lamp_tf.data import scenes

MODALITIES = ("rgb", "depth", "seg")
NUM_CLASSES = len(scenes.CLASSES)
VOID = scenes.VOID
DEPTH_SCALE = 5.0
CHANNELS = {"rgb": 3, "depth": 1, "seg": NUM_CLASSES}


def encode_rgb(rgb):
  return tf.cast(rgb, tf.float32) / 127.5 - 1.0


def encode_depth(depth):
  return tf.cast(depth, tf.float32)[..., None] / DEPTH_SCALE - 1.0


def decode_depth(x):
  """Model output -> metres."""
  return (x[..., 0] + 1.0) * DEPTH_SCALE


def encode_seg(labels):
  """One-hot [.., NUM_CLASSES] (void -> all zeros)."""
  return tf.one_hot(tf.cast(labels, tf.int32), NUM_CLASSES)


ENCODE = {"rgb": encode_rgb, "depth": encode_depth, "seg": encode_seg}


@dataclasses.dataclass(frozen=True)
class PairedScenes:
  """rgb_seg: {'rgb', 'seg', 'seed'}; rgb_depth: {'rgb', 'depth', 'seed'}; test: all three."""

  rgb_seg: dict
  rgb_depth: dict
  test: dict


def split_pairs(data):
  """Splits scenes_tfds.load_scenes output: the first half of the training scenes gives
  (RGB, segmentation) pairs, the second half (RGB, depth) pairs."""
  train, test = data["train"], data["test"]
  half = len(train["seed"]) // 2
  rgb_seg = {"rgb": train["rgb"][:half], "seg": train["segmentation"][:half],
             "seed": train["seed"][:half]}
  rgb_depth = {"rgb": train["rgb"][half:], "depth": train["depth"][half:],
               "seed": train["seed"][half:]}
  test = {"rgb": test["rgb"], "depth": test["depth"], "seg": test["segmentation"],
          "seed": test["seed"]}
  return PairedScenes(rgb_seg, rgb_depth, test)
