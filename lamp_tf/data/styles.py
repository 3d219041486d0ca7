"""Five painting styles: the real TFDS `cycle_gan` images, or a procedural stand-in.

Domains: photo, Monet, van Gogh, Ukiyo-e, Cézanne (`DOMAINS`), loaded by `load_styles` as
{"train": {domain: uint8 [N, r, r, 3]}, "test": {...}, "paired_test": bool}.

- `source='cycle_gan'`: TFDS's `cycle_gan/{monet,vangogh,ukiyoe,cezanne}2photo` configs (trainA /
  testA: the painter's images; trainB / testB: photos). The four configs' photos are merged into
  one photo domain, duplicates (the same image in several configs) kept once. Needs the configs
  prepared (`tfds build cycle_gan/monet2photo ...`); images are centre-cropped and resized.
- `source='procedural'`: nothing to download. Each domain is a deterministic rendering of the
  procedural indoor scenes (`scenes.py`): 'photo' is the ray-traced image itself; the painters
  are transforms of it with their own palette, texture and edge treatment (`stylise`):
  Monet soft pastel dabs, van Gogh a blue-yellow palette with swirling strokes, Ukiyo-e flat
  posterised colour with black outlines on paper, Cézanne an earthy palette in blocky
  constructive patches. Training domains hold disjoint scenes (unpaired data); every test scene
  exists in every domain (`paired_test`), so a translation can be scored against the same
  scene's true rendering in the target style. Served as the TFDS data set `procedural_styles`.
- `source='folder:PATH'`: your own images, one class folder per domain (PATH/<domain>/<image>,
  or with split folders: see `folder.py`); the domains are the folders' names, read as RGB,
  centre-cropped and resized; unpaired test sets.
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from lamp_tf.data import colours, folder, preprocess, scenes, sources

DOMAINS = ("photo", "monet", "vangogh", "ukiyoe", "cezanne")
SOURCES = ("procedural", "cycle_gan")
TEST_SEED_OFFSET = 10 ** 6

# Palettes: luminance 0 -> 1 is mapped through these colours (sRGB in [0, 1]).
PALETTES = {
    "monet": ((0.35, 0.42, 0.62), (0.55, 0.70, 0.62), (0.86, 0.72, 0.80), (0.97, 0.95, 0.82)),
    "vangogh": ((0.05, 0.09, 0.35), (0.12, 0.30, 0.75), (0.85, 0.75, 0.15), (1.0, 0.95, 0.45)),
    "ukiyoe": ((0.12, 0.16, 0.32), (0.72, 0.22, 0.15), (0.55, 0.62, 0.55), (0.93, 0.87, 0.72)),
    "cezanne": ((0.22, 0.25, 0.20), (0.36, 0.45, 0.25), (0.78, 0.55, 0.25), (0.85, 0.80, 0.62)),
}
# How much of the photo's own colour survives under the palette.
KEEP_COLOUR = {"monet": 0.35, "vangogh": 0.2, "ukiyoe": 0.25, "cezanne": 0.3}


def _unknown(names, flag="domains", known=DOMAINS):
  bad = [n for n in names if n not in known]
  if bad:
    raise ValueError(f"--{flag}: unknown domain {bad[0]!r}; choose from {', '.join(known)}.")


def check_source(source):
  """A one-line ValueError naming --style_source unless it is one of SOURCES or folder:PATH."""
  if source not in SOURCES and not (folder.is_folder(source) and len(source) > len(
      folder.PREFIX)):
    raise ValueError(f"--style_source={source!r}: choose one of {', '.join(SOURCES)} or "
                     "folder:PATH (a folder of your images, one class folder per domain).")


def domain_names(source):
  """The domains a source offers: DOMAINS, or the class folders of a folder source."""
  check_source(source)
  if folder.is_folder(source):
    return folder.class_names(source[len(folder.PREFIX):])
  return DOMAINS


def _palette(lum, colours):
  """Piecewise-linear colour map of luminance [..] in [0, 1] through `colours`."""
  stops = np.linspace(0.0, 1.0, len(colours))
  table = np.asarray(colours, np.float32)
  return np.stack([np.interp(lum, stops, table[:, c]) for c in range(3)], axis=-1)


def _blur(x, radius=1):
  """Box blur over the two spatial axes of [N, H, W, C] (edges replicated)."""
  pad = np.pad(x, [(0, 0), (radius, radius), (radius, radius), (0, 0)], mode="edge")
  h, w = x.shape[1:3]
  k = 2 * radius + 1
  return sum(pad[:, i:i + h, j:j + w] for i in range(k) for j in range(k)) / k ** 2


def _edges(lum):
  """Gradient magnitude of luminance [N, H, W] (central differences)."""
  gy, gx = np.gradient(lum, axis=(1, 2))
  return np.sqrt(gx ** 2 + gy ** 2)


def _noise(seeds, shape, scale):
  """Smooth per-image noise in [-1, 1]: a coarse grid of uniforms upsampled by `scale`."""
  h, w = shape
  out = []
  for seed in seeds:
    rng = np.random.default_rng([int(seed), 7])
    coarse = rng.uniform(-1, 1, [h // scale + 2, w // scale + 2])
    out.append(np.kron(coarse, np.ones([scale, scale]))[:h, :w])
  return np.asarray(out, np.float32)


def stylise(photos, domain, seeds):
  """uint8 [N, H, W, 3] photos -> uint8 in `domain`'s style; `seeds` (one per image) fix the
  stroke textures."""
  _unknown([domain])
  x = np.asarray(photos, np.float32) / 255.0
  if domain == "photo":
    return np.asarray(photos, np.uint8)
  n, h, w, _ = x.shape
  yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32),
                       indexing="ij")
  seeds = np.asarray(seeds)
  phase = np.asarray([np.random.default_rng([int(s), 11]).uniform(0, 2 * np.pi) for s in seeds],
                     np.float32)[:, None, None]
  if domain == "monet":  # soft focus, pastel, round dabs of light
    x = 0.5 * x + 0.5 * _blur(x, 1)
    lum = colours.luminance(x)
    dabs = 0.5 * (np.sin(xx * 1.9 + phase) * np.sin(yy * 1.9 - phase))
    lum = np.clip(lum + 0.10 * dabs + 0.06 * _noise(seeds, (h, w), 2), 0, 1)
  elif domain == "vangogh":  # swirling directional strokes, strong contrast
    lum = colours.luminance(x)
    angle = 1.2 * np.sin(yy / 5.0 + phase) + 0.8 * np.cos(xx / 6.0)
    strokes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2.2)
    lum = np.clip(0.5 + 1.3 * (lum - 0.5) + 0.12 * strokes, 0, 1)
  elif domain == "ukiyoe":  # flat colour: few levels, black outlines, paper grain
    lum = np.round(colours.luminance(_blur(x, 1)) * 3.0) / 3.0
    lum = np.clip(lum + 0.03 * _noise(seeds, (h, w), 1), 0, 1)
  else:  # cezanne: constructive patches (2x2 blocks of one colour) with diagonal hatching
    blocks = x.reshape(n, h // 2, 2, w // 2, 2, 3).mean(axis=(2, 4))
    x = np.repeat(np.repeat(blocks, 2, axis=1), 2, axis=2)
    hatch = np.sin((xx + yy) * 1.6 + phase)
    lum = np.clip(colours.luminance(x) + 0.07 * hatch, 0, 1)
  keep = KEEP_COLOUR[domain]
  out = (1 - keep) * _palette(lum, PALETTES[domain]) + keep * x
  if domain == "ukiyoe":
    line = _edges(lum) > 0.2  # between flat areas of different levels
    out = np.where(line[..., None], 0.08, out)
  return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


@dataclasses.dataclass
class StyleConfig(tfds.core.BuilderConfig):
  resolution: int = 32
  num_train: int = 400  # scenes per domain
  num_test: int = 100   # test scenes, each in every domain


def config_name(resolution, num_train, num_test):
  return f"{resolution}px_{num_train}_{num_test}"


class ProceduralStyles(tfds.core.GeneratorBasedBuilder):
  """Procedural scenes in five styles (photo and four painters); see the module docstring."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [StyleConfig(name=config_name(32, 400, 100))]

  def _info(self):
    r = self.builder_config.resolution
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(r, r, 3)),
            "domain": tfds.features.ClassLabel(names=DOMAINS),
            "scene": np.int64,
        }),
        homepage="https://github.com/lamp-tf (procedural; lamp_tf/data/styles.py)")

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    train = {d: range(i * cfg.num_train, (i + 1) * cfg.num_train) for i, d in enumerate(DOMAINS)}
    test = range(TEST_SEED_OFFSET, TEST_SEED_OFFSET + cfg.num_test)
    return {"train": self._generate_examples(train),
            "test": self._generate_examples({d: test for d in DOMAINS})}

  def _generate_examples(self, scenes_by_domain):
    r = self.builder_config.resolution
    for domain, seeds in scenes_by_domain.items():
      for seed in seeds:
        photo = scenes.render_seed(seed, r)[0][None]
        image = stylise(photo, domain, [seed])[0]
        yield f"{domain}_{seed}", {"image": image, "domain": domain, "scene": seed}


def _procedural(resolution, num_train, num_test, data_dir):
  name = config_name(resolution, num_train, num_test)
  config = StyleConfig(name=name, resolution=resolution, num_train=num_train, num_test=num_test)
  builder = sources.prepared(lambda: ProceduralStyles(config=config, data_dir=data_dir))
  out = {}
  for split in ("train", "test"):
    ex = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    out[split] = {}
    for i, domain in enumerate(DOMAINS):
      mine = ex["domain"] == i
      order = np.argsort(ex["scene"][mine])  # TFDS shuffles examples; keep scene order
      out[split][domain] = ex["image"][mine][order]
  return out


def _dedupe(images):
  """Images with exact duplicates (same bytes) kept once, in first-seen order."""
  seen, keep = set(), []
  for i, image in enumerate(images):
    key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()
    if key not in seen:
      seen.add(key)
      keep.append(i)
  return images[keep]


def _cycle_gan(resolution, num_train, num_test, data_dir, download):
  out = {"train": {}, "test": {}}
  for split, limit in (("train", num_train), ("test", num_test)):
    photos = []
    for painter in DOMAINS[1:]:
      name = f"cycle_gan/{painter}2photo"
      a, b = (sources.load_examples(name, f"{split}{side}", data_dir=data_dir,
                                    image_size=resolution, download=download).images
              for side in "AB")
      out[split][painter] = a[:limit or None]
      photos.append(b)
    out[split]["photo"] = _dedupe(np.concatenate(photos))[:limit or None]
  return out


def _folder(source, resolution, num_train, num_test):
  out = {}
  for split, limit in (("train", num_train), ("test", num_test)):
    ex = sources.load_examples(source, split, image_size=resolution)
    images = np.asarray(preprocess.set_channels(tf.constant(ex.images), 3))
    out[split] = {name: images[ex.labels == k][:limit or None]
                  for k, name in enumerate(ex.class_names)}
  return out


def load_styles(source="procedural", resolution=32, num_train=400, num_test=100, data_dir=None,
                download=False):
  """{"train": {domain: uint8 images}, "test": {...}, "paired_test": bool} (module docstring).
  `num_train` / `num_test`: images per domain (cycle_gan, folders: at most; 0 all)."""
  check_source(source)
  if folder.is_folder(source):
    return {**_folder(source, resolution, num_train, num_test), "paired_test": False}
  if source == "procedural":
    if resolution % 2:
      raise ValueError(f"--resolution={resolution}: the procedural styles need an even size.")
    if min(num_train, num_test) < 1:
      raise ValueError(f"--num_train={num_train} --num_test={num_test}: the procedural styles "
                       "render that many scenes per domain; give at least 1 each.")
    return {**_procedural(resolution, num_train, num_test, data_dir), "paired_test": True}
  return {**_cycle_gan(resolution, num_train, num_test, data_dir, download), "paired_test": False}


def domain_indices(names, flag="domains", known=DOMAINS):
  """Indices into `known` (DOMAINS, or a folder's domains) of a list of names; a one-line error
  naming the flag otherwise."""
  _unknown(names, flag, tuple(known))
  return [tuple(known).index(n) for n in names]
