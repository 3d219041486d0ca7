r"""lamp-tf-reproduce: runs the registered experiments of every method, one combined report.

  lamp-tf-reproduce --preset=quick --workdir=runs/demo

Each flag file runs as its own program in `<workdir>/<flag file stem>/` (rerunning resumes), then
the reports are gathered into `<workdir>/REPORT.md` (a section per method) and their records into
`<workdir>/results.json` (each record gains `experiment`, the flag file stem).
"""

import os
import re
import subprocess
import sys

from absl import app, flags, logging

from lamp_tf.apps import registry
from lamp_tf.runtime import files, flags as runtime_flags, results

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("preset", "quick", ["quick", "paper"], "Which registered flag files to run.")
flags.DEFINE_string("workdir", "runs/reproduce", "Output directory of the combined report.")
flags.DEFINE_list("methods", [], "Only these methods (default: all registered).")
flags.DEFINE_string("flags_dir", os.path.join(REPO_ROOT, "flags"), "Directory of flag files.")
flags.DEFINE_list("extra_flags", [], "Flags passed to every program, e.g. --strategy=mirrored.")


def _selected():
  known = {e.method for e in registry.EXPERIMENTS}
  unknown = set(FLAGS.methods) - known
  if unknown:
    raise app.UsageError(f"--methods: unknown {sorted(unknown)}; registered: {sorted(known)}.")
  return [e for e in registry.EXPERIMENTS if not FLAGS.methods or e.method in FLAGS.methods]


def _run_program(program, flagfile, workdir):
  cmd = [sys.executable, "-m", program, f"--flagfile={flagfile}", f"--workdir={workdir}",
         f"--export_dir={os.path.join(workdir, 'saved_model')}", *FLAGS.extra_flags]
  logging.info("running %s", " ".join(cmd))
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "log.txt"), "a") as log:
    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
  if code != 0:
    raise RuntimeError(f"{program} --flagfile={flagfile} failed (exit {code}); its log is "
                       f"{os.path.join(workdir, 'log.txt')}. Rerun to resume it.")


def _embed_report(text, subdir):
  """A sub-report's body under a level-3 heading: its own headings two levels deeper, its
  relative links (figures) pointing into `subdir`."""
  lines = text.splitlines()
  if lines and lines[0].startswith("# "):
    lines = lines[1:]
  body = "\n".join("##" + line if line.startswith("#") else line for line in lines)
  return re.sub(r"\]\((?!https?://|/)([^)]+)\)", lambda m: f"]({subdir}/{m.group(1)})", body)


def main(argv):
  del argv
  experiments = _selected()
  sections, runs, figures = [], [], []
  if not experiments:
    sections.append(("No experiments", "No method has registered experiments yet."))
  for exp in experiments:
    body = []
    for name in exp.presets.get(FLAGS.preset, []):
      flagfile = os.path.join(FLAGS.flags_dir, name)
      if not os.path.exists(flagfile):
        raise app.UsageError(f"flag file {flagfile} is missing; pass --flags_dir.")
      stem = os.path.splitext(name)[0]
      workdir = os.path.join(FLAGS.workdir, stem)
      _run_program(exp.program, flagfile, workdir)
      sub = files.read_json(os.path.join(workdir, results.RESULTS))
      runs += [{"experiment": stem, **r} for r in sub["runs"]]
      figures += [os.path.join(stem, f) for f in sub["figures"]]
      with open(os.path.join(workdir, results.REPORT)) as f:
        body.append(f"### `{name}`\n\n" + _embed_report(f.read(), stem))
    sections.append((exp.method, "\n\n".join(body)))
  results.write_results(FLAGS.workdir, "lamp-tf-reproduce",
                        {"preset": FLAGS.preset, "methods": [e.method for e in experiments]},
                        runs, figures)
  results.write_report(FLAGS.workdir, f"lamp_tf reproduction ({FLAGS.preset} preset)", sections)
  logging.info("report: %s", os.path.join(FLAGS.workdir, results.REPORT))


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
