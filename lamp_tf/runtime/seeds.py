"""Seeds and op determinism."""

import keras
import tensorflow as tf


def seed_everything(seed, deterministic=False):
  """Seeds Python, NumPy, TF and Keras; with `deterministic`, TF ops run deterministically."""
  keras.utils.set_random_seed(int(seed))
  if deterministic:
    tf.config.experimental.enable_op_determinism()
