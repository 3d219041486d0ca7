"""Many-to-many unpaired translation with mix-and-match: one encoder and one decoder per domain.

N encoders + N decoders translate between any two of N domains through a shared latent (the
11-colour recolouring, the 5-style transfer); CycleGAN needs a generator pair per domain pair
(N(N-1)/2 pairs, N(N-1) generators: 110 for 11 colours). The weights of the N encoders (and of
the N decoders) are stored stacked on a leading domain axis and selected by index, so one
compiled step serves every domain pair; no weight is shared between domains.

Training is unpaired, on pairs with one anchor domain (star topology: anchor <-> each other
domain, the paper's recolouring setting): autoencoding, translation a -> b judged by a
multi-head LSGAN PatchGAN (one head per domain), cycle consistency a -> b -> a (weight 10) and
latent consistency. Pairs without the anchor are never trained together: translating between
them is zero-pair. `all_pairs` trains every pair instead (the non-zero-pair upper bound).

`PairCycleGAN` is the per-pair baseline with the same networks: two generators (an encoder and
a decoder each) and a two-head critic, LSGAN and cycle consistency (weight 10).
"""

import keras
import numpy as np
import tensorflow as tf

from lamp_tf.data import preprocess
from lamp_tf.nets.common import attach
from lamp_tf.runtime import precision

L = keras.layers


class DomainConv(L.Layer):
  """A (transposed) convolution with one kernel and bias per domain, chosen by index."""

  def __init__(self, domains, filters, kernel, strides=1, transpose=False, **kwargs):
    super().__init__(**kwargs)
    self.domains, self.filters, self.kernel_size = domains, filters, kernel
    self.strides, self.transpose = strides, transpose

  def build(self, input_shape):
    c_in = int(input_shape[-1])
    shape = ((self.kernel_size, self.kernel_size, self.filters, c_in) if self.transpose else
             (self.kernel_size, self.kernel_size, c_in, self.filters))
    self.kernel = self.add_weight(name="kernel", shape=(self.domains, *shape),
                                  initializer="glorot_uniform")
    self.bias = self.add_weight(name="bias", shape=(self.domains, self.filters),
                                initializer="zeros")

  def call(self, x, domain):
    k, b = tf.gather(self.kernel, domain), tf.gather(self.bias, domain)
    if self.transpose:
      n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
      out = tf.nn.conv2d_transpose(x, k, [n, h * self.strides, w * self.strides, self.filters],
                                   self.strides, "SAME")
    else:
      out = tf.nn.conv2d(x, k, self.strides, "SAME")
    return out + b


def _norm(x):
  """Instance normalisation without parameters (moments in float32)."""
  h = tf.cast(x, tf.float32)
  mean, var = tf.nn.moments(h, axes=[1, 2], keepdims=True)
  return tf.cast((h - mean) * tf.math.rsqrt(var + 1e-5), x.dtype)


class DomainEncoders(keras.Model):
  """One encoder per domain: r x r x 3 -> (r/4) x (r/4) x width latent; `res_blocks` residual
  blocks (two 3x3 convolutions, instance norm, ReLU) at the latent's resolution end it, as the
  CycleGAN generator of the authors' code (6 at 128 px)."""

  def __init__(self, domains, width=64, res_blocks=0, **kwargs):
    super().__init__(**kwargs)
    self._convs = attach(self, "conv", [DomainConv(domains, width // 2, 4, 2),
                                        DomainConv(domains, width, 4, 2),
                                        DomainConv(domains, width, 3, 1)])
    self._res = attach(self, "res", [DomainConv(domains, width, 3, 1)
                                     for _ in range(2 * res_blocks)])

  def call(self, x, domain):
    for i, name in enumerate(self._convs):
      x = getattr(self, name)(x, domain=domain)
      if i < len(self._convs) - 1:
        x = tf.nn.leaky_relu(_norm(x), 0.2)
    for a, b in zip(self._res[::2], self._res[1::2]):
      h = tf.nn.relu(_norm(getattr(self, a)(x, domain=domain)))
      x = x + _norm(getattr(self, b)(h, domain=domain))
    return x


class DomainDecoders(keras.Model):
  """One decoder per domain: latent -> r x r x 3 in [-1, 1]."""

  def __init__(self, domains, width=64, **kwargs):
    super().__init__(**kwargs)
    self._convs = attach(self, "conv", [DomainConv(domains, width // 2, 4, 2, transpose=True),
                                        DomainConv(domains, width // 4, 4, 2, transpose=True),
                                        DomainConv(domains, 3, 3, 1)])

  def call(self, z, domain):
    x = z
    for i, name in enumerate(self._convs):
      x = getattr(self, name)(x, domain=domain)
      if i < len(self._convs) - 1:
        x = tf.nn.relu(_norm(x))
    return tf.cast(tf.tanh(x), tf.float32)


class MultiHeadPatchCritic(keras.Model):
  """One PatchGAN trunk with a score map per domain (LSGAN)."""

  def __init__(self, domains, width=32, **kwargs):
    super().__init__(**kwargs)
    self._convs = attach(self, "conv", [L.Conv2D(width, 4, 2, padding="same"),
                                        L.Conv2D(width * 2, 4, 2, padding="same")])
    self.heads = L.Conv2D(domains, 3, padding="same", name="heads", dtype="float32")

  def call(self, x, domain):
    for name in self._convs:
      x = tf.nn.leaky_relu(getattr(self, name)(x), 0.2)
    return tf.gather(self.heads(x), domain, axis=-1)


class DomainNetworks:
  """Encoders and decoders indexed by domain and a critic with a head per domain: what the
  mix-and-match model and the per-pair CycleGAN share (building, variables, checkpointing)."""

  def __init__(self, domains, width=64, critic_width=32, res_blocks=0):
    self.encoders = DomainEncoders(domains, width, res_blocks, name="encoders")
    self.decoders = DomainDecoders(domains, width, name="decoders")
    self.critic = MultiHeadPatchCritic(domains, critic_width, name="critic")

  def build(self, resolution=32):
    x = tf.zeros([1, resolution, resolution, 3])
    self.decoders(self.encoders(x, domain=0), domain=0)
    self.critic(x, domain=0)
    return self

  @property
  def generator_variables(self):
    return self.encoders.trainable_variables + self.decoders.trainable_variables

  def trackables(self):
    return {"encoders": self.encoders, "decoders": self.decoders, "critic": self.critic}


class DomainMixMatch(DomainNetworks):
  """N domain encoders and decoders through one latent, and the N-head critic."""

  def __init__(self, domains, width=64, critic_width=32, cycle_weight=10.0, latent_weight=1.0,
               rec_weight=10.0, res_blocks=0):
    super().__init__(domains, width, critic_width, res_blocks)
    self.num_domains = domains
    self.cycle_weight, self.latent_weight, self.rec_weight = cycle_weight, latent_weight, rec_weight

  def translate(self, x, src, dst):
    return self.decoders(self.encoders(x, domain=src), domain=dst)

  def step(self, g_opt, d_opt):
    """tf.function (x_a, x_b, a, b) -> losses, for images in [-1, 1] of domains a and b."""

    def mse(x, value):
      return tf.reduce_mean(tf.square(x - value))

    @tf.function
    def step(xa, xb, a, b):
      enc = lambda x, d: self.encoders(x, domain=d)
      dec = lambda z, d: self.decoders(z, domain=d)
      critic = lambda x, d: self.critic(x, domain=d)
      with tf.GradientTape() as tape:
        za, zb = enc(xa, a), enc(xb, b)
        fake_b, fake_a = dec(za, b), dec(zb, a)
        rec = tf.reduce_mean(tf.abs(dec(za, a) - xa)) + tf.reduce_mean(tf.abs(dec(zb, b) - xb))
        zfb, zfa = enc(fake_b, b), enc(fake_a, a)
        cyc = tf.reduce_mean(tf.abs(dec(zfb, a) - xa)) + tf.reduce_mean(tf.abs(dec(zfa, b) - xb))
        lat = mse(zfb, za) + mse(zfa, zb)
        adv = mse(critic(fake_b, b), 1.0) + mse(critic(fake_a, a), 1.0)
        g_loss = adv + self.rec_weight * rec + self.cycle_weight * cyc + self.latent_weight * lat
      variables = self.generator_variables
      precision.minimize(tape, g_loss, variables, g_opt)
      with tf.GradientTape() as tape:
        d_loss = 0.5 * (mse(critic(xb, b), 1.0) + mse(critic(fake_b, b), 0.0) +
                        mse(critic(xa, a), 1.0) + mse(critic(fake_a, a), 0.0))
      variables = self.critic.trainable_variables
      precision.minimize(tape, d_loss, variables, d_opt)
      return {"g_loss": g_loss, "d_loss": d_loss, "rec": rec, "cycle": cyc, "latent": lat}

    return step


def star_pairs(anchor, num_domains):
  """Ordered training pairs: domain `anchor` <-> every other domain."""
  others = [i for i in range(num_domains) if i != anchor]
  return [(anchor, o) for o in others] + [(o, anchor) for o in others]


def all_pairs(num_domains):
  """Every ordered pair of distinct domains."""
  return [(a, b) for a in range(num_domains) for b in range(num_domains) if a != b]


class DomainBatches:
  """Deterministic batches for step s: an ordered training pair (a, b), a batch of domain a's
  images and one of b's (independent draws: unpaired), as (x_a, x_b, a, b)."""

  def __init__(self, domains, pairs, batch, seed, start):
    self.domains, self.pairs, self.batch, self.seed, self.step = domains, pairs, batch, seed, start

  def __next__(self):
    rng = np.random.default_rng([self.seed, self.step])
    self.step += 1
    a, b = self.pairs[rng.integers(len(self.pairs))]
    pick = lambda d: to_model(self.domains[d][rng.integers(0, len(self.domains[d]), self.batch)])
    return (tf.constant(pick(a)), tf.constant(pick(b)), tf.constant(a, tf.int32),
            tf.constant(b, tf.int32))


class PairCycleGAN(DomainNetworks):
  """CycleGAN for one domain pair (a, b): G_ab and G_ba (an encoder and a decoder each, the
  networks of `DomainMixMatch`), a critic head per domain; LSGAN, cycle consistency. Index 0:
  a -> b and the critic of b; index 1: b -> a and the critic of a."""

  def __init__(self, width=64, critic_width=32, cycle_weight=10.0, res_blocks=0):
    super().__init__(2, width, critic_width, res_blocks)
    self.cycle_weight = cycle_weight

  def translate(self, x, direction):
    """direction 0: a -> b, 1: b -> a."""
    return self.decoders(self.encoders(x, domain=direction), domain=direction)

  def step(self, g_opt, d_opt):
    """tf.function (x_a, x_b, a, b) -> losses; x_a of domain a, x_b of b (the indices come
    with `DomainBatches` and are not used: the pair is fixed)."""

    def mse(x, value):
      return tf.reduce_mean(tf.square(x - value))

    @tf.function
    def step(xa, xb, a=0, b=1):
      del a, b
      with tf.GradientTape() as tape:
        fake_b, fake_a = self.translate(xa, 0), self.translate(xb, 1)
        cyc = (tf.reduce_mean(tf.abs(self.translate(fake_b, 1) - xa)) +
               tf.reduce_mean(tf.abs(self.translate(fake_a, 0) - xb)))
        adv = mse(self.critic(fake_b, domain=0), 1.0) + mse(self.critic(fake_a, domain=1), 1.0)
        g_loss = adv + self.cycle_weight * cyc
      precision.minimize(tape, g_loss, self.generator_variables, g_opt)
      with tf.GradientTape() as tape:
        d_loss = 0.5 * (mse(self.critic(xb, domain=0), 1.0) +
                        mse(self.critic(fake_b, domain=0), 0.0) +
                        mse(self.critic(xa, domain=1), 1.0) +
                        mse(self.critic(fake_a, domain=1), 0.0))
      precision.minimize(tape, d_loss, self.critic.trainable_variables, d_opt)
      return {"g_loss": g_loss, "d_loss": d_loss, "cycle": cyc}

    return step


def to_model(images):
  return np.asarray(images, np.float32) / 127.5 - 1.0


def from_model(x):
  return preprocess.unscale(x).numpy()
