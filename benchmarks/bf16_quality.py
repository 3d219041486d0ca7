"""Quality under bfloat16: the same short Transferring-GANs training (pretrained generator and
critic fine-tuned into the limited target, fixed seeds) in float32 and in Keras `mixed_bfloat16`,
and the FID on the real-data classifier's features of each.

  python benchmarks/bf16_quality.py [--seeds=0,1] [--iterations=300] [--json=PATH]

Each precision is one run of `lamp-tf-transfer-gan` (flags/transfer_gan_quick.cfg, the 'both'
configuration only, longer pretraining and fine-tuning) in its own workdir under runs/bench/, so
a rerun reuses finished runs. Goal (issue #9): the FIDs within 10 % of each other.
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lamp_tf.runtime import cpu, files  # noqa: E402


def run(precision, args):
  workdir = os.path.join(ROOT, "runs", "bench", f"bf16_quality_{precision}")
  command = [sys.executable, "-m", "lamp_tf.apps.transfer_gan",
             "--flagfile=flags/transfer_gan_quick.cfg", "--experiments=configs",
             "--configs=both", f"--seeds={args.seeds}", f"--precision={precision}",
             "--allow_slow_precision",  # the quality is measured on any CPU, however slow
             f"--pretrain_iterations={args.iterations}", f"--iterations={args.iterations}",
             f"--eval_every={args.iterations}", "--num_samples=500",
             f"--workdir={workdir}", f"--export_dir={workdir}/saved_model"]
  with open(os.path.join(ROOT, "runs", "bench", f"bf16_quality_{precision}.log"), "w") as log:
    subprocess.run(command, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  records = files.read_json(os.path.join(workdir, "results.json"))["runs"]
  return {str(r["seed"]): r["fid"] for r in records}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--iterations", type=int, default=300)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  os.makedirs(os.path.join(ROOT, "runs", "bench"), exist_ok=True)
  fid = {p: run(p, args) for p in ("float32", "mixed_bfloat16")}
  mean = {p: sum(v.values()) / len(v) for p, v in fid.items()}
  out = {"iterations": args.iterations, "fid_per_seed": fid, "fid_mean": mean,
         "relative_difference": abs(mean["mixed_bfloat16"] - mean["float32"]) / mean["float32"],
         "cpu": cpu.this_machine()}
  for p in fid:
    print(f"{p}: FID per seed {fid[p]}, mean {mean[p]:.2f}")
  print(f"relative difference of the means: {out['relative_difference']:.1%} (goal: <= 10 %)")
  if args.json:
    files.write_json(args.json, out)


if __name__ == "__main__":
  main()
