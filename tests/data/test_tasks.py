"""Task splits, per-class subsets and preprocessing."""

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import preprocess, tasks


def test_parse_tasks():
  assert tasks.parse_tasks("0,1,2,3,4/5,6,7,8,9", 10) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
  assert tasks.parse_tasks("3/1", 10) == [[3], [1]]


@pytest.mark.parametrize("spec,message", [
    ("0,1/1,2", "more than one task"), ("0,a/2", "integers"), ("0,1//2", "no classes"),
    ("0,1/10", r"\[10\] are outside \[0, 10\)")])
def test_parse_tasks_errors_name_the_problem(spec, message):
  with pytest.raises(ValueError, match=message):
    tasks.parse_tasks(spec, 10)


def test_class_indices_selects_exactly_the_classes():
  labels = np.array([0, 5, 1, 5, 9, 0])
  np.testing.assert_array_equal(tasks.class_indices(labels, [0, 5]), [0, 1, 3, 5])


def test_per_class_subset_is_balanced_deterministic_and_seeded():
  labels = np.repeat(np.arange(4), 50)
  a = tasks.per_class_subset(labels, 7, seed=1)
  np.testing.assert_array_equal(np.bincount(labels[a]), [7] * 4)
  np.testing.assert_array_equal(a, tasks.per_class_subset(labels, 7, seed=1))
  assert not np.array_equal(a, tasks.per_class_subset(labels, 7, seed=2))
  assert len(np.unique(a)) == len(a)
  with pytest.raises(ValueError, match="fewer than the 51"):
    tasks.per_class_subset(labels, 51, seed=0)


def test_stratified_split_partitions_the_examples():
  labels = np.repeat(np.arange(3), 10)
  train, test = tasks.stratified_split(labels, 4, seed=0)
  assert sorted(np.concatenate([train, test]).tolist()) == list(range(30))
  np.testing.assert_array_equal(np.bincount(labels[test]), [4, 4, 4])


def test_pad_to_32_centres_the_image():
  img = np.full([28, 28, 1], 255, np.uint8)
  out = preprocess.prepare(img, size=32, mode="pad", value_range="0,1").numpy()
  assert out.shape == (32, 32, 1)
  # Exact: 255 / 255 = 1 and 0 / 255 = 0 in any float arithmetic.
  assert out[2:30, 2:30].min() == 1.0 and out[:2].max() == 0.0 and out[:, 30:].max() == 0.0


@pytest.mark.parametrize("h,w", [(6, 10), (10, 6), (7, 7)])
def test_center_square_keeps_the_middle(h, w):
  img = np.arange(h * w, dtype=np.int32).reshape(h, w, 1)
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  np.testing.assert_array_equal(preprocess.center_square(img).numpy(),
                                img[top:top + side, left:left + side])


def test_scale_ranges_and_unscale_round_trip():
  x = np.array([0, 128, 255], np.uint8).reshape(1, 1, 3, 1)
  # x / 255 * (hi - lo) + lo: three float32 roundings of values <= 1, <= 3 eps32 / 2 ~ 2e-7;
  # unscale rounds back to the integers exactly.
  np.testing.assert_allclose(preprocess.scale(x, "-1,1").numpy().ravel(), [-1, 128 / 127.5 - 1, 1],
                             atol=1e-6)
  np.testing.assert_allclose(preprocess.scale(x, "0,1").numpy().ravel(), [0, 128 / 255, 1], atol=1e-6)
  np.testing.assert_array_equal(preprocess.unscale(preprocess.scale(x)).numpy(), x)


def test_resize_and_channels():
  x = tf.zeros([2, 28, 28, 1], tf.uint8)
  out = preprocess.prepare(x, size=64, mode="resize", channels=3)
  assert out.shape == (2, 64, 64, 3)
  with pytest.raises(ValueError, match="use resize"):
    preprocess.pad_to(tf.zeros([40, 40, 1]), 32)
