"""Fashion-MNIST built offline by TFDS from the IDX files of Debian's `dataset-fashion-mnist`.

The builder is TFDS's own `FashionMNIST` with its download URL pointing at a local directory
(TFDS copies non-http URLs), so the prepared data set is a normal TFDS data set whose examples
equal the raw IDX files.
"""

import gzip
import os
import zlib

import numpy as np
from tensorflow_datasets.image_classification import mnist

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist/"
ENV_VAR = "LAMP_FASHION_MNIST_DIR"
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
HOW_TO_GET = (
    "install the Debian package (`sudo apt-get install dataset-fashion-mnist`, files in "
    f"{DEBIAN_DIR}), or set ${ENV_VAR} to a directory holding {', '.join(IDX_FILES)}, or prepare "
    "TFDS's `fashion_mnist` on a machine with internet (`tfds build fashion_mnist`) and pass "
    "its data_dir"
)


def local_dir():
  """The directory holding the IDX files, or None when they are not all there."""
  directory = os.environ.get(ENV_VAR, DEBIAN_DIR)
  if all(os.path.exists(os.path.join(directory, f)) for f in IDX_FILES):
    return os.path.join(os.path.abspath(directory), "")
  return None


def check_idx_file(path):
  """Raises DamagedDataError naming `path` unless it is a complete gzipped IDX file: a magic
  number of unsigned bytes (0x0000 08 <number of dimensions>), the dimensions, and exactly
  their product of bytes after them."""
  from lamp_tf.data.errors import DamagedDataError
  try:
    with gzip.open(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    problem = f"not a complete gzip file ({e})"
  else:
    ndim = data[3] if len(data) >= 4 and data[:3] == b"\x00\x00\x08" else 0
    dims = np.frombuffer(data[4:4 + 4 * ndim], ">u4") if ndim else []
    if not ndim or len(dims) != ndim:
      problem = "no IDX header of unsigned bytes"
    elif len(data) != 4 + 4 * ndim + int(np.prod(dims)):
      problem = (f"{len(data) - 4 - 4 * ndim} bytes of data where its header "
                 f"{'x'.join(str(d) for d in dims)} needs {int(np.prod(dims))}")
    else:
      return
  raise DamagedDataError(
      f"{path} is damaged: {problem}. Reinstall it (`sudo apt-get install --reinstall "
      f"dataset-fashion-mnist`) or point ${ENV_VAR} at intact copies of {', '.join(IDX_FILES)}.")


class LocalFashionMNIST(mnist.FashionMNIST):
  """TFDS Fashion-MNIST whose 'download' copies the local IDX files."""

  name = "fashion_mnist_local"

  def __init__(self, **kwargs):
    directory = local_dir()
    if directory is None:
      from lamp_tf.data.errors import DataNotFoundError
      raise DataNotFoundError(f"Fashion-MNIST IDX files not found: {HOW_TO_GET}.")
    self.URL = directory
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    """TFDS's, after checking every IDX file (a damaged one fails here, before TFDS writes
    anything, instead of as an extraction error in the middle of the build)."""
    for name in IDX_FILES:
      check_idx_file(os.path.join(self.URL, name))
    return super()._split_generators(dl_manager)
