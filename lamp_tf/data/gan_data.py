"""Data for GANs: a named data set restricted to some classes, labels renumbered 0..K-1,
images scaled to [-1, 1] at the GAN's resolution, limited to n images per class on demand.

Spec syntax: '<data set>[:<classes>]', e.g. 'fashion_mnist:5,6,7,8,9', 'mnist5k' or
'folder:/data/pets:0,2' (a folder of class folders: see `folder.py`; classes are numbered in the
sorted order of their folders' names).
"""

import dataclasses
import hashlib
import re

import numpy as np

from lamp_tf.data import folder, preprocess, sources, tasks


@dataclasses.dataclass(frozen=True)
class GANData:
  name: str
  images: np.ndarray  # float32 [N, R, R, C] in [-1, 1]
  labels: np.ndarray  # int64 in [0, len(classes))
  classes: tuple  # original class ids
  class_names: tuple

  @property
  def num_classes(self):
    return len(self.classes)

  def limit(self, per_class, seed):
    """n images per class (deterministic in seed); 0 or None: all."""
    if not per_class:
      return self
    idx = tasks.per_class_subset(self.labels, per_class, seed)
    return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])

  def check_limit(self, per_class, flag):
    """A one-line ValueError naming `--flag` and the class when a class has fewer than
    `per_class` images (0 or None: all, always fine)."""
    counts = np.bincount(self.labels, minlength=self.num_classes)
    if per_class and counts.min() < per_class:
      k = int(np.argmin(counts))
      raise folder.TooFewImagesError(
          f"--{flag}={per_class}: class {self.classes[k]} ({self.class_names[k]!r}) of "
          f"{self.name} has {counts[k]} training images; lower --{flag} or add images.")


def split_spec(spec):
  """(data set name, class list text or '') of a spec. A folder's path may hold ':' itself:
  there the classes are what follows the last ':', when that is a list of numbers."""
  if folder.PREFIX in spec:
    head, sep, tail = spec.rpartition(":")
    if sep and not re.search(r"(^|\+)folder$", head) and re.fullmatch(r"[\d,\s]+", tail):
      return head, tail
    return spec, ""
  name, _, classes = spec.partition(":")
  return name, classes


def parse_spec(spec):
  name, classes = split_spec(spec)
  return name, (tasks.parse_tasks(classes)[0] if classes else None)


def dirname(spec):
  """A directory name for a spec ('fashion_mnist_01234'; a folder's: its base name and a digest
  of its path, so its '/' make no subdirectories)."""
  name, classes = split_spec(spec)
  if folder.is_folder(name) and "+" not in name:
    name = folder.slug(name[len(folder.PREFIX):])
  elif folder.PREFIX in name:
    name = "folders-" + hashlib.sha1(name.encode()).hexdigest()[:8]
  return (name + (":" + classes if classes else "")).replace(":", "_").replace(",", "")


def check_spec(spec, flag, data_dir=None, download=False):
  """Checks a '<data set>[:<classes>]' spec without reading its images: an unknown data set, a
  class outside it or a malformed class list raises ValueError naming `--flag`."""
  name, classes = split_spec(spec)
  try:
    _, class_names = sources.load(name, "train", data_dir=data_dir, download=download)
    if classes:
      tasks.parse_tasks(classes, len(class_names), flag=flag)
  except ValueError as e:
    if str(e).startswith(f"--{flag}"):
      raise
    raise type(e)(f"--{flag}={spec}: {e}") from None


def load_gan_data(spec, split, resolution=32, channels=None, data_dir=None, download=False):
  """GANData for a spec; images padded (if smaller) or resized to `resolution`."""
  name, classes = parse_spec(spec)
  varying = None in sources.image_shape(name, split, data_dir=data_dir, download=download)[:2]
  ex = sources.load_examples(name, split, data_dir=data_dir, download=download,
                             image_size=resolution if varying else None)
  if classes is None:
    classes = list(range(ex.num_classes))
  tasks.parse_tasks(",".join(map(str, classes)), ex.num_classes)  # validates the classes
  idx = tasks.class_indices(ex.labels, classes)
  lookup = np.full(ex.num_classes, -1)
  lookup[classes] = np.arange(len(classes))
  h = ex.images.shape[1]
  mode = "pad" if h <= resolution and (resolution - h) <= 8 else "resize"
  images = preprocess.prepare(ex.images[idx], resolution, mode, channels, "-1,1").numpy()
  return GANData(spec, images, lookup[ex.labels[idx]].astype(np.int64), tuple(classes),
                 tuple(ex.class_names[c] for c in classes))
