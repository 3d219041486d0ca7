"""Copies a finished run's evidence into results/<flag file stem>/: REPORT.md (with the exact
commands, code versions and wall times prepended), results.json and the PNG figures; never
checkpoints or exports.

  python tools/collect_results.py <flag file stem> [--runs_dir=runs]

The commands and wall times come from `<run dir>/commands.txt`, written by the launcher that ran
the program (one line per invocation: start time, commit, command; then its finish line).
"""

import argparse
import glob
import os
import shutil


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("stem")
  parser.add_argument("--runs_dir", default="runs")
  parser.add_argument("--results_dir", default="results")
  args = parser.parse_args()
  src = os.path.join(args.runs_dir, args.stem)
  dst = os.path.join(args.results_dir, args.stem)
  for needed in ("REPORT.md", "results.json", "commands.txt"):
    if not os.path.exists(os.path.join(src, needed)):
      raise SystemExit(f"{src}/{needed} is missing: the run has not finished (or was not "
                       "started by the launcher).")
  os.makedirs(dst, exist_ok=True)
  with open(os.path.join(src, "commands.txt")) as f:
    commands = [line.rstrip() for line in f if line.strip()]
  with open(os.path.join(src, "REPORT.md")) as f:
    report = f.read().splitlines()
  block = ["## How this was made", "",
           "Run on the project's 2-core CPU machine (no GPU) from a clean checkout of the commit "
           "named, in the repository root; each line: start (UTC), commit, command, then its "
           "finish and wall time. A rerun of the same command resumes and reuses finished "
           "runs.", "", "```"] + commands + ["```", ""]
  title, rest = report[:1], report[1:]
  with open(os.path.join(dst, "REPORT.md.tmp"), "w") as f:
    f.write("\n".join(title + [""] + block + rest) + "\n")
  os.replace(os.path.join(dst, "REPORT.md.tmp"), os.path.join(dst, "REPORT.md"))
  shutil.copyfile(os.path.join(src, "results.json"), os.path.join(dst, "results.json"))
  for png in glob.glob(os.path.join(src, "*.png")):
    shutil.copyfile(png, os.path.join(dst, os.path.basename(png)))
  print(f"{dst}: REPORT.md, results.json, {len(glob.glob(os.path.join(dst, '*.png')))} figures")


if __name__ == "__main__":
  main()
