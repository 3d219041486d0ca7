"""Data for GANs: a named data set restricted to some classes, labels renumbered 0..K-1,
images scaled to [-1, 1] at the GAN's resolution, limited to n images per class on demand.

Spec syntax: '<data set>[:<classes>]', e.g. 'fashion_mnist:5,6,7,8,9' or 'mnist5k'.
"""

import dataclasses

import numpy as np

from lamp_tf.data import preprocess, sources, tasks


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


def parse_spec(spec):
  name, _, classes = spec.partition(":")
  return name, (tasks.parse_tasks(classes)[0] if classes else None)


def check_spec(spec, flag, data_dir=None, download=False):
  """Checks a '<data set>[:<classes>]' spec without reading its images: an unknown data set, a
  class outside it or a malformed class list raises ValueError naming `--flag`."""
  name, _, classes = spec.partition(":")
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
