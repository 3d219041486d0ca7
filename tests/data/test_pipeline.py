"""Deterministic, resumable, replica-consistent input pipelines.

The batches hold example indices (or small integers as floats, exact in float32): the
comparisons are exact on any machine."""

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import pipeline
from lamp_tf.runtime import strategy as strategy_lib


def _take(ds, n):
  return [b.numpy() for b in ds.take(n)]


def test_every_epoch_is_a_permutation_and_epochs_differ():
  batches = np.stack(_take(pipeline.index_batches(20, 5, seed=1), 8))  # two epochs of 4 batches
  first, second = batches[:4].ravel(), batches[4:].ravel()
  assert sorted(first) == list(range(20)) and sorted(second) == list(range(20))
  assert not np.array_equal(first, second)


def test_resume_from_any_step_gives_the_same_batches():
  full = _take(pipeline.index_batches(23, 4, seed=7), 15)
  for start in (0, 3, 5, 11):
    resumed = _take(pipeline.index_batches(23, 4, seed=7, start_step=start), 15 - start)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(full[start:]))


def test_seed_changes_the_order():
  a = _take(pipeline.index_batches(50, 10, seed=0), 1)[0]
  b = _take(pipeline.index_batches(50, 10, seed=1), 1)[0]
  assert not np.array_equal(a, b)


def test_batches_larger_than_the_data_cycle_through_epochs():
  batches = np.stack(_take(pipeline.index_batches(10, 4, seed=0), 5)).ravel()  # 2 epochs
  assert sorted(batches[:10]) == list(range(10)) and sorted(batches[10:]) == list(range(10))
  big = _take(pipeline.index_batches(3, 7, seed=0), 3)
  counts = np.bincount(np.concatenate(big), minlength=3)
  assert list(counts) == [7, 7, 7]
  with pytest.raises(ValueError, match="no training examples"):
    pipeline.index_batches(0, 4, seed=0)


def test_two_replicas_split_each_global_batch_in_order():
  x = np.arange(40, dtype=np.float32)[:, None]
  single = iter(pipeline.distribute_batches(tf.distribute.get_strategy(), x, 8, seed=3))
  mirrored = strategy_lib.make_strategy("mirrored")
  double = iter(pipeline.distribute_batches(mirrored, x, 8, seed=3))
  for _ in range(6):
    one = next(single).numpy()
    parts = mirrored.experimental_local_results(next(double))
    assert len(parts) == 2 and parts[0].shape == (4, 1)
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), one)


def test_batch_not_divisible_by_replicas_is_a_clear_error():
  mirrored = strategy_lib.make_strategy("mirrored")
  with pytest.raises(ValueError, match="--batch_size=7 must be divisible by the 2 replicas"):
    pipeline.distribute_batches(mirrored, np.zeros([20, 1]), 7, seed=0)
