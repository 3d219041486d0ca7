"""IW, the 'independent Wasserstein' estimate of Transferring GANs.

A fresh WGAN-GP critic (not the one trained with the generator) learns to separate held-out real
validation images from generated images; its Wasserstein estimate E[D(real)] - E[D(fake)] on a
further held-out half of both sets is reported as a negative distance (higher is better), as in
the paper.
"""

import keras
import numpy as np
import tensorflow as tf

from lamp_tf.gan import losses
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import precision


def independent_wasserstein(real, fake, *, steps=500, **kwargs):
  """-W estimated by a fresh DCGAN-style critic trained `steps` steps; `real` and `fake` are
  [N, H, W, C] in [-1, 1]. Half of each set trains the critic, the other half measures W."""
  return iw_curve(real, fake, [steps], **kwargs)[0]


def iw_curve(real, fake, steps, *, batch_size=64, gp_weight=10.0, lr=1e-4, seed=0, width=32):
  """IW after each number of critic steps in `steps` (one critic, trained once up to the
  largest): how the estimate depends on the critic's training length."""
  if not steps or min(int(n) for n in steps) < 1:
    raise ValueError(f"IW critic steps {list(steps)}: give one or more counts >= 1.")
  rng = np.random.default_rng(seed)
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  r_idx, f_idx = rng.permutation(len(real)), rng.permutation(len(fake))
  r_train, r_eval = real[r_idx[:len(real) // 2]], real[r_idx[len(real) // 2:]]
  f_train, f_eval = fake[f_idx[:len(fake) // 2]], fake[f_idx[len(fake) // 2:]]
  keras.utils.set_random_seed(seed)
  critic = gan_nets.DCGANCritic(None, width, name="iw_critic")
  critic.build_for_inputs(real.shape[1:])
  opt = precision.optimizer(keras.optimizers.Adam(lr, beta_1=0.0, beta_2=0.9))

  @tf.function
  def step(xr, xf, alpha):
    with tf.GradientTape() as tape:
      dr, _ = critic(xr, training=True)
      df, _ = critic(xf, training=True)
      loss = tf.reduce_mean(df - dr + gp_weight * losses.gradient_penalty(critic, xr, xf, alpha))
    precision.minimize(tape, loss, critic.trainable_variables, opt)

  def mean_value(x):
    return float(np.mean(np.concatenate([critic(x[i:i + 500])[0].numpy()
                                         for i in range(0, len(x), 500)])))

  b = min(batch_size, len(r_train), len(f_train))
  wanted, values = sorted(set(int(n) for n in steps)), {}
  for done in range(1, wanted[-1] + 1):
    step(r_train[rng.choice(len(r_train), b, replace=False)],
         f_train[rng.choice(len(f_train), b, replace=False)], rng.random(b).astype(np.float32))
    if done in wanted:
      values[done] = -(mean_value(r_eval) - mean_value(f_eval))
  return [values[int(n)] for n in steps]
