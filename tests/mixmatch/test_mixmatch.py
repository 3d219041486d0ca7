"""Mix-and-match: unpooling, any-encoder-to-any-decoder, the training pipeline, metrics,
recolouring pieces, training and export."""

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import colours, rgbd
from lamp_tf.metrics import segmentation
from lamp_tf.mixmatch import model as mm_model, recolour, train
from lamp_tf.nets import segnet
from lamp_tf.runtime import flags as runtime_flags


def test_unpool_puts_values_back_at_the_argmax_positions():
  x = tf.constant(np.random.default_rng(0).random([2, 4, 4, 3]).astype(np.float32))
  pooled, idx = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)
  up = segnet.unpool(pooled, idx, tf.shape(x, out_type=tf.int64)).numpy()
  nonzero = up != 0
  assert nonzero.sum() == pooled.numpy().size
  np.testing.assert_array_equal(up[nonzero], x.numpy()[nonzero])  # maxima in place
  np.testing.assert_allclose(tf.nn.max_pool2d(up, 2, 2, "VALID").numpy(), pooled.numpy())


@pytest.mark.parametrize("side_info", segnet.SIDE_INFO)
def test_any_encoder_feeds_any_decoder(side_info):
  model = mm_model.MixMatch((8, 16), side_info).build(16)
  inputs = {"rgb": tf.zeros([2, 16, 16, 3]), "depth": tf.zeros([2, 16, 16, 1]),
            "seg": tf.zeros([2, 16, 16, rgbd.NUM_CLASSES])}
  for src in rgbd.MODALITIES:
    for dst in rgbd.MODALITIES:
      assert model.translate(inputs[src], src, dst).shape == (2, 16, 16, rgbd.CHANNELS[dst])
  assert model.fuse({"rgb": inputs["rgb"], "depth": inputs["depth"]}, "seg").shape[-1] == 13
  assert model.cascade(inputs["depth"], ("depth", "rgb", "seg")).shape[-1] == 13


def test_indices_decoder_uses_the_feeding_encoders_pooling():
  model = mm_model.MixMatch((8,), "indices").build(8)
  x = tf.random.normal([1, 8, 8, 1])
  z, side = model.encoders["depth"](x)
  out_a = model.decoders["seg"](z, side)
  other = [dict(s, indices=tf.reverse(s["indices"], axis=[1])) for s in side]
  out_b = model.decoders["seg"](z, other)
  assert not np.allclose(out_a.numpy(), out_b.numpy())


def test_segmentation_metrics_by_hand():
  labels = np.array([[0, 0, 1, 13]])
  pred = np.array([[0, 1, 1, 0]])
  cm = segmentation.confusion_matrix(labels, pred, 13, ignore=13)
  assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1 and cm.sum() == 3
  s = segmentation.scores(cm)
  assert s["per_class_iou"][0] == pytest.approx(1 / 2) and s["per_class_iou"][1] == pytest.approx(
      1 / 2)
  assert s["per_class_iou"][2] is None and s["miou"] == pytest.approx(0.5)
  assert s["global_accuracy"] == pytest.approx(2 / 3)
  d = segmentation.depth_scores([1.0, 2.0], [1.1, 3.0])
  assert d["rmse"] == pytest.approx(np.sqrt((0.01 + 1) / 2)) and d["delta1"] == 0.5


def test_recolouring_domains_and_domain_indexed_weights():
  items = (np.random.default_rng(0).random([22, 28, 28]) * 255).astype(np.uint8)
  domains = colours.make_domains(items)
  assert list(domains) == list(colours.NAMES) and sum(len(d) for d in domains.values()) == 22
  red = colours.recolour(items[:1], "red")[0]
  assert red.shape == (32, 32, 3) and tuple(red[0, 0]) == (255, 255, 255)  # white background
  model = recolour.Recolouring(width=8, critic_width=8).build()
  x = tf.random.uniform([2, 32, 32, 3], -1, 1)
  assert model.translate(x, 3, 5).shape == (2, 32, 32, 3)
  assert model.encoders.conv1.kernel.shape[0] == len(colours.NAMES)  # one kernel per colour
  # Domain b's decoder alone changes the output: the weights are not shared across colours.
  k = model.decoders.conv3.kernel
  before = model.translate(x, 3, 5).numpy()
  k.assign(tf.tensor_scatter_nd_update(k, [[4]], [tf.zeros_like(k[4])]))
  np.testing.assert_array_equal(model.translate(x, 3, 5).numpy(), before)
  k.assign(tf.tensor_scatter_nd_update(k, [[5]], [tf.zeros_like(k[5])]))
  assert not np.array_equal(model.translate(x, 3, 5).numpy(), before)
  pairs = recolour.star_pairs("grey")
  assert len(pairs) == 20 and all(colours.NAMES.index("grey") in p for p in pairs)


def test_mixmatch_training_reduces_the_loss_and_never_sees_depth_with_segmentation(tmp_path):
  rng = np.random.default_rng(0)
  rs = {"rgb": rng.integers(0, 255, [16, 16, 16, 3], dtype=np.uint8),
        "seg": rng.integers(0, 13, [16, 16, 16], dtype=np.uint8)}
  rd = {"rgb": rng.integers(0, 255, [16, 16, 16, 3], dtype=np.uint8),
        "depth": rng.uniform(1, 5, [16, 16, 16]).astype(np.float32)}
  seen = []
  original = train.encode_batch

  def spy(batch):
    seen.append(set(batch))
    return original(batch)

  train.encode_batch = spy
  try:
    rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                               export_dir="", log_every_secs=1e9)
    model = mm_model.MixMatch((8, 16), "indices").build(16)
    opt = train.adam(rt.strategy, 2e-3, model.trainable_variables)
    step = train.mixmatch_step(model, opt, train.Weights(), 4)
    first = {}
    state = train.fit(rt, str(tmp_path / "mm"), "mm", {**model.trackables, "opt": opt},
                      step, [rs, rd], 4, 30, 0)
  finally:
    train.encode_batch = original
  assert int(state.step) == 30
  assert seen and all(not {"depth", "seg"} <= keys for keys in seen)
  del first
  batch = (original(rs), original(rd))
  batch = tuple({k: v[:4] for k, v in b.items()} for b in batch)
  loss_after = float(step(batch, tf.constant([0, 0], tf.int64))["loss"])
  fresh = mm_model.MixMatch((8, 16), "indices").build(16)
  fresh_opt = train.adam(rt.strategy, 0.0, fresh.trainable_variables)
  loss_fresh = float(train.mixmatch_step(fresh, fresh_opt, train.Weights(), 4)(
      batch, tf.constant([0, 0], tf.int64))["loss"])
  assert loss_after < loss_fresh
