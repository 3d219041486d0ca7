"""WGAN-GP and AC-GAN losses, per example.

Per-example values let a distributed step divide their sum by the global batch size (see
`runtime.strategy`). Conventions: the critic minimises D(fake) - D(real) + gp_weight * GP
(+ AC-GAN cross-entropy on real images); the generator minimises -D(G(z, c))
(+ AC-GAN cross-entropy on its samples).
"""

import tensorflow as tf


def gradient_penalty(critic, real, fake, alpha, epsilon=1e-10):
  """Per-example (||grad_x D(x_hat)|| - 1)^2 at x_hat = alpha real + (1 - alpha) fake.

  `alpha` is [B] uniform in [0, 1], one per example; the norm has epsilon inside the square
  root so the gradient stays finite at zero.
  """
  alpha = tf.reshape(alpha, [-1] + [1] * (len(real.shape) - 1))
  x_hat = alpha * real + (1.0 - alpha) * fake
  with tf.GradientTape() as tape:
    tape.watch(x_hat)
    value, _ = critic(x_hat, training=True)
  grads = tf.cast(tape.gradient(value, x_hat), tf.float32)  # float32 under mixed precision
  norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=list(range(1, len(real.shape)))) + epsilon)
  return tf.square(norm - 1.0)


def classification(logits, labels):
  """Per-example AC-GAN cross-entropy (zeros when the critic has no classifier head)."""
  if logits is None:
    return tf.zeros_like(tf.cast(labels, tf.float32))
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
