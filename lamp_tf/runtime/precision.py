"""Numeric precision of a run: the Keras dtype policy, and loss scaling where it is needed.

`--precision`:
- 'float32': everything in float32;
- 'mixed_bfloat16': layers compute in bfloat16 and keep float32 variables (CPUs with AVX-512
  BF16 and recent GPUs/TPUs); no loss scaling is needed (bfloat16 has float32's range);
- 'mixed_float16': layers compute in float16 (GPUs); optimisers are wrapped in Keras's
  `LossScaleOptimizer` and `minimize` scales the loss, so small gradients do not underflow.

Under either mixed policy the networks return float32 (critic values, logits, images), and
losses, the gradient penalty, the Fisher and every metric are computed in float32 from them.
Batch-norm statistics, per-class moments and softmax cross-entropies are computed in float32.
"""

import contextlib

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def set_precision(name):
  """Sets the global Keras dtype policy (before any model is built)."""
  if name not in PRECISIONS:
    raise ValueError(f"--precision={name!r}: choose one of {', '.join(PRECISIONS)}.")
  keras.mixed_precision.set_global_policy(name)


@contextlib.contextmanager
def precision(name):
  """The policy `name` inside the block, the previous one after it (tests, benchmarks)."""
  previous = keras.mixed_precision.global_policy().name
  set_precision(name)
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
