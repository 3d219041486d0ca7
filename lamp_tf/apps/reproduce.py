r"""lamp-tf-reproduce: runs the registered experiments of every method, one combined report.

  lamp-tf-reproduce --preset=quick --workdir=runs/demo

Each flag file runs as its own program in `<workdir>/<flag file stem>/` (rerunning resumes),
`--jobs` of them at once; then the reports are gathered into `<workdir>/REPORT.md` (a section
per method) and their records into `<workdir>/results.json` (each record gains `experiment`,
the flag file stem).
"""

import os
import re
import shutil
import subprocess
import sys
import time

from absl import app, flags, logging

from lamp_tf.apps import registry
from lamp_tf.runtime import export, files, flags as runtime_flags, loop, results

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("preset", "quick", ["quick", "paper"], "Which registered flag files to run.")
flags.DEFINE_string("workdir", "runs/reproduce", "Output directory of the combined report.")
flags.DEFINE_list("methods", [], "Only these methods (default: all registered).")
flags.DEFINE_string("flags_dir", None,
                    "Directory of flag files (default: the repository's flags/ directory).")
flags.DEFINE_list("extra_flags", [], "Flags passed to every program, e.g. --strategy=mirrored.")
flags.DEFINE_integer("jobs", 2, "Programs run at once, each in its own process (>= 1). Two on 2 "
                     "cores overlap one program's start-up (imports, tracing: one core) with "
                     "another's training.", lower_bound=1)


def _selected():
  known = {e.method for e in registry.EXPERIMENTS}
  unknown = set(FLAGS.methods) - known
  if unknown:
    raise app.UsageError(f"--methods: unknown {sorted(unknown)}; registered: {sorted(known)}.")
  return [e for e in registry.EXPERIMENTS if not FLAGS.methods or e.method in FLAGS.methods]




class Status:
  """One updating terminal line per running experiment, each with the overall elapsed time and
  ETA (from the registry's expected durations); plain lines every 30 s when not a terminal.
  `clock` gives the time in seconds (time.monotonic; a test gives its own)."""

  def __init__(self, expected_total_s, clock=time.monotonic):
    self.clock = clock
    self.t0, self.expected, self.done_s = clock(), expected_total_s, 0.0
    self.tty, self._last, self._drawn = sys.stderr.isatty(), 0.0, 0

  def remaining(self, running, now):
    """Seconds left: the expected durations (each program alone on the machine) of the
    experiments not finished, less the elapsed time of the running ones (`running`:
    (expected_s, started) pairs); None without expected durations. Programs at once share the
    cores, so this counts no gain from running them together (on 2 cores two at once finish
    the quick preset about 15 % sooner)."""
    if not self.expected:
      return None
    not_started = self.expected - self.done_s - sum(e for e, _ in running)
    return max(0.0, not_started) + sum(max(0.0, e - (now - t)) for e, t in running)

  def show(self, running):
    """`running`: {name: (progress or None, expected_s, started)}."""
    now = self.clock()
    elapsed = now - self.t0
    remaining = self.remaining([(e, t) for _, e, t in running.values()], now)
    left = "ETA unknown" if remaining is None else f"about {int(remaining) // 60}m left"
    lines = []
    for name, (progress, _, _) in running.items():
      phase = (f"{progress['phase']} step {progress['step']}/{progress['total']} "
               f"{progress['rate']:.2f} steps/s ETA {loop.duration_text(progress['eta_s'])}") \
          if progress else "starting"
      lines.append(f"[{int(elapsed) // 60}m{int(elapsed) % 60:02d}s, {left}] {name}: {phase}")
    if self.tty:
      self._clear()
      width = shutil.get_terminal_size((160, 24)).columns - 1  # a wrapped line would stay
      sys.stderr.write("".join(line[:width] + "\n" for line in lines))
      sys.stderr.flush()
      self._drawn = len(lines)
    elif now - self._last > 30:
      sys.stderr.write("".join(line + "\n" for line in lines))
      self._last = now

  def _clear(self):
    """Moves back over the lines drawn last and clears them (terminal only)."""
    if self._drawn:
      sys.stderr.write(f"\x1b[{self._drawn}F\x1b[J")
      self._drawn = 0

  def message(self, text):
    """A line above the progress lines (they are drawn again at the next `show`)."""
    if self.tty:
      self._clear()
    sys.stderr.write(text + "\n")

  def finish(self, name, seconds, expected_s, returncode=0):
    self.done_s += expected_s
    self.message(f"{name}: done in {seconds:.0f} s" if returncode == 0 else
                 f"{name}: failed (exit {returncode}) after {seconds:.0f} s")


class Job:
  """One flag file run as its own program, its output in `<workdir>/log.txt`."""

  def __init__(self, program, flagfile, workdir, expected_s):
    self.program, self.flagfile, self.workdir, self.expected_s = (program, flagfile, workdir,
                                                                  expected_s)
    self.name = os.path.basename(workdir)
    self.log_path = os.path.join(workdir, "log.txt")
    self.progress_path = os.path.join(workdir, "progress.json")  # loop.PROGRESS_FILE_ENV
    self.proc = self.started = None

  def start(self, parallel):
    cmd = [sys.executable, "-m", self.program, f"--flagfile={self.flagfile}",
           f"--workdir={self.workdir}",
           f"--export_dir={os.path.join(self.workdir, 'saved_model')}", *FLAGS.extra_flags]
    os.makedirs(self.workdir, exist_ok=True)
    env = dict(os.environ)
    if not os.environ.get("LAMP_TF_VERBOSE"):
      env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[loop.PROGRESS_FILE_ENV] = self.progress_path
    if os.path.exists(self.progress_path):  # a resumed run's record is of its last process
      os.remove(self.progress_path)
    if parallel > 1:  # a TF process takes all GPU memory unless told to grow
      env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    with open(self.log_path, "a") as log:
      log.write(f"lamp-tf-reproduce runs: {' '.join(cmd)}\n")  # the terminal keeps its lines
      log.flush()
      self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

  def error(self):
    return (f"{self.program} --flagfile={self.flagfile} failed (exit {self.proc.returncode}); "
            f"its log is {self.log_path}. Rerun to resume it.")


def run_jobs(jobs, parallel, status, poll_s=1.0, sleep=time.sleep):
  """Runs `jobs` in order, `parallel` at a time, polling every `poll_s` seconds (`sleep`; the
  times shown come from `status.clock`). After a failure none is started, the running ones
  finish (their work is kept), and RuntimeError names every failed program and its log."""
  pending, running, failed = list(jobs), [], []
  while running or (pending and not failed):
    while pending and len(running) < parallel and not failed:
      job = pending.pop(0)
      job.start(parallel)
      job.started = status.clock()
      status.message(f"{job.name}: log in {job.log_path}")
      running.append(job)
    for job in [j for j in running if j.proc.poll() is not None]:
      running.remove(job)
      status.finish(job.name, status.clock() - job.started, job.expected_s,
                    job.proc.returncode)
      if job.proc.returncode != 0:
        failed.append(job)
    if running:
      status.show({j.name: (loop.read_progress(j.progress_path), j.expected_s, j.started)
                   for j in running})
      sleep(poll_s)
  if failed:
    not_started = f" Not started: {', '.join(j.name for j in pending)}." if pending else ""
    raise RuntimeError(" ".join(j.error() for j in failed) + not_started)


def _embed_report(text, subdir):
  """A sub-report's body under a level-3 heading: its own headings two levels deeper, its
  relative links (figures) pointing into `subdir`."""
  lines = text.splitlines()
  if lines and lines[0].startswith("# "):
    lines = lines[1:]
  body = "\n".join("##" + line if line.startswith("#") else line for line in lines)
  return re.sub(r"\]\((?!https?://|/)([^)]+)\)", lambda m: f"]({subdir}/{m.group(1)})", body)


def exports_table(jobs, workdir):
  """Each job's export (the highest version under `<job workdir>/saved_model`, shown relative to
  `workdir`): its signatures and, where it has one, its TFLite model's check against the
  SavedModel (from the model card)."""
  rows = []
  for job in jobs:
    path = export.resolve(os.path.join(job.workdir, "saved_model"))
    if path is None:
      rows.append([job.name, "none", "", ""])
      continue
    card = files.read_json(os.path.join(path, "model_card.json"))
    lite = card.get("tflite")
    if lite is None:
      tflite = "not asked (--export_format)"
    else:
      checked = {n: v["check"] for n, v in lite["signatures"].items() if "check" in v}
      largest = [d for c in checked.values() for d in c["max_abs_difference"].values()]
      flipped = [d for c in checked.values() for d in c["share_different"].values()]
      tflite = (f"`{lite['file']}`: {len(checked)} of {len(lite['signatures'])} signatures, "
                f"largest difference {max(largest, default=0.0):.2g}"
                + (f", labels differing {100 * max(flipped):.1f} %" if flipped else "")
                + "".join(f"; {n} not converted: {v['error']}"
                          for n, v in lite["signatures"].items() if "error" in v))
    rows.append([job.name, os.path.relpath(path, workdir),
                 ", ".join(card["signatures"]), tflite])
  return results.markdown_table(["run", "export", "signatures", "TFLite (checked on 8 random "
                                 "valid requests per signature)"], rows)


def main(argv):
  del argv
  experiments = _selected()
  files.lock_dir(FLAGS.workdir)
  sections, runs, figures, claims, claim_sources = [], [], [], [], []
  status = Status(sum(e.expected_s.get(FLAGS.preset, 0) for e in experiments))
  if not experiments:
    sections.append(("No experiments", "No method has registered experiments yet."))
  jobs = {}  # (method, flag file) -> Job, in registry order
  for exp in experiments:
    for name in exp.presets.get(FLAGS.preset, []):
      flagfile = os.path.join(FLAGS.flags_dir or os.path.join(REPO_ROOT, "flags"), name)
      if not os.path.exists(flagfile):
        raise app.UsageError(f"flag file {flagfile} is missing; pass --flags_dir.")
      jobs[exp.method, name] = Job(
          exp.program, flagfile, os.path.join(FLAGS.workdir, os.path.splitext(name)[0]),
          exp.expected_s.get(FLAGS.preset, 0) / len(exp.presets[FLAGS.preset]))
  run_jobs(list(jobs.values()), FLAGS.jobs, status)
  for exp in experiments:
    body = []
    for name in exp.presets.get(FLAGS.preset, []):
      stem, workdir = os.path.splitext(name)[0], jobs[exp.method, name].workdir
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
  sections.append(("Exports", exports_table(jobs.values(), FLAGS.workdir) + "\n\nEach program exports its "
                   "model as a SavedModel (and, where its flag file asks, a TFLite model whose "
                   "signatures were run beside the SavedModel's at export: the largest absolute "
                   "difference of any output, in the output's units)."))
  results.write_report(FLAGS.workdir, f"lamp_tf reproduction ({FLAGS.preset} preset)", sections)
  logging.info("report: %s", os.path.join(FLAGS.workdir, results.REPORT))


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
