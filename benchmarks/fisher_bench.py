"""R-EWC statistics on 1,000 examples: lamp_tf's batched rotations + Fisher vs a per-example loop.

  python benchmarks/fisher_bench.py [--examples=1000] [--repeats=3]

Both sides compute the same things for LeNet-5 on real MNIST digits: the Kronecker factors of
every layer (inputs and output gradients, labels sampled from the model), their eigenbases, and
the diagonal Fisher of all parameters. The reference side is the shape of the original code:
one example at a time (a compiled single-example gradient function called in a Python loop),
statistics accumulated in NumPy. Reported: median wall time of each and their ratio, measured
alternately in one process so machine load affects both alike; and the largest relative
difference of the two Fisher results (same sampled labels).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lamp_tf.continual import fisher, rotation  # noqa: E402
from lamp_tf.data import preprocess, sources  # noqa: E402
from lamp_tf.nets import classifiers  # noqa: E402
from lamp_tf.runtime import cpu, files  # noqa: E402

LAYERS = ["conv1", "conv2", "fc1", "fc2", "logits"]


def ours(model, x, seed):
  factors = rotation.kronecker_factors(model, x, LAYERS, seed=seed)
  bases = rotation.eigenbases(factors)
  f = fisher.diagonal_fisher(model, x, kind="true", seed=seed, batch_size=100)
  return bases, f


def naive(model, x, labels):
  """One example at a time: factors and Fisher accumulated in NumPy."""
  variables = model.trainable_variables

  @tf.function
  def single(xi, yi):
    inputs, outputs = {}, {}
    with tf.GradientTape(persistent=True) as tape:
      h = xi
      for layer in model.layers:
        if layer.name in LAYERS:
          inputs[layer.name] = h
          h = layer(h)
          tape.watch(h)
          outputs[layer.name] = h
        else:
          h = layer(h)
      logp = tf.nn.log_softmax(h)[0, yi]
    return inputs, tape.gradient(logp, outputs), tape.gradient(logp, variables)

  l_sum, m_sum = {}, {}
  f_sum = [np.zeros(v.shape) for v in variables]
  for xi, yi in zip(x, labels):
    inputs, grads, pgrads = single(tf.constant(xi[None]), tf.constant(yi))
    for name in LAYERS:
      a = inputs[name].numpy().reshape(-1, inputs[name].shape[-1])
      g = grads[name].numpy().reshape(-1, grads[name].shape[-1])
      l_sum[name] = l_sum.get(name, 0) + a.T @ a
      m_sum[name] = m_sum.get(name, 0) + g.T @ g
    for s, g in zip(f_sum, pgrads):
      s += np.square(g.numpy())
  n = len(x)
  bases = rotation.eigenbases({k: (l_sum[k] / n, m_sum[k] / n) for k in LAYERS})
  return bases, [s / n for s in f_sum]


def work_flops(model, examples):
  """FLOPs of the work, counted from the layer shapes: per example, for each of the two passes
  (Kronecker factors on the model, Fisher on it), a forward pass, a backward pass (about twice
  the forward) and the per-example gradient or factor products (about one forward)."""
  macs = 0
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
      positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
      macs += positions * int(np.prod(layer.kernel.shape))
  return 2 * macs * 4 * 2 * examples


def matmul_rate(n=2048, repeats=5):
  """The machine's measured float32 matmul rate (FLOP/s), the limit to compare with."""
  a = tf.random.normal([n, n])
  f = tf.function(lambda x: tf.matmul(x, x))
  f(a).numpy()
  t0 = time.perf_counter()
  for _ in range(repeats):
    f(a).numpy()
  return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--examples", type=int, default=1000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  keras.utils.set_random_seed(0)
  ex = sources.load_examples("mnist5k", "train")
  idx = np.random.default_rng(0).choice(len(ex), args.examples, replace=False)
  x = preprocess.prepare(ex.images[idx], 32, "pad", value_range="0,1").numpy()
  model = classifiers.lenet((32, 32, 1), 10)
  seed = 7
  labels = np.concatenate([
      fisher.sample_labels(model, tf.constant(x[i:i + 100]), tf.constant([seed, b], tf.int64))
      .numpy() for b, i in enumerate(range(0, len(x), 100))])
  ours(model, x[:200], seed)  # trace once, outside the timing
  naive(model, x[:5], labels[:5])
  t_ours, t_naive = [], []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    _, f_ours = ours(model, x, seed)
    t_ours.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    _, f_naive = naive(model, x, labels)
    t_naive.append(time.perf_counter() - t0)
  diff = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
             for a, b in zip(f_ours, f_naive))
  a, b = np.median(t_ours), np.median(t_naive)
  print(f"examples={args.examples} repeats={args.repeats} threads=default")
  print(f"lamp_tf batched rotations+Fisher: {a:.2f} s (median)")
  print(f"per-example loop rotations+Fisher: {b:.2f} s (median)")
  print(f"speed-up (loop / batched): {b / a:.1f}x")
  print(f"max relative difference of the Fisher diagonals: {diff:.2e}")
  flops, rate = work_flops(model, args.examples), matmul_rate()
  print(f"work: {flops / 1e9:.2f} GFLOP; machine matmul rate {rate / 1e9:.0f} GFLOP/s; batched "
        f"path at {100 * flops / a / rate:.1f}% of it")
  if args.json:
    files.write_json(args.json, {
        "batched_s": a, "loop_s": b, "speedup": b / a, "max_rel_diff": diff,
        "gflop": flops / 1e9, "matmul_gflops": rate / 1e9,
        "fraction_of_matmul_rate": flops / a / rate, "examples": args.examples,
        "cpu": cpu.this_machine()})


if __name__ == "__main__":
  main()
