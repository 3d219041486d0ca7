"""Numeric precision of a run: the Keras dtype policy, and loss scaling where it is needed.

`--precision`:
- 'float32': everything in float32;
- 'mixed_bfloat16': layers compute in bfloat16 and keep float32 variables; no loss scaling is
  needed (bfloat16 has float32's range). Fast only where bfloat16 arithmetic is native: x86 CPUs
  with AVX512_BF16 or AMX (Intel Cooper Lake and Sapphire Rapids on, AMD Zen 4 on), GPUs, TPUs.
  Elsewhere TensorFlow emulates it: on an AMD EPYC (Zen 3: AVX2, no bfloat16 instructions) the
  MeRGAN WGAN-GP step ran 10x slower than in float32 (issue #34), where an Intel CPU with
  AVX512_BF16 ran it 1.14x faster (benchmarks/RESULTS.md);
- 'mixed_float16': layers compute in float16 (GPUs); optimisers are wrapped in Keras's
  `LossScaleOptimizer` and `minimize` scales the loss, so small gradients do not underflow.
  CPUs do not run float16 faster than float32 (TensorFlow's mixed-precision guide).

`set_precision` refuses a mixed precision that this machine would run slower than float32 (see
`slow_precision_message`) unless asked to allow it (`--allow_slow_precision`): a speed option
that makes training ten times slower is worse than none.

Under either mixed policy the networks return float32 (critic values, logits, images), and
losses, the gradient penalty, the Fisher and every metric are computed in float32 from them.
Batch-norm statistics, per-class moments and softmax cross-entropies are computed in float32.
"""

import contextlib

import keras
import tensorflow as tf

from lamp_tf.runtime import cpu

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# The x86 instructions that make bfloat16 arithmetic native (/proc/cpuinfo's names).
BFLOAT16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")
# What mixed_bfloat16 cost without them: the GAN step's time against float32's (issue #34,
# benchmarks/gan_step_bench.py on a 2-core AMD EPYC, Zen 3: TF bf16 / TF float32 = 0.10).
EMULATED_BFLOAT16_SLOWDOWN = 10


def native_bfloat16(cpuinfo, accelerator):
  """Whether this machine has native bfloat16 arithmetic: True with a GPU or TPU
  (`accelerator`) or on an x86 CPU whose cpuinfo text lists avx512_bf16 or amx_bf16, False on
  an x86 CPU without them, None (unknown) where `cpuinfo` is None or lists no x86 flags (not
  Linux, unreadable, another architecture)."""
  if accelerator:
    return True
  flags = cpu.parse(cpuinfo).flags
  if flags is None:
    return None
  return any(f in flags for f in BFLOAT16_INSTRUCTIONS)


def slow_precision_message(name, cpuinfo, gpu, tpu=False):
  """Why precision `name` would run slower than float32 on a machine with this cpuinfo text and
  these accelerators (a one-line error naming the flag and the fix), or None where it should be
  fast or nobody can tell (float32; mixed_bfloat16 with a GPU, a TPU or native bfloat16, or an
  unknown CPU; mixed_float16 with a GPU)."""
  fix = "use --precision=float32, or add --allow_slow_precision to run it anyway."
  if name == "mixed_bfloat16" and native_bfloat16(cpuinfo, gpu or tpu) is False:
    model = cpu.parse(cpuinfo).model
    return (f"--precision=mixed_bfloat16: this CPU{f' ({model})' if model else ''} has no "
            f"native bfloat16 instructions ({' or '.join(BFLOAT16_INSTRUCTIONS)}), where "
            f"mixed_bfloat16 ran the GAN step {EMULATED_BFLOAT16_SLOWDOWN}x slower than float32 "
            f"(issue #34, benchmarks/gan_step_bench.py); {fix}")
  if name == "mixed_float16" and not gpu:
    return ("--precision=mixed_float16: no GPU is visible, and CPUs do not run float16 faster "
            "than float32 (TensorFlow's mixed-precision guide: float16 is for GPUs); "
            f"{fix}")
  return None


def visible_accelerators():
  """The kinds of accelerator TensorFlow sees here: a tuple of "GPU" and "TPU", maybe empty."""
  return tuple(kind for kind in ("GPU", "TPU") if tf.config.list_physical_devices(kind))


def check_speed(name, allow_slow=False):
  """Raises a ValueError (`slow_precision_message`) when precision `name` would run slower than
  float32 on this machine, unless `allow_slow`."""
  if name == "float32" or allow_slow:
    return
  accelerators = visible_accelerators()
  message = slow_precision_message(name, cpu.read_cpuinfo(), gpu="GPU" in accelerators,
                                   tpu="TPU" in accelerators)
  if message:
    raise ValueError(message)


def set_precision(name, allow_slow=False):
  """Sets the global Keras dtype policy (before any model is built); a mixed precision this
  machine runs slower than float32 is refused (a ValueError) unless `allow_slow`."""
  if name not in PRECISIONS:
    raise ValueError(f"--precision={name!r}: choose one of {', '.join(PRECISIONS)}.")
  check_speed(name, allow_slow)
  keras.mixed_precision.set_global_policy(name)


@contextlib.contextmanager
def precision(name, allow_slow=False):
  """The policy `name` inside the block, the previous one after it (tests, benchmarks; those
  that measure a slow precision on purpose pass `allow_slow=True`)."""
  previous = keras.mixed_precision.global_policy().name
  set_precision(name, allow_slow)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def optimizer(opt):
  """`opt`, wrapped in a LossScaleOptimizer under mixed_float16."""
  if keras.mixed_precision.global_policy().name == "mixed_float16":
    return keras.optimizers.LossScaleOptimizer(opt)
  return opt


def minimize(tape, loss, variables, opt):
  """Applies the gradients of `loss` (recorded by `tape`) to `variables` with `opt`; with a
  LossScaleOptimizer the backward pass starts from the loss scale (the loss scaled) and the
  optimiser unscales and skips non-finite steps. Returns the gradients as applied."""
  if isinstance(opt, keras.optimizers.LossScaleOptimizer):
    scale = tf.cast(opt.scale_loss(tf.constant(1.0, loss.dtype)), loss.dtype)
    grads = tape.gradient(loss, variables, output_gradients=scale)
  else:
    grads = tape.gradient(loss, variables)
  opt.apply_gradients(zip(grads, variables))
  return grads


def to_float32(x):
  """float32 view of a network output (a no-op in float32)."""
  return tf.cast(x, tf.float32) if x is not None and x.dtype != tf.float32 else x
