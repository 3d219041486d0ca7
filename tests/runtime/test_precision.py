"""Mixed precision: one training step of each kind of model under bfloat16 (and float16 with loss
scaling), float32 outputs and variables, and a bfloat16 run that resumes from its checkpoint."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.gan import train as gan_train
from lamp_tf.metrics import features
from lamp_tf.mixmatch import model as mm_model, train as mm_train
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import flags as runtime_flags, precision
from tests.runtime import tiny_program


def _run(fn, *args):
  return tf.distribute.get_strategy().run(fn, args=args)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_gan_step_under_mixed_precision(policy):
  with precision.precision(policy):
    keras.utils.set_random_seed(0)
    g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
    g_opt = precision.optimizer(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9))
    d_opt = precision.optimizer(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9))
    step = tf.function(lambda b, s: _run(gan_train.make_replica_step(
        g, d, g_opt, d_opt, gan_train.GANConfig(n_critic=2, moments="class")), b, s))
    images = tf.random.uniform([2, 4, 32, 32, 1], -1, 1)
    labels = tf.constant([[0, 1, 2, 0]] * 2, tf.int64)
    before = [w.numpy().copy() for w in g.trainable_variables]
    out = step((images, labels), tf.constant([1, 2], tf.int64))
    assert all(np.isfinite(float(v)) for v in out.values())
    assert g.get_layer("deconv1").compute_dtype == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in g.weights + d.weights)
    assert g(tf.zeros([2, 128]), tf.constant([0, 1], tf.int64)).dtype == tf.float32
    value, logits = d(tf.zeros([2, 32, 32, 1]))
    assert value.dtype == tf.float32 and logits.dtype == tf.float32
    assert any(np.abs(w.numpy() - b).max() > 0 for w, b in zip(g.trainable_variables, before))
    if policy == "mixed_float16":
      assert isinstance(g_opt, keras.optimizers.LossScaleOptimizer)


def test_a_classifier_and_a_segmentation_step_under_bfloat16():
  with precision.precision("mixed_bfloat16"):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, [32, 16, 16, 1]).astype(np.float32)
    y = rng.integers(0, 3, 32)
    clf = features.DomainClassifier.train(x, y, x, y, 3, steps=3, batch_size=8)
    assert clf.logits(x).dtype == np.float32 and np.isfinite(clf.logits(x)).all()
    model = mm_model.MixMatch((8, 16), "indices").build(16)
    opt = precision.optimizer(keras.optimizers.Adam(1e-3))
    rs = {"rgb": rng.integers(0, 255, [4, 16, 16, 3], dtype=np.uint8),
          "seg": rng.integers(0, 14, [4, 16, 16], dtype=np.uint8)}
    rd = {"rgb": rng.integers(0, 255, [4, 16, 16, 3], dtype=np.uint8),
          "depth": rng.uniform(1, 5, [4, 16, 16]).astype(np.float32)}
    batches = (mm_train.encode_batch(rs), mm_train.encode_batch(rd))
    out = _run(mm_train.mixmatch_step(model, opt, mm_train.Weights(), 4), batches,
               tf.constant([0, 1], tf.int64))
    assert all(np.isfinite(float(v)) for v in out.values())
    assert model.translate(batches[1]["depth"], "depth", "seg").dtype == tf.float32


def test_a_bfloat16_run_resumes_from_its_checkpoint(tmp_path):
  def runtime(workdir):
    return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                                 export_dir="", checkpoint_every=5, log_every_secs=1e9,
                                 precision="mixed_bfloat16")

  with precision.precision("mixed_bfloat16"):
    full, _ = tiny_program.train(runtime(tmp_path / "full"), 12)
    tiny_program.train(runtime(tmp_path / "cut"), 5)  # stops at a checkpoint, as if killed
    resumed, state = tiny_program.train(runtime(tmp_path / "cut"), 12)
    assert full.layers[0].compute_dtype == "bfloat16"
  assert int(state.step) == 12
  # One process, one machine, an exact restore: the resumed run repeats the uninterrupted
  # run's bfloat16 arithmetic with the same kernels, bit-identical (0 difference here); the
  # tolerance is loose, and a step skipped or repeated moves weights by ~lr = 1e-2 (Adam).
  for a, b in zip(full.get_weights(), resumed.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
