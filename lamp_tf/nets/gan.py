"""GAN generators and critics.

- `dcgan_generator` / `dcgan_critic`: MeRGAN's small 32x32 networks. G: Linear z -> 4x4x128,
  BN + ReLU, three 5x5 stride-2 transposed convolutions 128 -> 64 -> 32 -> C, tanh. Critic:
  three 5x5 stride-2 convolutions C -> 32 -> 64 -> 128 with LeakyReLU 0.2, no normalisation,
  linear heads for the critic value and the AC-GAN classifier.
- `resnet_generator` / `resnet_critic`: the WGAN-GP ResNets of Transferring GANs (Gulrajani et
  al.): up-sampling residual blocks, BN in G, layer norm in the critic; width and resolution
  (32 or 64, any power of two from 8) are parameters.

Conditioning of G (`conditioning`): 'cbn' (conditional batch norm: per-class scale and shift),
'concat' (one-hot label concatenated to z) or None (unconditional). Critics are conditioned the
AC-GAN way, by the classifier head (`num_classes` outputs, none when unconditional).

Every model takes and returns dicts-free tensors: G(z, label) -> image in [-1, 1]; D(image) ->
(critic value [B], class logits [B, K] or None). Batch norm is `synchronized` so replicas of a
MirroredStrategy share statistics. Repeated layers are attributes of their own (`deconv1`,
`block2`, ...), never Python lists: Keras 3 does not checkpoint layers held in lists.
"""

import keras
import numpy as np
import tensorflow as tf

from lamp_tf.nets.common import attach

CONDITIONINGS = ("cbn", "concat", None)
L = keras.layers


MOMENTS = (None, "class", "calibrated")


def class_moments(x, labels, num_segments):
  """Per-class batch moments of x [B, ..., C]: (mean, variance) [num_segments, C], computed over
  the rows of each class and every spatial position (biased variance, as `tf.nn.moments`)."""
  axes = list(range(1, len(x.shape) - 1))
  ids = tf.cast(labels, tf.int32)
  per_row = float(np.prod([x.shape[a] for a in axes])) if axes else 1.0
  count = tf.math.unsorted_segment_sum(tf.ones_like(ids, x.dtype), ids, num_segments) * per_row
  count = tf.maximum(count, 1.0)[:, None]
  row_sum = tf.reduce_sum(x, axis=axes) if axes else x
  mean = tf.math.unsorted_segment_sum(row_sum, ids, num_segments) / count
  centred = x - tf.reshape(tf.gather(mean, ids), [-1] + [1] * len(axes) + [x.shape[-1]])
  sq = tf.reduce_sum(tf.square(centred), axis=axes) if axes else tf.square(centred)
  return mean, tf.math.unsorted_segment_sum(sq, ids, num_segments) / count


class ConditionalBatchNorm(L.Layer):
  """Batch norm whose scale and shift are looked up per class (plain affine BN when
  `num_classes` is None).

  Statistics (`moments` of `call`):
  - None: Keras batch norm: the whole batch's moments in training (moving averages updated),
    the moving averages (shared by all classes) in inference;
  - 'class': every row normalised with the moments of the rows of its own class in the batch,
    nothing updated. A batch of one class is exactly the reference's conditional batch norm
    (WuChenshen/MeRGAN `tflib/ops/cond_batchnorm.py`: `tf.nn.moments` over the batch, never
    moving averages), which samples one class per batch; mixed batches behave as one batch per
    class;
  - 'calibrated': per-class statistics stored by `calibrate_class_moments` (for serving: any
    batch, even a single row, gets what large single-class batches would).
  """

  def __init__(self, num_classes=None, momentum=0.9, epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.num_classes, self.momentum, self.epsilon = num_classes, momentum, epsilon
    self._calibrating = False

  def build(self, input_shape):
    channels = int(input_shape[-1])
    self.bn = L.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon, center=False,
                                   scale=False, synchronized=True, name="bn")
    self.bn.build(input_shape)
    rows = self.num_classes or 1
    self.gamma = self.add_weight(name="gamma", shape=(rows, channels), initializer="ones")
    self.beta = self.add_weight(name="beta", shape=(rows, channels), initializer="zeros")
    self.class_mean = self.add_weight(name="class_mean", shape=(rows, channels),
                                      initializer="zeros", trainable=False)
    self.class_var = self.add_weight(name="class_var", shape=(rows, channels),
                                     initializer="ones", trainable=False)

  def _rows(self, labels):
    return tf.zeros_like(labels) if self.num_classes is None or labels is None else labels

  def call(self, x, labels=None, training=False, moments=None):
    idx = self._rows(labels if labels is not None else tf.zeros(tf.shape(x)[:1], tf.int64))
    shape = [-1] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
    per_row = lambda table: tf.reshape(tf.gather(tf.cast(table, x.dtype), idx), shape)
    if moments is None:
      x = self.bn(x, training=training)
    elif moments in ("class", "calibrated"):
      h = tf.cast(x, tf.float32)  # moments in float32 under mixed precision
      if moments == "class":
        mean, var = class_moments(h, idx, self.num_classes or 1)
        if self._calibrating:
          present = tf.unique(tf.cast(idx, tf.int32))[0][:, None]
          for table, value in ((self.class_mean, mean), (self.class_var, var)):
            table.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(table), present,
                                                     tf.gather_nd(value, present)))
      else:
        mean, var = tf.convert_to_tensor(self.class_mean), tf.convert_to_tensor(self.class_var)
      rows = lambda table: tf.reshape(tf.gather(table, idx), shape)
      x = tf.cast((h - rows(mean)) * tf.math.rsqrt(rows(var) + self.epsilon), x.dtype)
    else:
      raise ValueError(f"batch-norm moments must be one of {MOMENTS}, not {moments!r}.")
    return x * per_row(self.gamma) + per_row(self.beta)

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes, "momentum": self.momentum,
            "epsilon": self.epsilon}


class Generator(keras.Model):
  """Base: handles conditioning of the input (concat) and passes labels to the blocks."""

  def __init__(self, num_classes=None, conditioning="cbn", z_dim=128, channels=1, **kwargs):
    super().__init__(**kwargs)
    if conditioning not in CONDITIONINGS:
      raise ValueError(f"conditioning must be one of {CONDITIONINGS}, not {conditioning!r}.")
    if num_classes is None:
      conditioning = None
    self.num_classes, self.conditioning = num_classes, conditioning
    self.z_dim, self.channels = z_dim, channels
    self.bn_classes = num_classes if conditioning == "cbn" else None

  def _input(self, z, labels):
    if self.conditioning == "concat":
      return tf.concat([z, tf.one_hot(labels, self.num_classes, dtype=z.dtype)], axis=1)
    return z

  def build_for_inputs(self):
    """Creates every weight by one call on a dummy batch."""
    self(tf.zeros([2, self.z_dim]), tf.zeros([2], tf.int64), training=False)
    return self


class DCGANGenerator(Generator):

  def __init__(self, num_classes=None, conditioning="cbn", z_dim=128, channels=1, width=128,
               resolution=32, **kwargs):
    super().__init__(num_classes, conditioning, z_dim, channels, **kwargs)
    if resolution != 32:
      raise ValueError("the DCGAN generator is 32x32; use the ResNet for other resolutions.")
    self.width = width
    self.fc = L.Dense(4 * 4 * width, name="fc")
    self.bn0 = ConditionalBatchNorm(self.bn_classes, name="bn0")
    self.deconv1 = L.Conv2DTranspose(width // 2, 5, 2, padding="same", name="deconv1")
    self.bn1 = ConditionalBatchNorm(self.bn_classes, name="bn1")
    self.deconv2 = L.Conv2DTranspose(width // 4, 5, 2, padding="same", name="deconv2")
    self.bn2 = ConditionalBatchNorm(self.bn_classes, name="bn2")
    # Output layers compute in float32 under mixed precision (images, critic values, logits).
    self.out = L.Conv2DTranspose(channels, 5, 2, padding="same", name="deconv3", dtype="float32")

  def call(self, z, labels, training=False, moments=None):
    bn = dict(training=training, moments=moments)
    h = tf.reshape(self.fc(self._input(z, labels)), [-1, 4, 4, self.width])
    h = tf.nn.relu(self.bn0(h, labels, **bn))
    h = tf.nn.relu(self.bn1(self.deconv1(h), labels, **bn))
    h = tf.nn.relu(self.bn2(self.deconv2(h), labels, **bn))
    return tf.tanh(self.out(h))


class ResBlockUp(L.Layer):
  """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 with an upsampled 1x1 shortcut."""

  def __init__(self, filters, num_classes=None, **kwargs):
    super().__init__(**kwargs)
    self.bn1 = ConditionalBatchNorm(num_classes, name="bn1")
    self.conv1 = L.Conv2D(filters, 3, padding="same", name="conv1")
    self.bn2 = ConditionalBatchNorm(num_classes, name="bn2")
    self.conv2 = L.Conv2D(filters, 3, padding="same", name="conv2")
    self.shortcut = L.Conv2D(filters, 1, name="shortcut")

  def call(self, x, labels=None, training=False, moments=None):
    up = lambda t: tf.repeat(tf.repeat(t, 2, axis=1), 2, axis=2)  # nearest-neighbour x2
    bn = dict(training=training, moments=moments)
    h = self.conv1(up(tf.nn.relu(self.bn1(x, labels, **bn))))
    h = self.conv2(tf.nn.relu(self.bn2(h, labels, **bn)))
    return h + self.shortcut(up(x))


class ResNetGenerator(Generator):

  def __init__(self, num_classes=None, conditioning="cbn", z_dim=128, channels=3, width=64,
               resolution=64, **kwargs):
    super().__init__(num_classes, conditioning, z_dim, channels, **kwargs)
    blocks = int(np.log2(resolution)) - 2
    if 2 ** (blocks + 2) != resolution or blocks < 1:
      raise ValueError(f"resolution must be a power of two >= 8, not {resolution}.")
    self.width, self.resolution = width, resolution
    mult = [min(8, 2 ** (blocks - 1 - i)) for i in range(blocks)]  # 64x64: 8, 4, 2, 1
    self.start = mult[0]
    self.fc = L.Dense(4 * 4 * self.start * width, name="fc")
    self._blocks = attach(self, "block", [ResBlockUp(m * width, self.bn_classes,
                                                      name=f"block{i + 1}")
                                           for i, m in enumerate(mult)])
    self.bn = ConditionalBatchNorm(self.bn_classes, name="bn_out")
    self.out = L.Conv2D(channels, 3, padding="same", name="conv_out", dtype="float32")

  def call(self, z, labels, training=False, moments=None):
    bn = dict(training=training, moments=moments)
    h = tf.reshape(self.fc(self._input(z, labels)), [-1, 4, 4, self.start * self.width])
    for name in self._blocks:
      h = getattr(self, name)(h, labels, **bn)
    return tf.tanh(self.out(tf.nn.relu(self.bn(h, labels, **bn))))


class Critic(keras.Model):
  """Base: a trunk of layers (`trunk`, in order), a critic head and an optional AC-GAN
  classifier head."""

  def __init__(self, num_classes=None, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.flatten = L.Flatten()
    self.value = L.Dense(1, name="critic_head", dtype="float32")
    self.classify = (L.Dense(num_classes, name="class_head", dtype="float32") if num_classes
                     else None)
    self._trunk = ()

  @property
  def trunk(self):
    return tuple(getattr(self, name) for name in self._trunk)

  def features(self, x, training=False):
    raise NotImplementedError

  def call(self, x, training=False):
    h = self.flatten(self.features(x, training=training))
    logits = self.classify(h) if self.classify is not None else None
    return self.value(h)[:, 0], logits

  def build_for_inputs(self, image_shape):
    self(tf.zeros([2, *image_shape]), training=False)
    return self


class DCGANCritic(Critic):

  def __init__(self, num_classes=None, width=32, **kwargs):
    super().__init__(num_classes, **kwargs)
    self._trunk = attach(self, "conv", [L.Conv2D(width * 2 ** i, 5, 2, padding="same",
                                                  name=f"conv{i + 1}") for i in range(3)])

  def features(self, x, training=False):
    for conv in self.trunk:
      x = tf.nn.leaky_relu(conv(x), 0.2)
    return x


class ResBlockDown(L.Layer):
  """LN-ReLU-conv3x3-LN-ReLU-conv3x3-avgpool with an avgpooled 1x1 shortcut."""

  def __init__(self, filters, first=False, **kwargs):
    super().__init__(**kwargs)
    self.first = first
    self.ln1 = None if first else L.LayerNormalization(axis=[1, 2, 3], name="ln1")
    self.conv1 = L.Conv2D(filters, 3, padding="same", name="conv1")
    self.ln2 = L.LayerNormalization(axis=[1, 2, 3], name="ln2")
    self.conv2 = L.Conv2D(filters, 3, padding="same", name="conv2")
    self.shortcut = L.Conv2D(filters, 1, name="shortcut")

  def call(self, x):
    pool = lambda t: tf.nn.avg_pool2d(t, 2, 2, "VALID")
    h = x if self.first else tf.nn.relu(self.ln1(x))
    h = self.conv2(tf.nn.relu(self.ln2(self.conv1(h))))
    return pool(h) + self.shortcut(pool(x))


class ResNetCritic(Critic):

  def __init__(self, num_classes=None, width=64, resolution=64, **kwargs):
    super().__init__(num_classes, **kwargs)
    blocks = int(np.log2(resolution)) - 2
    mult = [min(8, 2 ** i) for i in range(blocks)]  # 64x64: 1, 2, 4, 8
    self._trunk = attach(self, "block", [ResBlockDown(m * width, first=(i == 0),
                                                       name=f"block{i + 1}")
                                          for i, m in enumerate(mult)])

  def features(self, x, training=False):
    for block in self.trunk:
      x = block(x)
    return tf.nn.relu(x)


ARCHITECTURES = ("dcgan", "resnet")


def gan_kwargs(settings, num_classes, conditioning=None):
  """The kwargs of `make_gan` from `settings` (parsed flags or a config with the fields
  architecture, conditioning, channels, resolution, g_width, d_width; a width 0 means the
  architecture's default). `num_classes` None: unconditional (no conditioning); `conditioning`
  overrides the settings' for a conditional one."""
  if num_classes is not None and conditioning is None:
    conditioning = settings.conditioning
  return {"architecture": settings.architecture, "num_classes": num_classes,
          "conditioning": conditioning, "channels": settings.channels,
          "resolution": settings.resolution, "g_width": settings.g_width or None,
          "d_width": settings.d_width or None}


def make_gan(architecture, *, num_classes=None, conditioning="cbn", channels=1, resolution=32,
             g_width=None, d_width=None, z_dim=128):
  """(generator, critic), built. `num_classes` None: unconditional."""
  if architecture == "dcgan":
    g = DCGANGenerator(num_classes, conditioning, z_dim, channels, g_width or 128, resolution,
                       name="generator")
    d = DCGANCritic(num_classes, d_width or 32, name="critic")
  elif architecture == "resnet":
    g = ResNetGenerator(num_classes, conditioning, z_dim, channels, g_width or 64, resolution,
                        name="generator")
    d = ResNetCritic(num_classes, d_width or 64, resolution, name="critic")
  else:
    raise ValueError(f"--architecture={architecture!r}: choose one of {', '.join(ARCHITECTURES)}.")
  g.build_for_inputs()
  d.build_for_inputs((resolution, resolution, channels))
  return g, d


class EMA:
  """An exponential moving average copy of a model's weights, for sampling. `reset` (on a
  fresh run) copies the model into the shadow; a restored shadow is kept as it is."""

  def __init__(self, model, shadow, decay=0.999):
    self.model, self.shadow, self.decay = model, shadow, decay

  def reset(self):
    for s, w in zip(self.shadow.weights, self.model.weights):
      s.assign(w)

  def update(self):
    """Traceable: shadow <- decay * shadow + (1 - decay) * weights (BN statistics copied)."""
    for s, w in zip(self.shadow.weights, self.model.weights):
      if s.trainable:
        s.assign(self.decay * s + (1.0 - self.decay) * w)
      else:
        s.assign(w)


def _class_chunks(labels, batch):
  """Row-index chunks of at most `batch` rows, each of one class (a class's last chunk is merged
  into the one before when it would be under half a batch): what batch statistics need."""
  chunks = []
  for c in np.unique(labels):
    rows = np.flatnonzero(labels == c)
    parts = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    if len(parts) > 1 and len(parts[-1]) < batch // 2:
      parts[-2:] = [np.concatenate(parts[-2:])]
    chunks += parts
  return chunks


def generate(generator, labels, seed, z_dim=128, batch=500, moments=None):
  """Images in [-1, 1] for `labels` (one per row); noise stateless from `seed` (an int), drawn
  for every row at once so it does not depend on the batching.

  `moments='class'` (batch statistics, see `ConditionalBatchNorm`) generates in single-class
  batches of `batch` rows, as the MeRGAN reference samples (64 per batch); otherwise batches of
  `batch` rows in order.
  """
  labels = np.asarray(labels, np.int64)
  z = tf.random.stateless_normal([len(labels), z_dim], seed=[seed, 0]).numpy()
  if moments == "class":
    chunks = _class_chunks(labels, batch)
  else:
    chunks = [np.arange(i, min(i + batch, len(labels))) for i in range(0, len(labels), batch)]
  out = None
  for rows in chunks:
    bn = {"moments": moments} if moments else {}  # any callable (z, labels) works otherwise
    images = generator(tf.constant(z[rows]), tf.constant(labels[rows]), training=False,
                       **bn).numpy()
    if out is None:
      out = np.zeros([len(labels), *images.shape[1:]], np.float32)
    out[rows] = images
  return out if out is not None else np.zeros([0], np.float32)


def calibrate_class_moments(generator, classes, seed=0, samples=1024, z_dim=128):
  """Stores in every conditional batch norm of `generator` the per-class moments of `samples`
  generated images per class (batch statistics over one single-class batch), for serving with
  `moments='calibrated'`."""
  layers = [l for l in generator._flatten_layers() if isinstance(l, ConditionalBatchNorm)]
  for layer in layers:
    layer._calibrating = True
  try:
    for c in classes:
      z = tf.random.stateless_normal([samples, z_dim], seed=[seed, int(c)])
      generator(z, tf.fill([samples], tf.constant(int(c), tf.int64)), training=False,
                moments="class")
  finally:
    for layer in layers:
      layer._calibrating = False
