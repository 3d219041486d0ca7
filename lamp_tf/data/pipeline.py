"""Input pipelines from arrays in memory, deterministic and resumable from any step.

The examples form an endless stream of epochs, epoch e being the permutation
`stateless_shuffle(range(n), seed=[seed, e])`; global batch s is the slice [s*B, (s+1)*B) of that
stream. So every example is used equally, a batch may be larger than the data (limited-data
GANs), and the batches of a resumed run are exactly those of an uninterrupted one, with no
iterator state in the checkpoint. Each replica gets its contiguous slice of every global batch,
so N replicas train on the same global batches as one device.
"""

import numpy as np
import tensorflow as tf


def index_batches(num_examples, batch_size, seed, start_step=0):
  """Dataset of int64 index vectors [batch_size]: the global batches from `start_step` on."""
  if num_examples < 1:
    raise ValueError("no training examples: check the data set, classes and limits.")
  start = int(start_step) * batch_size
  start_epoch, skip = divmod(start, num_examples)

  def epoch(e):
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(num_examples, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), e]))
    return tf.data.Dataset.from_tensor_slices(perm)

  stream = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch)
  return stream.skip(skip).batch(batch_size, drop_remainder=True)


def distribute_batches(strategy, arrays, global_batch_size, seed, start_step=0, map_fn=None,
                       group=None):
  """Distributed dataset of shuffled global batches of `arrays` (a tuple/dict of NumPy arrays).

  `map_fn` maps a batch (same structure, gathered rows) to model inputs, e.g. preprocessing.
  `group=n`: every step takes the next n global batches at once (they may span epochs, so n x
  batch may exceed the data), delivered as arrays [n, per-replica batch, ...] (e.g. the real
  images of a GAN's n critic updates); each replica gets its share of every one of them.
  """
  arrays = tf.nest.map_structure(tf.constant, arrays)
  num_examples = int(tf.nest.flatten(arrays)[0].shape[0])
  replicas = strategy.num_replicas_in_sync
  if global_batch_size % replicas:
    raise ValueError(f"--batch_size={global_batch_size} must be divisible by the "
                     f"{replicas} replicas.")
  per_replica = global_batch_size // replicas

  n = group or 1

  def dataset_fn(ctx):
    local = replicas // ctx.num_input_pipelines
    first = ctx.input_pipeline_id * local
    ds = index_batches(num_examples, global_batch_size, seed, start_step * n)
    ds = ds.batch(n, drop_remainder=True)  # [n, global]: n consecutive batches (may span epochs)
    ds = ds.map(lambda idx: tf.transpose(tf.reshape(idx, [n, replicas, per_replica]),
                                         [1, 0, 2])[first:first + local])
    ds = ds.unbatch()  # `local` consecutive elements: one per local replica, in replica order
    if group is None:
      ds = ds.map(lambda idx: idx[0])
    ds = ds.map(lambda idx: tf.nest.map_structure(lambda a: tf.gather(a, idx), arrays))
    if map_fn is not None:
      ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(dataset_fn, options)
