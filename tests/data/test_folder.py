"""`folder:PATH`, your own images as a data source: layouts, the held-out test split, channels and
sizes, GAN specs and style domains over it, and each bad folder as one clear error."""

import hashlib
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import folder, gan_data, sources, styles
from lamp_tf.data.errors import DamagedDataError, DataNotFoundError
from tests import image_folders


@pytest.fixture
def pngs(tmp_path):
  """3 classes x 12 RGB 16x16 PNGs, no split folders."""
  root = tmp_path / "pets"
  return root, image_folders.write_folder(str(root), ("cat", "dog", "emu"), 12)


def test_class_folders_give_sorted_classes_and_a_deterministic_held_out_test_split(pngs):
  root, written = pngs
  train = sources.load_examples(f"folder:{root}", "train")
  test = sources.load_examples(f"folder:{root}", "test")
  assert train.class_names == test.class_names == ("cat", "dog", "emu")
  assert train.images.shape[1:] == (16, 16, 3) and train.images.dtype == np.uint8
  # Of 12 images per class round(12 / 5) = 2 are held out: those whose file names have the
  # smallest SHA-1 digests (the module docstring's rule, written out).
  np.testing.assert_array_equal(np.bincount(test.labels), [2, 2, 2])
  np.testing.assert_array_equal(np.bincount(train.labels), [10, 10, 10])
  names = [f"{i:03d}.png" for i in range(12)]
  held = sorted(sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())[:2])
  for k, c in enumerate(("cat", "dog", "emu")):
    expect_test = written[c][[names.index(n) for n in held]]
    expect_train = written[c][[i for i, n in enumerate(names) if n not in held]]
    np.testing.assert_array_equal(test.images[test.labels == k], expect_test)  # lossless PNG
    np.testing.assert_array_equal(train.images[train.labels == k], expect_train)
  # The same split in another order of listing and after another file is added elsewhere.
  image_folders.write_image(str(root / "emu" / "999.png"), written["emu"][0])
  again = sources.load_examples(f"folder:{root}", "test")
  np.testing.assert_array_equal(again.images[again.labels < 2], test.images[test.labels < 2])


def test_split_folders_are_used_as_they_are(tmp_path):
  root = tmp_path / "d"
  image_folders.write_folder(str(root), ("x", "y"), 3, split="train")
  image_folders.write_folder(str(root), ("x", "y"), 1, split="test", seed=1)
  train = sources.load_examples(f"folder:{root}", "train")
  test = sources.load_examples(f"folder:{root}", "test")
  assert len(train) == 6 and len(test) == 2 and test.class_names == ("x", "y")
  with pytest.raises(DataNotFoundError, match="has no split .validation. \\(it has test, train\\)"):
    sources.load(f"folder:{root}", "validation")


def test_mixed_channels_and_sizes_jpeg_and_rgba(tmp_path, caplog):
  root = tmp_path / "mixed"
  image_folders.write_folder(str(root), ("a", "b"), 4, channels=1)
  image_folders.write_image(str(root / "a" / "rgb.jpg"),
                            image_folders.class_images(0, 1, 24)[0])
  rgba = np.concatenate([image_folders.class_images(1, 1, 20)[0],
                         np.full([20, 20, 1], 255, np.uint8)], axis=-1)
  image_folders.write_image(str(root / "b" / "rgba.png"), rgba)
  with caplog.at_level(logging.WARNING):
    assert sources.image_shape(f"folder:{root}", "train") == (None, None, 3)
    sources.image_shape(f"folder:{root}", "test")  # scanned once: said once
  said = [r.getMessage() for r in caplog.records if "read as RGB" in r.getMessage()]
  assert len(said) == 1 and "8 grayscale, 1 RGB, 1 RGBA" in said[0]
  ex = sources.load_examples(f"folder:{root}", "train", image_size=8)
  assert ex.images.shape[1:] == (8, 8, 3) and len(ex) + len(
      sources.load_examples(f"folder:{root}", "test", image_size=8)) == 10
  # A grayscale folder stays grayscale, at its size.
  gray = tmp_path / "gray"
  image_folders.write_folder(str(gray), ("a", "b"), 3, channels=1, size=12)
  assert sources.image_shape(f"folder:{gray}", "train") == (12, 12, 1)


def test_gan_specs_over_a_folder_select_classes_and_name_directories(pngs):
  root, _ = pngs
  data = gan_data.load_gan_data(f"folder:{root}:2,0", "train", resolution=32, channels=1)
  assert data.classes == (2, 0) and data.class_names == ("emu", "cat")
  assert data.images.shape == (20, 32, 32, 1) and data.images.min() >= -1.0
  assert gan_data.split_spec(f"folder:{root}") == (f"folder:{root}", "")
  assert gan_data.split_spec("folder:/a:b/c:0,1") == ("folder:/a:b/c", "0,1")
  assert gan_data.split_spec("folder:12") == ("folder:12", "")
  assert gan_data.dirname("fashion_mnist:0,1,2") == "fashion_mnist_012"  # as before
  name = gan_data.dirname(f"folder:{root}:0,1")
  assert name.startswith("folder-pets-") and name.endswith("_01") and "/" not in name
  with pytest.raises(ValueError, match=r"--target='0,7': classes \[7\] are outside \[0, 3\)"):
    gan_data.check_spec(f"folder:{root}:0,7", "target")
  with pytest.raises(ValueError,
                     match=r"--main_size=11: class 2 \('emu'\) of folder:.*:2,0 has 10 training"):
    data.check_limit(11, "main_size")
  data.check_limit(10, "main_size")


def test_style_domains_from_a_folder(tmp_path):
  root = tmp_path / "styles"
  image_folders.write_folder(str(root), ("ink", "oil", "pastel"), 6, channels=1)
  source = f"folder:{root}"
  assert styles.domain_names(source) == ("ink", "oil", "pastel")
  data = styles.load_styles(source, resolution=8, num_train=3, num_test=0)
  assert not data["paired_test"] and data["train"]["oil"].shape == (3, 8, 8, 3)
  assert len(data["test"]["ink"]) == 1
  with pytest.raises(ValueError, match="--domains: unknown domain 'photo'; choose from ink"):
    styles.domain_indices(["photo"], "domains", styles.domain_names(source))
  with pytest.raises(ValueError, match="--style_source='flickr'.*folder:PATH"):
    styles.domain_names("flickr")


def _error(tmp_path, make):
  root = tmp_path / "bad"
  make(root)
  with pytest.raises((ValueError, OSError)) as raised:
    sources.load_examples(f"folder:{root}", "train")
  message = str(raised.value)
  assert "\n" not in message
  return raised.type, message


def test_bad_folders_each_end_in_one_clear_line(tmp_path):
  def empty_classes(root):
    os.makedirs(root / "a")
    os.makedirs(root / "b")

  def loose_images(root):
    image_folders.write_image(str(root / "x.png"), image_folders.class_images(0, 1)[0])

  def too_few(root):
    image_folders.write_folder(str(root), ("a", "b"), 3)
    os.remove(root / "b" / "001.png")
    os.remove(root / "b" / "002.png")

  def text_file(root):
    image_folders.write_folder(str(root), ("a", "b"), 3)
    (root / "a" / "notes.txt").write_text("hello")

  def broken_png(root):
    image_folders.write_folder(str(root), ("a", "b"), 3)
    (root / "b" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

  cases = [
      (lambda root: None, DataNotFoundError, ["no such folder", "PATH/<class>/<image>"]),
      (empty_classes, DataNotFoundError, ["has no PNG or JPEG images", "(a, b)"]),
      (loose_images, DataNotFoundError, ["holds images but no class folders",
                                         "/<class>/<image>"]),
      (too_few, folder.TooFewImagesError, ["bad/b has 1 image(s)", "at least 2",
                                           "split folders"]),
      (text_file, DamagedDataError, ["notes.txt is not a PNG or JPEG image", "remove it"]),
      (broken_png, DamagedDataError, ["001.png cannot be read as an image", "remove or replace"]),
  ]
  for i, (make, kind, words) in enumerate(cases):
    got, message = _error(tmp_path / str(i), make)
    assert issubclass(got, kind), (i, got, message)
    for word in words:
      assert word in message, (i, word, message)
  # Hidden files are not images and not errors.
  root = tmp_path / "hidden"
  image_folders.write_folder(str(root), ("a", "b"), 3)
  (root / "a" / ".DS_Store").write_bytes(b"\0\1")
  assert len(sources.load_examples(f"folder:{root}", "train")) == 4
  with pytest.raises(ValueError, match="class 1 \\('b'\\) has 2 training examples"):
    from lamp_tf.data import tasks
    tasks.validation_split(np.array([0] * 9 + [1] * 2), 0.1, class_names=("a", "b"))


def test_decoding_is_tensorflows(pngs):
  """The folder's images equal what tf.io.decode_png gives for each file."""
  root, _ = pngs
  ex = sources.load_examples(f"folder:{root}", "test")
  scanned = folder.scan(str(root))
  paths, labels = scanned.split("test")
  np.testing.assert_array_equal(labels, ex.labels)
  for path, image in zip(paths, ex.images):
    np.testing.assert_array_equal(tf.io.decode_png(tf.io.read_file(path)).numpy(), image)
