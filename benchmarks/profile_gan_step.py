"""Where the time of one WGAN-GP AC-GAN iteration goes: the op types that take the most time in
lamp_tf (TensorFlow profiler trace) beside PyTorch's (torch.profiler), on the networks and step of
`gan_step_bench.py`, in float32 and bfloat16.

  python benchmarks/profile_gan_step.py [--batch=64] [--iterations=5] [--top=12] [--json=PATH]

TensorFlow: the op events of the executor threads in the trace's host plane, summed per op type
(time on all threads; with 2 threads the total is about twice the wall time). PyTorch: self CPU
time per aten op from `torch.profiler`. Shares are of each framework's own total, so the two
columns compare where each spends its time, not which is faster (that is `gan_step_bench.py`).
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import gan_step_bench  # noqa: E402  (puts the repository on sys.path)
from lamp_tf.runtime import cpu, files  # noqa: E402


# Ops that only call others (their time is their callees'): left out so nothing counts twice.
CALLS = {"StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If",
         "StatelessIf", "Case"}


def op_times(xspace):
  """Milliseconds per TF op type from an XSpace: events named '<node>:<OpType>' on the executor
  threads ('tf_Compute/...') of the host plane, function-call ops left out."""
  totals = collections.Counter()
  for plane in xspace.planes:
    metadata = plane.event_metadata
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = metadata[event.metadata_id].name
        if ":" not in name or "::" in name:  # not an op (the executor's own regions)
          continue
        op = name.rsplit(":", 1)[1]
        if op not in CALLS:
          totals[op] += event.duration_ps / 1e9
  return totals


def profile_tf(batch, iterations, images, labels, policy):
  run, _ = gan_step_bench.lamp_tf_runner(batch, 5, images, labels, policy, 1)
  run(2)  # tracing
  logdir = tempfile.mkdtemp(prefix="lamp_tf_profile_")
  tf.profiler.experimental.start(logdir)
  run(iterations)
  tf.profiler.experimental.stop()
  path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  return op_times(space)


def profile_torch(batch, iterations, images, labels, policy):
  import torch
  run = gan_step_bench.torch_runner(batch, 5, images, labels, policy)[0]
  run(2)
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    run(iterations)
  totals = collections.Counter()
  for event in prof.key_averages():
    totals[event.key] += event.self_cpu_time_total / 1e3
  return totals


def top(totals, n):
  total = sum(totals.values())
  return {"total_ms": total,
          "top": [{"op": op, "ms": ms, "share": ms / total} for op, ms in totals.most_common(n)]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--iterations", type=int, default=5)
  parser.add_argument("--top", type=int, default=12)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, [2000, 32, 32, 1]).astype(np.float32)
  labels = rng.integers(0, 10, 2000).astype(np.int64)
  out = {"batch": args.batch, "iterations": args.iterations, "profiles": {},
         "cpu": cpu.this_machine()}
  for policy in ("float32", "mixed_bfloat16"):
    out["profiles"][f"TF {policy}"] = top(
        profile_tf(args.batch, args.iterations, images, labels, policy), args.top)
    out["profiles"][f"PyTorch {policy}"] = top(
        profile_torch(args.batch, args.iterations, images, labels, policy), args.top)
  for name, p in out["profiles"].items():
    print(f"\n{name}: {p['total_ms']:.0f} ms of op time for {args.iterations} iterations")
    for row in p["top"]:
      print(f"  {row['share']:6.1%} {row['ms']:9.1f} ms  {row['op']}")
  if args.json:
    files.write_json(args.json, out)


if __name__ == "__main__":
  main()
