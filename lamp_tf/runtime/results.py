"""results.json and REPORT.md: one shape for all programs.

results.json = {"program": ..., "flags": {...}, "runs": [record, ...], "figures": [...],
"claims": [...], "launch_to_first_step_s": ...}, each record flat (configuration of one run beside
its metrics), so `pandas.DataFrame(results["runs"])` is all a user needs. A run that finished stores its record in `<run dir>/record.json`; a restarted
program reuses it instead of training again.
"""

import functools
import math
import os

import numpy as np
import scipy.stats
from absl import logging

from lamp_tf.runtime import files, loop

RESULTS = "results.json"
REPORT = "REPORT.md"
RECORD = "record.json"
UNKNOWN_VERSION = "unknown (saved before records carried code versions)"


@functools.lru_cache(maxsize=None)
def code_version():
  """The git commit of the lamp_tf source that runs ('<sha>', '<sha>+dirty' with uncommitted
  changes), or 'unknown' outside a git checkout; records carry it so that results stay tied to
  the code that made them (`save_record` and `write_results` stamp it). Read once per process:
  the code a process runs is what it imported, whatever the checkout becomes later."""
  import subprocess
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  try:
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                         capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            "lamp_tf"], cwd=root, check=True, capture_output=True, text=True,
                           timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return sha + ("+dirty" if dirty else "")


def load_record(run_dir):
  """The record of a finished run in `run_dir`, or None. A damaged record is set aside (as
  record.json.damaged) and None returned, so the run is rebuilt from its own checkpoint: training
  resumes at its last step and the evaluation is done again."""
  path = os.path.join(run_dir, RECORD)
  if not os.path.exists(path):
    return None
  try:
    record = files.read_json(path)
  except files.DamagedFileError as e:
    os.replace(path, path + ".damaged")
    logging.warning("%s; rebuilding it from the run's checkpoint (the damaged file is kept as "
                    "%s.damaged).", str(e).split(";")[0], RECORD)
    return None
  # A record saved before records carried their code version: which code made it is unknown
  # (never the code that reuses it).
  return {**record, "code_version": record.get("code_version") or UNKNOWN_VERSION}


def save_record(run_dir, record):
  """Writes a finished run's record (atomically), stamped with the code version that made it
  unless it carries one; returns the record as written."""
  record = _stamped(record)
  files.write_json(os.path.join(run_dir, RECORD), record)
  return record


def _stamped(record):
  return {**record, "code_version": record.get("code_version") or code_version()}


def claim(statement, evidence, holds):
  """One claim of the talk tested by a run: the claim in a sentence, the numbers of this run
  that test it, and whether it holds (computed from those numbers, never written by hand)."""
  return {"claim": statement, "evidence": evidence, "holds": bool(holds)}


def above(a, b):
  """Whether per-seed values `a` are above `b` beyond the seed spread: the lowest of `a` above
  the highest of `b` (the seed ranges do not overlap; a difference within the spread is not a
  result). With one seed on each side, whether the value is higher."""
  return bool(np.min(a) > np.max(b))


def paired_comparison(a, b):
  """(wins, seeds, paired t-test p, sign-test p) of per-seed scores {seed: value} `a` against
  `b` on their common seeds (None without one); a p-value is NaN where undefined (one seed,
  constant differences, no decided seed)."""
  seeds = sorted(set(a) & set(b))
  if not seeds:
    return None
  diff = np.array([a[s] - b[s] for s in seeds])
  wins, losses = int(np.sum(diff > 0)), int(np.sum(diff < 0))
  t_p = float(scipy.stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue) \
      if len(seeds) > 1 and np.any(diff != diff[0]) else float("nan")
  sign_p = float(scipy.stats.binomtest(wins, wins + losses).pvalue) if wins + losses \
      else float("nan")
  return wins, len(seeds), t_p, sign_p


def spread_note(a, b):
  """' (within the seed spread)' when `a` is above `b` on average but not beyond the spread."""
  return " (within the seed spread)" if np.mean(a) > np.mean(b) and not above(a, b) else ""


def claims_table(claims, source=None):
  """Markdown table of claims (with the experiment each comes from when `source` is given)."""
  header = ["claim of the talk", "numbers from this run", "holds?"]
  rows = [[c["claim"], c["evidence"], "holds" if c["holds"] else "does not hold"]
          for c in claims]
  if source is not None:
    header.insert(2, "experiment")
    rows = [r[:2] + [f"`{s}`"] + r[2:] for r, s in zip(rows, source)]
  return markdown_table(header, rows)


def write_results(workdir, program, flags, runs, figures=(), claims=()):
  """Writes results.json atomically; `figures` are paths relative to `workdir`. It also keeps
  the seconds from this process's launch to its first training step (None when it trained
  nothing, e.g. every run was reused). Every run carries `code_version`: a record without one
  was made by this process (a reused record carries its own, see `load_record`)."""
  results = {"program": program, "flags": dict(flags), "runs": [_stamped(r) for r in runs],
             "figures": list(figures), "claims": list(claims),
             "launch_to_first_step_s": loop.launch_to_first_step_s()}
  files.write_json(os.path.join(workdir, RESULTS), results)
  return results


def format_value(value, digits=2):
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"
  return str(value)


def mean_std(values, scale=1.0, digits=2):
  """'mean ± std' of scaled values ('mean' alone for one value)."""
  v = scale * np.asarray(values, np.float64)
  return f"{v.mean():.{digits}f}" + (f" ± {v.std():.{digits}f}" if len(v) > 1 else "")


def markdown_table(header, rows):
  """A Markdown table from a header list and rows of cells (formatted with `format_value`; a
  '|' inside a cell is escaped so that it cannot split the cell)."""
  def cell(text):
    return text.replace("|", "\\|")

  lines = ["| " + " | ".join(cell(str(h)) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(cell(format_value(c)) for c in row) + " |")
  return "\n".join(lines)


def write_report(workdir, title, sections, claims=()):
  """Writes REPORT.md: a title, the claims table (when there are claims), (heading, Markdown
  body) sections and, when this process trained, its time from launch to the first step."""
  parts = [f"# {title}", ""]
  if claims:
    parts += ["## Claims", "", claims_table(claims), ""]
  for heading, body in sections:
    parts += [f"## {heading}", "", body.rstrip(), ""]
  if loop.launch_to_first_step_s() is not None:
    parts += [f"Start-up: the process that wrote this report reached its first training step "
              f"{loop.launch_to_first_step_s():.1f} s after launch (imports, data, models, "
              "tracing).", ""]
  files.write_text(os.path.join(workdir, REPORT), "\n".join(parts))


def save_figure(fig, path, writer=None, step=0):
  """Saves a matplotlib figure as PNG atomically and closes it; with a MetricWriter, the same
  figure also goes to TensorBoard as an image named after the file."""
  import matplotlib.pyplot as plt
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
  if writer is not None:
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    writer.write_images(step, {"figures/" + os.path.splitext(os.path.basename(path))[0]: rgb})
  plt.close(fig)
  return path
