"""Eleven colour domains made by recolouring Fashion-MNIST items (the basic colour names).

An item (grayscale, black background) becomes an RGB image on a white background: the item's
pixels take the domain's colour, shaded by the item's own intensity so its texture survives,
`colour * (0.55 + 0.45 * intensity)`, blended with the background by the item mask. Images are
padded to 32x32.

Training domains hold disjoint items (unpaired data); every test item exists in every colour,
so translations can be scored against the same item's true recolouring.
"""

import numpy as np

NAMES = ("black", "blue", "brown", "grey", "green", "orange", "pink", "purple", "red", "white",
         "yellow")
PROTOTYPES = {  # sRGB in [0, 1]
    "black": (0.08, 0.08, 0.08), "blue": (0.12, 0.25, 0.85), "brown": (0.45, 0.27, 0.1),
    "grey": (0.5, 0.5, 0.5), "green": (0.1, 0.6, 0.15), "orange": (1.0, 0.55, 0.0),
    "pink": (1.0, 0.6, 0.75), "purple": (0.5, 0.15, 0.6), "red": (0.85, 0.08, 0.08),
    "white": (0.97, 0.97, 0.97), "yellow": (0.98, 0.92, 0.1)}


def recolour(items, colour):
  """uint8 [N, 28, 28(, 1)] grayscale items -> uint8 [N, 32, 32, 3] in `colour`."""
  x = np.asarray(items, np.float32).reshape(len(items), 28, 28) / 255.0
  x = np.pad(x, [(0, 0), (2, 2), (2, 2)])
  mask = np.clip(x * 4.0, 0.0, 1.0)[..., None]  # item coverage
  shade = (0.55 + 0.45 * x)[..., None]
  fg = np.asarray(PROTOTYPES[colour], np.float32)[None, None, None] * shade
  rgb = mask * fg + (1.0 - mask) * 1.0
  return (rgb * 255).round().astype(np.uint8)


def luminance(rgb):
  """Rec. 601 luma of integer (0-255) or float ([0, 1]) RGB, as float in [0, 1]."""
  rgb = np.asarray(rgb)
  x = rgb.astype(np.float32) / (255.0 if np.issubdtype(rgb.dtype, np.integer) else 1.0)
  return x @ np.array([0.299, 0.587, 0.114], np.float32)


def make_domains(items, seed=0):
  """{colour: uint8 images}: the items split into 11 disjoint parts, part d in colour d."""
  order = np.random.default_rng(seed).permutation(len(items))
  parts = np.array_split(order, len(NAMES))
  return {name: recolour(items[idx], name) for name, idx in zip(NAMES, parts)}
