"""lamp-tf-sample (`runtime.sampling`): PNG grids and files from tiny exported generators in the
order of the classes asked, translations of image files through tiny mix-and-match and
style-transfer exports (segmentation colour-coded with its legend), bad requests as one line,
and the program itself in a process where lamp_tf's training modules cannot be imported."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.data import scenes
from lamp_tf.gan import transfer
from lamp_tf.mixmatch import domains, experiment as mm_experiment, model as mm_model
from lamp_tf.mixmatch import style_experiment
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import flags as runtime_flags, sampling
from tests import image_folders
from tests.conftest import REPO_ROOT


def _png(path, dtype=tf.uint8):
  return tf.io.decode_png(tf.io.read_file(str(path)), dtype=dtype).numpy()


def _rt(tmp_path):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                               export_dir="")


@pytest.fixture(scope="module")
def generator_export(tmp_path_factory):
  tf.keras.utils.set_random_seed(0)
  g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
  return transfer.export_generator(g, d, str(tmp_path_factory.mktemp("gen") / "gen"))


def test_grid_and_files_follow_the_classes_asked_with_fixed_z(generator_export, tmp_path):
  cfg = sampling.SampleConfig(export_dir=os.path.dirname(generator_export),
                              out_dir=str(tmp_path / "out"), classes=(2, 0), count=3,
                              fixed_z=True, individual=True)
  paths = sampling.run(cfg)
  grid = _png(tmp_path / "out" / "grid_seed0.png")
  assert grid.shape == (2 * 34 - 2, 3 * 34 - 2, 1)  # 2 rows (classes) x 3 samples of 32x32, 2 px
  assert len(paths) == 1 + 6
  served = tf.saved_model.load(generator_export).signatures["generate"]
  z = tf.random.stateless_normal([3, 128], seed=[0, 0])  # the docstring's fixed z
  for row, label in enumerate((2, 0)):
    expected = served(z=z, label=tf.constant([label] * 3, tf.int64))["images"].numpy()
    expected = np.clip(np.round((expected + 1) * 127.5), 0, 255).astype(np.uint8)
    for col in range(3):
      tile = grid[row * 34:row * 34 + 32, col * 34:col * 34 + 32]
      # The same signature on the same rows in another batch: rounding of the last float32
      # bits can move a pixel across a uint8 boundary (1); another class moves it by far more.
      np.testing.assert_allclose(tile.astype(int), expected[col].astype(int), atol=1)
      np.testing.assert_array_equal(_png(tmp_path / "out" / f"class{label}_seed0_{col:04d}.png"),
                                    tile)
  other = served(z=z, label=tf.constant([0] * 3, tf.int64))["images"].numpy()
  assert np.abs((other + 1) * 127.5 - grid[:32, :32].astype(float)[None]).max() > 10
  manifest = json.loads((tmp_path / "out" / "samples.json").read_text())
  assert manifest["classes"] == [2, 0] and manifest["fixed_z"]


def test_every_class_by_default_and_bad_classes_named(generator_export, tmp_path):
  cfg = sampling.SampleConfig(export_dir=generator_export, out_dir=str(tmp_path), count=2,
                              seeds=(1, 2))
  sampling.run(cfg)
  for seed in (1, 2):
    assert _png(tmp_path / f"grid_seed{seed}.png").shape[:2] == (3 * 34 - 2, 2 * 34 - 2)
  with pytest.raises(ValueError, match=r"--classes=0,3: \[3\] are not classes of this generator "
                                       r"\(0..2\)"):
    sampling.run(dataclasses.replace(cfg, classes=(0, 3)))


def test_unconditional_generator_is_one_row(tmp_path):
  g, d = gan_nets.make_gan("dcgan", num_classes=None, conditioning=None, g_width=16, d_width=8)
  path = transfer.export_generator(g, d, str(tmp_path / "u"))
  cfg = sampling.SampleConfig(export_dir=path, out_dir=str(tmp_path / "o"), count=4)
  sampling.run(cfg)
  assert _png(tmp_path / "o" / "grid_seed0.png").shape[:2] == (32, 4 * 34 - 2)
  with pytest.raises(ValueError, match="unconditional; leave --classes out"):
    sampling.run(dataclasses.replace(cfg, classes=(1,)))


def test_style_translation_of_image_files(tmp_path):
  model = domains.DomainMixMatch(3, 8, 8, res_blocks=1).build(16)
  cfg = style_experiment.ExperimentConfig(domains=("photo", "monet", "vangogh"), resolution=16)
  export_dir = style_experiment.export_model(_rt(tmp_path), cfg, model, str(tmp_path / "e"))
  inputs = tmp_path / "in"
  images = image_folders.class_images(0, 2, size=24)
  for i, image in enumerate(images):
    image_folders.write_image(str(inputs / f"p{i}.png"), image)
  paths = sampling.run(sampling.SampleConfig(export_dir=export_dir, out_dir=str(tmp_path / "o"),
                                             inputs=(str(inputs),), source="monet",
                                             target="photo"))
  assert [os.path.basename(p) for p in paths] == ["p0_photo.png", "p1_photo.png"]
  served = tf.saved_model.load(export_dir).signatures["monet_to_photo"]
  x = tf.image.resize(images.astype(np.float32), [16, 16], antialias=True).numpy()
  expected = served(images=tf.constant(np.clip(np.round(x), 0, 255).astype(np.uint8)))["images"]
  for path, want in zip(paths, expected.numpy()):
    got = _png(path)
    assert got.shape == (16, 16, 3)
    # The input resized the same way (TF's antialiased bilinear) and served again: equal up to a
    # uint8 step where the last float32 bits of the network differ by batch.
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=1)
  with pytest.raises(ValueError, match="--from=depth --to=seg: .* has no such translation "
                                       r"\(it has: --from=monet --to=photo"):
    sampling.run(sampling.SampleConfig(export_dir=export_dir, out_dir=str(tmp_path / "o"),
                                       inputs=(str(inputs),), source="depth", target="seg"))


def test_depth_to_segmentation_colour_coded_with_a_legend(tmp_path):
  model = mm_model.MixMatch((8, 16), "indices").build(16)
  cfg = mm_experiment.ExperimentConfig(resolution=16)
  export_dir = mm_experiment.export_mixmatch(_rt(tmp_path), cfg, model, str(tmp_path / "e"))
  depth_mm = np.random.default_rng(0).integers(500, 6000, [2, 16, 16, 1]).astype(np.uint16)
  for i, d in enumerate(depth_mm):
    sampling.write_png(str(tmp_path / "in" / f"d{i}.png"), d)  # 16-bit PNG, millimetres
  out = tmp_path / "o"
  paths = sampling.run(sampling.SampleConfig(
      export_dir=export_dir, out_dir=str(out), inputs=(str(tmp_path / "in" / "*.png"),),
      source="depth", target="seg"))
  legend = json.loads((out / "legend.json").read_text())
  assert list(legend) == list(scenes.CLASSES) + ["void"]
  assert (out / "legend.png").stat().st_size > 1000
  served = tf.saved_model.load(export_dir).signatures["depth_to_seg"]
  labels = served(depth=tf.constant(depth_mm[..., 0] / 1000.0, tf.float32))["labels"].numpy()
  colours = np.array(list(legend.values()), np.uint8)
  for path, want in zip(paths, labels):
    got = _png(path)
    assert got.shape == (16, 16, 3)
    # Colour-coded: each pixel is its label's legend colour (the same float32 input in the same
    # batch: the same labels).
    np.testing.assert_array_equal(got, colours[want])
  # And back: depth out as a 16-bit PNG in millimetres.
  sampling.run(sampling.SampleConfig(export_dir=export_dir, out_dir=str(tmp_path / "rgb"),
                                     inputs=(str(tmp_path / "in"),), source="depth",
                                     target="rgb"))
  assert _png(tmp_path / "rgb" / "d0_rgb.png").shape == (16, 16, 3)


def test_requests_that_cannot_run_are_one_line_errors(tmp_path):
  for cfg, words in [
      (sampling.SampleConfig(), "--export_dir is required"),
      (sampling.SampleConfig(export_dir=str(tmp_path)), "neither a SavedModel directory"),
      (sampling.SampleConfig(export_dir=str(tmp_path), source="rgb"), "--from and --to go"),
  ]:
    with pytest.raises(ValueError, match=words):
      sampling.run(cfg)


BLOCKED = """
import importlib.abc, runpy, sys
TRAINING = ("lamp_tf.continual", "lamp_tf.gan", "lamp_tf.transfer_gan", "lamp_tf.mixmatch",
            "lamp_tf.nets", "lamp_tf.metrics", "lamp_tf.data", "lamp_tf.runtime.loop",
            "lamp_tf.runtime.flags", "lamp_tf.runtime.precision", "lamp_tf.runtime.strategy")
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.startswith(TRAINING):
      raise ImportError(f"{name} is training code")
sys.meta_path.insert(0, Block())
sys.argv = ["lamp-tf-sample"] + sys.argv[1:]
try:
  runpy.run_module("lamp_tf.apps.sample", run_name="__main__")
except SystemExit as e:
  assert not e.code, e.code
loaded = sorted(m for m in sys.modules if m.startswith("lamp_tf"))
print("loaded:", " ".join(loaded))
"""


def test_the_program_runs_on_tensorflow_and_the_export_alone(generator_export, tmp_path):
  out = subprocess.run(
      [sys.executable, "-c", BLOCKED, f"--export_dir={generator_export}",
       f"--out_dir={tmp_path}", "--classes=1", "--count=70", "--batch_size=16",
       "--log_every_secs=0"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  loaded = out.stdout.strip().splitlines()[-1].split()[1:]
  # Only the program, its entry and the export-reading modules (TensorFlow's SavedModel loader
  # may import keras itself to read a Keras export: that is TensorFlow, not lamp_tf).
  assert set(loaded) == {"lamp_tf", "lamp_tf.apps", "lamp_tf.runtime",  # (the program: __main__)
                         "lamp_tf.runtime.boundary", "lamp_tf.runtime.export",
                         "lamp_tf.runtime.files", "lamp_tf.runtime.sampling",
                         "lamp_tf.runtime.settings"}, loaded
  assert "sampled 16/70" in out.stderr and "sampled 70/70" in out.stderr  # the progress line
  assert _png(tmp_path / "grid_seed0.png").shape[:2] == (32, 70 * 34 - 2)
