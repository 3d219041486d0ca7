"""Your own images as a data source: `folder:PATH`, a folder of class folders.

Layouts (PNG and JPEG files, any size, grayscale, RGB or RGBA):
- `PATH/<class>/<image>`: every image of the folder; the test split is held out of it (below);
- `PATH/<split>/<class>/<image>` (chosen when `PATH/train` holds folders): `train`, `test` and
  any other split folder as they are; without `PATH/test`, the test split is held out of
  `PATH/train`.

Classes are the class folders' names in sorted order (label k is the k-th name; the classes of a
'<data set>[:<classes>]' spec are these numbers); a class's images are the image files under its
folder (subfolders included), in sorted order. Files and folders whose name starts with '.' are
skipped; any other file that is not a PNG or JPEG image is an error naming it.

Held-out test split: of each class's n images, the max(1, round(n / 5)) whose file names (as
paths inside the class folder) have the smallest SHA-1 digests are the test split, the others
the training split. So the split does not depend on the order files are listed in, adding an
image moves at most one other, and a class needs at least 2 images.

Images are decoded by TensorFlow (`tf.io.decode_image`) when the split is read, once per
process to check them and learn their channels and sizes: a folder whose images mix grayscale
and colour is read as RGB (and RGBA as RGB), said once in the log. When every image has one
square size, the data set has that static shape (padded or resized by each program's
preprocessing, as a built-in data set of that size); otherwise its images vary in size and the
programs crop their central square and resize it (as for LSUN or CUB).
"""

import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.data.errors import DamagedDataError, DataNotFoundError

PREFIX = "folder:"
EXTENSIONS = (".png", ".jpg", ".jpeg")
TRAIN, TEST = "train", "test"


class TooFewImagesError(ValueError):
  """A class folder has too few images for the split or the task; the message says which."""


def is_folder(name):
  return str(name).startswith(PREFIX)


def _show(root):
  return f"{PREFIX}{root}"


@dataclasses.dataclass(frozen=True)
class Folder:
  """A scanned image folder: its classes, each split's files and labels, its images' form."""

  root: str
  class_names: tuple
  splits: dict  # split -> (tuple of paths, int64 labels)
  channels: int  # 1 or 3: what the images are read as
  size: tuple  # (h, w) when every image has this square size, else None

  def split(self, name):
    if name not in self.splits:
      raise DataNotFoundError(
          f"{_show(self.root)} has no split {name!r} (it has {', '.join(sorted(self.splits))}): "
          f"add {os.path.join(self.root, name)}/<class>/<image> or ask for another split.")
    return self.splits[name]


def _visible(names):
  return sorted(n for n in names if not n.startswith("."))


def _images_under(directory):
  """Sorted image paths under `directory` (subfolders included); a non-image file is an error
  naming it."""
  found = []
  for parent, dirs, names in os.walk(directory):
    dirs[:] = _visible(dirs)
    for name in _visible(names):
      path = os.path.join(parent, name)
      if not name.lower().endswith(EXTENSIONS):
        raise DamagedDataError(
            f"{path} is not a PNG or JPEG image (in the image folder {directory}): remove it, "
            "or convert it to PNG.")
      found.append(path)
  return sorted(found)


def _subdirs(directory):
  return [n for n in _visible(os.listdir(directory))
          if os.path.isdir(os.path.join(directory, n))]


def _classes_in(directory, root):
  """{class: [image paths]} of the class folders of `directory`."""
  classes = _subdirs(directory)
  if not classes:
    loose = [n for n in _visible(os.listdir(directory)) if n.lower().endswith(EXTENSIONS)]
    where = f"{directory} holds images but no class folders" if loose else \
        f"{directory} has no class folders"
    raise DataNotFoundError(
        f"{_show(root)}: {where}: put the images in {os.path.join(root, '<class>', '<image>')} "
        f"(or {os.path.join(root, TRAIN, '<class>', '<image>')} and "
        f"{os.path.join(root, TEST, '<class>', '<image>')}).")
  return {c: _images_under(os.path.join(directory, c)) for c in classes}


def _holdout(files, directory):
  """(train, test) of one class's image paths (module docstring: smallest SHA-1 to test)."""
  n = len(files)
  k = max(1, int(round(n / 5)))
  digest = lambda p: hashlib.sha1(os.path.relpath(p, directory).encode()).hexdigest()
  test = set(sorted(files, key=digest)[:k])
  return [f for f in files if f not in test], sorted(test)


def layout(root):
  """(class names, {split: {class: [image paths]}}) of an image folder, from its listing only
  (no image is read); one-line errors for a missing folder, no images or too few."""
  if not os.path.isdir(root):
    raise DataNotFoundError(
        f"{_show(root)}: no such folder{' (it is a file)' if os.path.exists(root) else ''}; "
        "give a folder of class folders, PATH/<class>/<image>.png.")
  top = _subdirs(root)
  split_dirs = TRAIN in top and bool(_subdirs(os.path.join(root, TRAIN)))
  if split_dirs:
    splits = {s: _classes_in(os.path.join(root, s), root) for s in top}
  else:
    splits = {TRAIN: _classes_in(root, root)}
  names = sorted(splits[TRAIN])
  for split, classes in splits.items():
    extra = sorted(set(classes) - set(names))
    if extra:
      raise DataNotFoundError(
          f"{_show(root)}: {os.path.join(root, split, extra[0])} is a class folder with no "
          f"{os.path.join(root, TRAIN, extra[0])}: every class needs training images.")
  if not any(files for classes in splits.values() for files in classes.values()):
    raise DataNotFoundError(f"{_show(root)} has no PNG or JPEG images in its class folders "
                            f"({', '.join(names)}).")
  if TEST not in splits:
    base = os.path.join(root, TRAIN) if split_dirs else root
    train, test = {}, {}
    for c, files in splits[TRAIN].items():
      if len(files) < 2:
        raise TooFewImagesError(
            f"{_show(root)}: the class folder {os.path.join(base, c)} has {len(files)} "
            "image(s); holding out a test split (a fifth of each class, at least one image) "
            f"needs at least 2: add images, or give split folders {root}/{TRAIN}/<class> and "
            f"{root}/{TEST}/<class>.")
      train[c], test[c] = _holdout(files, os.path.join(base, c))
    splits[TRAIN], splits[TEST] = train, test
  for c, files in splits[TRAIN].items():
    if not files:
      raise TooFewImagesError(f"{_show(root)}: the class folder {root}/{TRAIN}/{c} has no "
                              "images: every class needs training images.")
  return tuple(names), splits


def class_names(root):
  """The class names of an image folder (its listing only)."""
  return layout(root)[0]


def _decode(path, channels=0):
  return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)


def _shapes(paths):
  """[N, 3] (height, width, channels) of the images; a damaged one is named."""
  ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string, [len(paths)])).map(
      lambda p: tf.shape(_decode(p)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  try:
    return np.concatenate([s for s in ds.batch(1024).as_numpy_iterator()] or
                          [np.zeros([0, 3], np.int32)])
  except tf.errors.InvalidArgumentError:
    pass
  for path in paths:  # which one: read them one by one
    try:
      _decode(path)
    except tf.errors.InvalidArgumentError as e:
      reason = str(getattr(e, "message", e)).split("]")[-1].split("[Op:")[0].strip()
      raise DamagedDataError(f"{path} cannot be read as an image ({reason or 'damaged'}): "
                             "remove or replace it.") from None
  raise DamagedDataError(f"an image under {os.path.commonpath(list(paths))} cannot be read.")


_SCANNED = {}  # (root, listing) -> Folder: each folder's images are checked once per process

CHANNEL_NAMES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}


def scan(root):
  """The `Folder` at `root` (its listing, checked; its images decoded once per process to check
  them and learn their channels and sizes)."""
  root = os.path.abspath(os.path.expanduser(root))
  names, splits = layout(root)
  files = {s: [(p, names.index(c)) for c in names for p in classes.get(c, ())]
           for s, classes in splits.items()}
  every = sorted({p for pairs in files.values() for p, _ in pairs})
  key = (root, tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in every))
  if key not in _SCANNED:
    shapes = _shapes(every)
    kinds = sorted(set(shapes[:, 2].tolist()))
    channels = 3 if max(kinds) >= 3 else 1
    if len(kinds) > 1 or kinds[0] in (2, 4):
      counts = ", ".join(f"{int(np.sum(shapes[:, 2] == k))} {CHANNEL_NAMES.get(k, k)}"
                         for k in kinds)
      logging.warning("%s: the images are %s: all are read as %s.", _show(root), counts,
                      CHANNEL_NAMES[channels])
    sizes = {(int(h), int(w)) for h, w in shapes[:, :2]}
    size = next(iter(sizes)) if len(sizes) == 1 and len(set(next(iter(sizes)))) == 1 else None
    split_files = {s: (tuple(p for p, _ in pairs), np.array([y for _, y in pairs], np.int64))
                   for s, pairs in files.items()}
    _SCANNED[key] = Folder(root, names, split_files, channels, size)
    logging.info("%s: %d classes (%s), %s", _show(root), len(names), ", ".join(names),
                 ", ".join(f"{s} {len(v[0])} images" for s, v in sorted(split_files.items())))
  return _SCANNED[key]


def dataset(root, split):
  """(tf.data.Dataset of (uint8 image [H, W, C], int64 label), class names) of a split."""
  folder = scan(root)
  paths, labels = folder.split(split)
  channels, size = folder.channels, folder.size

  def read(path, label):
    image = _decode(path, channels)
    shape = [*size, channels] if size else [None, None, channels]
    return tf.ensure_shape(image, shape), label

  ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string, [len(paths)]), labels))
  return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), folder.class_names


def slug(root):
  """A directory name for a folder spec: its base name and a digest of its path."""
  root = os.path.abspath(os.path.expanduser(root))
  digest = hashlib.sha1(root.encode()).hexdigest()[:8]
  return f"folder-{os.path.basename(root.rstrip(os.sep)) or 'root'}-{digest}"
