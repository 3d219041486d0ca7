"""SavedModel export: round trip in a fresh TF-only process, signatures, --export_only, atomicity."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.runtime import export, flags as runtime_flags
from tests import numerics
from tests.runtime import helpers, tiny_program

FRESH = """
import json, sys
import numpy as np
import tensorflow as tf
assert not any(m.startswith('lamp_tf') for m in sys.modules)
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = m.signatures['predict'](x=tf.constant(x))
np.save(sys.argv[3], out['probabilities'].numpy())
print(json.dumps(sorted(m.signatures.keys())))
assert not any(m.startswith('lamp_tf') for m in sys.modules)
"""


def probability_rtol(model, x):
  """A served graph fuses the tiny model's ops its own way (and another process may pick other
  kernels), so its probabilities differ from Keras' by rounding: logits z through ~230 float32
  terms (fan-ins 196 and 16, biases), |dz| <= f32(230) max|z|; softmax turns that into at most
  2 |dz| relative in p, and adds its own ~12 roundings (exp, the sum of 10, the division).
  Served weights or a graph that differ (another checkpoint, no softmax) move p by O(1)."""
  logits = model(x, training=False).numpy()
  return numerics.f32(230) * 2 * np.abs(logits).max() + numerics.f32(12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("export")
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                             export_dir="", log_every_secs=1e9)
  model, _ = tiny_program.train(rt, 5)
  export_dir = tiny_program.export_model(model, str(workdir / "saved_model"))
  assert export_dir == str(workdir / "saved_model" / "1")  # TF Serving's layout
  return workdir, model, export_dir


def test_round_trip_in_fresh_tensorflow_only_process(trained, tmp_path):
  _, model, export_dir = trained
  x = np.random.default_rng(0).random([7, tiny_program.INPUT]).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  out = subprocess.run([sys.executable, "-c", FRESH, export_dir, str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) == ["predict", "serving_default"]
  expected = tf.nn.softmax(model(x, training=False)).numpy()
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=probability_rtol(model, x),
                             atol=0)


def test_saved_model_cli_lists_signatures(trained):
  _, _, export_dir = trained
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  out = subprocess.run([cli, "show", "--dir", export_dir, "--all"], capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "signature_def['predict']" in out.stdout
  assert "signature_def['serving_default']" in out.stdout
  assert "probabilities" in out.stdout and "(-1, 196)" in out.stdout


def test_export_only_reexports_latest_checkpoint(tmp_path):
  """What a program's --export_only does: a fresh model restored from the latest checkpoint
  (weights only) exports what the trained one exported; no checkpoint is refused."""
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                             export_dir="", checkpoint_every=4, log_every_secs=1e9)
  model, _ = tiny_program.train(rt, 6)
  first = tf.saved_model.load(tiny_program.export_model(model, str(tmp_path / "sm")))
  x = tf.ones([2, tiny_program.INPUT])
  expected = first.signatures["predict"](x=x)["probabilities"].numpy()
  fresh, _ = tiny_program.build(rt, 1e-2, seed=1)  # other initial weights
  assert rt.train_state("train", 0, model=fresh).restore(partial=True)
  again = tf.saved_model.load(tiny_program.export_model(fresh, str(tmp_path / "sm")))
  assert sorted(os.listdir(tmp_path / "sm")) == ["1", "2"]
  # The same graph on the same restored float32 weights in this process: the same kernels, so
  # bit-identical numbers by construction.
  np.testing.assert_allclose(again.signatures["predict"](x=x)["probabilities"].numpy(), expected,
                             rtol=1e-6)
  empty = dataclasses.replace(rt, workdir=str(tmp_path / "empty"))
  assert not empty.train_state("train", 0, model=fresh).restore(partial=True)


def test_failed_export_keeps_the_previous_one(tmp_path):
  v = tf.Variable(2.0)

  @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
  def good(x):
    return {"y": x * v}

  export.export_saved_model(str(tmp_path / "sm"), {"f": good}, [v])

  @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
  def bad(x):
    raise RuntimeError("tracing fails")

  with pytest.raises(RuntimeError):
    export.export_saved_model(str(tmp_path / "sm"), {"f": bad}, [v])
  loaded = tf.saved_model.load(export.resolve(str(tmp_path / "sm")))
  assert float(loaded.signatures["f"](x=tf.constant(3.0))["y"]) == 6.0  # exact in float32
  assert sorted(os.listdir(tmp_path)) == ["sm"] and sorted(os.listdir(tmp_path / "sm")) == ["1"]


def test_exports_add_versions_with_a_model_card_unless_one_is_pinned(tmp_path):
  v = tf.Variable(2.0)

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
  def f(x):
    return {"y": x * v}

  base = str(tmp_path / "model")
  assert export.export_saved_model(base, {"f": f}, [v], card={"program": "p"}).endswith("/1")
  assert export.export_saved_model(base, {"f": f}, [v]).endswith("/2")
  assert export.export_saved_model(base, {"f": f}, [v], version=7).endswith("/7")
  assert export.export_saved_model(base, {"f": f}, [v], version=2).endswith("/2")  # replaced
  assert sorted(os.listdir(base)) == ["1", "2", "7"] and export.resolve(base).endswith("/7")
  card = json.loads((tmp_path / "model" / "1" / "model_card.json").read_text())
  assert card["program"] == "p" and card["version"] == 1
  assert card["signatures"]["f"]["inputs"]["x"] == {"shape": [None, 3], "dtype": "float32"}
  assert card["signatures"]["f"]["outputs"]["y"]["dtype"] == "float32"


def test_saved_model_cli_runs_the_export_with_the_in_process_outputs(trained, tmp_path):
  _, model, export_dir = trained
  x = np.random.default_rng(1).random([3, tiny_program.INPUT]).astype(np.float32)
  out = helpers.saved_model_cli_run(export_dir, "predict", {"x": x}, tmp_path)
  np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(model(x)).numpy(),
                             rtol=probability_rtol(model, x), atol=0)


def test_a_generator_export_serves_in_saved_model_cli_and_is_a_transfer_source(tmp_path):
  import keras
  from lamp_tf.gan import transfer
  from lamp_tf.nets import gan as gan_nets
  keras.utils.set_random_seed(0)
  g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
  gan_nets.calibrate_class_moments(g, [0, 1, 2], samples=64)
  path = transfer.export_generator(g, d, str(tmp_path / "gen"), moments="calibrated")
  z = np.random.default_rng(2).normal(size=[2, 128]).astype(np.float32)
  label = np.array([0, 2], np.int64)
  out = helpers.saved_model_cli_run(path, "generate", {"z": z, "label": label}, tmp_path)
  # Images in [-1, 1] through the generator with stored moments (no batch sums): ~400 float32
  # terms (fc 128, transposed convolutions <= 144), f32(400) ~ 5e-5; batch or moving
  # statistics instead of the calibrated ones move these images by 0.6 or more.
  np.testing.assert_allclose(out["images"], g(z, label, moments="calibrated").numpy(),
                             rtol=0, atol=numerics.f32(400))
  weights = transfer.load_pretrained(str(tmp_path / "gen"))
  assert set(weights) == {"generator", "critic"}
  np.testing.assert_array_equal(weights["generator"]["fc/kernel"], g.get_layer("fc").kernel)  # copy


REJECT = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
gen = m.signatures['generate']
z = tf.zeros([2, 128])
cases = {'label out of range': (z, tf.constant([0, 3], tf.int64)),
         'negative label': (z, tf.constant([-1, 0], tf.int64)),
         'label count': (z, tf.constant([0], tf.int64)),
         'nan noise': (tf.fill([2, 128], float('nan')), tf.constant([0, 1], tf.int64)),
         'wrong z width': (tf.zeros([2, 64]), tf.constant([0, 1], tf.int64))}
for name, (zz, ll) in cases.items():
  try:
    gen(z=zz, label=ll)
    print(name, 'ANSWERED')
  except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
    print(name, 'rejected:', type(e).__name__)
"""


def test_a_served_generator_rejects_bad_requests(tmp_path):
  import keras
  from lamp_tf.gan import transfer
  from lamp_tf.nets import gan as gan_nets
  keras.utils.set_random_seed(0)
  g, d = gan_nets.make_gan("dcgan", num_classes=3, g_width=16, d_width=8)
  path = transfer.export_generator(g, d, str(tmp_path / "gen"))
  out = subprocess.run([sys.executable, "-c", REJECT, path], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 5 and all("rejected" in line for line in lines), out.stdout
