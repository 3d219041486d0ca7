"""lamp-tf-reproduce runs registered experiments and gathers their reports and records."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DRIVER = """
import sys
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
  assert status.remaining(100, started=0.0, now=40.0) == 60 + 50 + 30
  assert status.remaining(100, started=0.0, now=250.0) == 50 + 30  # overran: the rest remains
  status.finish("a", 250.0, 100)
  assert status.remaining(50, started=250.0, now=260.0) == 40 + 30
  assert reproduce.Status(0).remaining(0, 0.0, 1.0) is None  # no expected durations: unknown
  quick = [e.expected_s.get("quick") for e in registry.EXPERIMENTS]
  assert all(quick)  # every quick experiment has an expected duration
