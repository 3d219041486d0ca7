"""Classifiers for the continual-learning experiments: LeNet-5, an MLP and a small VGG.

All are `keras.Sequential` models whose Dense and Conv2D layers have no fused activation (ReLU is
its own layer), so a layer's pre-activation output is the layer's output: R-EWC's rotation
statistics need it. Single-head: one output per class of the whole data set (logits).
"""

import keras

ARCHITECTURES = ("lenet", "mlp", "vgg")


def lenet(input_shape, num_classes):
  """LeNet-5 of the R-EWC paper: conv5x5 6, pool, conv5x5 16, pool, fc 120, 84, classes."""
  L = keras.layers
  return keras.Sequential([
      keras.Input(input_shape),
      L.Conv2D(6, 5, name="conv1"), L.ReLU(), L.MaxPooling2D(2),
      L.Conv2D(16, 5, name="conv2"), L.ReLU(), L.MaxPooling2D(2),
      L.Flatten(),
      L.Dense(120, name="fc1"), L.ReLU(),
      L.Dense(84, name="fc2"), L.ReLU(),
      L.Dense(num_classes, name="logits"),
  ], name="lenet")


def mlp(input_shape, num_classes, hidden=(256, 256)):
  L = keras.layers
  layers = [keras.Input(input_shape), L.Flatten()]
  for i, units in enumerate(hidden):
    layers += [L.Dense(units, name=f"fc{i + 1}"), L.ReLU()]
  return keras.Sequential(layers + [L.Dense(num_classes, name="logits")], name="mlp")


def small_vgg(input_shape, num_classes, widths=(32, 64, 128), hidden=256):
  """VGG-style blocks of two 3x3 convolutions and a max-pool, for 32x32 colour images."""
  L = keras.layers
  layers = [keras.Input(input_shape)]
  for b, width in enumerate(widths):
    for c in range(2):
      layers += [L.Conv2D(width, 3, padding="same", name=f"conv{b + 1}_{c + 1}"), L.ReLU()]
    layers.append(L.MaxPooling2D(2))
  layers += [L.Flatten(), L.Dense(hidden, name="fc1"), L.ReLU(),
             L.Dense(num_classes, name="logits")]
  return keras.Sequential(layers, name="small_vgg")


def classifier(name, input_shape, num_classes):
  """The architecture called `name` ('lenet', 'mlp' or 'vgg')."""
  builders = {"lenet": lenet, "mlp": mlp, "vgg": small_vgg}
  if name not in builders:
    raise ValueError(f"--model={name!r}: choose one of {', '.join(ARCHITECTURES)}.")
  return builders[name](tuple(input_shape), num_classes)
