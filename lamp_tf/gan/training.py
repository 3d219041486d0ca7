"""Training one class-conditional (or unconditional) WGAN-GP run, resumable.

`train_gan` builds the networks in the strategy's scope, optionally initialises them (transfer)
on a fresh run, and runs the compiled step (`train.make_replica_step`) under the runtime loop.
The run directory holds `gan_config.json` (so it can serve as a transfer source), checkpoints
(generator, critic, both optimisers, the EMA generator, step, random state) and `curve.json`,
the periodic evaluations (entries past a restored step are dropped on resume).
"""

import dataclasses
import os

import keras

from lamp_tf.data import pipeline
from lamp_tf.gan import train, transfer
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import files, loop, precision, strategy as strategy_lib
from lamp_tf.runtime.settings import setting


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One WGAN-GP run's training; the fields with help are the GAN programs' flags, the others
  (updates, seed, Adam's betas) are set per run."""

  iterations: int = 1000  # generator updates
  batch_size: int = setting(64, "Global batch size.", lower=2)
  n_critic: int = setting(5, "Critic updates per generator update.", lower=1)
  gp_weight: float = setting(10.0, "Gradient penalty weight.", lower=0.0)
  ac_weight: float = setting(1.0, "AC-GAN classification weight.", lower=0.0)
  lr: float = setting(1e-4, "Adam learning rate (beta1 0, beta2 0.9).", lower=0.0)
  beta1: float = 0.0
  beta2: float = 0.9
  ema_decay: float = setting(0.0, "EMA generator decay (0: none).", lower=0.0, upper=1.0)
  seed: int = 0
  eval_every: int = setting(
      0, "FID curve period in generator updates (0: evaluate only at the end).", lower=0)


@dataclasses.dataclass
class GANRun:
  generator: keras.Model  # the one to sample from (the EMA copy when enabled)
  critic: keras.Model
  curve: list  # [{"iteration": i, metric: value, ...}]
  state: loop.TrainState


def train_gan(rt, run_dir, gan_config, images, labels, cfg, *, init=None, evaluate=None,
              freeze_critic=0, name="gan"):
  """Trains (or resumes) a GAN on `images` ([-1, 1]) and `labels`; returns a GANRun.

  init(generator, critic): called once on a fresh run (e.g. transfer.initialise).
  evaluate(iteration, generator) -> {metric: value}: every `cfg.eval_every` iterations and at
  the end; results go to curve.json and TensorBoard.
  """
  strategy = rt.strategy
  keras.utils.set_random_seed(cfg.seed)
  with strategy.scope():
    generator, critic = gan_nets.make_gan(**gan_config)
    shadow = gan_nets.make_gan(**gan_config)[0] if cfg.ema_decay else None
    g_opt = precision.optimizer(keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2))
    d_opt = precision.optimizer(keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2))
  frozen = transfer.freeze_critic_layers(critic, freeze_critic) if freeze_critic else []
  strategy_lib.build_optimizer(strategy, g_opt, generator.trainable_variables)
  strategy_lib.build_optimizer(strategy, d_opt, critic.trainable_variables)
  extra = {"ema": shadow} if shadow is not None else {}
  state = rt.train_state(os.path.relpath(run_dir, rt.workdir), cfg.seed, generator=generator,
                         critic=critic, g_opt=g_opt, d_opt=d_opt, **extra)
  if rt.is_chief:
    os.makedirs(run_dir, exist_ok=True)
    transfer.save_gan_config(run_dir, gan_config)
  curve_path = os.path.join(run_dir, "curve.json")
  ema = gan_nets.EMA(generator, shadow, cfg.ema_decay) if shadow is not None else None
  if state.restore():
    curve = [c for c in (files.read_json(curve_path) if os.path.exists(curve_path) else [])
             if c["iteration"] <= int(state.step)]
  else:
    if init is not None:
      init(generator, critic)
    if ema is not None:
      ema.reset()
    curve = []
  sampler = shadow if shadow is not None else generator
  writer = rt.writer(os.path.relpath(run_dir, rt.workdir))
  step_fn = strategy_lib.distributed_step(strategy, train.make_replica_step(
      generator, critic, g_opt, d_opt,
      train.GANConfig(cfg.n_critic, cfg.gp_weight, cfg.ac_weight, gan_config.get("z_dim", 128)),
      ema=ema))
  batches = iter(pipeline.distribute_batches(strategy, (images, labels), cfg.batch_size,
                                             cfg.seed, start_step=int(state.step),
                                             group=cfg.n_critic))

  def run_eval(iteration):
    if evaluate is None or any(c["iteration"] == iteration for c in curve):
      return
    metrics = evaluate(iteration, sampler)
    curve.append({"iteration": iteration, **metrics})
    writer.write_scalars(iteration, {f"eval/{k}": v for k, v in metrics.items()
                                     if isinstance(v, (int, float))})
    if rt.is_chief:
      files.write_json(curve_path, curve)

  actions = [(cfg.eval_every, run_eval)] if cfg.eval_every else []
  loop.train_loop(state, step_fn, batches, cfg.iterations, writer=writer, actions=actions,
                  name=name, **rt.loop_kwargs())
  run_eval(cfg.iterations)
  if frozen:
    writer.write_texts(0, {"frozen_critic_layers": ", ".join(frozen)})
  return GANRun(sampler, critic, curve, state)
