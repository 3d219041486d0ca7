"""The mix-and-match training step with SegNet's pooling indices written two ways, side by side:
`positions` (lamp_tf.nets.segnet: max pooling, and each max's position in its 2x2 window by
space-to-depth and argmax; unpooling by one-hot and depth-to-space, upsampling by depth-to-space; ops TFLite has
kernels for) and `argmax` (the reference's and this project's before: tf.nn.max_pool_with_argmax
with flat indices, unpooling by tf.scatter_nd, upsampling by tf.repeat). The two give the same
values and gradients (tests/mixmatch/test_mixmatch.py); this measures their cost.

  python benchmarks/segnet_pooling_bench.py [--widths=16,32] [--resolution=32] [--batch=16]
      [--steps=20] [--rounds=3] [--json=out.json]

The step of flags/mixmatch_budget_32px.cfg by default (the reference's objective, RGB
discriminator updated on every other step as in training); both alternate in rounds inside one
process; reported: median s/step and the ratio positions / argmax.
"""

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import alternating  # noqa: E402 (benchmarks/)

from lamp_tf.mixmatch import model as mm_model, train  # noqa: E402
from lamp_tf.nets import segnet  # noqa: E402
from lamp_tf.runtime import cpu, files  # noqa: E402


def argmax_pool(x):
  return tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)


def scatter_unpool(x, flat):
  shape = tf.stack([tf.shape(x, out_type=tf.int64)[0], 2 * x.shape[1], 2 * x.shape[2],
                    x.shape[3]])
  out = tf.scatter_nd(tf.reshape(flat, [-1, 1]), tf.reshape(x, [-1]), [tf.reduce_prod(shape)])
  return tf.reshape(out, shape)


def repeat_upsample(x):
  return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


@contextlib.contextmanager
def argmax_pooling():
  saved = segnet.max_pool_with_positions, segnet.unpool, segnet.upsample
  segnet.max_pool_with_positions, segnet.unpool, segnet.upsample = (
      argmax_pool, scatter_unpool, repeat_upsample)
  try:
    yield
  finally:
    segnet.max_pool_with_positions, segnet.unpool, segnet.upsample = saved


def runner(widths, resolution, batch):
  """A function running n training steps (traced on its first call)."""
  keras.utils.set_random_seed(0)
  model = mm_model.MixMatch(widths, "indices").build(resolution)
  weights = train.Weights()
  opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
  disc = mm_model.RGBDiscriminator(widths[0], name="disc_rgb")
  disc(tf.zeros([2, resolution, resolution, 3]))
  d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
  steps = [tf.function(train.mixmatch_step(model, opt, weights, batch, disc, d_opt,
                                           update_disc=d)) for d in (True, False)]
  rng = np.random.default_rng(0)
  raw = lambda: {"rgb": rng.integers(0, 256, [batch, resolution, resolution, 3], np.uint8)}
  b1 = train.encode_batch({**raw(), "seg": rng.integers(0, 13, [batch, resolution, resolution],
                                                        np.uint8)})
  b2 = train.encode_batch({**raw(), "depth": rng.uniform(0.5, 8, [batch, resolution,
                                                                   resolution]).astype(np.float32)})

  def run(n):
    for i in range(n):
      out = steps[i % 2]((b1, b2), tf.constant([0, i], tf.int64))
    float(out["loss"])

  return run


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--widths", default="16,32")
  parser.add_argument("--resolution", type=int, default=32)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  widths = tuple(int(w) for w in args.widths.split(","))
  runs = {"positions": runner(widths, args.resolution, args.batch)}
  runs["positions"](2)  # traces both steps
  with argmax_pooling():
    runs["argmax"] = runner(widths, args.resolution, args.batch)
    runs["argmax"](2)
  med = alternating.median_seconds(runs, args.rounds, args.steps)
  ratio = med["positions"] / med["argmax"]
  print("| pooling | s / step (median of rounds) |\n|---|---|")
  for k, v in med.items():
    print(f"| {k} | {v:.4f} |")
  print(f"ratio positions / argmax: {ratio:.2f}")
  if args.json:
    files.write_json(args.json, {"s_per_step": med, "ratio_positions_to_argmax": ratio,
                                 "args": vars(args), "cpu": cpu.this_machine()})


if __name__ == "__main__":
  main()
