"""Layers re-parameterised by fixed rotations (R-EWC).

`RotatedDense` computes `y = ((x U1) W') U2^T + b`: fixed, non-trainable input and output maps
`U1` and `U2^T` around the trainable kernel `W'`; the bias is not rotated. With
`W' = U1^T W U2` it computes the same function as `Dense(W, b)`.

`RotatedConv2D` does the same for convolutions:
- factor 'channel' (the paper's reference code): U1 is C_in x C_in and U2 C_out x C_out, applied
  as 1x1 convolutions before and after the convolution with the rotated kernel
  `K'[h, w] = U1^T K[h, w] U2`;
- factor 'patch' (EKFAC's im2col factors): U1 is (kh kw C_in) x (kh kw C_in) and acts on the
  flattened patch; the trainable kernel is `W' = U1^T K_flat U2`, and the layer convolves with
  the fixed-map-times-kernel `reshape(U1 W')` (the same linear map as rotating every patch,
  without materialising the patches), then applies U2^T as a 1x1 convolution.
"""

import keras
import numpy as np
import tensorflow as tf

FACTORS = ("channel", "patch")


def _fixed(layer, name, n):
  return layer.add_weight(name=name, shape=(n, n), initializer="identity", trainable=False)


class RotatedDense(keras.layers.Layer):
  """Dense layer with fixed rotations around its trainable kernel."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def build(self, input_shape):
    n_in = int(input_shape[-1])
    self.u1 = _fixed(self, "u1", n_in)
    self.kernel = self.add_weight(name="kernel", shape=(n_in, self.units),
                                  initializer="glorot_uniform")
    self.u2 = _fixed(self, "u2", self.units)
    self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

  def call(self, x):
    y = tf.matmul(tf.matmul(tf.matmul(x, self.u1), self.kernel), self.u2, transpose_b=True)
    return y + self.bias

  def get_config(self):
    return {**super().get_config(), "units": self.units}


class RotatedConv2D(keras.layers.Layer):
  """Conv2D with fixed rotations around its trainable kernel (stride/padding as Conv2D)."""

  def __init__(self, filters, kernel_size, strides=1, padding="valid", factor="channel",
               **kwargs):
    super().__init__(**kwargs)
    if factor not in FACTORS:
      raise ValueError(f"rotation factor must be one of {FACTORS}, not {factor!r}.")
    self.filters, self.factor = filters, factor
    self.kernel_size = tuple(np.broadcast_to(kernel_size, 2).tolist())
    self.strides = tuple(np.broadcast_to(strides, 2).tolist())
    self.padding = padding.upper()

  def build(self, input_shape):
    c_in = int(input_shape[-1])
    kh, kw = self.kernel_size
    if self.factor == "channel":
      self.u1 = _fixed(self, "u1", c_in)
      shape = (kh, kw, c_in, self.filters)
    else:
      self.u1 = _fixed(self, "u1", kh * kw * c_in)
      shape = (kh * kw * c_in, self.filters)
    self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
    self.u2 = _fixed(self, "u2", self.filters)
    self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
    self.c_in = c_in

  def call(self, x):
    kh, kw = self.kernel_size
    if self.factor == "channel":
      x = tf.nn.conv2d(x, self.u1[None, None], 1, "VALID")
      kernel = self.kernel
    else:
      kernel = tf.reshape(tf.matmul(self.u1, self.kernel), [kh, kw, self.c_in, self.filters])
    y = tf.nn.conv2d(x, kernel, self.strides, self.padding)
    y = tf.nn.conv2d(y, tf.transpose(self.u2)[None, None], 1, "VALID")
    return y + self.bias

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "strides": self.strides, "padding": self.padding.lower(), "factor": self.factor}
