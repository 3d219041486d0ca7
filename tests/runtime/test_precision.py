"""Mixed precision: one training step of each kind of model under bfloat16 (and float16 with loss
scaling), float32 outputs and variables, and a bfloat16 run that resumes from its checkpoint;
which machines have native bfloat16 (from their cpuinfo text), and the refusal of a precision
the machine runs slower than float32.

The numerics tests ask for the mixed precisions with allow_slow=True: they check the numbers on
any CPU, not the speed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.gan import train as gan_train
from lamp_tf.metrics import features
from lamp_tf.mixmatch import model as mm_model, train as mm_train
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import cpu, flags as runtime_flags, precision
from tests.runtime import cpuinfo_samples as samples, tiny_program


def _run(fn, *args):
  return tf.distribute.get_strategy().run(fn, args=args)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_gan_step_under_mixed_precision(policy):
  with precision.precision(policy, allow_slow=True):
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
  with precision.precision("mixed_bfloat16", allow_slow=True):
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
                                 precision="mixed_bfloat16", allow_slow_precision=True)

  with precision.precision("mixed_bfloat16", allow_slow=True):
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


@pytest.mark.parametrize("cpuinfo,accelerator,native", [
    (samples.SAPPHIRE_RAPIDS, False, True),  # avx512_bf16 and amx_bf16
    (samples.ZEN3, False, False),  # AVX2 only
    (samples.ICE_LAKE, False, False),  # AVX-512 is not enough
    (samples.ZEN3, True, True),  # a GPU or TPU does the arithmetic
    (samples.NEOVERSE, False, None),  # not x86: unknown
    ("", False, None),  # empty
    (None, False, None),  # unreadable, or not Linux
])
def test_native_bfloat16_from_the_cpuinfo_text(cpuinfo, accelerator, native):
  assert precision.native_bfloat16(cpuinfo, accelerator) is native


def test_the_cpu_record_of_a_benchmark():
  assert cpu.record(samples.ZEN3) == {
      "model": "AMD EPYC 7763 64-Core Processor",
      "isa": {"avx2": True, "fma": True, "avx512f": False, "avx512_bf16": False,
              "amx_bf16": False}}
  assert cpu.record(samples.SAPPHIRE_RAPIDS)["isa"] == dict.fromkeys(cpu.ISA_FLAGS, True)
  assert cpu.record(samples.NEOVERSE) == {"model": None, "isa": None}
  assert cpu.record(None) == {"model": None, "isa": None}


def test_slow_precisions_are_named_with_the_fix():
  bf16 = precision.slow_precision_message("mixed_bfloat16", samples.ZEN3, gpu=False)
  assert bf16 == (
      "--precision=mixed_bfloat16: this CPU (AMD EPYC 7763 64-Core Processor) has no native "
      "bfloat16 instructions (avx512_bf16 or amx_bf16), where mixed_bfloat16 ran the GAN step "
      "10x slower than float32 (issue #34, benchmarks/gan_step_bench.py); use "
      "--precision=float32, or add --allow_slow_precision to run it anyway.")
  fp16 = precision.slow_precision_message("mixed_float16", samples.SAPPHIRE_RAPIDS, gpu=False)
  assert fp16.startswith("--precision=mixed_float16: no GPU is visible")
  assert "--allow_slow_precision" in fp16 and "\n" not in fp16
  assert "this CPU has no" in precision.slow_precision_message(
      "mixed_bfloat16", samples.ZEN3.replace("model name", "model"), gpu=False)
  fast = [("float32", samples.ZEN3, False, False),
          ("mixed_bfloat16", samples.SAPPHIRE_RAPIDS, False, False),
          ("mixed_bfloat16", samples.ZEN3, True, False),
          ("mixed_bfloat16", samples.ZEN3, False, True),  # a TPU
          ("mixed_bfloat16", None, False, False),  # unknown: not refused
          ("mixed_bfloat16", samples.NEOVERSE, False, False),
          ("mixed_float16", samples.ZEN3, True, False)]
  for name, cpuinfo, gpu, tpu in fast:
    assert precision.slow_precision_message(name, cpuinfo, gpu, tpu) is None, (name, gpu, tpu)
  assert precision.slow_precision_message("mixed_float16", None, gpu=False, tpu=True)


def test_a_slow_precision_is_refused_unless_allowed(monkeypatch):
  """As on the AMD EPYC of issue #34 (CPU only, no bfloat16 instructions), whatever this
  machine is; the policy stays as it was when refused."""
  monkeypatch.setattr(cpu, "read_cpuinfo", lambda: samples.ZEN3)
  monkeypatch.setattr(precision, "visible_accelerators", lambda: ())
  with precision.precision("float32"):
    for name in ("mixed_bfloat16", "mixed_float16"):
      with pytest.raises(ValueError, match=f"^--precision={name}: .*--allow_slow_precision"):
        precision.set_precision(name)
      assert keras.mixed_precision.global_policy().name == "float32"
      with precision.precision(name, allow_slow=True):
        assert keras.mixed_precision.global_policy().name == name
  monkeypatch.setattr(cpu, "read_cpuinfo", lambda: samples.SAPPHIRE_RAPIDS)
  with precision.precision("mixed_bfloat16"):
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
  monkeypatch.setattr(precision, "visible_accelerators", lambda: ("GPU",))
  with precision.precision("mixed_float16"):
    assert keras.mixed_precision.global_policy().name == "mixed_float16"


def test_a_runtime_applies_its_precision_wherever_it_is_built(monkeypatch):
  """Issue #31: `Runtime(precision=...)` (a notebook, as the README shows the API) trained in
  float32 without a word: only the flag set the policy. Building a Runtime now sets it, and
  refuses a slow precision as the flag does (here as on the AMD EPYC of issue #34)."""
  monkeypatch.setattr(cpu, "read_cpuinfo", lambda: samples.ZEN3)
  monkeypatch.setattr(precision, "visible_accelerators", lambda: ())

  def runtime(**kwargs):
    return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir="w",
                                 export_dir="", **kwargs)

  with precision.precision("float32"):
    runtime(precision="mixed_bfloat16", allow_slow_precision=True)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    runtime()  # float32, the default
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="^--precision=mixed_bfloat16: .*--allow_slow"):
      runtime(precision="mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_this_machines_detection_runs():
  """The real /proc/cpuinfo and devices, whatever they are: an answer, no error."""
  native = precision.native_bfloat16(cpu.read_cpuinfo(), bool(precision.visible_accelerators()))
  assert native in (True, False, None)
  record = cpu.this_machine()
  assert set(record) == {"model", "isa"}
  assert record["isa"] is None or set(record["isa"]) == set(cpu.ISA_FLAGS)
