"""Mix-and-match: unpooling, any-encoder-to-any-decoder, the training pipeline, metrics,
recolouring pieces, training and export."""

import json

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import colours, rgbd
from lamp_tf.metrics import segmentation
from lamp_tf.mixmatch import domains, losses, model as mm_model, train
from lamp_tf.nets import segnet
from lamp_tf.runtime import flags as runtime_flags
from tests import numerics


def _windows_with_ties():
  """Random maps, then ReLU (windows of zeros tie four ways, as after SegNet's conv-BN-ReLU) and
  windows with two equal maxima in every pair of positions."""
  x = np.maximum(np.random.default_rng(0).normal(size=[2, 8, 8, 3]), 0).astype(np.float32)
  for k, (p, q) in enumerate([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]):
    window = np.full(4, 0.25, np.float32)
    window[[p, q]] = 2.0
    x[1, 2 * (k // 4):2 * (k // 4) + 2, 2 * (k % 4):2 * (k % 4) + 2, 0] = window.reshape(2, 2)
  return tf.constant(x)


def test_pooling_positions_and_unpooling_are_tfs_argmax_pooling_and_scatter():
  """The reference computation (SegNet's, and this project's before TFLite export):
  tf.nn.max_pool_with_argmax with flat indices ((b H + y) W + x) C + c, and unpooling by
  scatter_nd at those indices; the gradient of the pooled maps through it."""
  x = _windows_with_ties()
  assert np.sum(x.numpy() == 0) > 100  # ties are there
  ref_pooled, flat = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)
  _, h, w, c = x.shape
  yx = flat.numpy() // c % (h * w)
  ref_positions = (yx // w % 2) * 2 + yx % w % 2
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    pooled, positions = segnet.max_pool_with_positions(x)
    ref = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)[0]
    weights = tf.random.stateless_normal(pooled.shape, [1, 2])
    loss, ref_loss = tf.reduce_sum(weights * pooled), tf.reduce_sum(weights * ref)
  np.testing.assert_array_equal(pooled.numpy(), ref_pooled.numpy())
  np.testing.assert_array_equal(positions.numpy(), ref_positions)
  np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), tape.gradient(ref_loss, x).numpy())
  values = tf.random.stateless_normal(pooled.shape, [3, 4])
  ref_up = tf.reshape(tf.scatter_nd(tf.reshape(flat, [-1, 1]), tf.reshape(values, [-1]),
                                    [x.shape.num_elements()]), x.shape)
  np.testing.assert_array_equal(segnet.unpool(values, positions).numpy(), ref_up.numpy())
  # Upsampling without side information repeats each value in its window.
  np.testing.assert_array_equal(segnet.upsample(values).numpy(),
                                np.repeat(np.repeat(values.numpy(), 2, axis=1), 2, axis=2))


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
  coloured = colours.make_domains(items)
  assert list(coloured) == list(colours.NAMES) and sum(len(d) for d in coloured.values()) == 22
  red = colours.recolour(items[:1], "red")[0]
  assert red.shape == (32, 32, 3) and tuple(red[0, 0]) == (255, 255, 255)  # white background
  model = domains.DomainMixMatch(len(colours.NAMES), width=8, critic_width=8).build()
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
  pairs = domains.star_pairs(colours.NAMES.index("grey"), len(colours.NAMES))
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


# --- The reference's behaviours (yaxingwang/Mix-and-match-networks, RGBD/model.py). ---------


def _batches(n=4, size=16, seed=0):
  rng = np.random.default_rng(seed)
  rs = {"rgb": rng.integers(0, 255, [n, size, size, 3], dtype=np.uint8),
        "seg": rng.integers(0, 14, [n, size, size], dtype=np.uint8)}  # 13 = void
  rd = {"rgb": rng.integers(0, 255, [n, size, size, 3], dtype=np.uint8),
        "depth": rng.uniform(1, 5, [n, size, size]).astype(np.float32)}
  return train.encode_batch(rs), train.encode_batch(rd)


def _in_replica(fn, *args):
  return tf.distribute.get_strategy().run(fn, args=args)


def test_batch_statistics_at_test_change_a_depth_batch_and_are_the_batch_moments():
  model = mm_model.MixMatch((8, 16), "indices", test_bn="batch").build(16)
  _, rd = _batches()
  model.translate(rd["depth"], "depth", "seg", training=True)  # moving averages move a little
  batch = model.translate(rd["depth"], "depth", "seg").numpy()
  model.test_bn = "moving"
  moving = model.translate(rd["depth"], "depth", "seg").numpy()
  assert np.abs(batch - moving).max() > 1e-3
  # The reference's batch_norm (is_training never set) normalises with the batch's moments:
  # what a training-mode pass computes (without its update of the moving averages).
  enc = model.encoders["depth"]
  x = enc.block1.conv1(rd["depth"])
  mean, var = tf.nn.moments(x, [0, 1, 2])
  bn = enc.block1.bn1
  expected = (x - mean) / tf.sqrt(var + bn.epsilon) * bn.gamma + bn.beta
  got = segnet.batch_norm(bn, x, training=False, bn_stats="batch")
  # Batch norm over N = 4 x 16 x 16 = 1024 positions per channel: the mean and variance sums
  # (~6 N float32 terms with the normalisation) plus the 3x3 fan-in, f32(6200) of the outputs'
  # size; the moving statistics differ by ~4 (checked above).
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0,
                             atol=numerics.f32(6 * 1024 + 10) * np.abs(expected.numpy()).max())


def test_latent_alignment_covers_the_three_deepest_pools_as_the_reference():
  enc_a, enc_b = segnet.Encoder((4, 8, 8, 8)), segnet.Encoder((4, 8, 8, 8))
  rs, _ = _batches()
  _, side_a = enc_a(rs["rgb"], training=True)
  _, side_b = enc_b(rs["seg"], training=True)
  got = float(_in_replica(lambda: losses.latent_alignment(side_a, side_b, 3, 4)))
  # feature_loss: reduce_mean((pool3_a - pool3_b)^2) + ... pool4 + ... pool5.
  expected = sum(float(tf.reduce_mean(tf.square(side_a[i]["pooled"] - side_b[i]["pooled"])))
                 for i in (1, 2, 3))
  # Means of squared differences of the same tensors, reduced here and in the replica: sums of
  # up to 512 positive float32 terms, f32(520); a level missing or counted twice is off by tens
  # of per cent.
  assert got == pytest.approx(expected, rel=numerics.f32(520))
  deepest = float(_in_replica(lambda: losses.latent_alignment(side_a, side_b, 1, 4)))
  assert deepest == pytest.approx(float(tf.reduce_mean(tf.square(
      side_a[3]["pooled"] - side_b[3]["pooled"]))), rel=numerics.f32(520))
  assert got > deepest


def test_alignment_of_features_covers_every_block_before_pooling():
  enc_a, enc_b = segnet.Encoder((4, 8, 8)), segnet.Encoder((4, 8, 8))
  rs, _ = _batches()
  _, side_a = enc_a(rs["rgb"], training=True)
  _, side_b = enc_b(rs["seg"], training=True)
  got = float(_in_replica(lambda: losses.latent_alignment(side_a, side_b, 1, 4, at="features")))
  # The maps whose 2x2 argmax are the pooling indices: every block's, whatever `levels` says.
  expected = sum(float(tf.reduce_mean(tf.square(a["features"] - b["features"])))
                 for a, b in zip(side_a, side_b))
  # Sums of up to 4 x 16 x 16 x 4 = 4096 positive float32 terms in another order: f32(4100);
  # leaving out a block changes it by tens of per cent.
  assert got == pytest.approx(expected, rel=numerics.f32(4100))
  with pytest.raises(ValueError, match="--align_at"):
    losses.latent_alignment(side_a, side_b, 1, 4, at="everywhere")
  with pytest.raises(ValueError, match="--align_scale"):
    losses.latent_alignment(side_a, side_b, 1, 4, scale="log")


def test_normalized_alignment_standardises_channels_and_ignores_their_scale():
  rng = np.random.default_rng(3)
  a = np.maximum(rng.normal(size=[4, 3, 3, 5]), 0).astype(np.float32)
  b = rng.normal(size=[4, 3, 3, 5]).astype(np.float32)
  side = lambda x: [{"pooled": tf.constant(x)}]
  normalized = lambda x, y: float(_in_replica(
      lambda: losses.latent_alignment(side(x), side(y), 1, 4, scale="normalized")))
  # Written out: each channel standardised over batch and positions, then the mean squared
  # difference per example, summed over examples / global batch.
  std = lambda x: (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-5)
  expected = np.mean((std(a.astype(np.float64)) - std(b.astype(np.float64))) ** 2)
  # float32 moments over 36 values per channel and a mean over 180, against float64: well
  # within f32(36 + 180) ~ 2.6e-5 each, 1e-4 for the chain; a wrong axis is off by far more.
  assert normalized(a, b) == pytest.approx(expected, rel=1e-4)
  # Shrinking or shifting one encoder's channels changes the raw loss, not the normalized one
  # (what the decoders' batch norm ignores): shrinking cannot stand in for aligning.
  scale = rng.uniform(0.05, 0.5, 5).astype(np.float32)
  raw = lambda x, y: float(_in_replica(lambda: losses.latent_alignment(side(x), side(y), 1, 4)))
  assert raw(a * scale, b * scale) < 0.5 * raw(a, b)
  assert normalized(a * scale + 2.0, b) == pytest.approx(normalized(a, b), rel=1e-3)
  assert normalized(a, a * scale - 1.0) == pytest.approx(0.0, abs=1e-3)


def test_relative_alignment_is_the_latent_distance_and_ignores_shared_patterns():
  rng = np.random.default_rng(4)
  a = rng.normal(size=[6, 3, 3, 4]).astype(np.float32)
  b = (a + 0.5 * rng.normal(size=[6, 3, 3, 4])).astype(np.float32)
  side = lambda x: [{"pooled": tf.constant(x)}]
  relative = lambda x, y: float(_in_replica(
      lambda: losses.latent_alignment(side(x), side(y), 1, 6, scale="relative")))
  # Written out: mean squared difference over the mean of the two maps' variances across the
  # scenes (per unit, averaged over units).
  a64, b64 = a.astype(np.float64), b.astype(np.float64)
  expected = np.mean((a64 - b64) ** 2) / (0.5 * (a64.var(axis=0).mean() +
                                                 b64.var(axis=0).mean()) + 1e-6)
  # float32 sums of 216 values and variances over 6 scenes against float64: f32(~300) ~ 4e-5.
  assert relative(a, b) == pytest.approx(expected, rel=1e-4)
  # Shrinking both encodings, or adding one scene-independent pattern to both (the same at
  # every scene), leaves it where it was; both lower the raw difference or leave it too.
  pattern = rng.normal(size=[1, 3, 3, 4]).astype(np.float32) * 10
  assert relative(0.1 * a, 0.1 * b) == pytest.approx(relative(a, b), rel=1e-3)
  assert relative(0.1 * a + pattern, 0.1 * b + pattern) == pytest.approx(relative(a, b),
                                                                         rel=1e-3)
  # Unrelated scenes score about 2, as the latent distance's "another scene".
  c = rng.normal(size=[6, 3, 3, 4]).astype(np.float32)
  assert 1.2 < relative(a, c) < 3.0


def test_max_feature_map_is_the_reference_formula():
  rng = np.random.default_rng(1)
  a = np.maximum(rng.normal(size=[3, 2, 2, 5]), 0).astype(np.float32)  # post-ReLU maps
  b = rng.normal(size=[3, 2, 2, 5]).astype(np.float32)
  got = float(_in_replica(lambda: losses.max_feature_map(tf.constant(a), tf.constant(b), 3)))
  # max_feature_map_loss, written out.
  s = a.sum(axis=(1, 2), keepdims=True)
  m = (s >= s / 10.0).astype(np.float32)
  expected = np.sum((a * m - b * m) ** 2) / (3 * 2 * 2 * m.sum())
  assert got == pytest.approx(expected, rel=1e-5)


def test_segmentation_cross_entropy_is_averaged_over_the_labelled_pixels_of_the_batch():
  rng = np.random.default_rng(2)
  logits = tf.constant(rng.normal(size=[2, 3, 3, 13]).astype(np.float32))
  labels = np.full([2, 3, 3], 13)
  labels[0] = rng.integers(0, 13, [3, 3])
  labels[1, 0, 0] = 4  # one labelled pixel in the second image
  got = float(_in_replica(lambda: losses.segmentation_pixel_mean(logits, labels)))
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(np.minimum(labels, 12), logits).numpy()
  assert got == pytest.approx(ce[labels != 13].mean(), rel=1e-5)
  per_image = float(tf.reduce_mean(losses.segmentation(logits, labels)))
  assert per_image != pytest.approx(got, rel=1e-3)  # the project's earlier per-image mean


def test_latent_noise_reaches_only_the_rgb_to_seg_and_rgb_to_depth_paths():
  model = mm_model.MixMatch((8, 16), "indices").build(16)
  batches = _batches()
  seed = tf.constant([3, 4], tf.int64)
  quiet, _ = train.mixmatch_outputs(model, batches, train.Weights(latent_noise=0.0), seed)
  noisy, side = train.mixmatch_outputs(model, batches, train.Weights(latent_noise=0.5), seed)
  quiet_side = train.mixmatch_outputs(model, batches, train.Weights(latent_noise=0.0), seed)[1]
  for name in quiet:
    changed = np.abs(noisy[name][1].numpy() - quiet[name][1].numpy()).max() > 1e-4
    assert changed == (name in ("rgb2seg", "rgb2depth")), name
  for key in side:  # the latents the alignment compares carry no noise
    np.testing.assert_allclose(side[key][-1]["pooled"], quiet_side[key][-1]["pooled"],
                               atol=1e-6)


def test_default_objective_is_the_references_combination():
  """g = 100 CE(R->S) + 10 L1(R->D) + 10 (CE(S->S) + L1(D->D)) + 10 (10 sum MSE(RGB outs) +
  sum LSGAN) + 10 (feature losses + max-feature losses), written out from the outputs."""
  w = train.Weights(latent_noise=0.0)  # deterministic outputs; the rest as the reference
  assert (w.seg, w.depth, w.auto, w.rgb, w.rgb_recon, w.latent, w.disc, w.latent_levels) == (
      100, 10, 10, 10, 10, 10, 10, 3)
  model = mm_model.MixMatch((4, 8, 8), "indices").build(16)
  disc = mm_model.RGBDiscriminator(4)
  disc(tf.zeros([2, 16, 16, 3]))
  batches = _batches()
  seed = tf.constant([1, 1], tf.int64)
  out, side = train.mixmatch_outputs(model, batches, w, seed)
  b1, b2 = batches
  valid = lambda lab: np.asarray(lab) != 13
  ce = lambda logits, lab: tf.nn.sparse_softmax_cross_entropy_with_logits(
      np.minimum(lab, 12), logits).numpy()[valid(lab)].mean()
  l1 = lambda p, t: float(tf.reduce_mean(tf.abs(p - t)))
  mse = lambda p, t: float(tf.reduce_mean(tf.square(p - t)))
  lsg = lambda f: float(tf.reduce_mean(tf.square(disc(f) - 1.0)))
  rgb_outs = [(out["seg2rgb"][1], b1["rgb"]), (out["depth2rgb"][1], b2["rgb"]),
              (out["rgb2rgb_1"][1], b1["rgb"]), (out["rgb2rgb_2"][1], b2["rgb"])]
  feat = lambda a, b: sum(mse(a[i]["pooled"], b[i]["pooled"]) for i in (0, 1, 2))

  def max_feat(a, b):
    a, b = a.numpy(), b.numpy()
    s = a.sum(axis=(1, 2), keepdims=True)
    m = (s >= s / 10).astype(np.float32)
    return np.sum((a * m - b * m) ** 2) / (4 * a.shape[1] * a.shape[2] * m.sum())

  expected = (100 * ce(out["rgb2seg"][1], b1["seg_labels"]) +
              10 * l1(out["rgb2depth"][1], b2["depth"]) +
              10 * (ce(out["seg2seg"][1], b1["seg_labels"]) + l1(out["depth2depth"][1],
                                                                   b2["depth"])) +
              10 * (10 * sum(mse(p, t) for p, t in rgb_outs) + sum(lsg(p) for p, _ in rgb_outs))
              + 10 * (feat(side["rgb1"], side["seg"]) + feat(side["rgb2"], side["depth"]) +
                      max_feat(side["rgb1"][-1]["pooled"], side["seg"][-1]["pooled"]) +
                      max_feat(side["rgb2"][-1]["pooled"], side["depth"][-1]["pooled"])))
  opt = train.adam(tf.distribute.get_strategy(), 0.0, model.trainable_variables)
  step = train.mixmatch_step(model, opt, w, 4, disc=disc, d_opt=None, update_disc=False)
  got = float(_in_replica(step, batches, seed)["loss"])
  # The step runs its own forward pass: batch norm over up to 4 x 16 x 16 positions and 3x3
  # fan-ins through encoders, decoders and the critic, K ~ 20,000 float32 terms; a sum of
  # positive terms each within ~2 f32(K). (A wrongly weighted term under ~0.5 % of the total
  # would hide in it; the terms above each carry a weight of 10 or 100.)
  assert got == pytest.approx(expected, rel=2 * numerics.f32(20000))


def test_rgb_decoder_has_no_side_information_by_default():
  model = mm_model.MixMatch((8,), "indices").build(8)
  assert model.decoders["rgb"].side_info == "none"
  assert model.decoders["seg"].side_info == "indices"
  same = mm_model.MixMatch((8,), "indices", rgb_side_info="same").build(8)
  assert same.decoders["rgb"].side_info == "indices"
  with pytest.raises(ValueError, match="--test_bn"):
    mm_model.MixMatch((8,), "indices", test_bn="sometimes")
  with pytest.raises(ValueError, match="--latent_levels"):
    train.Weights(latent_levels=0)
  with pytest.raises(ValueError, match="--seg_weight"):
    train.Weights(seg=-1)


def test_encoder_agreement_by_hand():
  from lamp_tf.mixmatch import evaluate
  model = mm_model.MixMatch((4, 8), "indices").build(8)
  rng = np.random.default_rng(0)
  inputs = {"rgb": rng.uniform(-1, 1, [10, 8, 8, 3]).astype(np.float32),
            "depth": rng.uniform(-1, 1, [10, 8, 8, 1]).astype(np.float32)}
  itself = evaluate.EncoderAgreement(inputs, "rgb", "rgb", batch=4)(model)
  assert itself["latent_distance"] == 0.0 and itself["indices_agreement"] == [1.0, 1.0]
  # The formula over the whole set at once (batch moments: one batch of all 10 scenes).
  got = evaluate.EncoderAgreement(inputs, "depth", "rgb", batch=10)(model)
  z_d, side_d = model.encode(tf.constant(inputs["depth"]), "depth")
  z_r, side_r = model.encode(tf.constant(inputs["rgb"]), "rgb")
  z_d, z_r = z_d.numpy().astype(np.float64), z_r.numpy().astype(np.float64)
  expected = np.mean(np.sum((z_d - z_r) ** 2, axis=(1, 2, 3))) / np.sum(z_r.var(axis=0))
  assert got["latent_distance"] == pytest.approx(expected, rel=1e-6)
  for level, (a, b) in enumerate(zip(side_d, side_r)):
    assert got["indices_agreement"][level] == pytest.approx(
        np.mean(a["indices"].numpy() == b["indices"].numpy()))
  # Its reference points, on the same latents: the constant mean latent scores 1, the next
  # scene's latent (the last wrapping to the first) what another scene scores.
  assert got["latent_distance_constant"] == pytest.approx(1.0, rel=1e-9)
  other = np.mean(np.sum((np.roll(z_r, 1, axis=0) - z_r) ** 2, axis=(1, 2, 3)))
  assert got["latent_distance_other_scene"] == pytest.approx(
      other / np.sum(z_r.var(axis=0)), rel=1e-6)
  # The alignment loss itself (unweighted, the reference's pooled outputs), per scene.
  raw = sum(np.mean((a["pooled"].numpy() - b["pooled"].numpy()) ** 2)
            for a, b in zip(side_d, side_r))
  assert got["alignment_raw"] == pytest.approx(raw, rel=1e-5)
  variance = lambda x: x.astype(np.float64).var(axis=0).mean()
  relative = sum(np.mean((a["pooled"].numpy() - b["pooled"].numpy()) ** 2) /
                 (0.5 * (variance(a["pooled"].numpy()) + variance(b["pooled"].numpy())) + 1e-6)
                 for a, b in zip(side_d, side_r))
  assert got["alignment_relative"] == pytest.approx(relative, rel=1e-4)
  assert itself["alignment_raw"] == itself["alignment_relative"] == 0.0


def test_training_trace_keeps_losses_and_probes_and_resumes(tmp_path):
  from lamp_tf.mixmatch import trace as trace_lib

  class Writer:
    def __init__(self):
      self.written = []

    def write_scalars(self, step, scalars):
      self.written.append((step, dict(scalars)))

    def flush(self):
      pass

  values = iter([{"latent_distance": 1.2, "indices_agreement": [0.3, 0.4]},
                 {"latent_distance": 0.5, "indices_agreement": [0.6, 0.7]},
                 {"latent_distance": 0.4, "indices_agreement": [0.7, 0.8]}])
  writer = Writer()
  trace = trace_lib.TrainingTrace(str(tmp_path), writer, lambda: next(values))
  trace.probe_at(0)
  trace.write_scalars(1, {"run/loss": 9.0, "run/latent_depth": 3.0, "run/d_loss": 7.0})
  (every, action), = trace.actions(8)
  assert every == 2
  action(4)
  trace.write_scalars(8, {"run/loss": 2.0, "run/latent_depth": 0.5})
  # A killed run resumes its trace from the file; a probe already taken is not taken again.
  resumed = trace_lib.TrainingTrace(str(tmp_path), writer, lambda: next(values))
  resumed.probe_at(4)
  resumed.probe_at(8)
  got = resumed.summary()
  assert got["loss_start_step"] == 1 and got["loss_end_step"] == 8
  assert got["loss_start_latent_depth"] == 3.0 and got["loss_end_latent_depth"] == 0.5
  # A term of some steps only (the discriminator's, every other step) says where it was seen.
  assert got["loss_end_d_loss"] == 7.0 and got["loss_steps_d_loss"] == [1, 1]
  assert got["loss_steps_latent_depth"] == [1, 8]
  from lamp_tf.mixmatch import report
  record = {"method": "mm_zero_pair", "side_info": "indices", "test_bn": "batch",
            "objective": "flags", "seed": 0, "latent_distance_train": 0.5,
            "indices_agreement_train": [0.5, 0.5], "probe_alignment_raw": [1.0, 0.5, 0.4],
            "probe_alignment_relative": [2.0, 1.0, 0.8], **got}
  sections = dict(report.alignment_sections([record], ("indices",), "batch"))
  table = sections["Loss terms at the first and the last recorded step (weighted, mean over "
                   "seeds)"]
  assert "| indices | d_loss | 7 (step 1) | 7 (step 1) |" in table
  assert "| indices | latent_depth | 3 | 0.5 |" in table
  assert got["probe_steps"] == [0, 4, 8]
  assert got["probe_latent_distance"] == [1.2, 0.5, 0.4]
  assert got["probe_indices_agreement"] == [[0.3, 0.4], [0.6, 0.7], [0.7, 0.8]]
  tags = {k for _, scalars in writer.written for k in scalars}
  assert {"run/loss", "alignment/latent_distance", "alignment/indices_agreement_2"} <= tags


def _tiny_pairs(n=8, size=16):
  rng = np.random.default_rng(5)
  return rgbd.PairedScenes(
      rgb_seg={"rgb": rng.integers(0, 255, [n, size, size, 3], dtype=np.uint8),
               "seg": rng.integers(0, 14, [n, size, size], dtype=np.uint8)},
      rgb_depth={"rgb": rng.integers(0, 255, [n, size, size, 3], dtype=np.uint8),
                 "depth": rng.uniform(1, 5, [n, size, size]).astype(np.float32)},
      test={})


def test_warm_start_trains_the_paired_translations_then_mixmatch_from_their_weights(
    tmp_path, monkeypatch):
  """The reference restores every encoder and decoder from a trained pix2pix model, then trains
  mix-and-match with a fresh discriminator and optimisers (RGBD/model.py `train`)."""
  from lamp_tf.mixmatch import experiment
  pairs = _tiny_pairs()
  cfg = experiment.ExperimentConfig(resolution=16, widths=(4, 8), steps=5, warm_start=0.4,
                                    batch_size=4)
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                             export_dir="", log_every_secs=1e9, summary_every=1)
  variant = experiment.reference_variant(cfg)
  started = {}
  fit = train.fit

  def spy(rt_, run_dir, name, trackables, *args, **kwargs):
    started[name] = {k: [v.numpy().copy() for v in m.trainable_variables]
                     for k, m in trackables.items() if k.startswith(("enc_", "dec_"))}
    state = fit(rt_, run_dir, name, trackables, *args, **kwargs)
    started[name + "/end"] = {k: [v.numpy().copy() for v in m.trainable_variables]
                              for k, m in trackables.items() if k.startswith(("enc_", "dec_"))}
    started[name + "/opt"] = int(trackables["optimizer"].iterations)
    return state

  monkeypatch.setattr(train, "fit", spy)
  model = experiment.train_mixmatch(rt, cfg, pairs, "indices", 0, variant, "run")
  warm, main = started["run_warm_start/end"], started["run"]
  for name in warm:  # mix-and-match starts from the warm start's encoders and decoders...
    for a, b in zip(warm[name], main[name]):
      np.testing.assert_array_equal(a, b)
  assert started["run_warm_start/opt"] == 2 and started["run/opt"] == 3  # ...fresh optimiser
  # The warm start trains the paired translations only; mix-and-match adds the rest.
  runs = tmp_path / "runs" / "run"
  warm_terms = set(json.loads((runs / "warm_start" / "trace.json").read_text())["losses"]["1"])
  main_terms = set(json.loads((runs / "trace.json").read_text())["losses"]["1"])
  assert {"rgb2seg", "rgb2depth", "rgb_recon", "rgb_adv"} <= warm_terms
  assert not warm_terms & {"seg2seg", "depth2depth", "latent_depth", "latent_seg",
                           "max_feature_depth"}
  assert {"seg2seg", "depth2depth", "latent_depth", "max_feature_depth"} <= main_terms
  assert model.training_trace["probe_steps"] == [0, 1, 2, 3]  # before, and every 3 // 4 steps
  assert model.training_trace["warm_start_steps"] == 2  # round(0.4 * 5), before those 3
  # A killed run that finished the warm start but wrote no mix-and-match checkpoint starts the
  # mix-and-match part again from the warm start's weights; a finished one trains nothing.
  import shutil
  shutil.rmtree(runs / "checkpoints")
  (runs / "trace.json").unlink()
  started.clear()
  experiment.train_mixmatch(rt, cfg, pairs, "indices", 0, variant, "run")
  for name in warm:
    for a, b in zip(warm[name], started["run"][name]):
      np.testing.assert_array_equal(a, b)
  started.clear()
  experiment.train_mixmatch(rt, cfg, pairs, "indices", 0, variant, "run")
  assert "run_warm_start" not in started and started["run/opt"] == 3


def test_each_interventions_zero_pair_is_compared_with_its_own_mm_cascade():
  """The interventions table pairs each model's zero-pair with the M&M cascade of the same
  models (a report once used the flags' model's cascade for every row)."""
  from lamp_tf.mixmatch import experiment, report
  rec = lambda method, objective, miou: {"method": method, "side_info": "indices", "seed": 1,
                                         "test_bn": "batch", "objective": objective,
                                         "miou": miou, "per_class_iou": [miou] * 13}
  records = [rec("mm_zero_pair", "flags", 0.20), rec("mm_cascade", "flags", 0.10),
             rec("mm_zero_pair", "align_scale=raw", 0.20), rec("mm_cascade", "align_scale=raw",
                                                               0.30)]
  _, md = report.interventions_section(
      records, ("align_scale=raw",), "indices", "batch",
      lambda objective: experiment._cascades(records, "indices", "batch", objective))
  versus = md[md.index("| model | cascade"):]
  assert "| the flags' model | M&M cascade | 10" in versus  # 20 - 10 points
  assert "| align_scale=raw | M&M cascade | -10" in versus  # 20 - 30, not 20 - 10
