"""lamp-tf-reproduce runs registered experiments and gathers their reports and records."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DRIVER = """
import sys
import time
from absl import app
from lamp_tf.apps import registry, reproduce
registry.EXPERIMENTS = (registry.Experiment("Fake method", "tests.apps.fake_program",
                                            {"quick": ["fake_a.cfg", "fake_b.cfg"]}),)
app.run(reproduce.main, argv=sys.argv)
"""


@pytest.mark.slow
def test_reproduce_runs_each_flag_file_and_gathers(tmp_path):
  flags_dir = tmp_path / "flags"
  flags_dir.mkdir()
  (flags_dir / "fake_a.cfg").write_text("--score=0.25\n")
  (flags_dir / "fake_b.cfg").write_text("--score=0.75\n")
  out = subprocess.run([sys.executable, "-c", DRIVER, f"--flags_dir={flags_dir}",
                        f"--workdir={tmp_path / 'demo'}"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / "demo" / "results.json").read_text())
  assert results["program"] == "lamp-tf-reproduce"
  assert [(r["experiment"], r["score"]) for r in results["runs"]] == [("fake_a", 0.25),
                                                                      ("fake_b", 0.75)]
  assert results["figures"] == ["fake_a/curve.png", "fake_b/curve.png"]
  report = (tmp_path / "demo" / "REPORT.md").read_text()
  assert "## Fake method" in report and "#### Scores" in report
  assert "![curve](fake_a/curve.png)" in report and "| fake | 0.75 |" in report
  for fig in results["figures"]:
    assert os.path.getsize(tmp_path / "demo" / fig) > 0


@pytest.mark.slow
def test_reproduce_reports_a_failed_program_with_its_log(tmp_path):
  flags_dir = tmp_path / "flags"
  flags_dir.mkdir()
  (flags_dir / "fake_a.cfg").write_text("--score=not_a_number\n")
  (flags_dir / "fake_b.cfg").write_text("--score=1\n")
  out = subprocess.run([sys.executable, "-c", DRIVER, f"--flags_dir={flags_dir}",
                        f"--workdir={tmp_path / 'demo'}"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode != 0
  assert "fake_a.cfg failed" in out.stderr and "log.txt" in out.stderr
  assert "--score" in (tmp_path / "demo" / "fake_a" / "log.txt").read_text()
  assert not (tmp_path / "demo" / "results.json").exists()


def test_the_overall_eta_counts_the_experiments_not_finished():
  from lamp_tf.apps import registry, reproduce
  status = reproduce.Status(100 + 50 + 30)  # three experiments expected to take 100, 50, 30 s
  assert status.remaining([(100, 0.0)], now=40.0) == 60 + 50 + 30
  assert status.remaining([(100, 0.0)], now=250.0) == 50 + 30  # overran: the rest remains
  status.finish("a", 250.0, 100)
  assert status.remaining([(50, 250.0)], now=260.0) == 40 + 30
  assert reproduce.Status(0).remaining([(0, 0.0)], 1.0) is None  # no expected durations
  # Two at once: 100 and 50 running for 20 s, 30 not started (no gain counted from sharing).
  assert reproduce.Status(180).remaining([(100, 0.0), (50, 0.0)], now=20.0) == 80 + 30 + 30
  quick = [e.expected_s.get("quick") for e in registry.EXPERIMENTS]
  assert all(quick)  # every quick experiment has an expected duration


class _FakeProc:
  """A process that is running for `polls` polls, then exits with `code`."""

  def __init__(self, polls, code):
    self.left, self.code, self.returncode = polls, code, None

  def poll(self):
    if self.left:
      self.left -= 1
      return None
    self.returncode = self.code
    return self.code


def _fake_jobs(tmp_path, polls_and_codes, started):
  from lamp_tf.apps import reproduce

  class FakeJob(reproduce.Job):
    def __init__(self, name, polls, code):
      super().__init__("fake_program", f"{name}.cfg", str(tmp_path / name), 10)
      self.polls, self.code = polls, code

    def start(self, parallel):
      started.append(self.name)
      self.proc = _FakeProc(self.polls, self.code)

  return [FakeJob(name, p, c) for name, (p, c) in polls_and_codes.items()]


def test_jobs_run_in_order_never_more_at_once_than_asked(tmp_path):
  from lamp_tf.apps import reproduce
  for parallel in (1, 2, 3):
    started, shown = [], []
    jobs = _fake_jobs(tmp_path, {"a": (3, 0), "b": (1, 0), "c": (2, 0), "d": (1, 0)}, started)
    status = reproduce.Status(40)
    status.show = lambda running: shown.append(sorted(running))
    reproduce.run_jobs(jobs, parallel, status, poll_s=0)
    assert started == ["a", "b", "c", "d"]
    assert max(len(s) for s in shown) == parallel and status.done_s == 40
    assert all(j.proc.returncode == 0 for j in jobs)
  assert shown[0] == ["a", "b", "c"]  # three at once: the first three start together


def test_after_a_failed_job_the_running_ones_finish_and_no_other_starts(tmp_path):
  from lamp_tf.apps import reproduce
  started = []
  jobs = _fake_jobs(tmp_path, {"a": (0, 3), "b": (2, 0), "c": (1, 0)}, started)
  now = [0.0]  # the clock: a poll every 10 s, no waiting (issue #31: these were wall times)
  status, lines = reproduce.Status(30, clock=lambda: now[0]), []
  status.message = lines.append
  with pytest.raises(RuntimeError) as e:
    reproduce.run_jobs(jobs, 2, status, poll_s=10,
                       sleep=lambda s: now.__setitem__(0, now[0] + s))
  # a exits at the first poll; b runs through two polls and exits at the third.
  assert "a: failed (exit 3) after 0 s" in lines and "b: done in 20 s" in lines
  assert started == ["a", "b"] and jobs[1].proc.returncode == 0  # b ran to its end
  message = str(e.value)
  assert "a.cfg failed (exit 3)" in message and str(tmp_path / "a" / "log.txt") in message
  assert "b.cfg" not in message and message.endswith("Not started: c.")


def test_on_a_terminal_the_progress_lines_are_redrawn_in_place(monkeypatch):
  """Each `show` first moves back over the lines it drew last and clears them (ESC[nF ESC[J),
  so the terminal keeps one line per running program; a message clears them and stays above."""
  import io
  from lamp_tf.apps import reproduce
  err = io.StringIO()
  monkeypatch.setattr(reproduce.sys, "stderr", err)
  monkeypatch.setattr(reproduce.shutil, "get_terminal_size", lambda fallback: os.terminal_size(
      (41, 24)))
  status = reproduce.Status(0)
  status.tty = True
  step = {"phase": "train", "step": 5, "total": 10, "rate": 2.0, "eta_s": 3.0}
  status.show({"a": (step, 0, 0.0), "b": (None, 0, 0.0)})
  first = err.getvalue()
  assert first.count("\n") == 2 and "] a: train step 5/10" in first and "] b: starting" in first
  assert all(len(line) <= 40 for line in first.splitlines())  # never wraps a 41-column terminal
  status.finish("a", 12.0, 0)
  status.show({"b": (None, 0, 0.0)})
  rest = err.getvalue()[len(first):]
  assert rest.startswith("\x1b[2F\x1b[J" + "a: done in 12 s\n")
  assert rest.count("\x1b[") == 2 and rest.endswith("b: starting\n")  # cleared once
  before = len(err.getvalue())
  status.show({"b": (step, 0, 0.0)})  # the one line drawn last is replaced
  assert err.getvalue()[before:].startswith("\x1b[1F\x1b[J[")


def test_the_exports_table_shows_each_tflite_check(tmp_path):
  import tensorflow as tf
  from lamp_tf.apps import reproduce
  from lamp_tf.runtime import export

  scale = tf.Variable(2.0)
  spec = tf.TensorSpec([None, 3], tf.float32, name="x")
  double = tf.function(lambda x: {"y": x * scale, "top": tf.argmax(x, axis=1)},
                       input_signature=[spec])
  export.export_saved_model(str(tmp_path / "a" / "saved_model"), {"double": double}, [scale],
                            formats=("saved_model", "tflite"))
  export.export_saved_model(str(tmp_path / "b" / "saved_model"), {"double": double}, [scale])
  jobs = [type("Job", (), {"name": n, "workdir": str(tmp_path / n)}) for n in "abc"]
  rows = reproduce.exports_table(jobs, str(tmp_path)).splitlines()[2:]
  # x * 2 is exact in both runtimes, and so is the argmax of the same numbers.
  assert rows[0] == ("| a | a/saved_model/1 | double | `model.tflite`: 1 of 1 signatures, "
                     "largest difference 0, labels differing 0.0 % |")
  assert rows[1] == "| b | b/saved_model/1 | double | not asked (--export_format) |"
  assert rows[2] == "| c | none |  |  |"
