"""GAN networks, WGAN-GP losses and the compiled train step."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import pipeline
from lamp_tf.gan import losses, train
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import strategy as strategy_lib
from tests import numerics
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("arch,res,ch,cond", [("dcgan", 32, 1, "cbn"), ("dcgan", 32, 3, "concat"),
                                              ("resnet", 32, 3, "cbn"), ("resnet", 64, 3, None),
                                              ("resnet", 16, 1, "concat")])
def test_shapes_and_ranges(arch, res, ch, cond):
  num_classes = None if cond is None else 10
  g, d = gan_nets.make_gan(arch, num_classes=num_classes, conditioning=cond, channels=ch,
                           resolution=res, g_width=16, d_width=8)
  x = g(tf.random.normal([3, 128]), tf.constant([0, 4, 9], tf.int64), training=False)
  assert x.shape == (3, res, res, ch)
  assert float(tf.reduce_max(tf.abs(x))) <= 1.0  # tanh's range: float32 rounds it to <= 1
  value, logits = d(x)
  assert value.shape == (3,)
  assert (logits is None) == (num_classes is None)


def test_conditioning_changes_the_output_and_cbn_has_per_class_parameters():
  g, _ = gan_nets.make_gan("dcgan", num_classes=10, conditioning="cbn", g_width=16)
  bn = g.get_layer("bn0")
  assert bn.gamma.shape == (10, 16) and bn.beta.shape == (10, 16)
  bn.gamma.assign(np.random.default_rng(0).random([10, 16]) + 0.5)
  z = tf.random.normal([2, 128])
  a = g(z, tf.constant([1, 1], tf.int64), training=False)
  b = g(z, tf.constant([2, 2], tf.int64), training=False)
  assert float(tf.reduce_max(tf.abs(a - b))) > 1e-3
  unconditional, _ = gan_nets.make_gan("dcgan", g_width=16)
  assert unconditional.get_layer("bn0").gamma.shape == (1, 16)


def test_gradient_penalty_of_a_linear_critic():
  class Linear(keras.Model):
    def __init__(self, w):
      super().__init__()
      self.w = tf.constant(w, tf.float32)

    def call(self, x, training=False):
      return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]) * self.w, axis=1), None

  w = np.array([3.0, 4.0, 0.0, 0.0])  # gradient norm 5 everywhere
  gp = losses.gradient_penalty(Linear(w), tf.ones([2, 2, 2, 1]), tf.zeros([2, 2, 2, 1]),
                               tf.constant([0.3, 0.9]))
  # The gradient is w exactly; 9 + 16 + 1e-10 rounds to 25 in float32, sqrt to 5, (5 - 1)^2 to
  # 16: exact on any CPU (rtol is loose), where a wrong penalty is off by O(1).
  np.testing.assert_allclose(gp.numpy(), [16.0, 16.0], rtol=1e-5)


def test_classification_loss_is_zero_without_a_head():
  np.testing.assert_array_equal(losses.classification(None, tf.constant([1, 2])).numpy(),
                                [0, 0])  # exact zeros


def _train(strategy, steps=3, n_critic=2, batch=8, ema_decay=None, sgd=False):
  keras.utils.set_random_seed(0)
  with strategy.scope():
    g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
    if sgd:
      g_opt, d_opt = keras.optimizers.SGD(1e-2), keras.optimizers.SGD(1e-2)
    else:
      g_opt = keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9)
      d_opt = keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9)
    ema = None
    if ema_decay:
      shadow, _ = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
      ema = gan_nets.EMA(g, shadow, ema_decay)
      ema.reset()
  strategy_lib.build_optimizer(strategy, g_opt, g.trainable_variables)
  strategy_lib.build_optimizer(strategy, d_opt, d.trainable_variables)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, [64, 32, 32, 1]).astype(np.float32)
  labels = rng.integers(0, 3, 64)
  batches = iter(pipeline.distribute_batches(strategy, (images, labels), batch, seed=1,
                                             group=n_critic))
  step = strategy_lib.distributed_step(strategy, train.make_replica_step(
      g, d, g_opt, d_opt, train.GANConfig(n_critic=n_critic), ema=ema))
  out = None
  for s in range(steps):
    out = step(next(batches), tf.constant([5, s], tf.int64))
  return g, d, g_opt, d_opt, out, ema


def test_one_call_runs_n_critic_updates_and_one_generator_update():
  g, d, g_opt, d_opt, out, _ = _train(tf.distribute.get_strategy(), steps=3, n_critic=2)
  assert int(d_opt.iterations) == 6 and int(g_opt.iterations) == 3
  assert {"d_loss", "g_loss", "wasserstein", "gp", "ac_real"} <= set(out)
  assert all(np.isfinite(float(v)) for v in out.values())


MIRRORED = """
import sys
import numpy as np
from lamp_tf.runtime import strategy as strategy_lib
strategy_lib.split_cpu(2)
from tests.gan import test_gan_core
g, d, *_ = test_gan_core._train(strategy_lib.make_strategy("mirrored"), sgd=True)
np.savez(sys.argv[1], *(g.get_weights() + d.get_weights()))
"""


@pytest.mark.slow
def test_two_replicas_match_one_device(tmp_path):
  # SGD: Adam divides by sqrt(v), which turns float rounding on near-zero gradients (biases
  # just before a batch norm) into full-size updates; SGD shows the step itself is identical.
  g1, d1, *_ = _train(tf.distribute.get_strategy(), sgd=True)
  # Mirrored training in its own process: collectives of earlier in-process mirrored runs in
  # this worker can share instance keys with this one's and abort it.
  out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path / "w.npz")], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  mirrored = np.load(tmp_path / "w.npz")
  two = [mirrored[f"arr_{i}"] for i in range(len(mirrored.files))]
  one = g1.get_weights() + d1.get_weights()
  assert len(two) == len(one)
  g0, d0, *_ = _train(tf.distribute.get_strategy(), steps=0, sgd=True)
  init = g0.get_weights() + d0.get_weights()
  # Two replicas compute each gradient from half-batches with other kernels and sum them (batch
  # norm synchronised): rounding, f32(K) of the gradients' size. K ~ 50,000 float32 terms along
  # the longest chain: the generator with batch-norm sums over 8 rows (~16,500), the critic
  # forward, back and back again for the gradient penalty (~3,500), the way back through the
  # generator, a kernel gradient's sum over 8 x 32 x 32 positions. SGD adds those differences
  # to the weights: to first order each weight stays within f32(K) ~ 6e-3 of how far it moved.
  # A wrong reduction (a per-replica mean, unsynchronised moments) changes the moves by O(1).
  tol = numerics.f32(50000)
  moved_all = max(np.abs(a - a0).max() for a, a0 in zip(one, init))
  for v, a, b, a0 in zip(g1.weights + d1.weights, one, two, init):
    moved = max(np.abs(a - a0).max(), np.abs(b - a0).max())
    if v.path in ("generator/deconv1/bias", "generator/deconv2/bias"):
      # Right before a per-channel batch norm: the exact gradient is 0; they move by rounding
      # only, at most f32(K) of the network's moves, in either run.
      assert moved <= tol * moved_all, v.path
    else:
      np.testing.assert_allclose(a, b, rtol=0, atol=tol * moved, err_msg=v.path)
  assert np.abs(g1.get_layer("fc").kernel.numpy() - g0.get_layer("fc").kernel.numpy()).max() > \
      1e-5  # and it trained


def test_ema_tracks_the_generator():
  g, _, _, _, _, ema = _train(tf.distribute.get_strategy(), steps=2, ema_decay=0.5)
  k = g.get_layer("fc").kernel.numpy()
  s = ema.shadow.get_layer("fc").kernel.numpy()
  assert not np.allclose(s, k)  # lags behind...
  assert np.abs(s - k).max() < np.abs(k).max()  # ...but follows


def test_grouped_batches_give_each_replica_its_share_of_every_sub_batch():
  x = np.arange(48, dtype=np.float32)
  one = next(iter(pipeline.distribute_batches(tf.distribute.get_strategy(), x, 8, 2, group=3)))
  assert one.shape == (3, 8)
  expected = np.stack([b.numpy() for b in pipeline.index_batches(48, 8, 2).take(3)])
  # Gathered copies of small integers (exact in float32): bit-identical.
  np.testing.assert_array_equal(one.numpy(), expected.astype(np.float32))
  # Groups may span epochs: 3 x 8 from 10 examples works, each batch within one epoch.
  small = iter(pipeline.distribute_batches(tf.distribute.get_strategy(), x[:10], 8, 2, group=3))
  assert next(small).shape == (3, 8)
  mirrored = strategy_lib.make_strategy("mirrored")
  two = next(iter(pipeline.distribute_batches(mirrored, x, 8, 2, group=3)))
  parts = [p.numpy() for p in mirrored.experimental_local_results(two)]
  np.testing.assert_array_equal(np.concatenate(parts, axis=1), one.numpy())
