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
- 'jtr': joint training with replay: every real batch of the current task is joined by one
  batch of the frozen previous generator's samples, labels spread evenly over the old classes;
  critic and generator train on the union (the gradient penalty covers the union too);
- 'ra': replay alignment: the critic sees only current real data; the generator adds
  L_RA = ra_weight * n_old * 1/2 * sum_{i in batch} ||G_t(z_i, c_i) - G_{t-1}(z_i, c_i)||^2
  with a batch of `batch_size` pairs (same z and c for both generators), c spread evenly over
  the n_old old classes. The reference code sums tf.nn.l2_loss (1/2 sum over pixels and
  samples) over the old classes with a batch per class, i.e. n_old times our batch sum in
  expectation; so published weights (1e-3, 1e-2 on SVHN) carry over unchanged. Both generators
  run in inference mode (batch-norm moving statistics), so L_RA is exactly zero when their
  weights agree and aligns what is sampled.

Every task resets both optimisers (as the paper) and keeps a frozen copy of the generator at its
end. The run's TrainState holds the networks, optimisers, frozen copies, EWC terms, DGR solver,
step, task and random state; the per-task evaluations go to `task_evals.json` and the fixed-z
sample grids to `grids.npy`, so a run killed anywhere resumes there.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.continual import ewc as ewc_lib, fisher as fisher_lib
from lamp_tf.data import pipeline
from lamp_tf.gan import losses, train
from lamp_tf.metrics import features as features_lib
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import files, loop, strategy as strategy_lib
from lamp_tf.runtime.strategy import replica_share

METHODS = ("jt", "sft", "ewc", "dgr", "jtr", "ra")


@dataclasses.dataclass(frozen=True)
class MerganConfig:
  method: str = "ra"
  seed: int = 0
  iterations: int = 4001  # generator updates per task
  batch_size: int = 64
  n_critic: int = 5
  lr: float = 1e-4
  gp_weight: float = 10.0
  ac_weight: float = 1.0
  ra_weight: float = 1e-3
  ewc_weight: float = 1e9
  fisher_samples: int = 512
  solver_steps: int = 1000
  dgr_max_draws: int = 50  # rejection sampling: at most this many draws per requested sample

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"--methods: unknown method {self.method!r}; choose from "
                       f"{', '.join(METHODS)}.")


def _fold(seed, k):
  return tf.random.experimental.stateless_fold_in(seed, k)


def _spread(classes, n):
  """n labels spread evenly (cyclically) over `classes`, as a tensor."""
  classes = tf.constant(classes, tf.int64)
  return tf.gather(classes, tf.range(n) % tf.size(classes, out_type=tf.int32))


def _global_rows(n_local):
  replicas = tf.distribute.get_replica_context().num_replicas_in_sync
  return n_local * replicas


def copy_weights(dst, src):
  for d, s in zip(dst.weights, src.weights):
    d.assign(s)


class Replayer:
  """JTR / DGR replay: joins each real batch with a batch of the previous generator's samples."""

  def __init__(self, prev_generator, old_classes, z_dim, conditional=True):
    self.prev, self.old, self.z_dim, self.conditional = (prev_generator, old_classes, z_dim,
                                                         conditional)

  def __call__(self, images, labels, seed):
    n = tf.shape(images)[0]
    total = _global_rows(n)
    z = replica_share(tf.random.stateless_normal([total, self.z_dim], seed=seed))
    if self.conditional:
      old = replica_share(_spread(self.old, total))
    else:
      old = tf.zeros([n], tf.int64)
    replayed = self.prev(z, old, training=False)
    return tf.concat([images, replayed], 0), tf.concat([labels, old], 0)


def replay_alignment(generator, prev_generator, old_classes, batch, weight, z_dim):
  """The RA hook: {'ra': this replica's share of L_RA} (see the module docstring)."""

  def extra(seed):
    z = replica_share(tf.random.stateless_normal([batch, z_dim], seed=seed))
    c = replica_share(_spread(old_classes, batch))
    diff = generator(z, c, training=False) - tf.stop_gradient(prev_generator(z, c, training=False))
    return {"ra": weight * len(old_classes) * 0.5 * tf.reduce_sum(tf.square(diff))}

  return extra


def generator_fisher(generator, critic, classes, samples, seed, z_dim, ac_weight, batch=64):
  """The generator's diagonal Fisher (module docstring) over `samples` draws."""
  labels = np.asarray(classes, np.int64)[np.arange(samples) % len(classes)]

  def per_sample(b):
    z, c = b
    value, logits = critic(generator(z, c, training=False), training=False)
    return -value + ac_weight * losses.classification(logits, c)

  rng = np.random.default_rng(seed)
  batches = [(tf.constant(rng.normal(size=[len(labels[i:i + batch]), z_dim]), tf.float32),
              tf.constant(labels[i:i + batch])) for i in range(0, samples, batch)]
  return fisher_lib.diagonal_fisher_from_losses(per_sample, generator.trainable_variables,
                                                batches)


def dgr_generate(generator, solver, labels, seed, seen, z_dim, max_draws, chunk=512):
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
    x = generator(z, tf.zeros([chunk], tf.int64), training=False).numpy()
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
    g_opt = keras.optimizers.Adam(cfg.lr, beta_1=0.0, beta_2=0.9)
    d_opt = keras.optimizers.Adam(cfg.lr, beta_1=0.0, beta_2=0.9)
  strategy_lib.build_optimizer(rt.strategy, g_opt, generator.trainable_variables)
  strategy_lib.build_optimizer(rt.strategy, d_opt, critic.trainable_variables)
  nets = Networks(generator, critic, prev, g_opt, d_opt)
  if cfg.method == "dgr":
    nets.solver = features_lib.classifier_model(image_shape, num_classes)
    nets.prev_solver = features_lib.classifier_model(image_shape, num_classes)
    nets.s_opt = keras.optimizers.Adam(1e-3)
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
      xr = prev_g(z, tf.zeros([tf.shape(x)[0]], tf.int64), training=False)
      yr = tf.argmax(tf.where(mask[None], prev_s(xr, training=False)[0], -np.inf), axis=1)
      x, y = tf.concat([x, xr], 0), tf.concat([y, yr], 0)
    with tf.GradientTape() as tape:
      logits, _ = solver(x, training=True)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    nets.s_opt.apply_gradients(zip(tape.gradient(loss, solver.trainable_variables),
                                   solver.trainable_variables))
    return loss

  batches = iter(pipeline.distribute_batches(tf.distribute.get_strategy(), (images, labels),
                                             cfg.batch_size, seed))
  for i in range(cfg.solver_steps):
    step(*next(batches), tf.constant([seed, i], tf.int64))


def _sampler(cfg, nets, seen, z_dim):
  """generate(labels, seed) -> images for the evaluator."""
  if cfg.method == "dgr":
    return lambda labels, seed: dgr_generate(nets.generator, nets.solver, labels, seed, seen,
                                             z_dim, cfg.dgr_max_draws)
  return lambda labels, seed: gan_nets.generate(nets.generator, labels, seed, z_dim)


def run(rt, cfg, gan_config, images, labels, tasks, run_dir, evaluator, grid_z):
  """Trains (or resumes) one method over `tasks`; returns its record.

  images, labels: the training set of every class ([-1, 1], labels in the generator's space).
  tasks: tuple of tuples of class ids. evaluator: a SeenClassesEvaluator. grid_z: [num_classes,
  z_dim] fixed noise of the sample grids.
  """
  num_tasks, num_classes = len(tasks), gan_config["num_classes"]
  z_dim = gan_config.get("z_dim", 128)
  nets = build(rt, cfg, gan_config, images.shape[1:], num_classes, num_tasks)
  task_started = tf.Variable(False, trainable=False)
  wall = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  extra = {k: getattr(nets, k) for k in ("solver", "prev_solver", "s_opt", "penalty")
           if getattr(nets, k) is not None}
  rel = os.path.relpath(run_dir, rt.workdir)
  state = rt.train_state(rel, cfg.seed, generator=nets.generator, critic=nets.critic,
                         prev_generator=nets.prev_generator, g_opt=nets.g_opt, d_opt=nets.d_opt,
                         task_started=task_started, wall_time=wall, **extra)
  evals_path, grids_path = os.path.join(run_dir, "task_evals.json"), os.path.join(run_dir,
                                                                                  "grids.npy")
  state.restore()
  evals = files.read_json(evals_path)[:int(state.task)] if os.path.exists(evals_path) else []
  grids = list(np.load(grids_path)[:int(state.task)]) if os.path.exists(grids_path) else []
  writer = rt.writer(rel)
  gan_cfg = train.GANConfig(cfg.n_critic, cfg.gp_weight,
                            0.0 if cfg.method == "dgr" else cfg.ac_weight, z_dim)
  for t in range(int(state.task), num_tasks):
    seen = sorted(c for task in tasks[:t + 1] for c in task)
    old = sorted(c for task in tasks[:t] for c in task)
    if not bool(task_started):
      if t > 0:
        copy_weights(nets.prev_generator, nets.generator)
        if nets.prev_solver is not None:
          copy_weights(nets.prev_solver, nets.solver)
        if nets.penalty is not None:
          nets.penalty.add_term(generator_fisher(nets.generator, nets.critic, old,
                                                 cfg.fisher_samples, cfg.seed * 1000 + t, z_dim,
                                                 cfg.ac_weight))
      strategy_lib.reset_optimizer(nets.g_opt)
      strategy_lib.reset_optimizer(nets.d_opt)
      task_started.assign(True)
      state.save()
    classes = seen if cfg.method == "jt" else list(tasks[t])
    idx = np.flatnonzero(np.isin(labels, classes))
    if not len(idx):
      raise ValueError(f"task {t + 1} (classes {list(tasks[t])}) has no training images: check "
                       "--tasks against the data set's classes.")
    replay = generator_extra = None
    if t > 0 and cfg.method in ("jtr", "dgr"):
      replay = Replayer(nets.prev_generator, old, z_dim, conditional=cfg.method == "jtr")
    if t > 0 and cfg.method == "ra":
      generator_extra = replay_alignment(nets.generator, nets.prev_generator, old,
                                         cfg.batch_size, cfg.ra_weight, z_dim)
    if t > 0 and cfg.method == "ewc":
      replicas = rt.strategy.num_replicas_in_sync
      generator_extra = lambda seed: {"ewc": cfg.ewc_weight * nets.penalty() / replicas}
    step_fn = strategy_lib.distributed_step(rt.strategy, train.make_replica_step(
        nets.generator, nets.critic, nets.g_opt, nets.d_opt, gan_cfg, replay=replay,
        generator_extra=generator_extra))
    start = t * cfg.iterations
    gan_labels = labels[idx] if cfg.method != "dgr" else np.zeros(len(idx), np.int64)
    batches = iter(pipeline.distribute_batches(
        rt.strategy, (images[idx], gan_labels), cfg.batch_size, cfg.seed * 1000 + t,
        start_step=int(state.step) - start, group=cfg.n_critic))
    t0 = time.monotonic()
    loop.train_loop(state, step_fn, batches, start + cfg.iterations, writer=writer,
                    name=f"{cfg.method} task{t + 1}", **rt.loop_kwargs())
    if cfg.method == "dgr":
      _train_solver(nets, cfg, images[idx], labels[idx], old, cfg.seed * 1000 + t, z_dim)
    wall.assign_add(time.monotonic() - t0)
    result = evaluator(_sampler(cfg, nets, seen, z_dim), seen, reverse=True)
    result["task"] = t + 1
    evals.append(result)
    grid = np.zeros([num_classes, *images.shape[1:]], np.float32)
    if cfg.method == "dgr":  # no class input: rejection-sampled samples of each seen class
      grid[seen] = _sampler(cfg, nets, seen, z_dim)(np.asarray(seen), cfg.seed)
    else:
      grid[seen] = nets.generator(tf.constant(grid_z[seen], tf.float32),
                                  tf.constant(seen, tf.int64), training=False).numpy()
    grids.append(grid)
    writer.write_scalars(t + 1, {"eval/accuracy": result["accuracy"], "eval/fid": result["fid"],
                                 "eval/reverse_accuracy": result["reverse_accuracy"]})
    writer.write_images(t + 1, {"fixed_z_grid": ((grid + 1) * 127.5).clip(0, 255)
                                .astype(np.uint8)})
    logging.info("%s task %d: accuracy %.4f FID %.2f reverse %.4f", cfg.method, t + 1,
                 result["accuracy"], result["fid"], result["reverse_accuracy"])
    if rt.is_chief:
      files.write_json(evals_path, evals)
      with files.atomic_path(grids_path) as tmp:
        with open(tmp, "wb") as f:
          np.save(f, np.stack(grids))
    state.task.assign(t + 1)
    task_started.assign(False)
    state.save()
  matrix = [[e["accuracy_per_class"].get(str(c)) for c in range(num_classes)] for e in evals]
  last = evals[-1]
  return {"method": cfg.method, "seed": cfg.seed, "accuracy": last["accuracy"],
          "accuracy_matrix": matrix, "reverse_accuracy": last["reverse_accuracy"],
          "fid": last["fid"], "kid": last["kid"], "num_samples": last["num_samples"],
          "accuracy_per_task": [e["accuracy"] for e in evals],
          "fid_per_task": [e["fid"] for e in evals],
          "reverse_accuracy_per_task": [e["reverse_accuracy"] for e in evals],
          "iterations_per_task": cfg.iterations, "train_wall_time_s": float(wall.numpy())}


def restore_networks(rt, cfg, gan_config, image_shape, num_tasks, run_dir):
  """The final networks of a finished (or interrupted) run, from its latest checkpoint."""
  nets = build(rt, cfg, gan_config, image_shape, gan_config["num_classes"], num_tasks)
  extra = {k: getattr(nets, k) for k in ("solver",) if getattr(nets, k) is not None}
  state = loop.TrainState(os.path.join(run_dir, "checkpoints"), cfg.seed,
                          generator=nets.generator, critic=nets.critic, **extra)
  if not state.restore(partial=True):
    raise FileNotFoundError(f"{run_dir} has no checkpoint: train it first.")
  return nets


def sampler(cfg, nets, seen, z_dim=128):
  """generate(labels, seed) -> images of the run's final networks."""
  return _sampler(cfg, nets, seen, z_dim)
