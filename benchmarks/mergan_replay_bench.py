"""MeRGAN's cost per iteration as old classes accumulate: seconds per iteration (5 critic + 1
generator update, batch 64, the paper's DCGAN) at task 1, 5 and 10 of a 10-task run, for RA and
JTR with the reference's replays split over the old classes (batch // n_old each: the cost must
not grow) and, for contrast, a full batch per old class (the reference's LSUN setting).

  python benchmarks/mergan_replay_bench.py [--iterations=5] [--rounds=3] [--json=out.json]

All configurations alternate in rounds inside one process; reported: median s/iteration and the
ratio to task 1 (no replay).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import alternating  # noqa: E402 (benchmarks/)

from lamp_tf.continual import mergan  # noqa: E402
from lamp_tf.gan import train  # noqa: E402
from lamp_tf.nets import gan as gan_nets  # noqa: E402
from lamp_tf.runtime import cpu, files, strategy as strategy_lib  # noqa: E402


def runner(method, n_old, replay_batch, batch=64):
  keras.utils.set_random_seed(0)
  strategy = tf.distribute.get_strategy()
  g, d = gan_nets.make_gan("dcgan", num_classes=10)
  prev, _ = gan_nets.make_gan("dcgan", num_classes=10)
  g_opt = keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
  d_opt = keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
  strategy_lib.build_optimizer(strategy, g_opt, g.trainable_variables)
  strategy_lib.build_optimizer(strategy, d_opt, d.trainable_variables)
  old = list(range(n_old))
  hooks = {}
  if n_old and method == "ra":
    hooks["generator_extra"] = mergan.replay_alignment(g, prev, old, batch, 1e-3, 128,
                                                       replay_batch, "class")
  if n_old and method == "jtr":
    hooks["critic_extra"], hooks["generator_extra"] = mergan.joint_replay(
        g, prev, d, old, batch, 128, 1.0, replay_batch, "class")
  step = strategy_lib.distributed_step(strategy, train.make_replica_step(
      g, d, g_opt, d_opt, train.GANConfig(moments="class"), **hooks))
  images = tf.random.uniform([5, batch, 32, 32, 1], -1, 1)
  labels = tf.fill([5, batch], tf.constant(n_old, tf.int64))

  def run(n):
    for i in range(n):
      out = step((images, labels), tf.constant([0, i], tf.int64))
    float(out["g_loss"])

  return run


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--iterations", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  configs = {}
  for method in ("ra", "jtr"):
    for replay_batch in ("split", "per_class"):
      for task, n_old in ((1, 0), (5, 4), (10, 9)):
        if task == 1 and replay_batch == "per_class":
          continue
        configs[(method, replay_batch, task)] = runner(method, n_old, replay_batch)
  for run in configs.values():
    run(1)  # tracing
  med = alternating.median_seconds(configs, args.rounds, args.iterations)
  rows, out = [], {}
  for (method, replay_batch, task), sec in med.items():
    ratio = sec / med[(method, "split", 1)]
    rows.append(f"| {method} | {replay_batch} | {task} | {sec:.3f} | {ratio:.2f} |")
    out[f"{method}/{replay_batch}/task{task}"] = {"s_per_iteration": sec, "vs_task1": ratio}
  print("| method | replays | task | s / iteration | ratio to task 1 |\n|---|---|---|---|---|")
  print("\n".join(rows))
  if args.json:
    files.write_json(args.json, {**out, "cpu": cpu.this_machine()})


if __name__ == "__main__":
  main()
