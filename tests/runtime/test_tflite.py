"""--export_format=saved_model,tflite: each signature of the TFLite model (TFLite's interpreter,
`tf.lite.Interpreter`) gives the SavedModel's outputs on the same inputs within the rounding of
float32 kernels, and the export's own check in the model card says so; a signature with an op
TFLite has no builtin kernel for is named with that op in one log line and the others still
convert."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.gan import transfer
from lamp_tf.mixmatch import domains, experiment as mm_experiment, model as mm_model
from lamp_tf.mixmatch import style_experiment
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import export, flags as runtime_flags
from tests import numerics

BOTH = ("saved_model", "tflite")


def _runner(export_dir, name):
  card = json.loads(open(os.path.join(export_dir, "model_card.json")).read())
  path = os.path.join(export_dir, card["tflite"]["file"])
  return tf.lite.Interpreter(model_path=path).get_signature_runner(name)


def _rt(tmp_path):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                               export_dir="", export_format=BOTH)


def test_a_conditional_generator(tmp_path):
  tf.keras.utils.set_random_seed(0)
  g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
  path = transfer.export_generator(g, d, str(tmp_path / "g"), formats=BOTH)
  card = json.loads(open(os.path.join(path, "model_card.json")).read())
  assert card["tflite"]["file"] == "model.tflite" and list(card["tflite"]["signatures"]) == [
      "generate"]
  z = np.random.default_rng(0).normal(size=[5, 128]).astype(np.float32)
  label = np.array([0, 1, 2, 2, 0], np.int64)
  lite = _runner(path, "generate")(z=z, label=label)["images"]
  saved = tf.saved_model.load(path).signatures["generate"](z=tf.constant(z),
                                                           label=tf.constant(label))["images"]
  assert lite.shape == (5, 32, 32, 1)
  # Images in [-1, 1] through tanh (slope <= 1) after K ~ 3,200 accumulated float32 terms (z's
  # 128 through the dense layer, then three 4x4 transposed convolutions of <= 64 channels): two
  # kernel libraries (TFLite's XNNPACK, TensorFlow's oneDNN/Eigen) differ by at most f32(K).
  # Another class or batch-norm statistic moves a pixel by O(0.1).
  np.testing.assert_allclose(lite, saved.numpy(), atol=numerics.f32(3200))
  # The export's own check: 8 random requests (labels of the generator's classes), same bound.
  check = card["tflite"]["signatures"]["generate"]["check"]
  assert check["examples"] == 8 and 0 <= check["max_abs_difference"]["images"] <= numerics.f32(
      3200)


def test_a_style_translator(tmp_path):
  model = domains.DomainMixMatch(3, 8, 8, res_blocks=1).build(16)
  cfg = style_experiment.ExperimentConfig(domains=("photo", "monet", "vangogh"), resolution=16)
  path = style_experiment.export_model(_rt(tmp_path), cfg, model, str(tmp_path / "s"))
  card = json.loads(open(os.path.join(path, "model_card.json")).read())
  assert len(card["tflite"]["signatures"]) == 6
  assert all("check" in v for v in card["tflite"]["signatures"].values())
  images = np.random.default_rng(1).integers(0, 256, [3, 16, 16, 3]).astype(np.uint8)
  lite = _runner(path, "monet_to_vangogh")(images=images)["images"]
  saved = tf.saved_model.load(path).signatures["monet_to_vangogh"](images=tf.constant(images))
  assert lite.dtype == np.uint8 and lite.shape == (3, 16, 16, 3)
  # uint8 out of [-1, 1] floats: float32 rounding moves a value across a uint8 step at most once
  # (|error| << 1/255); a wrong decoder or domain moves pixels by tens.
  np.testing.assert_allclose(lite.astype(int), saved["images"].numpy().astype(int), atol=1)
  assert all(v["check"]["max_abs_difference"]["images"] <= 1
             for v in card["tflite"]["signatures"].values())


def test_a_signature_that_cannot_convert_is_named_and_the_others_convert(tmp_path, caplog):
  scale = tf.Variable(2.0)
  spec = tf.TensorSpec([None, 4, 4, 1], tf.float32, name="x")
  double = tf.function(lambda x: {"y": x * scale}, input_signature=[spec])
  pool = tf.function(lambda x: {"y": tf.cast(tf.nn.max_pool_with_argmax(
      x * scale, 2, 2, "VALID", include_batch_in_index=True)[1], tf.float32)},
      input_signature=[spec])
  with caplog.at_level(logging.WARNING):
    path = export.export_saved_model(str(tmp_path / "m"), {"double": double, "pool": pool},
                                     [scale], formats=BOTH)
  card = json.loads(open(os.path.join(path, "model_card.json")).read())
  assert card["tflite"]["file"] == "model.tflite"
  assert card["tflite"]["signatures"]["double"] == {"check": {
      "examples": 8, "max_abs_difference": {"y": 0.0}, "share_different": {}}}  # x * 2, exact
  assert card["tflite"]["signatures"]["pool"] == {
      "error": "TensorFlow op tf.MaxPoolWithArgmax has no TFLite builtin kernel"}
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TFLite")]
  assert lines == ["TFLite: pool not converted: TensorFlow op tf.MaxPoolWithArgmax has no TFLite "
                   "builtin kernel (1 other signature converted)."]
  x = np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1)
  np.testing.assert_array_equal(_runner(path, "double")(x=x)["y"], 2 * x)  # exact: x * 2
  lite = tf.lite.Interpreter(model_path=os.path.join(path, "model.tflite"))
  assert list(lite.get_signature_list()) == ["double"]


def test_mix_and_match_translators_with_pooling_indices(tmp_path):
  """Every signature of a mix-and-match export (SegNet encoders and decoders with pooling
  indices, batch statistics at test as served) converts and gives the SavedModel's outputs."""
  tf.keras.utils.set_random_seed(0)
  model = mm_model.MixMatch((8, 16), "indices").build(16)
  path = mm_experiment.export_mixmatch(_rt(tmp_path), mm_experiment.ExperimentConfig(
      resolution=16), model, str(tmp_path / "m"))
  card = json.loads(open(os.path.join(path, "model_card.json")).read())
  assert len(card["tflite"]["signatures"]) == 7
  assert all("check" in v for v in card["tflite"]["signatures"].values())
  rng = np.random.default_rng(2)
  depth = rng.uniform(0.5, 8.0, [4, 16, 16]).astype(np.float32)
  rgb = rng.integers(0, 256, [4, 16, 16, 3]).astype(np.uint8)
  saved = tf.saved_model.load(path).signatures
  for name, inputs in [("depth_to_seg", {"depth": depth}), ("rgb_to_depth", {"rgb": rgb}),
                       ("depth_to_rgb", {"depth": depth}), ("rgbd_to_seg", {"rgb": rgb,
                                                                         "depth": depth})]:
    lite = _runner(path, name)(**inputs)
    want = saved[name](**{k: tf.constant(v) for k, v in inputs.items()})
    assert sorted(lite) == sorted(want)
    # Nine 3x3 convolutions of <= 2 x 16 channels (K ~ 2,600 accumulated terms), each normalised
    # by its batch's moments (std about 1 for these weights), through softmax, tanh or the depth
    # decoding (slopes <= 1, depth's <= 10 m): f32(K) per unit of output. A wrong position in
    # the unpooling, another decoder or other statistics move outputs by O(0.1).
    for key, value in want.items():
      if key == "labels":
        continue
      scale = 10.0 if key == "depth" else (255.0 if key == "rgb" else 1.0)
      np.testing.assert_allclose(lite[key].astype(np.float64),
                                 value.numpy().astype(np.float64),
                                 atol=scale * numerics.f32(2600) + (1 if key == "rgb" else 0),
                                 err_msg=f"{name}: {key}")
  probabilities = saved["depth_to_seg"](depth=tf.constant(depth))["probabilities"].numpy()
  top2 = np.sort(probabilities, axis=-1)[..., -2:]
  clear = top2[..., 1] - top2[..., 0] > 2 * numerics.f32(2600)  # no near-tie between classes
  lite_labels = _runner(path, "depth_to_seg")(depth=depth)["labels"]
  np.testing.assert_array_equal(lite_labels[clear], probabilities.argmax(-1)[clear])
  # The export's own check on random valid requests (depth 0.5-10 m, labels 0-13 with void).
  for name, v in card["tflite"]["signatures"].items():
    for key, difference in v["check"]["max_abs_difference"].items():
      scale = 10.0 if key == "depth" else (255.0 if key == "rgb" else 1.0)
      assert difference <= scale * numerics.f32(2600) + (1 if key == "rgb" else 0), (name, key)


def test_example_requests_follow_the_specs_and_ranges():
  fn = tf.function(lambda z, label, depth: {}, input_signature=[
      tf.TensorSpec([None, 4], tf.float32, name="z"), tf.TensorSpec([None], tf.int64,
                                                                     name="label"),
      tf.TensorSpec([None, 2, 2], tf.float32, name="depth")])
  got = export.example_inputs(fn, {"label": (0, 3), "depth": (0.5, 10.0)}, n=500)
  assert got["z"].shape == (500, 4) and got["z"].dtype == np.float32
  assert abs(got["z"].mean()) < 0.1 and 0.9 < got["z"].std() < 1.1  # standard normal
  assert got["label"].dtype == np.int64 and set(got["label"]) == {0, 1, 2}
  assert got["depth"].min() >= 0.5 and got["depth"].max() < 10.0


@pytest.mark.parametrize("formats, words", [
    (("tflite",), "the SavedModel is always written"),
    (("saved_model", "onnx"), "unknown onnx; choose from saved_model, tflite"),
])
def test_bad_formats_are_one_line_errors(formats, words):
  with pytest.raises(ValueError, match=f"--export_format={','.join(formats)}: {words}"):
    export.check_formats(formats)
