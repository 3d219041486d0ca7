"""Training of mix-and-match networks and of the translation baselines.

`fit` runs replica steps under the runtime loop with resumable checkpoints, drawing batches
from one or more arrays dicts (each through the deterministic pipeline, encoded per modality).
`mixmatch_step` is the mix-and-match objective on one (RGB, segmentation) batch and one
(RGB, depth) batch, as the authors' code (yaxingwang/Mix-and-match-networks `RGBD/model.py`)
combines it by default (`Weights()`):
    100 CE(RGB->seg) + 10 L1(RGB->depth) + 10 (CE(seg->seg) + L1(depth->depth))
  + 10 (10 sum_4 MSE(RGB outputs) + sum_4 LSGAN_G(RGB outputs))
  + 10 (latent alignment at the 3 deepest pools + max-feature term, for both pairs)
with the RGB outputs seg->RGB, depth->RGB and RGB->RGB of both batches (the reference calls
their squared error "L1"), cross-entropy averaged over the labelled pixels of the batch, and
|N(0, 0.5)| noise on the RGB latent of the RGB->seg and RGB->depth paths only. The
discriminator of RGB outputs is trained on 10 x its LSGAN loss every other step (the reference
updates it on odd iterations, before the generator step). Every weight is a flag, so the
project's earlier objective (all weights 1, latent 0.1 at the deepest level only, L1 on RGB,
per-image cross-entropy, no adversary, no noise) is one flag set away; the ablation in the
report walks from one to the other.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from lamp_tf.data import pipeline, rgbd
from lamp_tf.mixmatch import domains, losses
from lamp_tf.runtime import loop, precision, strategy as strategy_lib


@dataclasses.dataclass(frozen=True)
class Weights:
  seg: float = 100.0  # RGB -> segmentation cross-entropy (anno_w)
  depth: float = 10.0  # RGB -> depth (dept_w)
  auto: float = 10.0  # segmentation and depth autoencoders (auto_w)
  rgb: float = 10.0  # RGB outputs: rgb_recon x reconstruction + LSGAN (imag_w / feat_w)
  rgb_recon: float = 10.0  # inside the RGB term (L2_lambda)
  latent: float = 10.0  # latent alignment and max-feature terms (feat_w)
  disc: float = 10.0  # discriminator loss (imag_w)
  latent_levels: int = 3  # deepest pooled outputs aligned (pool3, pool4, pool5)
  align_at: str = "pooled"  # the reference; 'features': every block's pre-pool maps
  align_scale: str = "raw"  # the reference; 'normalized': channels standardised first
  max_feature: bool = True
  latent_noise: float = 0.5  # std of |N(0, s)| on the RGB latent of RGB->seg and RGB->depth
  rgb_adversarial: bool = True
  rgb_auto: bool = True  # RGB -> RGB (both batches) among the RGB outputs
  rgb_loss: str = "l2"
  seg_ce: str = "pixel"
  depth_loss: str = "l1"

  def __post_init__(self):
    for name in ("seg", "depth", "auto", "rgb", "rgb_recon", "latent", "disc", "latent_noise"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name}_weight={getattr(self, name)}: must be >= 0.")
    if self.latent_levels < 1:
      raise ValueError(f"--latent_levels={self.latent_levels}: must be >= 1.")
    for name, allowed in (("rgb_loss", losses.RGB_LOSSES), ("seg_ce", losses.SEG_CE),
                          ("depth_loss", losses.DEPTH_LOSSES), ("align_at", losses.ALIGN_AT),
                          ("align_scale", losses.ALIGN_SCALE)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"--{name}={getattr(self, name)!r}: choose one of "
                         f"{', '.join(allowed)}.")


def paired_translations(weights):
  """The objective of the warm start: the paired translations alone (RGB -> segmentation,
  RGB -> depth, segmentation -> RGB, depth -> RGB with their weights, LSGAN and noise), as
  separate pix2pix-style translators sharing the mix-and-match networks: no autoencoders, no
  RGB -> RGB and no latent alignment or max-feature term."""
  return dataclasses.replace(weights, auto=0.0, latent=0.0, max_feature=False, rgb_auto=False)


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


def _half_normal(like, std, seed):
  return tf.cast(tf.abs(std * tf.random.stateless_normal(tf.shape(like), seed)), like.dtype)


def mixmatch_outputs(model, batches, weights, seed):
  """Every output of one step: {name: (modality, prediction, target batch)}, the encoders'
  side information by name, and the RGB targets of the RGB outputs."""
  (b1, b2) = batches
  enc = lambda x, m: model.encoders[m](x, training=True)
  dec = lambda z, side, m: model.decoders[m](z, side, training=True)
  z_r1, s_r1 = enc(b1["rgb"], "rgb")
  z_s, s_s = enc(b1["seg"], "seg")
  z_r2, s_r2 = enc(b2["rgb"], "rgb")
  z_d, s_d = enc(b2["depth"], "depth")
  noisy = lambda z, k: z + (_half_normal(z, weights.latent_noise,
                                         tf.random.experimental.stateless_fold_in(seed, k))
                            if weights.latent_noise else 0.0)
  outputs = {
      "rgb2seg": ("seg", dec(noisy(z_r1, 0), s_r1, "seg"), b1),
      "seg2seg": ("seg", dec(z_s, s_s, "seg"), b1),
      "rgb2depth": ("depth", dec(noisy(z_r2, 1), s_r2, "depth"), b2),
      "depth2depth": ("depth", dec(z_d, s_d, "depth"), b2),
      "seg2rgb": ("rgb", dec(z_s, s_s, "rgb"), b1),
      "depth2rgb": ("rgb", dec(z_d, s_d, "rgb"), b2),
      "rgb2rgb_1": ("rgb", dec(z_r1, s_r1, "rgb"), b1),
      "rgb2rgb_2": ("rgb", dec(z_r2, s_r2, "rgb"), b2),
  }
  return outputs, {"rgb1": s_r1, "seg": s_s, "rgb2": s_r2, "depth": s_d}


def mixmatch_step(model, optimizer, weights, global_batch, disc=None, d_opt=None,
                  update_disc=False):
  """Replica step over ((RGB, seg) batch, (RGB, depth) batch); with `update_disc` the
  discriminator of RGB outputs is updated first (the reference: every other step)."""
  w = weights
  adversarial = w.rgb_adversarial and disc is not None

  def seg_loss(pred, batch):
    if w.seg_ce == "pixel":
      return losses.segmentation_pixel_mean(pred, batch["seg_labels"])
    return tf.reduce_sum(losses.segmentation(pred, batch["seg_labels"])) / global_batch

  def mean(per_example):
    return tf.reduce_sum(per_example) / global_batch

  rgb_names = ("seg2rgb", "depth2rgb") + (("rgb2rgb_1", "rgb2rgb_2") if w.rgb_auto else ())

  def disc_update(outputs):
    """The discriminator's update on this step's RGB outputs (the generators are not changed
    by it, so these are the outputs the reference's separate update computes)."""
    with tf.GradientTape() as tape:
      d_loss = w.disc * tf.add_n([
          mean(losses.lsgan_discriminator(disc(outputs[n][2]["rgb"]),
                                          disc(tf.stop_gradient(outputs[n][1]))))
          for n in rgb_names])
    variables = disc.trainable_variables
    precision.minimize(tape, d_loss, variables, d_opt)
    return d_loss

  def step(batches, seed):
    out = {}
    with tf.GradientTape() as tape:
      outputs, side = mixmatch_outputs(model, batches, w, seed)
      if update_disc and adversarial:
        out["d_loss"] = disc_update(outputs)
      terms = {}
      terms["rgb2seg"] = w.seg * seg_loss(outputs["rgb2seg"][1], outputs["rgb2seg"][2])
      if w.auto:
        terms["seg2seg"] = w.auto * seg_loss(outputs["seg2seg"][1], outputs["seg2seg"][2])
      for name, weight in (("rgb2depth", w.depth), ("depth2depth", w.auto)):
        if not weight:
          continue
        _, pred, batch = outputs[name]
        terms[name] = weight * mean(losses.reconstruction("depth", pred, batch["depth"],
                                                          w.depth_loss))
      terms["rgb_recon"] = w.rgb * w.rgb_recon * tf.add_n([
          mean(losses.reconstruction("rgb", outputs[n][1], outputs[n][2]["rgb"],
                                     rgb_loss=w.rgb_loss)) for n in rgb_names])
      if adversarial:
        terms["rgb_adv"] = w.rgb * tf.add_n([mean(losses.lsgan_generator(disc(outputs[n][1])))
                                             for n in rgb_names])
      for a, b in (("rgb1", "seg"), ("rgb2", "depth")) if w.latent else ():
        terms[f"latent_{b}"] = w.latent * losses.latent_alignment(
            side[a], side[b], w.latent_levels, global_batch, w.align_at, w.align_scale)
        if w.max_feature:
          terms[f"max_feature_{b}"] = w.latent * losses.max_feature_map(
              side[a][-1]["pooled"], side[b][-1]["pooled"], global_batch)
      total = tf.add_n(list(terms.values()))
    variables = model.trainable_variables
    precision.minimize(tape, total, variables, optimizer)
    return {"loss": total, **terms, **out}

  return step


def fit(rt, run_dir, name, trackables, replica_step, arrays_list, batch_size, steps, seed,
        writer=None, actions=()):
  """Trains (or resumes) `replica_step` on batches of each arrays dict; returns the state.
  A tuple of replica steps alternates by global step (step s runs `replica_step[s % n]`).
  `writer` (default: the run's TensorBoard writer) gets the step values; `actions` are the
  loop's periodic (every_steps, fn(step)) actions."""
  state = rt.train_state(os.path.relpath(run_dir, rt.workdir), seed, **trackables)
  state.restore()
  iters = [iter(pipeline.distribute_batches(rt.strategy, arrays, batch_size, seed + 7919 * i,
                                            start_step=int(state.step), map_fn=encode_batch))
           for i, arrays in enumerate(arrays_list)]

  class Zipped:
    traceable = True  # tf.data iterators underneath: drawable inside a compiled call

    def __next__(self):
      return tuple(next(it) for it in iters)

  replica_steps = replica_step if isinstance(replica_step, tuple) else (replica_step,)
  step_fns = [strategy_lib.distributed_step(rt.strategy, r) for r in replica_steps]
  if len(step_fns) == 1:
    step_fn = step_fns[0]
  else:
    step_fn = lambda batch, seed: step_fns[int(state.step) % len(step_fns)](batch, seed)
  loop.train_loop(state, step_fn, Zipped(), steps,
                  writer=writer or rt.writer(os.path.relpath(run_dir, rt.workdir)), name=name,
                  actions=actions, **rt.loop_kwargs())
  return state


def fit_unpaired(rt, subdir, name, model, images, pairs, batch_size, steps, lr, seed):
  """Trains (or resumes) an unpaired domain translator (`domains.DomainMixMatch` or
  `domains.PairCycleGAN`) on `domains.DomainBatches` of `images` (a list: one uint8 array per
  domain) over the ordered `pairs`, checkpointing to `workdir/subdir`; Adam (lr, 0.5) for the
  generators and the critic."""
  strategy = tf.distribute.get_strategy()  # the model's own (its step is not distributed)
  g_opt = adam(strategy, lr, model.generator_variables)
  d_opt = adam(strategy, lr, model.critic.trainable_variables)
  state = rt.train_state(subdir, seed, g_opt=g_opt, d_opt=d_opt, **model.trackables())
  state.restore()
  step = model.step(g_opt, d_opt)
  loop.train_loop(state, lambda batch, seed: step(*batch),
                  domains.DomainBatches(images, pairs, batch_size, seed, int(state.step)), steps,
                  writer=rt.writer(subdir), name=name, **rt.loop_kwargs())
  return state


def adam(strategy, lr, variables, beta_1=0.5):
  with strategy.scope():
    opt = precision.optimizer(keras.optimizers.Adam(lr, beta_1=beta_1))
  return strategy_lib.build_optimizer(strategy, opt, variables)
