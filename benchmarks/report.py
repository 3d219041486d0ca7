"""Writes benchmarks/RESULTS.md from the JSON files the benchmarks wrote (`make bench`): one line
per measurement (ours, reference, ratio), with the machine, versions and date, and under each
table's heading the CPU its benchmarks ran on (model name and instruction-set flags, recorded by
each benchmark from lamp_tf.runtime.cpu): bfloat16's numbers mean nothing without knowing whether
the CPU has native bfloat16 instructions."""

import datetime
import json
import os
import platform
import sys


def describe_cpu(record):
  """A benchmark's CPU record in words: 'AMD EPYC (avx2, fma; no avx512f, avx512_bf16,
  amx_bf16)'."""
  if not record:
    return "not recorded"
  model, isa = record.get("model") or "unknown model", record.get("isa")
  if isa is None:
    return f"{model} (no x86 flags in /proc/cpuinfo)"
  has = ", ".join(f for f, v in isa.items() if v)
  lacks = ", ".join(f for f, v in isa.items() if not v)
  return f"{model} ({'; '.join(filter(None, [has, lacks and 'no ' + lacks]))})"


def cpu_line(records):
  """The line under a table's heading naming the CPU of the benchmarks in it (`records`:
  {benchmark: its JSON or None}); one CPU, or each benchmark's where they differ."""
  runs = {}
  for name, data in records.items():
    if data is not None:
      runs.setdefault(describe_cpu(data.get("cpu")), []).append(name)
  if len(runs) == 1:
    return f"CPU: {next(iter(runs))}."
  return "CPUs: " + "; ".join(f"{', '.join(names)}: {text}" for text, names in runs.items()) + "."


def main(out_dir, path):
  load = lambda name: (json.load(open(os.path.join(out_dir, name)))
                       if os.path.exists(os.path.join(out_dir, name)) else None)
  gan, fisher, replay = load("gan_step.json"), load("fisher.json"), load("mergan_replay.json")
  profile, quality = load("profile.json"), load("bf16_quality.json")
  lines = []
  measured = {"gan_step": gan, "fisher": fisher, "mergan_replay": replay, "bf16_quality": quality}
  if any(measured.values()):
    lines += [cpu_line(measured), ""]
  lines += ["| benchmark | ours | reference | ratio | goal |", "|---|---|---|---|---|"]
  if gan:
    for batch, b in gan["batches"].items():
      it = b["iterations_per_s"]
      lines += [
          f"| WGAN-GP iteration, batch {batch}, float32 (it/s) | TF {it['TF float32 spc1']:.2f} "
          f"| PyTorch {it['PyTorch float32']:.2f} | {b['ratios']['TF / PyTorch, float32']:.2f} "
          "| ≥ 1.5 |",
          f"| same, 10 iterations per compiled call | TF {it['TF float32 spc10']:.2f} | PyTorch "
          f"{it['PyTorch float32']:.2f} | "
          f"{b['ratios']['TF / PyTorch, float32, 10 per call']:.2f} | ≥ 1.5 |",
          f"| same, bfloat16 | TF {it['TF mixed_bfloat16 spc1']:.2f} | PyTorch autocast "
          f"{it['PyTorch mixed_bfloat16']:.2f} | {b['ratios']['TF / PyTorch, bfloat16']:.2f} "
          "| |",
          f"| TF bfloat16 vs TF float32, batch {batch} | {it['TF mixed_bfloat16 spc1']:.2f} | "
          f"{it['TF float32 spc1']:.2f} | {b['ratios']['TF bfloat16 / TF float32']:.2f} "
          "| ≥ 1.3 |"]
  if fisher:
    lines.append(f"| R-EWC rotations + Fisher, {fisher['examples']} examples (s) | batched "
                 f"{fisher['batched_s']:.2f} | per-example loop {fisher['loop_s']:.2f} | "
                 f"{fisher['speedup']:.1f}x | ≥ 20x |")
    lines.append(f"| same: work / time / matmul rate | {fisher['gflop']:.2f} GFLOP | "
                 f"{fisher['matmul_gflops']:.0f} GFLOP/s | "
                 f"{100 * fisher['fraction_of_matmul_rate']:.1f}% | |")
  if replay:
    for key, v in replay.items():
      if key == "cpu":
        continue
      lines.append(f"| MeRGAN {key} (s/iteration) | {v['s_per_iteration']:.3f} | task 1 | "
                   f"{v['vs_task1']:.2f} | split: ≈ 1 |")
  if quality:
    per_seed = lambda p: ", ".join(
        f"{v:.2f}" for _, v in sorted(quality["fid_per_seed"][p].items()))
    lines.append(f"| Transfer-GAN FID after {quality['iterations']} updates, bfloat16 (seeds: "
                 f"{per_seed('mixed_bfloat16')}) | {quality['fid_mean']['mixed_bfloat16']:.2f} | "
                 f"float32 ({per_seed('float32')}) {quality['fid_mean']['float32']:.2f} | "
                 f"{100 * quality['relative_difference']:.1f}% apart | ≤ 10% |")
  versions = gan and f"TensorFlow {gan['tensorflow']}, PyTorch {gan['torch']}" or ""
  header = (f"# Benchmarks\n\nWritten by `make bench` on {datetime.date.today()}: "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{versions}. Every ratio was measured in one process, the two sides alternating, so "
            "machine load affects both alike; absolute numbers drift with load.\n\n")
  if profile:
    lines += ["", f"## Where the time goes (one WGAN-GP iteration, batch {profile['batch']})", "",
              "Share of each framework's own op time, top op types (`benchmarks/"
              "profile_gan_step.py`: TensorFlow profiler trace, torch.profiler self CPU time).",
              "", cpu_line({"profile": profile}), ""]
    for name, p in profile["profiles"].items():
      lines.append(f"- **{name}** ({p['total_ms'] / profile['iterations']:.0f} ms of op time "
                   "per iteration): " + ", ".join(
                       f"{r['op']} {100 * r['share']:.0f}%" for r in p["top"][:6]))
  with open(path + ".tmp", "w") as f:
    f.write(header + "\n".join(lines) + "\n")
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
