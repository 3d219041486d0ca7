"""Fashion-MNIST built offline by TFDS from the IDX files of Debian's `dataset-fashion-mnist`.

The builder is TFDS's own `FashionMNIST` with its download URL pointing at a local directory
(TFDS copies non-http URLs), so the prepared data set is a normal TFDS data set whose examples
equal the raw IDX files.
"""

import os

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
