"""Images out of an export, with TensorFlow and the export alone (what `lamp-tf-sample` runs).

No training code is imported here: an export is read through its signatures and its
`model_card.json` (`runtime.export`), so this works wherever TensorFlow and the SavedModel are.

- A generator (`generate(z, label) -> {"images"}`, the GAN programs' exports): `sample` draws
  `count` images per requested class and seed, noise z ~ N(0, 1) (the generators' prior),
  `tf.random.stateless_normal([rows, z_dim], seed=[seed, 0])` as the programs' own sample grids
  draw it, or with `fixed_z` one set of `count` noise vectors shared by every class (a column
  of the grid is one z). Written as a grid PNG per seed (one row per class, in the order
  asked) and/or one PNG per image.
- A translator (`<from>_to_<to>` signatures: mix-and-match's modalities rgb, depth and seg,
  style transfer's domains): `translate` reads image files as the signature's input (RGB images
  as RGB; depth as a 16-bit PNG in millimetres or a .npy array in metres; segmentation as an
  8-bit PNG of class ids or a .npy array), centre-crops and resizes them to the export's size
  (nearest neighbour for class ids) and writes each output: images as PNG, depth as a 16-bit
  PNG in millimetres, segmentation colour-coded with a legend (legend.png, legend.json).
"""

import dataclasses
import glob
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.runtime import export, files
from lamp_tf.runtime.settings import setting

IMAGE_FILES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
  """What `lamp-tf-sample` writes; each setting is also its flag (--from and --to name the
  translation: the program's own flags)."""

  export_dir: str = setting(
      "", "The export: a SavedModel directory, or a model base path whose highest integer "
      "version is used (e.g. saved_models/transfer_gan).")
  out_dir: str = setting("samples", "Where the PNGs go (created; files are written whole).")
  classes: tuple = setting(
      (), "Generator: the classes to sample, in the grid's row order (empty: every class of the "
      "export, or one row for an unconditional generator).", item=int, lower=0)
  count: int = setting(8, "Generator: images per class and seed.", lower=1)
  seeds: tuple = setting((0,), "Generator: noise seeds, one grid each.", item=int,
                         nonempty=True)
  fixed_z: bool = setting(
      False, "Generator: the same noise vectors for every class (a grid column is one z).")
  grid: bool = setting(True, "Generator: write a grid PNG per seed.")
  individual: bool = setting(False, "Generator: write every image as its own PNG.")
  inputs: tuple = setting(
      (), "Translator: image files, folders or glob patterns to translate (--from, --to).")
  batch_size: int = setting(64, "Images per call of the export.", lower=1)
  log_every_secs: float = setting(5.0, "Progress line period in seconds.", lower=0.0)
  source: str = ""  # --from
  target: str = ""  # --to


class Export:
  """A loaded export: its signatures and its model card ({} when it has none)."""

  def __init__(self, path, flag="export_dir"):
    if not path:
      raise ValueError(f"--{flag} is required: the export to read (e.g. "
                       "saved_models/transfer_gan).")
    saved = export.resolve(path)
    if saved is None:
      raise ValueError(f"--{flag}={path}: neither a SavedModel directory nor a model base path "
                       "with integer versions (saved_models/<model>/<version>/).")
    self.path = saved
    card = os.path.join(saved, "model_card.json")
    self.card = files.read_json(card) if os.path.exists(card) else {}
    self.loaded = tf.saved_model.load(saved)
    self.signatures = self.loaded.signatures

  def inputs(self, name):
    """{input name: TensorSpec} of a signature."""
    return dict(self.signatures[name].structured_input_signature[1])

  def translations(self):
    """(from, to) of its single-input '<from>_to_<to>' signatures."""
    pairs = []
    for name in sorted(self.signatures):
      a, sep, b = name.partition("_to_")
      if sep and len(self.inputs(name)) == 1:
        pairs.append((a, b))
    return pairs


class Progress:
  """A progress line (done/total, rate, ETA) every `every` seconds, and one at the end."""

  def __init__(self, total, what, every=5.0):
    self.total, self.what, self.every = total, what, every
    self.start = self.last = time.monotonic()

  def update(self, done):
    now = time.monotonic()
    if done < self.total and now - self.last < self.every:
      return
    self.last, rate = now, done / max(now - self.start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    logging.info("%s %d/%d (%.1f/s, ETA %.0f s)", self.what, done, self.total, rate, eta)


def write_png(path, image):
  """uint8 [H, W, C] (C 1, 3 or 4) or uint16 [H, W, 1], written atomically."""
  with files.atomic_path(path) as tmp:
    tf.io.write_file(tmp, tf.io.encode_png(tf.constant(image)))


def image_grid(images, pad=2):
  """uint8 [rows, cols, H, W, C] -> one [rows*(H+pad)-pad, cols*(W+pad)-pad, C] image, white
  between the tiles."""
  rows, cols, h, w, c = images.shape
  grid = np.full([rows * (h + pad) - pad, cols * (w + pad) - pad, c], 255, np.uint8)
  for r in range(rows):
    for q in range(cols):
      grid[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = images[r, q]
  return grid


def to_uint8(images, value_range="-1,1"):
  lo, hi = (-1.0, 1.0) if value_range == "-1,1" else (0.0, 1.0)
  x = (np.asarray(images, np.float32) - lo) / (hi - lo) * 255.0
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def generator_classes(exp, classes):
  """The rows to sample: `classes`, or every class of the export (one row, label 0, for an
  unconditional generator); a class outside the generator is a ValueError naming --classes."""
  info = exp.card.get("generator", {})
  n = info.get("num_classes")
  if "num_classes" in info and n is None:  # unconditional
    if classes and set(classes) != {0}:
      raise ValueError(f"--classes={','.join(map(str, classes))}: this generator is "
                       "unconditional; leave --classes out.")
    return [0]
  if not classes:
    if n is None:
      raise ValueError(f"--classes: {exp.path} does not say how many classes its generator "
                       "has (no 'generator' in its model_card.json); name them, e.g. "
                       "--classes=0,1,2.")
    return list(range(n))
  bad = [c for c in classes if n is not None and not 0 <= c < n]
  if bad:
    raise ValueError(f"--classes={','.join(map(str, classes))}: {bad} are not classes of this "
                     f"generator (0..{n - 1}).")
  return list(classes)


def noise(seed, rows, cols, z_dim, fixed_z):
  """[rows, cols, z_dim] float32: z ~ N(0, 1) from `seed` (module docstring)."""
  if fixed_z:
    z = tf.random.stateless_normal([cols, z_dim], seed=[seed, 0]).numpy()
    return np.broadcast_to(z[None], [rows, cols, z_dim]).copy()
  z = tf.random.stateless_normal([rows * cols, z_dim], seed=[seed, 0]).numpy()
  return z.reshape(rows, cols, z_dim)


def sample(exp, classes, count, seed, fixed_z=False, batch_size=64, progress=None, done=0):
  """uint8 images [len(classes), count, H, W, C] of the export's `generate` signature: row r
  class classes[r]. `progress` (a Progress) is told `done` + the images made so far."""
  fn = exp.signatures["generate"]
  z_dim = int(exp.inputs("generate")["z"].shape[-1])
  value_range = exp.card.get("generator", {}).get("value_range", "-1,1")
  z = noise(seed, len(classes), count, z_dim, fixed_z).reshape(-1, z_dim)
  labels = np.repeat(np.asarray(classes, np.int64), count)
  out = []
  for i in range(0, len(labels), batch_size):
    try:
      images = fn(z=tf.constant(z[i:i + batch_size]),
                  label=tf.constant(labels[i:i + batch_size]))["images"]
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"--classes: the generator refused labels "
                       f"{sorted(set(labels[i:i + batch_size].tolist()))}: "
                       f"{str(e.message).splitlines()[0]}") from None
    out.append(to_uint8(images.numpy(), value_range))
    if progress:
      progress.update(done + i + len(out[-1]))
  images = np.concatenate(out)
  return images.reshape(len(classes), count, *images.shape[1:])


def write_samples(exp, cfg, out_dir):
  """Samples of a generator export as `cfg` asks; returns the paths written."""
  if "generate" not in exp.signatures:
    raise ValueError(f"--export_dir={cfg.export_dir}: no 'generate' signature (it has "
                     f"{', '.join(sorted(exp.signatures))}); to translate, give --from and --to.")
  if not cfg.grid and not cfg.individual:
    raise ValueError("--nogrid and --noindividual: nothing to write; keep one of them.")
  classes = generator_classes(exp, cfg.classes)
  paths = []
  progress = Progress(len(classes) * cfg.count * len(cfg.seeds), "sampled", cfg.log_every_secs)
  for k, seed in enumerate(cfg.seeds):
    images = sample(exp, classes, cfg.count, seed, cfg.fixed_z, cfg.batch_size, progress,
                    done=k * len(classes) * cfg.count)
    if cfg.grid:
      path = os.path.join(out_dir, f"grid_seed{seed}.png")
      write_png(path, image_grid(images))
      paths.append(path)
    if cfg.individual:
      for r, c in enumerate(classes):
        for i in range(cfg.count):
          path = os.path.join(out_dir, f"class{c}_seed{seed}_{i:04d}.png")
          write_png(path, images[r, i])
          paths.append(path)
  manifest = {"export": exp.path, "classes": classes, "count": cfg.count,
              "seeds": list(cfg.seeds), "fixed_z": cfg.fixed_z,
              "grid": "rows: classes in this order; columns: samples" if cfg.grid else None}
  files.write_json(os.path.join(out_dir, "samples.json"), manifest)
  return paths


# Translation: how each kind of signature input is read from a file and each output written.

def _expand(inputs):
  """The files named by `inputs` (files, folders, glob patterns), in order, each once."""
  found = []
  for item in inputs:
    if os.path.isdir(item):
      found += sorted(os.path.join(item, n) for n in os.listdir(item)
                      if n.lower().endswith(IMAGE_FILES + (".npy",)))
    elif any(ch in item for ch in "*?["):
      found += sorted(glob.glob(item))
    elif os.path.exists(item):
      found.append(item)
    else:
      raise ValueError(f"--inputs: {item} does not exist.")
  found = list(dict.fromkeys(found))
  if not found:
    raise ValueError(f"--inputs={','.join(inputs)}: no image files there (PNG, JPEG or .npy).")
  return found


def _centre_resize(x, size, method):
  """[H, W, C] -> [size, size, C]: the central square, resized."""
  h, w = x.shape[:2]
  side = min(h, w)
  x = x[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
  if side == size:
    return x
  return tf.image.resize(x, [size, size], method=method, antialias=method != "nearest").numpy()


def read_input(path, spec):
  """One file as the signature input `spec` (by its name: depth, seg, or an image)."""
  size = spec.shape[1]
  kind = spec.name
  try:
    if path.lower().endswith(".npy"):
      x = np.load(path)
      x = x[..., None] if x.ndim == 2 else x
    else:
      raw = tf.io.read_file(path)
      dtype = tf.uint16 if kind == "depth" else tf.uint8
      channels = 1 if kind in ("depth", "seg") else 3
      x = tf.io.decode_image(raw, channels=channels, dtype=dtype, expand_animations=False)
      x = x.numpy()
      if kind == "depth":
        x = x.astype(np.float32) / 1000.0  # millimetres -> metres
  except (tf.errors.InvalidArgumentError, ValueError, OSError) as e:
    msg = str(getattr(e, "message", e)).splitlines()[0]
    raise ValueError(f"--inputs: {path} cannot be read as {kind} ({msg}).") from None
  if kind == "seg":
    x = _centre_resize(x.astype(np.float32), size, "nearest")
    return np.round(x[..., 0]).astype(np.uint8)
  if kind == "depth":
    return _centre_resize(x.astype(np.float32), size, "bilinear")[..., 0].astype(np.float32)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  x = _centre_resize(x.astype(np.float32), size, "bilinear")
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _palette(exp, n):
  """(colours [n + 1, 3] uint8, class names) of segmentation labels (the card's, else evenly
  spaced hues and 'class k'); the last colour (black) is void."""
  seg = exp.card.get("segmentation", {})
  if seg.get("colours") and seg.get("classes"):
    return np.asarray(seg["colours"], np.uint8), list(seg["classes"]) + ["void"]
  hues = np.linspace(0, 1, n, endpoint=False)
  hsv = np.stack([hues, np.full(n, 0.65), np.full(n, 0.9)], axis=-1)
  rgb = (tf.image.hsv_to_rgb(hsv).numpy() * 255).astype(np.uint8)
  return np.concatenate([rgb, [[0, 0, 0]]]).astype(np.uint8), \
      [f"class {k}" for k in range(n)] + ["void"]


def write_legend(out_dir, colours, names):
  """legend.json ({name: [r, g, b]}) and legend.png (a swatch and the name per class; written
  with matplotlib where it is installed)."""
  files.write_json(os.path.join(out_dir, "legend.json"),
                   {n: [int(v) for v in c] for n, c in zip(names, colours)})
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    logging.info("matplotlib is not installed: the legend is legend.json only")
    return
  fig, ax = plt.subplots(figsize=(3.0, 0.3 * len(names) + 0.2))
  for i, (name, colour) in enumerate(zip(names, colours)):
    ax.add_patch(plt.Rectangle((0, len(names) - 1 - i), 0.8, 0.8, color=np.asarray(colour) / 255))
    ax.text(1.1, len(names) - 1 - i + 0.4, name, va="center", fontsize=9)
  ax.set_xlim(0, 5)
  ax.set_ylim(-0.2, len(names))
  ax.axis("off")
  with files.atomic_path(os.path.join(out_dir, "legend.png")) as tmp:
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)


def translate(exp, source, target, inputs, out_dir, batch_size=64, log_every_secs=5.0):
  """Translates image files with the export's '<source>_to_<target>' signature; returns the
  paths written (one output file per input, named after it)."""
  name = f"{source}_to_{target}"
  if name not in exp.signatures or len(exp.inputs(name)) != 1:
    pairs = ", ".join(f"--from={a} --to={b}" for a, b in exp.translations()) or "none"
    raise ValueError(f"--from={source} --to={target}: {exp.path} has no such translation "
                     f"(it has: {pairs}).")
  (spec,) = exp.inputs(name).values()
  paths_in = _expand(inputs)
  fn = exp.signatures[name]
  progress = Progress(len(paths_in), "translated", log_every_secs)
  legend, written = None, []
  for i in range(0, len(paths_in), batch_size):
    chunk = paths_in[i:i + batch_size]
    x = np.stack([read_input(p, spec) for p in chunk])
    try:
      out = fn(**{spec.name: tf.constant(x, spec.dtype)})
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"--inputs: {name} refused {chunk[0]}...: "
                       f"{str(e.message).splitlines()[0]}") from None
    for j, path in enumerate(chunk):
      stem = os.path.splitext(os.path.basename(path))[0]
      target_path = os.path.join(out_dir, f"{stem}_{target}.png")
      if "labels" in out:
        n = int(out["probabilities"].shape[-1]) if "probabilities" in out else \
            int(np.max(out["labels"])) + 1
        colours, names = legend or _palette(exp, n)
        legend = (colours, names)
        labels = np.minimum(out["labels"][j].numpy(), len(colours) - 1)
        write_png(target_path, colours[labels])
      elif "depth" in out:
        mm = np.clip(np.round(out["depth"][j].numpy() * 1000.0), 0, 65535).astype(np.uint16)
        write_png(target_path, mm[..., None])
      else:
        key = "images" if "images" in out else next(iter(out))
        image = out[key][j].numpy()
        write_png(target_path, image if image.dtype == np.uint8 else to_uint8(image))
      written.append(target_path)
    progress.update(i + len(chunk))
  if legend is not None:
    write_legend(out_dir, *legend)
  return written


def run(cfg):
  """What `lamp-tf-sample` does with a SampleConfig: samples of a generator, or translations
  when `cfg.source` and `cfg.target` are given. Returns the paths written."""
  if bool(cfg.source) != bool(cfg.target):
    raise ValueError("--from and --to go together: give both to translate, neither to sample.")
  exp = Export(cfg.export_dir)
  os.makedirs(cfg.out_dir, exist_ok=True)
  if cfg.source:
    if not cfg.inputs:
      raise ValueError(f"--from={cfg.source} --to={cfg.target}: give the files to translate "
                       "with --inputs.")
    paths = translate(exp, cfg.source, cfg.target, cfg.inputs, cfg.out_dir, cfg.batch_size,
                      cfg.log_every_secs)
  else:
    paths = write_samples(exp, cfg, cfg.out_dir)
  logging.info("wrote %d files to %s", len(paths), cfg.out_dir)
  return paths

