"""The WGAN-GP (+ AC-GAN) train step: n critic updates and one generator update in one compiled
call, so Python does not sit in the inner loop.

A step's batch holds `n_critic` real sub-batches ([n_critic, B, ...] images and labels, see
`data.pipeline.distribute_batches(group=n_critic)`). Noise and gradient-penalty interpolation
weights are drawn statelessly for the *global* sub-batch from the step's seed and each replica
takes its rows, so one device and N replicas compute the same update. Fake images use the real
sub-batch's labels (the class distribution of the data); the generator update uses the first
sub-batch's labels.

Hooks let MeRGAN use the same step:
- `replay(images, labels, seed) -> (images, labels)`: joint training with replay; the returned
  union (real + replayed) is what the critic sees and whose labels the generator samples.
- `critic_extra(seed) -> {name: scalar}`: terms added to the critic's loss in every critic
  update (MeRGAN-JTR as the reference: replays of the previous generator scored as real);
- `generator_extra(seed) -> {name: scalar}`: terms added to the generator's loss (replay
  alignment, JTR's replay terms, an EWC penalty).
Each hook value is this replica's share, so the sum over replicas is the term.
"""

import dataclasses

import tensorflow as tf

from lamp_tf.gan import losses
from lamp_tf.runtime import precision
from lamp_tf.runtime.strategy import replica_share


@dataclasses.dataclass
class GANConfig:
  n_critic: int = 5
  gp_weight: float = 10.0
  ac_weight: float = 1.0
  z_dim: int = 128
  moments: str = None  # the generator's batch-norm statistics in training (see nets.gan)


def _fold(seed, k):
  return tf.random.experimental.stateless_fold_in(seed, k)


def make_replica_step(generator, critic, g_opt, d_opt, cfg, ema=None, replay=None,
                      generator_extra=None, critic_extra=None):
  """A replica function (batch, seed) -> {name: global-mean value} implementing the step."""

  def shared(sampler, seed, local_n, shape=()):
    """Noise for the global batch (local_n x replicas rows); this replica's rows."""
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    return replica_share(sampler([local_n * replicas, *shape], seed=seed))

  def critic_update(real, labels, seed):
    n = tf.shape(real)[0]
    total = tf.cast(n * tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32)
    z = shared(tf.random.stateless_normal, _fold(seed, 0), n, [cfg.z_dim])
    alpha = shared(tf.random.stateless_uniform, _fold(seed, 1), n)  # one per example
    fake = generator(z, labels, training=True, moments=cfg.moments)
    with tf.GradientTape() as tape:
      real_value, real_logits = critic(real, training=True)
      fake_value, _ = critic(fake, training=True)
      gp = losses.gradient_penalty(critic, real, fake, alpha)
      ac = losses.classification(real_logits, labels)
      loss = tf.reduce_sum(fake_value - real_value + cfg.gp_weight * gp + cfg.ac_weight * ac)
      loss /= total
      extra = critic_extra(_fold(seed, 2)) if critic_extra else {}
      total_loss = loss + tf.add_n(list(extra.values())) if extra else loss
    precision.minimize(tape, total_loss, critic.trainable_variables, d_opt)
    return {"d_loss": loss, "wasserstein": tf.reduce_sum(real_value - fake_value) / total,
            "gp": tf.reduce_sum(gp) / total, "ac_real": tf.reduce_sum(ac) / total,
            **{f"d_{k}": v for k, v in extra.items()}}

  def generator_update(labels, seed):
    n = tf.shape(labels)[0]
    total = tf.cast(n * tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32)
    z = shared(tf.random.stateless_normal, seed, n, [cfg.z_dim])
    with tf.GradientTape() as tape:
      fake = generator(z, labels, training=True, moments=cfg.moments)
      value, logits = critic(fake, training=True)
      per_example = -value + cfg.ac_weight * losses.classification(logits, labels)
      loss = tf.reduce_sum(per_example) / total
      extra = generator_extra(_fold(seed, 7)) if generator_extra else {}
      total_loss = loss + tf.add_n(list(extra.values())) if extra else loss
    precision.minimize(tape, total_loss, generator.trainable_variables, g_opt)
    if ema is not None:
      ema.update()
    return {"g_loss": loss, **{f"g_{k}": v for k, v in extra.items()}}

  def critic_step(images, labels, seed, k):
    real, lab = images[k], labels[k]
    if replay is not None:
      real, lab = replay(real, lab, _fold(seed, 100 + k))
    return critic_update(real, lab, _fold(seed, k + 1))

  def step(batch, seed):
    images, labels = batch
    out = critic_step(images, labels, seed, 0)
    # One replica: a graph loop (one traced copy of the update, half the tracing time). Several:
    # unrolled, because tf.distribute cannot synchronise (all-reduce, synchronized batch norm)
    # inside a graph loop.
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    for k in tf.range(1, cfg.n_critic) if replicas == 1 else range(1, cfg.n_critic):
      out = critic_step(images, labels, seed, k)
    g_labels = labels[0]
    if replay is not None:
      _, g_labels = replay(images[0], labels[0], _fold(seed, 100))
    out.update(generator_update(g_labels, _fold(seed, 0)))
    return out

  return step
