"""R-EWC rotations: Kronecker factors of each layer's Fisher, their eigenbases, and the
re-parameterised network.

For a layer y = x W + b, the Fisher block of W is approximated by E[x^T x] (x) E[g^T g] with x the
layer's input and g = d log p(y_hat|x) / dy the gradient at its pre-activation output, y_hat
sampled from the model (K-FAC). Rotating W' = U1^T W U2 with U1, U2 the eigenvectors of the two
factors makes that approximation diagonal. Convolutions use channel factors (second moments over
all spatial positions; the paper's code) or im2col patch factors (EKFAC).

Eigen-decompositions run in NumPy float64 (tf.linalg.eigh is slower and less accurate on CPU),
on one BLAS thread: OpenBLAS's threads wait for each other by spinning, and on a CPU shared with
TensorFlow's threads or other jobs two threads made eigh of an 84 x 84 factor take 150 ms
instead of 0.6 ms, of a 400 x 400 one 90-230 ms instead of 33 ms, of a 1024 x 1024 one 6.8 s
instead of 0.52 s (AMD EPYC, 2 cores, loaded).
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import threadpoolctl

from lamp_tf.continual import fisher as fisher_lib
from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense

VARIANTS = ("fc", "conv", "all", "all_no_last")
OUTPUT_ROTATIONS = ("paper", "reference_code")
PLAIN = (keras.layers.Dense, keras.layers.Conv2D)
ROTATED = (RotatedDense, RotatedConv2D)


def layers_to_rotate(model, variant):
  """Names of the Dense/Conv2D layers a variant rotates ('fc', 'conv', 'all', 'all_no_last')."""
  if variant not in VARIANTS:
    raise ValueError(f"--rotate={variant!r}: choose from {', '.join(VARIANTS)}.")
  dense = [l.name for l in model.layers if isinstance(l, (keras.layers.Dense, RotatedDense))]
  conv = [l.name for l in model.layers if isinstance(l, (keras.layers.Conv2D, RotatedConv2D))]
  if variant == "fc":
    return dense
  if variant == "conv":
    return conv
  if variant == "all":
    return conv + dense
  return conv + dense[:-1]


def _batch_stats_function(model, names, factor, class_mask, x):
  """The compiled (x, seed) -> {name: (a^T a, g^T g)} of a batch like `x`, once per model."""

  def build(model_ref):

    def batch_stats(x, labels, seed):
      model = model_ref()
      inputs, grads, _ = fisher_lib.record(model, x, names, class_mask, labels, seed)
      stats = {}
      for name in names:
        layer = model.get_layer(name)
        a, g = inputs[name], grads[name]
        if isinstance(layer, keras.layers.Conv2D) and factor == "patch":
          a = fisher_lib.patches(layer, a)
        a = tf.reshape(a, [-1, a.shape[-1]])
        g = tf.reshape(g, [-1, g.shape[-1]])
        stats[name] = (tf.matmul(a, a, transpose_a=True), tf.matmul(g, g, transpose_a=True))
      return stats

    return fisher_lib.batch_function(batch_stats, x)

  key = ("kronecker", tuple(sorted(names)), factor, fisher_lib.mask_key(class_mask),
         fisher_lib.batch_key(x))
  return fisher_lib.compiled(model, key, build)


def kronecker_factors(model, images, names, *, seed=0, class_mask=None, factor="channel",
                      batch_size=100):
  """{layer name: (L, M)} uncentred second moments (float64, symmetric) of inputs and output
  gradients.

  `model` is a plain Sequential; labels are sampled from the model (true Fisher). Batch b
  samples with seed [seed, b]. Convolutions: second moments over all spatial positions of the
  channels ('channel') or of the im2col patches ('patch').
  """
  names = frozenset(names)
  sums = {}
  n = len(images)
  for b, start in enumerate(range(0, n, batch_size)):
    x = tf.convert_to_tensor(images[start:start + batch_size])
    batch_stats = _batch_stats_function(model, names, factor, class_mask, x)
    for name, (l, m) in batch_stats(x, tf.constant([seed, b], tf.int64)).items():
      l, m = l.numpy().astype(np.float64), m.numpy().astype(np.float64)
      sums[name] = (sums[name][0] + l, sums[name][1] + m) if name in sums else (l, m)
  # Symmetric by definition; a float32 a^T a is not quite (its (i, j) and (j, i) entries are
  # summed in different orders), so the average with its transpose, as eigenbases takes it.
  sym = lambda s: (s / n + (s / n).T) / 2
  return {name: (sym(l), sym(m)) for name, (l, m) in sums.items()}


@functools.cache
def _blas():
  """threadpoolctl's handle on the loaded BLAS libraries (finding them reads /proc: once)."""
  return threadpoolctl.ThreadpoolController()


def eigenbases(factors, output_rotation="paper"):
  """{name: (U1, U2)}: eigenvectors (columns, by decreasing eigenvalue) of L and M.

  'paper': W' = U1^T W U2, which diagonalises the Kronecker-factored Fisher. 'reference_code'
  returns U2^T in place of U2: the authors' code (xialeiliu/RotateNetworks,
  utils/lenet_utils.py `compute_svd`) stores Wp = U1^T W U2^T and computes x U1 Wp U2, so its
  output side is rotated by U2^T, which leaves that side's Fisher undiagonalised.
  """
  if output_rotation not in OUTPUT_ROTATIONS:
    raise ValueError(f"--output_rotation={output_rotation!r}: choose one of "
                     f"{', '.join(OUTPUT_ROTATIONS)}.")

  def basis(a):
    _, vectors = np.linalg.eigh((a + a.T) / 2)
    return vectors[:, ::-1]

  def output_basis(m):
    return basis(m) if output_rotation == "paper" else basis(m).T

  with _blas().limit(limits=1, user_api="blas"):
    return {name: (basis(l), output_basis(m)) for name, (l, m) in factors.items()}


def rotate_kernel(kernel, u1, u2, conv_factor="channel"):
  """W' = U1^T W U2 (per tap for channel-factored convolutions)."""
  if kernel.ndim == 4 and conv_factor == "channel":
    return np.einsum("ij,hwjk,kl->hwil", u1.T, kernel, u2)
  if kernel.ndim == 4:
    kh, kw, c_in, c_out = kernel.shape
    return u1.T @ kernel.reshape(kh * kw * c_in, c_out) @ u2
  return u1.T @ kernel @ u2


def unrotate_kernel(kernel, u1, u2, shape):
  """W = U1 W' U2^T, reshaped to the plain layer's kernel `shape`."""
  if kernel.ndim == 4:
    return np.einsum("ij,hwjk,kl->hwil", u1, kernel, u2.T)
  return (u1 @ kernel @ u2.T).reshape(shape)


def rotated_copy(model, names, factor="channel"):
  """A Sequential where the layers `names` are Rotated* (identity rotations), others shared
  config; the weights are copied (the function is the same)."""
  layers = [keras.Input(model.input_shape[1:])]
  for layer in model.layers:
    if layer.name in names and isinstance(layer, keras.layers.Dense):
      layers.append(RotatedDense(layer.units, name=layer.name))
    elif layer.name in names and isinstance(layer, keras.layers.Conv2D):
      layers.append(RotatedConv2D(layer.filters, layer.kernel_size, layer.strides, layer.padding,
                                  factor=factor, name=layer.name))
    else:
      layers.append(layer.__class__.from_config(layer.get_config()))
  rotated = keras.Sequential(layers, name=f"{model.name}_rotated")
  set_plain_weights(rotated, model)
  return rotated


def plain_copy(model):
  """A plain Sequential (Dense/Conv2D) computing the same function as a rotated one."""
  layers = [keras.Input(model.input_shape[1:])]
  for layer in model.layers:
    if isinstance(layer, RotatedDense):
      layers.append(keras.layers.Dense(layer.units, name=layer.name))
    elif isinstance(layer, RotatedConv2D):
      layers.append(keras.layers.Conv2D(layer.filters, layer.kernel_size, layer.strides,
                                        layer.padding.lower(), name=layer.name))
    else:
      layers.append(layer.__class__.from_config(layer.get_config()))
  plain = keras.Sequential(layers, name=model.name.replace("_rotated", ""))
  for src, dst in zip(model.layers, plain.layers):
    if isinstance(src, ROTATED):
      dst.kernel.assign(unrotate_kernel(src.kernel.numpy().astype(np.float64),
                                        src.u1.numpy().astype(np.float64),
                                        src.u2.numpy().astype(np.float64), dst.kernel.shape))
      dst.bias.assign(src.bias.numpy())
    else:
      dst.set_weights(src.get_weights())
  return plain


def set_plain_weights(rotated, plain):
  """Loads a plain model's weights into a rotated model, in its current bases."""
  for dst, src in zip(rotated.layers, plain.layers):
    if isinstance(dst, ROTATED):
      factor = getattr(dst, "factor", "channel")
      dst.kernel.assign(rotate_kernel(src.kernel.numpy().astype(np.float64),
                                      dst.u1.numpy().astype(np.float64),
                                      dst.u2.numpy().astype(np.float64), factor))
      dst.bias.assign(src.bias.numpy())
    else:
      dst.set_weights(src.get_weights())


def set_bases(rotated, bases):
  """Changes the rotations of a rotated model in place, keeping its function."""
  plain = plain_copy(rotated)
  for layer in rotated.layers:
    if isinstance(layer, ROTATED):
      u1, u2 = bases[layer.name]
      layer.u1.assign(u1)
      layer.u2.assign(u2)
  set_plain_weights(rotated, plain)


def compute_bases(rotated, images, *, seed=0, class_mask=None, batch_size=100,
                  output_rotation="paper"):
  """Eigenbases of the Kronecker factors of every rotated layer of `rotated` on `images`."""
  names = [l.name for l in rotated.layers if isinstance(l, ROTATED)]
  factor = next((l.factor for l in rotated.layers if isinstance(l, RotatedConv2D)), "channel")
  factors = kronecker_factors(plain_copy(rotated), images, names, seed=seed,
                              class_mask=class_mask, factor=factor, batch_size=batch_size)
  return eigenbases(factors, output_rotation)
