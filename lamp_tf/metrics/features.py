"""Feature extractors and classifiers for GAN evaluation.

`DomainClassifier`: a small CNN trained by the project on a data set's real training images (at
the GAN's resolution and value range [-1, 1]); its penultimate layer gives the features of
"FID (classifier features)", its predictions the accuracy of generated samples. Its test
accuracy is reported beside every score it produces. Trained once per (data set, resolution,
channels, seed) and cached in `cache_dir` under a key of its training data and settings.

`InceptionFeatures`: Inception-v3 pool features, from a weights file the user gives (nothing is
downloaded).
"""

import hashlib
import inspect
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.data import pipeline
from lamp_tf.runtime import files, precision


def classifier_model(image_shape, num_classes, width=16):
  """A small CNN: outputs [logits, 128-d features]."""
  L = keras.layers
  x = keras.Input(image_shape)
  h = x
  for i, w in enumerate([width, width * 2, width * 4]):
    h = L.Conv2D(w, 3, padding="same", activation="relu", name=f"conv{i + 1}a")(h)
    h = L.Conv2D(w, 3, padding="same", activation="relu", name=f"conv{i + 1}b")(h)
    h = L.MaxPooling2D(2)(h)
  h = L.GlobalAveragePooling2D()(h)
  features = L.Dense(128, activation="relu", name="features", dtype="float32")(h)
  logits = L.Dense(num_classes, name="logits", dtype="float32")(L.Dropout(0.3)(features))
  return keras.Model(x, [logits, features], name="domain_classifier")


def cache_dir():
  """Where trained real-data classifiers are cached, shared by every program and rerun:
  $LAMP_TF_CACHE/classifiers (default ~/.cache/lamp_tf/classifiers). Entries are keyed by
  their training data and settings (`DomainClassifier.cache_key`), so sharing is safe."""
  root = os.environ.get("LAMP_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                         "lamp_tf")
  return os.path.join(root, "classifiers")


class DomainClassifier:
  """A classifier of real images of one domain; features for FID/KID and accuracy of samples."""

  def __init__(self, model, test_accuracy):
    self.model, self.test_accuracy = model, test_accuracy
    # One trace for every batch size (no retracing for the last, smaller batch).
    self._fn = tf.function(lambda x: self.model(x, training=False), input_signature=[
        tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])

  @classmethod
  def cache_key(cls, train_x, train_y, num_classes, steps, batch_size, seed):
    """What the classifier depends on: the code that builds and trains it (the source of
    `classifier_model` and `train`, so a cache made by another version of either, in another
    checkout or an older commit, does not match), the training images and labels (their
    bytes, so another data set, class subset, resolution or channel count with the same shapes
    does not match), the number of classes, steps, batch size and seed."""
    digest = hashlib.sha1()
    for fn in (classifier_model, cls.train):
      try:
        digest.update(inspect.getsource(fn).encode())
      except (OSError, TypeError):  # no source file (a frozen or zipped install): the bytecode
        digest.update(fn.__code__.co_code)
    for array in (np.ascontiguousarray(train_x, np.float32),
                  np.ascontiguousarray(train_y, np.int64)):
      digest.update(str(array.shape).encode())
      digest.update(array.tobytes())
    digest.update(f"{num_classes}/{steps}/{batch_size}/{seed}".encode())
    return digest.hexdigest()[:16]

  @classmethod
  def train_or_load(cls, cache_dir, train_x, train_y, test_x, test_y, num_classes, *, steps=2000,
                    batch_size=64, seed=0):
    """Loads the classifier cached in `cache_dir/<key>` (see `cache_key`), or trains and caches
    it: reused across programs and reruns that share `cache_dir` and the same inputs."""
    key = cls.cache_key(train_x, train_y, num_classes, steps, batch_size, seed)
    cache_dir = os.path.join(cache_dir, key)
    weights = os.path.join(cache_dir, "classifier.weights.h5")
    info_path = os.path.join(cache_dir, "classifier.json")
    if os.path.exists(weights) and os.path.exists(info_path):
      model = classifier_model(train_x.shape[1:], num_classes)
      model.load_weights(weights)
      logging.info("domain classifier %s reused from %s", key, cache_dir)
      return cls(model, files.read_json(info_path)["test_accuracy"])
    clf = cls.train(train_x, train_y, test_x, test_y, num_classes, steps=steps,
                    batch_size=batch_size, seed=seed)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = weights + f".{os.getpid()}.tmp.weights.h5"  # Keras wants the suffix
    clf.model.save_weights(tmp)
    os.replace(tmp, weights)
    files.write_json(info_path, {"test_accuracy": clf.test_accuracy, "steps": steps,
                                 "train_images": len(train_x), "seed": seed, "key": key,
                                 "num_classes": num_classes, "batch_size": batch_size})
    logging.info("domain classifier test accuracy: %.4f", clf.test_accuracy)
    return clf

  @classmethod
  def train(cls, train_x, train_y, test_x, test_y, num_classes, *, steps=2000, batch_size=64,
            seed=0, test_mask=None):
    """Trains a classifier (images in [-1, 1]); test accuracy with argmax over `test_mask`."""
    model = classifier_model(train_x.shape[1:], num_classes)
    keras.utils.set_random_seed(seed)
    opt = precision.optimizer(keras.optimizers.Adam(1e-3))

    @tf.function
    def step(x, y):
      with tf.GradientTape() as tape:
        logits, _ = model(x, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
      precision.minimize(tape, loss, model.trainable_variables, opt)
      return loss

    batches = iter(pipeline.distribute_batches(tf.distribute.get_strategy(), (train_x, train_y),
                                               batch_size, seed))
    for i in range(steps):
      loss = step(*next(batches))
      if (i + 1) % 500 == 0:
        logging.info("domain classifier: step %d/%d loss %.4f", i + 1, steps, float(loss))
    clf = cls(model, 0.0)
    clf.test_accuracy = float(np.mean(clf.predict(test_x, test_mask) == test_y))
    return clf

  def _batched(self, x, index):
    out = [self._fn(tf.constant(x[i:i + 500], tf.float32))[index].numpy()
           for i in range(0, len(x), 500)]
    return np.concatenate(out)

  def logits(self, x):
    return self._batched(x, 0)

  def features(self, x):
    return self._batched(x, 1)

  def predict(self, x, mask=None):
    """Class indices; `mask` (boolean [num_classes]) restricts the argmax."""
    logits = self.logits(x)
    if mask is not None:
      logits = np.where(np.asarray(mask)[None], logits, -np.inf)
    return logits.argmax(axis=1)


class InceptionFeatures:
  """Inception-v3 average-pool features (2048-d) from a local weights file."""

  def __init__(self, weights_path):
    if not os.path.exists(weights_path):
      raise FileNotFoundError(f"--inception_weights={weights_path} does not exist: give the path "
                              "of Keras InceptionV3 'no top' weights (an .h5 file).")
    self.model = keras.applications.InceptionV3(include_top=False, weights=weights_path,
                                                pooling="avg", input_shape=(299, 299, 3))
    self.test_accuracy = None

  def features(self, x):
    out = []
    for i in range(0, len(x), 100):
      b = tf.constant(x[i:i + 100])
      if b.shape[-1] == 1:
        b = tf.image.grayscale_to_rgb(b)
      out.append(self.model(tf.image.resize(b, [299, 299]), training=False).numpy())
    return np.concatenate(out)


def describe(extractor):
  """The label written beside a score made with `extractor`."""
  if isinstance(extractor, InceptionFeatures):
    return "FID (Inception-v3 features)"
  return f"FID (classifier features; classifier test accuracy {extractor.test_accuracy:.4f})"

