"""Training of mix-and-match networks and of the translation baselines.

`fit` runs any replica step under the runtime loop with resumable checkpoints, drawing batches
from one or more arrays dicts (each through the deterministic pipeline, encoded per modality).
`mixmatch_step` is the mix-and-match objective on one (RGB, segmentation) batch and one
(RGB, depth) batch: both translations of each pair, the autoencoders of every modality, and the
latent consistency of paired encodings (optional Gaussian noise on the RGB latents, as the
reference code).
"""

import dataclasses
import os

import keras
import tensorflow as tf

from lamp_tf.data import pipeline, rgbd
from lamp_tf.mixmatch import losses
from lamp_tf.runtime import loop, strategy as strategy_lib


@dataclasses.dataclass(frozen=True)
class Weights:
  seg: float = 1.0
  depth: float = 1.0
  rgb: float = 1.0
  latent: float = 0.1
  latent_noise: float = 0.0
  depth_loss: str = "l1"


def encode_batch(batch):
  """Raw arrays -> model inputs: {'rgb': [-1,1], 'depth': scaled, 'seg': one-hot} plus the
  targets 'seg_labels' and the raw 'depth' encoding for losses."""
  out = {}
  if "rgb" in batch:
    out["rgb"] = rgbd.encode_rgb(batch["rgb"])
  if "depth" in batch:
    out["depth"] = rgbd.encode_depth(batch["depth"])
  if "seg" in batch:
    out["seg"] = rgbd.encode_seg(batch["seg"])
    out["seg_labels"] = tf.cast(batch["seg"], tf.int32)
  return out


def target(batch, modality):
  return batch["seg_labels"] if modality == "seg" else batch[modality]


def mixmatch_step(model, optimizer, weights, global_batch):
  """Replica step over ((RGB, seg) batch, (RGB, depth) batch)."""
  w = {"seg": weights.seg, "depth": weights.depth, "rgb": weights.rgb}

  def step(batches, seed):
    terms = {}
    with tf.GradientTape() as tape:
      for k, (batch, (a, b)) in enumerate(zip(batches, (("rgb", "seg"), ("rgb", "depth")))):
        za, sa = model.encoders[a](batch[a], training=True)
        zb, sb = model.encoders[b](batch[b], training=True)
        if weights.latent_noise:
          za = za + weights.latent_noise * tf.random.stateless_normal(
              tf.shape(za), tf.random.experimental.stateless_fold_in(seed, k))
        prefix = a[0] + b[0]  # 'rs' or 'rd'
        pairs = {f"{prefix}/{a}2{b}": (b, model.decoders[b](za, sa, training=True)),
                 f"{prefix}/{b}2{a}": (a, model.decoders[a](zb, sb, training=True)),
                 f"{prefix}/{a}2{a}": (a, model.decoders[a](za, sa, training=True)),
                 f"{prefix}/{b}2{b}": (b, model.decoders[b](zb, sb, training=True))}
        for name, (m, pred) in pairs.items():
          per = losses.reconstruction(m, pred, target(batch, m), weights.depth_loss)
          terms[name] = w[m] * tf.reduce_sum(per) / global_batch
        latent = tf.reduce_mean(tf.square(za - zb), axis=[1, 2, 3])
        terms[f"{prefix}/latent"] = weights.latent * tf.reduce_sum(latent) / global_batch
      total = tf.add_n(list(terms.values()))
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return {"loss": total, **terms}

  return step


def fit(rt, run_dir, name, trackables, replica_step, arrays_list, batch_size, steps, seed):
  """Trains (or resumes) `replica_step` on batches of each arrays dict; returns the state."""
  state = rt.train_state(os.path.relpath(run_dir, rt.workdir), seed, **trackables)
  state.restore()
  iters = [iter(pipeline.distribute_batches(rt.strategy, arrays, batch_size, seed + 7919 * i,
                                            start_step=int(state.step), map_fn=encode_batch))
           for i, arrays in enumerate(arrays_list)]

  class Zipped:
    def __next__(self):
      return tuple(next(it) for it in iters)

  step_fn = strategy_lib.distributed_step(rt.strategy, replica_step)
  loop.train_loop(state, step_fn, Zipped(), steps,
                  writer=rt.writer(os.path.relpath(run_dir, rt.workdir)), name=name,
                  **rt.loop_kwargs())
  return state


def adam(strategy, lr, variables, beta_1=0.5):
  with strategy.scope():
    opt = keras.optimizers.Adam(lr, beta_1=beta_1)
  return strategy_lib.build_optimizer(strategy, opt, variables)
