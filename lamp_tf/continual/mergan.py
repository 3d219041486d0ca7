"""Memory Replay GANs: a class-conditional WGAN-GP AC-GAN learnt task after task.

Methods (one run each; `MerganConfig.method`):
- 'jt': joint training, the data of every class so far (upper bound);
- 'sft': sequential fine-tuning on the current task only;
- 'ewc': SFT plus an EWC penalty on the generator (Seff et al. 2017). The generator has no
  likelihood, so its Fisher is defined as F_i = E_{z, c}[(d l(z, c) / d theta_i)^2] with
  l(z, c) = -D(G(z, c)) + CE(C(G(z, c)), c) the per-sample generator loss under the critic at
  the end of the task, c uniform over the classes seen so far; one term per finished task;
- 'dgr': deep generative replay (Shin et al. 2017): an unconditional GAN trained on the current
  task plus replays of the previous generator, and a classifier (the solver) trained on the
  current task plus those replays labelled by the previous solver. A class's samples are
  obtained by rejection sampling with the solver;
- 'jtr': joint training with replay (see `jtr` below);
- 'ra': replay alignment (see below).

Choices that follow the authors' code (WuChenshen/MeRGAN `mergan.py`), the defaults here:
- Replayed samples (`replay_batch`): on MNIST and SVHN the reference sets `REDUCE_BATCH`, so
  each of the n_old old classes gets `batch // n_old` samples ('split'); on LSUN a full batch
  per old class ('per_class'). Replays are drawn per class, same z and c for G_t and G_{t-1}.
- RA (`RA_loss_fn`): L_RA = ra_weight * sum_{i old} l2_loss(G_t(z, i) - G_{t-1}(z, i)) / n_old
  with l2_loss = 1/2 * sum of squares over that class's samples ('split'; 'per_class': no
  division). The critic sees only current real data.
- JTR (`JTR_loss_fn`, `jtr='reference'`): per old class i, the critic scores G_{t-1}(z, i) as
  real against G_t(z, i) as fake, mean D(G_t) - mean D(G_{t-1}) + CE(C(G_{t-1}(z, i)), i), with
  no gradient penalty on replays; the generator adds -mean D(G_t(z, i)) + CE(C(G_t(z, i)), i).
  Per-class terms are summed ('split': each old class weighs as much as the current real
  data) or averaged ('per_class'). `jtr='union'` is the project's earlier variant: each real
  batch is joined by one batch of replays spread over the old classes and critic and generator
  train on the union (gradient penalty included), so an old class weighs 1 / (2 n_old).
  The AC terms of replays carry `ac_weight` (1, the reference's ACGAN_SCALE).
- Batch norm (`sample_bn='batch'`): the reference's conditional batch norm always normalises with
  the batch's moments and samples, replays and aligns one class per batch; here every sampling
  pass (replays, alignment, evaluation, grids, the EWC Fisher) and every training pass uses
  per-class batch moments (`nets.gan.ConditionalBatchNorm`, moments='class'). For the
  one-class batches of SFT, EWC, JTR and RA that is the batch's moments, as the reference; JT's
  mixed batches are normalised class by class, as it is sampled (the reference's `joint.py`,
  a separate program, normalises mixed batches as a whole in training and test).
  `sample_bn='moving'` samples with the moving averages instead (shared by all classes, so
  under RA they come from current-class batches only). For serving, per-class statistics are
  calibrated at export (`nets.gan.calibrate_class_moments`).
- Protocol: one class per task; the first task (from an untrained generator) may have a larger
  budget (`first_task_iterations`). Every conditional method trains the identical first task,
  so a run can start from a shared first-task checkpoint (`run(init_from=...)`).

Every task resets both optimisers (as the paper) and keeps a frozen copy of the generator at its
end. The run's TrainState holds the networks, optimisers, frozen copies, EWC terms, DGR solver,
step, task and random state; the per-task evaluations go to `task_evals.json` and the fixed-z
sample grids to `grids.npy`, so a run killed anywhere resumes there.
"""

import dataclasses
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.continual import ewc as ewc_lib, fisher as fisher_lib, task_loop
from lamp_tf.data import pipeline, preprocess
from lamp_tf.gan import losses, train as train_lib, transfer
from lamp_tf.metrics import features as features_lib
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import files, loop, precision, settings, strategy as strategy_lib
from lamp_tf.runtime.settings import setting
from lamp_tf.runtime.strategy import replica_share

METHODS = ("jt", "sft", "ewc", "dgr", "jtr", "ra")
SAMPLE_BN = ("batch", "moving")
REPLAY_BATCH = ("split", "per_class")
JTR_MODES = ("reference", "union")


@dataclasses.dataclass(frozen=True)
class MerganConfig:
  """One MeRGAN run's training; the fields with help are the program's flags, the method, seed
  and EWC weight are set per run, and the WGAN-GP settings come from the flags of
  `gan.training.TrainConfig` (lamp_tf.apps.gan_flags)."""

  method: str = "ra"
  seed: int = 0
  iterations: int = setting(4001, "Generator updates per task (the paper: 4001).", lower=1)
  first_task_iterations: int = setting(
      0, "Generator updates of the first task, which starts from an untrained generator (0: "
      "--iterations).", lower=0)
  batch_size: int = 64
  n_critic: int = 5
  lr: float = 1e-4
  gp_weight: float = 10.0
  ac_weight: float = 1.0
  ra_weight: float = setting(
      1e-3, "Replay alignment weight (the reference's RA_FACTOR: 1e-3 on MNIST and LSUN, 1e-2 on "
      "SVHN).", lower=0.0)
  ewc_weight: float = 1e9
  fisher_samples: int = setting(512, "Samples for the generator's Fisher.", lower=1)
  solver_steps: int = setting(1000, "DGR classifier steps per task.", lower=1)
  dgr_max_draws: int = 50  # rejection sampling: at most this many draws per requested sample
  sample_bn: str = setting(
      "batch", "Generator batch norm when sampling, replaying and aligning: batch = per-class "
      "batch moments (the reference), moving = moving averages.", choices=SAMPLE_BN)
  replay_batch: str = setting(
      "split", "Replayed samples per step: split = batch // n_old per old class (the reference on "
      "MNIST/SVHN), per_class = a batch per old class (the reference on LSUN).",
      choices=REPLAY_BATCH)
  jtr: str = setting(
      "reference", "MeRGAN-JTR: reference = per-class replay terms, old samples as real, no GP on "
      "replays; union = real and replayed batches joined (the project's earlier variant).",
      choices=JTR_MODES)

  def __post_init__(self):
    settings.check(self)
    if self.method not in METHODS:
      raise ValueError(f"--methods: unknown {self.method!r}; choose from {', '.join(METHODS)}.")
    for flag in ("batch_size", "n_critic"):
      if getattr(self, flag) < 1:
        raise ValueError(f"--{flag}={getattr(self, flag)}: must be >= 1.")
    for flag in ("ewc_weight", "gp_weight", "ac_weight"):
      if getattr(self, flag) < 0:
        raise ValueError(f"--{flag}={getattr(self, flag)}: must be >= 0.")

  @property
  def moments(self):
    """The generator's batch-norm statistics when sampling (see nets.gan)."""
    return "class" if self.sample_bn == "batch" else None

  def task_iterations(self, t):
    return (self.first_task_iterations or self.iterations) if t == 0 else self.iterations


def replay_labels(old_classes, batch, replay_batch):
  """Labels of one step's replays, one block per old class: `batch // n_old` each ('split') or
  `batch` each ('per_class'); and the factor that turns the mean over these rows into the
  reference's combination of per-class means (sum for 'split', average for 'per_class')."""
  n_old = len(old_classes)
  per = batch // n_old if replay_batch == "split" else batch
  if per < 1:
    raise ValueError(f"--batch_size={batch} is smaller than the {n_old} old classes: each old "
                     "class needs at least one replayed sample; raise --batch_size or use "
                     "--replay_batch=per_class.")
  labels = np.repeat(np.asarray(old_classes, np.int64), per)
  return labels, float(n_old if replay_batch == "split" else 1)


def _global_rows(n_local):
  replicas = tf.distribute.get_replica_context().num_replicas_in_sync
  return n_local * replicas


def _spread(classes, n):
  """n labels spread evenly (cyclically) over `classes`, as a tensor."""
  classes = tf.constant(classes, tf.int64)
  return tf.gather(classes, tf.range(n) % tf.size(classes, out_type=tf.int32))


def _sample(generator, z, labels, moments, training=False):
  return generator(z, labels, training=training, moments=moments)


def copy_weights(dst, src):
  for d, s in zip(dst.weights, src.weights):
    d.assign(s)


class Replayer:
  """JTR 'union' / DGR replay: joins each real batch with a batch of the previous generator's
  samples (labels spread evenly over the old classes; DGR: unconditional)."""

  def __init__(self, prev_generator, old_classes, z_dim, conditional=True, moments=None):
    self.prev, self.old, self.z_dim = prev_generator, old_classes, z_dim
    self.conditional, self.moments = conditional, moments

  def __call__(self, images, labels, seed):
    n = tf.shape(images)[0]
    total = _global_rows(n)
    z = replica_share(tf.random.stateless_normal([total, self.z_dim], seed=seed))
    if self.conditional:
      old = replica_share(_spread(self.old, total))
    else:
      old = tf.zeros([n], tf.int64)
    replayed = _sample(self.prev, z, old, self.moments)
    return tf.concat([images, replayed], 0), tf.concat([labels, old], 0)


class _ReplayDraw:
  """Noise and labels of one step's replays (global rows, this replica's share)."""

  def __init__(self, old_classes, batch, z_dim, replay_batch):
    labels, self.scale = replay_labels(old_classes, batch, replay_batch)
    self.labels, self.rows, self.z_dim = tf.constant(labels), len(labels), z_dim

  def __call__(self, seed):
    z = replica_share(tf.random.stateless_normal([self.rows, self.z_dim], seed=seed))
    return z, replica_share(self.labels)


def replay_alignment(generator, prev_generator, old_classes, batch, weight, z_dim,
                     replay_batch="split", moments="class"):
  """The RA hook: {'ra': this replica's share of L_RA} (module docstring; reference
  `RA_loss_fn`)."""
  draw = _ReplayDraw(old_classes, batch, z_dim, replay_batch)
  factor = weight / len(old_classes) if replay_batch == "split" else weight

  def extra(seed):
    z, c = draw(seed)
    diff = _sample(generator, z, c, moments) - tf.stop_gradient(
        _sample(prev_generator, z, c, moments))
    return {"ra": factor * 0.5 * tf.reduce_sum(tf.square(diff))}

  return extra


def joint_replay(generator, prev_generator, critic, old_classes, batch, z_dim, ac_weight=1.0,
                 replay_batch="split", moments="class"):
  """The reference JTR hooks (module docstring; reference `JTR_loss_fn`):
  (critic_extra, generator_extra), each seed -> {name: this replica's share}."""
  draw = _ReplayDraw(old_classes, batch, z_dim, replay_batch)
  per_row = draw.scale / draw.rows  # per-class means combined as the reference does

  def critic_extra(seed):
    z, c = draw(seed)
    old = _sample(prev_generator, z, c, moments)
    new = tf.stop_gradient(_sample(generator, z, c, moments))
    old_value, old_logits = critic(old, training=True)
    new_value, _ = critic(new, training=True)
    return {"jtr": per_row * tf.reduce_sum(new_value - old_value),
            "jtr_ac": per_row * ac_weight * tf.reduce_sum(losses.classification(old_logits, c))}

  def generator_extra(seed):
    z, c = draw(seed)
    value, logits = critic(_sample(generator, z, c, moments), training=True)
    return {"jtr": per_row * tf.reduce_sum(-value + ac_weight * losses.classification(logits,
                                                                                      c))}

  return critic_extra, generator_extra


def generator_fisher(generator, critic, classes, samples, seed, z_dim, ac_weight, batch=64,
                     moments=None):
  """The generator's diagonal Fisher (module docstring) over `samples` draws, in batches of
  `batch` rows; with `moments='class'` one class per batch (batch statistics)."""
  labels = np.asarray(classes, np.int64)[np.arange(samples) % len(classes)]
  if moments == "class":
    labels = np.sort(labels)
    chunks = gan_nets._class_chunks(labels, batch)
  else:
    chunks = [np.arange(i, min(i + batch, samples)) for i in range(0, samples, batch)]

  def per_sample(b):
    z, c = b
    value, logits = critic(_sample(generator, z, c, moments), training=False)
    return -value + ac_weight * losses.classification(logits, c)

  rng = np.random.default_rng(seed)
  z = rng.normal(size=[samples, z_dim]).astype(np.float32)
  batches = [(tf.constant(z[rows]), tf.constant(labels[rows])) for rows in chunks]
  return fisher_lib.diagonal_fisher_from_losses(per_sample, generator.trainable_variables,
                                                batches)


def dgr_generate(generator, solver, labels, seed, seen, z_dim, max_draws, chunk=512,
                 moments=None):
  """Samples of the requested classes by rejection sampling an unconditional generator with the
  solver (argmax over the seen classes). A class the solver seldom picks is completed with the
  draws it scored highest, so every request is answered."""
  labels = np.asarray(labels, np.int64)
  mask = np.zeros(solver.output_shape[0][-1], bool)
  mask[list(seen)] = True
  need = {int(c): int(np.sum(labels == c)) for c in np.unique(labels)}
  kept = {c: [] for c in need}
  best = {c: None for c in need}  # (scores, images) of the highest-scoring draws
  for b in range(int(np.ceil(max_draws * len(labels) / chunk))):
    if all(len(kept[c]) >= need[c] for c in need):
      break
    z = tf.random.stateless_normal([chunk, z_dim], seed=[seed, b])
    x = _sample(generator, z, tf.zeros([chunk], tf.int64), moments).numpy()
    logits = np.where(mask[None], solver(x, training=False)[0].numpy(), -np.inf)
    pred = logits.argmax(axis=1)
    for c in need:
      kept[c].extend(x[pred == c][:max(0, need[c] - len(kept[c]))])
      scores, images = (logits[:, c], x) if best[c] is None else (
          np.concatenate([best[c][0], logits[:, c]]), np.concatenate([best[c][1], x]))
      top = np.argsort(-scores)[:need[c]]
      best[c] = (scores[top], images[top])
  out = np.zeros([len(labels), *best[next(iter(need))][1].shape[1:]], np.float32)
  for c in need:
    samples = (kept[c] + list(best[c][1]))[:need[c]]
    out[labels == c] = np.stack(samples)
  return out


@dataclasses.dataclass
class Networks:
  """The run's networks; `prev_generator` (and for DGR `prev_solver`) are the frozen copies."""

  generator: keras.Model
  critic: keras.Model
  prev_generator: keras.Model
  g_opt: keras.optimizers.Optimizer
  d_opt: keras.optimizers.Optimizer
  solver: keras.Model = None
  prev_solver: keras.Model = None
  s_opt: keras.optimizers.Optimizer = None
  penalty: ewc_lib.EWCPenalty = None


def build(rt, cfg, gan_config, image_shape, num_classes, num_tasks):
  """Networks for a method, in the strategy's scope (DGR: unconditional GAN plus solver)."""
  keras.utils.set_random_seed(cfg.seed)
  if cfg.method == "dgr":
    gan_config = {**gan_config, "num_classes": None, "conditioning": None}
  with rt.strategy.scope():
    generator, critic = gan_nets.make_gan(**gan_config)
    prev = gan_nets.make_gan(**gan_config)[0]
    g_opt = precision.optimizer(keras.optimizers.Adam(cfg.lr, beta_1=0.0, beta_2=0.9))
    d_opt = precision.optimizer(keras.optimizers.Adam(cfg.lr, beta_1=0.0, beta_2=0.9))
  strategy_lib.build_optimizer(rt.strategy, g_opt, generator.trainable_variables)
  strategy_lib.build_optimizer(rt.strategy, d_opt, critic.trainable_variables)
  nets = Networks(generator, critic, prev, g_opt, d_opt)
  if cfg.method == "dgr":
    nets.solver = features_lib.classifier_model(image_shape, num_classes)
    nets.prev_solver = features_lib.classifier_model(image_shape, num_classes)
    nets.s_opt = precision.optimizer(keras.optimizers.Adam(1e-3))
    nets.s_opt.build(nets.solver.trainable_variables)
  if cfg.method == "ewc":
    nets.penalty = ewc_lib.EWCPenalty(generator, "accumulate", max_terms=max(1, num_tasks - 1))
  return nets


def _train_solver(nets, cfg, images, labels, old_classes, seed, z_dim):
  """DGR's solver: current real data plus replays labelled by the previous solver."""
  solver, prev_g, prev_s = nets.solver, nets.prev_generator, nets.prev_solver
  mask = np.zeros(solver.output_shape[0][-1], bool)
  mask[list(old_classes)] = True
  mask = tf.constant(mask)

  @tf.function
  def step(x, y, step_seed):
    if old_classes:
      z = tf.random.stateless_normal([tf.shape(x)[0], z_dim], seed=step_seed)
      xr = _sample(prev_g, z, tf.zeros([tf.shape(x)[0]], tf.int64), cfg.moments)
      yr = tf.argmax(tf.where(mask[None], prev_s(xr, training=False)[0], -np.inf), axis=1)
      x, y = tf.concat([x, xr], 0), tf.concat([y, yr], 0)
    with tf.GradientTape() as tape:
      logits, _ = solver(x, training=True)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    precision.minimize(tape, loss, solver.trainable_variables, nets.s_opt)
    return loss

  batches = iter(pipeline.distribute_batches(tf.distribute.get_strategy(), (images, labels),
                                             cfg.batch_size, seed))
  for i in range(cfg.solver_steps):
    step(*next(batches), tf.constant([seed, i], tf.int64))


def sampler(cfg, nets, seen, z_dim=128):
  """generate(labels, seed) -> images for the evaluator."""
  if cfg.method == "dgr":
    return lambda labels, seed: dgr_generate(nets.generator, nets.solver, labels, seed, seen,
                                             z_dim, cfg.dgr_max_draws, moments=cfg.moments)
  batch = 64 if cfg.moments == "class" else 500  # the reference samples 64 per batch
  return lambda labels, seed: gan_nets.generate(nets.generator, labels, seed, z_dim, batch,
                                                moments=cfg.moments)


def class_grid(cfg, nets, seen, grid_z, z_dim):
  """One image per class, for the fixed-z grids: the first of each seen class's fixed batch
  (`grid_z` [num_classes, G, z_dim], so batch statistics see G samples); blank when unseen."""
  num_classes = grid_z.shape[0]
  grid = None
  if cfg.method == "dgr":  # no class input: rejection-sampled samples of each seen class
    images = sampler(cfg, nets, seen, z_dim)(np.asarray(seen), cfg.seed)
  else:
    images = fixed_z_samples(nets, seen, grid_z, cfg.moments)[:, 0]
  grid = np.zeros([num_classes, *images.shape[1:]], np.float32)
  grid[list(seen)] = images
  return grid


# The first task's samples on the fixed (z, c) of its classes, kept for the instance memory.
FIRST_SAMPLES = "first_task_samples.npy"


def fixed_z_samples(nets, classes, grid_z, moments):
  """The generator's samples on the fixed noise of `classes`: all G of `grid_z[c]` per class,
  one batch per class (so batch statistics see G samples), [len(classes), G, H, W, C]. The
  fixed-z grids show the first of each; the instance memory uses all of the first task's."""
  return np.stack([_sample(nets.generator, tf.constant(grid_z[c], tf.float32),
                           tf.fill([grid_z.shape[1]], tf.constant(c, tf.int64)),
                           moments).numpy() for c in classes])


def _distances(a, b, features):
  """Mean squared pixel difference, mean SSIM (images in [-1, 1] taken to [0, 1]) and mean
  Euclidean distance of classifier features, pairing a[i] with b[i]."""
  fa, fb = features(a), features(b)
  ssim = tf.image.ssim(tf.constant((a + 1) / 2), tf.constant((b + 1) / 2), max_val=1.0)
  return {"mse": float(np.mean(np.square(a - b))), "ssim": float(np.mean(ssim)),
          "feature": float(np.mean(np.linalg.norm(fa - fb, axis=1)))}


def instance_memory(now, first, per_class, features):
  """Whether a generator still draws the same instance for the same (z, c) (the talk's claim
  for MeRGAN-RA on LSUN: the same bedroom for the same noise after later tasks): the distances
  (`_distances`) between its samples `now` and the first task's `first` on the same fixed
  (z, c) (`fixed_z_samples` of the first task's classes, `per_class` samples of each class in order), and beside them
  the 'another instance' reference: the same distances between two draws of z of the same
  class after the first task (each of `first` paired with the next z of its class, cyclically).
  A generator that keeps the class but not the instance sits near the reference; one that keeps
  the instance, near 0 (MSE, features) and 1 (SSIM)."""
  classes = len(first) // per_class
  other = np.concatenate([np.roll(first[k * per_class:(k + 1) * per_class], -1, axis=0)
                          for k in range(classes)])
  return {**_distances(now, first, features),
          "reference": _distances(other, first, features)}


def _start_from_first_task(init_dir, state, nets, trackables, evals_path, grids_path):
  """Starts a fresh run from a finished shared first task (same seed and budget): networks,
  optimisers, step, random state, the task-1 evaluation and grid."""
  shared = loop.TrainState(os.path.join(init_dir, "checkpoints"), 0, **trackables)
  if not shared.restore(partial=True) or int(shared.task) != 1:
    raise FileNotFoundError(f"{init_dir} holds no finished first task to start from.")
  state.step.assign(shared.step)
  state.task.assign(shared.task)
  state.rng.state.assign(shared.rng.state)
  for name in (os.path.basename(evals_path), os.path.basename(grids_path), FIRST_SAMPLES):
    if name == FIRST_SAMPLES and not os.path.exists(os.path.join(init_dir, name)):
      continue  # a first task shared by an older version: no instance memory for this run
    with files.atomic_path(os.path.join(os.path.dirname(evals_path), name)) as tmp:
      shutil.copyfile(os.path.join(init_dir, name), tmp)
  state.save()
  logging.info("started from the shared first task in %s", init_dir)


def _task_hooks(cfg, nets, old, z_dim, replicas):
  """(replay, critic_extra, generator_extra) of the train step for a task with old classes."""
  replay = critic_extra = generator_extra = None
  if cfg.method == "dgr" or (cfg.method == "jtr" and cfg.jtr == "union"):
    replay = Replayer(nets.prev_generator, old, z_dim, conditional=cfg.method == "jtr",
                      moments=cfg.moments)
  elif cfg.method == "jtr":
    critic_extra, generator_extra = joint_replay(
        nets.generator, nets.prev_generator, nets.critic, old, cfg.batch_size, z_dim,
        cfg.ac_weight, cfg.replay_batch, cfg.moments)
  elif cfg.method == "ra":
    generator_extra = replay_alignment(nets.generator, nets.prev_generator, old, cfg.batch_size,
                                       cfg.ra_weight, z_dim, cfg.replay_batch, cfg.moments)
  elif cfg.method == "ewc":
    generator_extra = lambda seed: {"ewc": cfg.ewc_weight * nets.penalty() / replicas}
  return replay, critic_extra, generator_extra


def run(rt, cfg, gan_config, images, labels, tasks, run_dir, evaluator, grid_z, init_from=None):
  """Trains (or resumes) one method over `tasks`; returns its record.

  images, labels: the training set of every class ([-1, 1], labels in the generator's space).
  tasks: tuple of tuples of class ids. evaluator: a SeenClassesEvaluator. grid_z:
  [num_classes, G, z_dim] fixed noise of the sample grids. init_from: the run directory of a
  finished first task (same seed, budget and data) that a fresh run starts from.
  """
  num_tasks, num_classes = len(tasks), gan_config["num_classes"]
  z_dim = gan_config.get("z_dim", 128)
  nets = build(rt, cfg, gan_config, images.shape[1:], num_classes, num_tasks)
  task_started = tf.Variable(False, trainable=False)
  wall = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  shared = dict(generator=nets.generator, critic=nets.critic, prev_generator=nets.prev_generator,
                g_opt=nets.g_opt, d_opt=nets.d_opt, task_started=task_started, wall_time=wall)
  extra = {k: getattr(nets, k) for k in ("solver", "prev_solver", "s_opt", "penalty")
           if getattr(nets, k) is not None}
  rel = os.path.relpath(run_dir, rt.workdir)
  state = rt.train_state(rel, cfg.seed, **shared, **extra)
  evals_path, grids_path = os.path.join(run_dir, "task_evals.json"), os.path.join(run_dir,
                                                                                  "grids.npy")
  if not state.restore() and init_from is not None:
    _start_from_first_task(init_from, state, nets, shared, evals_path, grids_path)
  evals = files.read_json(evals_path)[:int(state.task)] if os.path.exists(evals_path) else []
  grids = list(np.load(grids_path)[:int(state.task)]) if os.path.exists(grids_path) else []
  first_path = os.path.join(run_dir, FIRST_SAMPLES)
  first = np.load(first_path) if os.path.exists(first_path) and int(state.task) else None
  writer = rt.writer(rel)
  gan_cfg = train_lib.GANConfig(cfg.n_critic, cfg.gp_weight,
                                0.0 if cfg.method == "dgr" else cfg.ac_weight, z_dim, cfg.moments)

  bounds = task_loop.starts([cfg.task_iterations(t) for t in range(num_tasks)])

  def old_classes(t):
    return sorted(c for task in tasks[:t] for c in task)

  def seen_classes(t):
    return old_classes(t + 1)

  def start(t):
    if t == 0:
      return
    copy_weights(nets.prev_generator, nets.generator)
    if nets.prev_solver is not None:
      copy_weights(nets.prev_solver, nets.solver)
    if nets.penalty is not None:
      nets.penalty.add_term(generator_fisher(nets.generator, nets.critic, old_classes(t),
                                             cfg.fisher_samples, cfg.seed * 1000 + t, z_dim,
                                             cfg.ac_weight, moments=cfg.moments))

  def train(t):
    classes = seen_classes(t) if cfg.method == "jt" else list(tasks[t])
    idx = np.flatnonzero(np.isin(labels, classes))
    if not len(idx):
      raise ValueError(f"task {t + 1} (classes {list(tasks[t])}) has no training images: check "
                       "--tasks against the data set's classes.")
    hooks = (None, None, None) if t == 0 else _task_hooks(
        cfg, nets, old_classes(t), z_dim, rt.strategy.num_replicas_in_sync)
    step_fn = strategy_lib.distributed_step(rt.strategy, train_lib.make_replica_step(
        nets.generator, nets.critic, nets.g_opt, nets.d_opt, gan_cfg, replay=hooks[0],
        critic_extra=hooks[1], generator_extra=hooks[2]))
    gan_labels = labels[idx] if cfg.method != "dgr" else np.zeros(len(idx), np.int64)
    batches = iter(pipeline.distribute_batches(
        rt.strategy, (images[idx], gan_labels), cfg.batch_size, cfg.seed * 1000 + t,
        start_step=int(state.step) - bounds[t], group=cfg.n_critic))
    t0 = time.monotonic()
    loop.train_loop(state, step_fn, batches, bounds[t + 1], writer=writer,
                    name=f"{cfg.method} task{t + 1}", **rt.loop_kwargs())
    if cfg.method == "dgr":
      _train_solver(nets, cfg, images[idx], labels[idx], old_classes(t), cfg.seed * 1000 + t,
                    z_dim)
    wall.assign_add(time.monotonic() - t0)

  def finish(t):
    nonlocal first
    seen = seen_classes(t)
    result = evaluator(sampler(cfg, nets, seen, z_dim), classes=seen, reverse=True)
    result["task"] = t + 1
    evals.append(result)
    grid = class_grid(cfg, nets, seen, grid_z, z_dim)
    grids.append(grid)
    samples = None if cfg.method == "dgr" else np.concatenate(  # DGR: no class input, no (z, c)
        fixed_z_samples(nets, tasks[0], grid_z, cfg.moments))
    if t == 0 and samples is not None:
      first = samples
      if rt.is_chief:
        with files.atomic_path(first_path) as tmp:
          with open(tmp, "wb") as f:
            np.save(f, first)
    if samples is not None and first is not None:
      result["instance"] = instance_memory(samples, first, grid_z.shape[1],
                                           evaluator.classifier.features)
    writer.write_scalars(t + 1, {"eval/accuracy": result["accuracy"], "eval/fid": result["fid"],
                                 "eval/reverse_accuracy": result["reverse_accuracy"]})
    writer.write_images(t + 1, {"fixed_z_grid": preprocess.unscale(grid).numpy()})
    logging.info("%s task %d: accuracy %.4f FID %.2f reverse %.4f", cfg.method, t + 1,
                 result["accuracy"], result["fid"], result["reverse_accuracy"])
    if rt.is_chief:
      files.write_json(evals_path, evals)
      with files.atomic_path(grids_path) as tmp:
        with open(tmp, "wb") as f:
          np.save(f, np.stack(grids))

  task_loop.run_tasks(state, task_started, num_tasks, [nets.g_opt, nets.d_opt], start, train,
                      finish)
  matrix = [[e["accuracy_per_class"].get(str(c)) for c in range(num_classes)] for e in evals]
  last = evals[-1]
  return {"method": cfg.method, "seed": cfg.seed, "accuracy": last["accuracy"],
          "accuracy_matrix": matrix, "reverse_accuracy": last["reverse_accuracy"],
          "fid": last["fid"], "kid": last["kid"], "num_samples": last["num_samples"],
          "accuracy_per_task": [e["accuracy"] for e in evals],
          "fid_per_task": [e["fid"] for e in evals],
          "reverse_accuracy_per_task": [e["reverse_accuracy"] for e in evals],
          "first_task_accuracy_per_task": [
              float(np.mean([e["accuracy_per_class"][str(c)] for c in tasks[0]]))
              for e in evals],
          **{f"instance_{k}_per_task": [e["instance"][k] if "instance" in e else None
                                         for e in evals] for k in ("mse", "ssim", "feature")},
          "instance_reference": evals[-1].get("instance", {}).get("reference"),
          "iterations_per_task": cfg.iterations,
          "first_task_iterations": cfg.task_iterations(0),
          "sample_bn": cfg.sample_bn, "replay_batch": cfg.replay_batch, "jtr": cfg.jtr,
          "ra_weight": cfg.ra_weight, "ewc_weight": cfg.ewc_weight,
          "shared_first_task": init_from is not None,
          "train_wall_time_s": float(wall.numpy())}


def restore_networks(rt, cfg, gan_config, image_shape, num_tasks, run_dir):
  """The final networks of a finished (or interrupted) run, from its latest checkpoint."""
  nets = build(rt, cfg, gan_config, image_shape, gan_config["num_classes"], num_tasks)
  extra = {k: getattr(nets, k) for k in ("solver",) if getattr(nets, k) is not None}
  state = loop.TrainState(os.path.join(run_dir, "checkpoints"), cfg.seed,
                          generator=nets.generator, critic=nets.critic, **extra)
  if not state.restore(partial=True):
    raise FileNotFoundError(f"{run_dir} has no checkpoint: train it first.")
  return nets


def export(cfg, nets, classes, export_dir, z_dim=128, version=None, card=None,
           formats=("saved_model",)):
  """Exports the generator (`transfer.export_generator`); with batch statistics, per-class
  statistics are calibrated first so the served model answers any batch, even one row."""
  moments = None
  if cfg.moments == "class":
    gan_nets.calibrate_class_moments(nets.generator, classes, seed=cfg.seed, z_dim=z_dim)
    moments = "calibrated"
  return transfer.export_generator(nets.generator, nets.critic, export_dir, moments=moments,
                                   version=version, card=card, formats=formats)
