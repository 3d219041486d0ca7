"""SegNet-style encoders and decoders for mix-and-match networks.

`Encoder`: VGG-like blocks of 3x3 conv-BN-ReLU (two per block) each followed by a 2x2 max pool
that also returns its argmax indices (each max's position in its window). It returns the latent (the last pooled map) and the side
information of every block: the pooling indices and the pre-pool feature map.

`Decoder`: the mirror image. Before each block it upsamples by 2 using the side information of
whichever encoder fed it (`side_info`):
- 'indices': unpool, i.e. put each value back where the encoder's max came from (SegNet);
- 'skip': nearest-neighbour upsampling, then concatenate the encoder's feature map (U-Net);
- 'none': nearest-neighbour upsampling only.
Heads: 'seg' class logits, 'depth' one channel, 'rgb' three channels in [-1, 1] (tanh).
Batch norm is synchronized so MirroredStrategy replicas share statistics. Outside training,
`bn_stats='batch'` normalises with the batch's own moments (the reference's `batch_norm`
never sets is_training, so it does at test too) instead of the moving averages.
"""

import keras
import tensorflow as tf

from lamp_tf.nets.common import attach

SIDE_INFO = ("indices", "skip", "none")
L = keras.layers


class ConvBlock(L.Layer):
  """`convs` 3x3 conv-BN-ReLU layers."""

  def __init__(self, filters, convs=2, **kwargs):
    super().__init__(**kwargs)
    self._convs = attach(self, "conv", [L.Conv2D(filters, 3, padding="same", use_bias=False)
                                         for _ in range(convs)])
    self._norms = attach(self, "bn", [L.BatchNormalization(synchronized=True)
                                      for _ in range(convs)])

  def call(self, x, training=False, bn_stats=None):
    for conv, bn in zip(self._convs, self._norms):
      x = tf.nn.relu(batch_norm(getattr(self, bn), getattr(self, conv)(x), training, bn_stats))
    return x


def batch_norm(layer, x, training=False, bn_stats=None):
  """A Keras BatchNormalization layer applied in training mode, with moving averages, or
  (`bn_stats='batch'`, not training) with the batch's own moments and no update."""
  if training or bn_stats is None:
    return layer(x, training=training)
  if bn_stats != "batch":
    raise ValueError(f"bn_stats must be None or 'batch', not {bn_stats!r}.")
  h = tf.cast(x, tf.float32)
  mean, var = tf.nn.moments(h, axes=list(range(len(x.shape) - 1)))
  return tf.cast(tf.nn.batch_normalization(h, mean, var, layer.beta, layer.gamma,
                                           layer.epsilon), x.dtype)


def max_pool_with_positions(x):
  """2x2 max pooling that also returns where each max came from: `(pooled, positions)`, the
  position within its window (0 top left, 1 top right, 2 bottom left, 3 bottom right) per
  pooled value and channel. The first maximum in that order wins a tie, as in
  tf.nn.max_pool_with_argmax, whose values and gradients these are. Written in ops with TFLite
  builtin kernels (max pooling, space-to-depth, argmax), so that exported translators convert;
  `unpool` inverts it."""
  h, w, c = x.shape[1], x.shape[2], x.shape[3]
  windows = tf.reshape(tf.nn.space_to_depth(x, 2), [-1, h // 2, w // 2, 4, c])
  return tf.nn.max_pool2d(x, 2, 2, "VALID"), tf.argmax(windows, axis=3, output_type=tf.int32)


def unpool(x, positions):
  """Max-unpooling (SegNet): each value of x put back at its window's `positions` (from
  `max_pool_with_positions`), zeros elsewhere; 2x the height and width."""
  h, w, c = x.shape[1], x.shape[2], x.shape[3]
  placed = x[:, :, :, None, :] * tf.one_hot(positions, 4, axis=3, dtype=x.dtype)
  return tf.nn.depth_to_space(tf.reshape(placed, [-1, h, w, 4 * c]), 2)


def upsample(x):
  """Nearest-neighbour 2x upsampling (each value repeated in its 2x2 window), in ops with
  static shapes and TFLite builtin kernels, as `unpool`."""
  return tf.nn.depth_to_space(tf.concat([x] * 4, axis=-1), 2)


class Encoder(keras.Model):

  def __init__(self, widths=(32, 64, 128, 128), **kwargs):
    super().__init__(**kwargs)
    self.widths = tuple(widths)
    self._blocks = attach(self, "block", [ConvBlock(w, name=f"block{i + 1}")
                                          for i, w in enumerate(widths)])

  def call(self, x, training=False, bn_stats=None):
    """(latent, side): side[i] holds block i's pooling indices (each max's position in its
    2x2 window, `max_pool_with_positions`), pre-pool features and the pooled output ('pooled',
    the levels the latent alignment compares)."""
    side = []
    for name in self._blocks:
      x = getattr(self, name)(x, training=training, bn_stats=bn_stats)
      pooled, positions = max_pool_with_positions(x)
      side.append({"indices": positions, "features": x, "pooled": pooled})
      x = pooled
    return x, side


class Decoder(keras.Model):

  def __init__(self, head, out_channels, widths=(32, 64, 128, 128), side_info="indices",
               **kwargs):
    super().__init__(**kwargs)
    if side_info not in SIDE_INFO:
      raise ValueError(f"--side_info={side_info!r}: choose one of {', '.join(SIDE_INFO)}.")
    self.head, self.side_info = head, side_info
    # Decoder block i (deepest first) ends with the channels of the next shallower encoder block,
    # so the next unpooling gets the channel count its indices were made with.
    outs = list(reversed(widths))[1:] + [widths[0]]
    self._blocks = attach(self, "block", [ConvBlock(w, name=f"block{i + 1}")
                                          for i, w in enumerate(outs)])
    self.out = L.Conv2D(out_channels, 3, padding="same", name="out", dtype="float32")

  def call(self, latent, side, training=False, bn_stats=None):
    x = latent
    for name, info in zip(self._blocks, reversed(side)):
      if self.side_info == "indices":
        x = unpool(x, info["indices"])
      else:
        x = upsample(x)
        if self.side_info == "skip":
          x = tf.concat([x, info["features"]], axis=-1)
      x = getattr(self, name)(x, training=training, bn_stats=bn_stats)
    x = self.out(x)
    return tf.tanh(x) if self.head == "rgb" else x
