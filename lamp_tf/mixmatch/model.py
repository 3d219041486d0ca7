"""Mix-and-match networks: one encoder and one decoder per modality, assembled on demand.

Any encoder feeds any decoder through the shared latent; the decoder uses the side information
of the encoder that fed it. Trained translations and autoencoders align the latents; at test
time untrained combinations run too:
- zero-pair depth -> segmentation: the depth encoder into the segmentation decoder;
- cascade depth -> RGB -> segmentation;
- multi-modal (RGB, depth) -> segmentation: the two latents averaged, the RGB encoder's side
  information.
"""

import tensorflow as tf

from lamp_tf.data import rgbd
from lamp_tf.nets import segnet

MODALITIES = rgbd.MODALITIES


class MixMatch:
  """Encoders and decoders by modality (`encoders['depth']`, `decoders['seg']`, ...)."""

  def __init__(self, widths=(32, 64, 128, 128), side_info="indices", modalities=MODALITIES):
    self.side_info, self.modalities = side_info, tuple(modalities)
    self.encoders = {m: segnet.Encoder(widths, name=f"enc_{m}") for m in modalities}
    self.decoders = {m: segnet.Decoder(m, rgbd.CHANNELS[m], widths, side_info, name=f"dec_{m}")
                     for m in modalities}

  def build(self, resolution):
    for m in self.modalities:
      latent, side = self.encoders[m](tf.zeros([1, resolution, resolution, rgbd.CHANNELS[m]]))
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

  def translate(self, x, src, dst, training=False):
    """Encoded input of modality `src` -> decoder output of modality `dst`."""
    latent, side = self.encoders[src](x, training=training)
    return self.decoders[dst](latent, side, training=training)

  def fuse(self, inputs, dst, side_from="rgb", training=False):
    """{modality: encoded input} -> `dst`, averaging the latents."""
    encoded = {m: self.encoders[m](x, training=training) for m, x in inputs.items()}
    latent = tf.add_n([z for z, _ in encoded.values()]) / len(encoded)
    return self.decoders[dst](latent, encoded[side_from][1], training=training)

  def cascade(self, x, path, training=False):
    """Chains translations, e.g. path ('depth', 'rgb', 'seg'); returns the last output."""
    for src, dst in zip(path[:-1], path[1:]):
      x = self.translate(x, src, dst, training=training)
      if dst == "seg":  # a segmentation fed on becomes one-hot of its argmax
        x = tf.one_hot(tf.argmax(x, axis=-1), rgbd.NUM_CLASSES) if dst != path[-1] else x
    return x
