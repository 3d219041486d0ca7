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
import time

from absl import app, flags, logging

from lamp_tf.apps import registry
from lamp_tf.runtime import files, flags as runtime_flags, results

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("preset", "quick", ["quick", "paper"], "Which registered flag files to run.")
flags.DEFINE_string("workdir", "runs/reproduce", "Output directory of the combined report.")
flags.DEFINE_list("methods", [], "Only these methods (default: all registered).")
flags.DEFINE_string("flags_dir", None,
                    "Directory of flag files (default: the repository's flags/ directory).")
flags.DEFINE_list("extra_flags", [], "Flags passed to every program, e.g. --strategy=mirrored.")


def _selected():
  known = {e.method for e in registry.EXPERIMENTS}
  unknown = set(FLAGS.methods) - known
  if unknown:
    raise app.UsageError(f"--methods: unknown {sorted(unknown)}; registered: {sorted(known)}.")
  return [e for e in registry.EXPERIMENTS if not FLAGS.methods or e.method in FLAGS.methods]


PROGRESS = re.compile(r"\] (?P<phase>[^\]]*?): step (?P<step>\d+)/(?P<total>\d+) \((?P<pct>\d+)%\) "
                      r"(?P<rate>[\d.]+) steps/s ETA (?P<eta>\S+)")


def last_progress(log_path, tail=20000):
  """The latest progress line of a program's log, parsed (None before the first one)."""
  try:
    with open(log_path, "rb") as f:
      f.seek(max(0, os.path.getsize(log_path) - tail))
      text = f.read().decode(errors="replace")
  except OSError:
    return None
  matches = list(PROGRESS.finditer(text))
  return matches[-1].groupdict() if matches else None


class Status:
  """One updating terminal line for the running experiment, with the overall elapsed time and
  ETA (from the registry's expected durations); a plain line every 30 s when not a terminal."""

  def __init__(self, expected_total_s):
    self.t0, self.expected, self.done_s = time.monotonic(), expected_total_s, 0.0
    self.tty, self._last = sys.stderr.isatty(), 0.0

  def remaining(self, expected_s, started, now):
    """Seconds left: the expected durations of the experiments not finished, the running one's
    less its elapsed time (at least 0); None when the preset has no expected durations."""
    if not self.expected:
      return None
    after = self.expected - self.done_s - expected_s  # the experiments not started yet
    return max(0.0, after) + max(0.0, expected_s - (now - started))

  def show(self, name, progress, expected_s, started):
    now = time.monotonic()
    elapsed = now - self.t0
    remaining = self.remaining(expected_s, started, now)
    left = "ETA unknown" if remaining is None else f"about {int(remaining) // 60}m left"
    phase = (f"{progress['phase']} step {progress['step']}/{progress['total']} "
             f"{float(progress['rate']):.2f} steps/s ETA {progress['eta']}") if progress \
        else "starting"
    line = f"[{int(elapsed) // 60}m{int(elapsed) % 60:02d}s, {left}] {name}: {phase}"
    if self.tty:
      sys.stderr.write("\r" + line[:160].ljust(160))
      sys.stderr.flush()
    elif now - self._last > 30:
      sys.stderr.write(line + "\n")
      self._last = now

  def finish(self, name, seconds, expected_s):
    self.done_s += expected_s
    sys.stderr.write(("\r" if self.tty else "") + f"{name}: done in {seconds:.0f} s".ljust(160) +
                     "\n")


def _run_program(program, flagfile, workdir, status, expected_s):
  cmd = [sys.executable, "-m", program, f"--flagfile={flagfile}", f"--workdir={workdir}",
         f"--export_dir={os.path.join(workdir, 'saved_model')}", *FLAGS.extra_flags]
  logging.info("running %s", " ".join(cmd))
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, "log.txt")
  name = os.path.basename(workdir)
  sys.stderr.write(f"{name}: log in {log_path}\n")
  env = dict(os.environ)
  if not os.environ.get("LAMP_TF_VERBOSE"):
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  started = time.monotonic()
  with open(log_path, "a") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    while proc.poll() is None:
      status.show(name, last_progress(log_path), expected_s, started)
      time.sleep(1.0)
  status.finish(name, time.monotonic() - started, expected_s)
  if proc.returncode != 0:
    raise RuntimeError(f"{program} --flagfile={flagfile} failed (exit {proc.returncode}); its "
                       f"log is {log_path}. Rerun to resume it.")


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
  files.lock_dir(FLAGS.workdir)
  sections, runs, figures, claims, claim_sources = [], [], [], [], []
  status = Status(sum(e.expected_s.get(FLAGS.preset, 0) for e in experiments))
  if not experiments:
    sections.append(("No experiments", "No method has registered experiments yet."))
  for exp in experiments:
    body = []
    for name in exp.presets.get(FLAGS.preset, []):
      flagfile = os.path.join(FLAGS.flags_dir or os.path.join(REPO_ROOT, "flags"), name)
      if not os.path.exists(flagfile):
        raise app.UsageError(f"flag file {flagfile} is missing; pass --flags_dir.")
      stem = os.path.splitext(name)[0]
      workdir = os.path.join(FLAGS.workdir, stem)
      _run_program(exp.program, flagfile, workdir, status,
                   exp.expected_s.get(FLAGS.preset, 0) / len(exp.presets[FLAGS.preset]))
      sub = files.read_json(os.path.join(workdir, results.RESULTS))
      runs += [{"experiment": stem, **r} for r in sub["runs"]]
      claims += sub.get("claims", [])
      claim_sources += [stem] * len(sub.get("claims", []))
      figures += [os.path.join(stem, f) for f in sub["figures"]]
      with open(os.path.join(workdir, results.REPORT)) as f:
        body.append(f"### `{name}`\n\n" + _embed_report(f.read(), stem))
    sections.append((exp.method, "\n\n".join(body)))
  claims = [{**c, "experiment": s} for c, s in zip(claims, claim_sources)]
  results.write_results(FLAGS.workdir, "lamp-tf-reproduce",
                        {"preset": FLAGS.preset, "methods": [e.method for e in experiments]},
                        runs, figures, claims)
  if claims:
    sections.insert(0, ("Claims of the talk", results.claims_table(claims, claim_sources) +
                        "\n\nEach verdict is computed from the run's results (see each "
                        "program's section); a claim that holds on some seeds only is stated "
                        "with its seeds in the program's report."))
  results.write_report(FLAGS.workdir, f"lamp_tf reproduction ({FLAGS.preset} preset)", sections)
  logging.info("report: %s", os.path.join(FLAGS.workdir, results.REPORT))


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
