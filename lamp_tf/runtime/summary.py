"""One metric-writer interface for TensorBoard (scalars, images, text, hyper-parameters).

A writer built with `enabled=False` (non-chief workers) accepts every call and writes nothing.
"""

import numpy as np
import tensorflow as tf


class MetricWriter:
  """Writes TensorBoard summaries under `logdir`."""

  def __init__(self, logdir, enabled=True):
    self.logdir = logdir
    self._writer = tf.summary.create_file_writer(logdir) if enabled else None

  def write_scalars(self, step, scalars):
    if self._writer is None:
      return
    with self._writer.as_default(step=int(step)):
      for name, value in scalars.items():
        tf.summary.scalar(name, float(value))

  def write_images(self, step, images, max_outputs=16):
    """`images`: {name: uint8 or [0, 1] float array [H, W, C] or [N, H, W, C]}."""
    if self._writer is None:
      return
    with self._writer.as_default(step=int(step)):
      for name, image in images.items():
        image = np.asarray(image)
        if image.ndim == 3:
          image = image[None]
        tf.summary.image(name, image, max_outputs=max_outputs)

  def write_texts(self, step, texts):
    if self._writer is None:
      return
    with self._writer.as_default(step=int(step)):
      for name, text in texts.items():
        tf.summary.text(name, str(text))

  def write_hparams(self, hparams):
    """Hyper-parameters for TensorBoard's HParams tab (values: bool, int, float or str)."""
    if self._writer is None:
      return
    from tensorboard.plugins.hparams import api as hp
    clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v))
             for k, v in hparams.items()}
    with self._writer.as_default():
      hp.hparams(clean)

  def flush(self):
    if self._writer is not None:
      self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
