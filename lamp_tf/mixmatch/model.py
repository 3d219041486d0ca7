"""Mix-and-match networks: one encoder and one decoder per modality, assembled on demand.

Any encoder feeds any decoder through the shared latent; the decoder uses the side information
of the encoder that fed it. Trained translations and autoencoders align the latents; at test
time untrained combinations run too:
- zero-pair depth -> segmentation: the depth encoder into the segmentation decoder;
- cascade depth -> RGB -> segmentation;
- multi-modal (RGB, depth) -> segmentation: the two latents averaged, the RGB encoder's side
  information.

Choices after the authors' code (yaxingwang/Mix-and-match-networks, `RGBD/model.py`), the
defaults:
- `test_bn='batch'`: the reference's `batch_norm` never sets is_training, so every pass, test
  included, normalises with the batch's own moments; 'moving' uses the moving averages, which
  the segmentation decoder accumulated from RGB and segmentation latents only.
- `rgb_side_info='none'`: the reference's RGB decoder (`annotation2image_decoder`) upsamples
  with transposed convolutions and no side information; only the segmentation and depth
  decoders unpool with the encoder's indices. 'same' gives the RGB decoder `side_info` too.
"""

import keras
import tensorflow as tf

from lamp_tf.data import rgbd
from lamp_tf.nets import segnet
from lamp_tf.nets.common import attach

MODALITIES = rgbd.MODALITIES
TEST_BN = ("batch", "moving")
RGB_SIDE_INFO = ("none", "same")


class MixMatch:
  """Encoders and decoders by modality (`encoders['depth']`, `decoders['seg']`, ...)."""

  def __init__(self, widths=(32, 64, 128, 128), side_info="indices", modalities=MODALITIES,
               test_bn="batch", rgb_side_info="none"):
    if test_bn not in TEST_BN:
      raise ValueError(f"--test_bn={test_bn!r}: choose one of {', '.join(TEST_BN)}.")
    if rgb_side_info not in RGB_SIDE_INFO:
      raise ValueError(f"--rgb_side_info={rgb_side_info!r}: choose one of "
                       f"{', '.join(RGB_SIDE_INFO)}.")
    self.side_info, self.modalities = side_info, tuple(modalities)
    self.test_bn, self.rgb_side_info = test_bn, rgb_side_info
    side = lambda m: "none" if m == "rgb" and rgb_side_info == "none" else side_info
    self.encoders = {m: segnet.Encoder(widths, name=f"enc_{m}") for m in modalities}
    self.decoders = {m: segnet.Decoder(m, rgbd.CHANNELS[m], widths, side(m), name=f"dec_{m}")
                     for m in modalities}

  def build(self, resolution):
    for m in self.modalities:
      latent, side = self.encoders[m](tf.zeros([2, resolution, resolution, rgbd.CHANNELS[m]]))
      self.decoders[m](latent, side)
    return self

  @property
  def trackables(self):
    """{name: model} for checkpoints."""
    return {**{f"enc_{m}": e for m, e in self.encoders.items()},
            **{f"dec_{m}": d for m, d in self.decoders.items()}}

  @property
  def trainable_variables(self):
    return [v for model in self.trackables.values() for v in model.trainable_variables]

  def _bn(self, training):
    return None if training or self.test_bn == "moving" else "batch"

  def encode(self, x, src, training=False):
    return self.encoders[src](x, training=training, bn_stats=self._bn(training))

  def decode(self, latent, side, dst, training=False):
    return self.decoders[dst](latent, side, training=training, bn_stats=self._bn(training))

  def translate(self, x, src, dst, training=False):
    """Encoded input of modality `src` -> decoder output of modality `dst`."""
    latent, side = self.encode(x, src, training)
    return self.decode(latent, side, dst, training)

  def fuse(self, inputs, dst, side_from="rgb", training=False):
    """{modality: encoded input} -> `dst`, averaging the latents."""
    encoded = {m: self.encode(x, m, training) for m, x in inputs.items()}
    latent = tf.add_n([z for z, _ in encoded.values()]) / len(encoded)
    return self.decode(latent, encoded[side_from][1], dst, training)

  def cascade(self, x, path, training=False):
    """Chains translations, e.g. path ('depth', 'rgb', 'seg'); returns the last output."""
    for src, dst in zip(path[:-1], path[1:]):
      x = self.translate(x, src, dst, training=training)
      if dst == "seg":  # a segmentation fed on becomes one-hot of its argmax
        x = tf.one_hot(tf.argmax(x, axis=-1), rgbd.NUM_CLASSES) if dst != path[-1] else x
    return x


class RGBDiscriminator(keras.Model):
  """The reference's discriminator of RGB outputs (`discriminator`): 5x5 convolutions with
  strides 2, 2, 2, 1 and widths w, 2w, 4w, 8w, batch norm after all but the first (always with
  the batch's moments, as the reference), LeakyReLU 0.2; its last feature map is the LSGAN
  score map (every position and channel a score)."""

  def __init__(self, width=32, **kwargs):
    super().__init__(**kwargs)
    attach(self, "conv", [keras.layers.Conv2D(width * 2 ** i, 5, 2 if i < 3 else 1,
                                              padding="same") for i in range(4)])
    self.bn2, self.bn3, self.bn4 = (keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                                                    synchronized=True,
                                                                    name=f"bn{i}")
                                    for i in (2, 3, 4))

  def call(self, x, training=True):
    del training  # batch moments always, as the reference
    x = tf.nn.leaky_relu(self.conv1(x), 0.2)
    for conv, bn in ((self.conv2, self.bn2), (self.conv3, self.bn3), (self.conv4, self.bn4)):
      x = tf.nn.leaky_relu(bn(conv(x), training=True), 0.2)
    return x
