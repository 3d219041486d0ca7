"""Input pipelines from arrays in memory, deterministic and resumable from any step.

The global batch of step s is a function of (seed, s) only: epoch e = s // steps_per_epoch uses
the permutation `stateless_shuffle(range(n), seed=[seed, e])`. A resumed run therefore sees
exactly the batches an uninterrupted run would, with no iterator state in the checkpoint. Each
replica gets its contiguous slice of every global batch, so N replicas train on the same global
batches as one device.
"""

import numpy as np
import tensorflow as tf


def index_batches(num_examples, batch_size, seed, start_step=0):
  """Dataset of int64 index vectors [batch_size]: the global batches from `start_step` on."""
  if batch_size > num_examples:
    raise ValueError(f"batch size {batch_size} is larger than the {num_examples} training "
                     "examples: lower --batch_size or use more data.")
  steps_per_epoch = num_examples // batch_size
  start_epoch, skip = divmod(int(start_step), steps_per_epoch)

  def epoch(e):
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(num_examples, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), e]))
    return tf.data.Dataset.from_tensor_slices(
        tf.reshape(perm[:steps_per_epoch * batch_size], [steps_per_epoch, batch_size]))

  return tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(skip)


def distribute_batches(strategy, arrays, global_batch_size, seed, start_step=0, map_fn=None):
  """Distributed dataset of shuffled global batches of `arrays` (a tuple/dict of NumPy arrays).

  `map_fn` maps a batch (same structure, gathered rows) to model inputs, e.g. preprocessing.
  """
  arrays = tf.nest.map_structure(tf.constant, arrays)
  num_examples = int(tf.nest.flatten(arrays)[0].shape[0])
  replicas = strategy.num_replicas_in_sync
  if global_batch_size % replicas:
    raise ValueError(f"--batch_size={global_batch_size} must be divisible by the "
                     f"{replicas} replicas.")
  per_replica = global_batch_size // replicas

  def dataset_fn(ctx):
    local = replicas // ctx.num_input_pipelines
    first = ctx.input_pipeline_id * local
    ds = index_batches(num_examples, global_batch_size, seed, start_step)
    ds = ds.map(lambda idx: tf.reshape(idx, [replicas, per_replica])[first:first + local])
    ds = ds.unbatch()  # `local` consecutive elements: one per local replica, in replica order
    ds = ds.map(lambda idx: tf.nest.map_structure(lambda a: tf.gather(a, idx), arrays))
    if map_fn is not None:
      ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(dataset_fn, options)
