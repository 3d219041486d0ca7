"""Baselines trained on the same data as mix-and-match.

- pix2pix cascade: two paired translators with skip connections (U-Nets: an encoder and a
  decoder with side_info='skip'), depth -> RGB trained on the (RGB, depth) pairs and RGB ->
  segmentation on the (RGB, segmentation) pairs, chained at test time. With a discriminator
  (`paired_step(disc=...)`) it is pix2pix (Isola et al. 2017): a conditional PatchGAN on
  (input, output) with the non-saturating GAN loss plus 100 x the reconstruction (L1 for RGB,
  cross-entropy for segmentation); without, the reconstruction alone.
- `CycleGAN`: unpaired depth <-> segmentation translators (U-Nets) with PatchGAN
  discriminators, LSGAN losses and cycle consistency (weight 10), trained on the depth maps of
  the (RGB, depth) scenes and the segmentations of the (RGB, segmentation) scenes, which are
  never paired.
"""

import keras
import tensorflow as tf

from lamp_tf.data import rgbd
from lamp_tf.mixmatch import losses
from lamp_tf.nets import segnet
from lamp_tf.nets.common import attach
from lamp_tf.runtime import precision

L = keras.layers


class UNet:
  """src -> dst translator: an encoder and a skip-connection decoder."""

  def __init__(self, src, dst, widths, name):
    self.src, self.dst = src, dst
    self.encoder = segnet.Encoder(widths, name=f"{name}_enc")
    self.decoder = segnet.Decoder(dst, rgbd.CHANNELS[dst], widths, "skip", name=f"{name}_dec")

  def build(self, resolution):
    z, side = self.encoder(tf.zeros([1, resolution, resolution, rgbd.CHANNELS[self.src]]))
    self.decoder(z, side)
    return self

  def __call__(self, x, training=False):
    z, side = self.encoder(x, training=training)
    return self.decoder(z, side, training=training)

  @property
  def trainable_variables(self):
    return self.encoder.trainable_variables + self.decoder.trainable_variables

  def trackables(self, prefix):
    return {f"{prefix}_enc": self.encoder, f"{prefix}_dec": self.decoder}


def paired_step(unet, optimizer, global_batch, disc=None, d_opt=None, recon_weight=100.0):
  """Replica step on one paired batch: the reconstruction (L1 for RGB and depth, cross-entropy
  for segmentation), and with `disc` pix2pix's conditional GAN (see the module docstring)."""
  bce = lambda logits, label: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      tf.fill(tf.shape(logits), label), logits), axis=[1, 2, 3])

  def step(batches, seed):
    del seed
    (batch,) = batches
    x = batch[unet.src]
    tgt = batch["seg_labels"] if unet.dst == "seg" else batch[unet.dst]
    real = batch[unet.dst]  # one-hot for segmentation
    as_image = lambda y: tf.nn.softmax(y) if unet.dst == "seg" else y
    out = {}
    with tf.GradientTape() as tape:
      pred = unet(x, training=True)
      recon = tf.reduce_sum(losses.reconstruction(unet.dst, pred, tgt)) / global_batch
      loss = recon
      if disc is not None:
        with tf.GradientTape() as d_tape:
          fake = tf.stop_gradient(as_image(pred))
          d_loss = tf.reduce_sum(bce(disc(tf.concat([x, real], -1)), 1.0) +
                                 bce(disc(tf.concat([x, fake], -1)), 0.0)) * 0.5 / global_batch
        d_vars = disc.trainable_variables
        precision.minimize(d_tape, d_loss, d_vars, d_opt)
        gan = tf.reduce_sum(bce(disc(tf.concat([x, as_image(pred)], -1)), 1.0)) / global_batch
        loss = gan + recon_weight * recon
        out = {"d_loss": d_loss, "gan": gan}
    variables = unet.trainable_variables
    precision.minimize(tape, loss, variables, optimizer)
    return {"loss": loss, "recon": recon, **out}

  return step


class PatchDiscriminator(keras.Model):
  """70x70-style PatchGAN, scaled down: strided 4x4 convolutions to a map of patch scores."""

  def __init__(self, width=32, **kwargs):
    super().__init__(**kwargs)
    self._convs = attach(self, "conv", [L.Conv2D(width * 2 ** i, 4, 2, padding="same")
                                        for i in range(3)])
    self.out = L.Conv2D(1, 3, padding="same", name="out", dtype="float32")

  def call(self, x):
    for name in self._convs:
      x = tf.nn.leaky_relu(getattr(self, name)(x), 0.2)
    return self.out(x)


class CycleGAN:
  """Unpaired depth <-> segmentation."""

  def __init__(self, widths, disc_width=32, cycle_weight=10.0):
    self.d2s = UNet("depth", "seg", widths, "cyc_d2s")
    self.s2d = UNet("seg", "depth", widths, "cyc_s2d")
    self.disc_seg = PatchDiscriminator(disc_width, name="disc_seg")
    self.disc_depth = PatchDiscriminator(disc_width, name="disc_depth")
    self.cycle_weight = cycle_weight

  def build(self, resolution):
    self.d2s.build(resolution)
    self.s2d.build(resolution)
    self.disc_seg(tf.zeros([1, resolution, resolution, rgbd.NUM_CLASSES]))
    self.disc_depth(tf.zeros([1, resolution, resolution, 1]))
    return self

  @property
  def generator_variables(self):
    return self.d2s.trainable_variables + self.s2d.trainable_variables

  @property
  def discriminator_variables(self):
    return self.disc_seg.trainable_variables + self.disc_depth.trainable_variables

  def trackables(self):
    return {**self.d2s.trackables("d2s"), **self.s2d.trackables("s2d"),
            "disc_seg": self.disc_seg, "disc_depth": self.disc_depth}

  def step(self, g_opt, d_opt, global_batch):
    """Replica step on (segmentation batch, depth batch) from different scenes."""

    def per_example_mse(x, value):
      return tf.reduce_mean(tf.square(x - value), axis=[1, 2, 3])

    def step(batches, seed):
      del seed
      seg_batch, depth_batch = batches
      seg, labels, depth = seg_batch["seg"], seg_batch["seg_labels"], depth_batch["depth"]
      with tf.GradientTape() as tape:
        fake_seg = tf.nn.softmax(self.d2s(depth, training=True))
        fake_depth = self.s2d(seg, training=True)
        adv = per_example_mse(self.disc_seg(fake_seg), 1.0) + per_example_mse(
            self.disc_depth(fake_depth), 1.0)
        cyc_depth = losses.l1(self.s2d(fake_seg, training=True), depth)
        cyc_seg = losses.segmentation(self.d2s(fake_depth, training=True), labels)
        g_loss = tf.reduce_sum(adv + self.cycle_weight * (cyc_depth + cyc_seg)) / global_batch
      variables = self.generator_variables
      precision.minimize(tape, g_loss, variables, g_opt)
      with tf.GradientTape() as tape:
        d_loss = (per_example_mse(self.disc_seg(seg), 1.0) +
                  per_example_mse(self.disc_seg(tf.stop_gradient(fake_seg)), 0.0) +
                  per_example_mse(self.disc_depth(depth), 1.0) +
                  per_example_mse(self.disc_depth(tf.stop_gradient(fake_depth)), 0.0))
        d_loss = 0.5 * tf.reduce_sum(d_loss) / global_batch
      variables = self.discriminator_variables
      precision.minimize(tape, d_loss, variables, d_opt)
      return {"g_loss": g_loss, "d_loss": d_loss,
              "cycle": tf.reduce_sum(cyc_depth + cyc_seg) / global_batch}

    return step
