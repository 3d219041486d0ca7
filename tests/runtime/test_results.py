"""results.json, REPORT.md, records, atomic files and TensorBoard writers."""

import glob
import json
import os
import re

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from lamp_tf.runtime import files, results
from lamp_tf.runtime.summary import MetricWriter


def test_results_shape_and_numpy_values(tmp_path):
  runs = [{"method": "ewc", "lambda": 100.0, "seed": np.int64(1), "acc": np.float32(0.5),
           "task_accuracy": np.array([0.25, 0.75])}]
  claims = [results.claim("EWC keeps task 1", "acc 0.5", np.bool_(True))]
  results.write_results(str(tmp_path), "prog", {"lr": 1e-3}, runs, ["fig.png"], claims)
  data = json.loads((tmp_path / "results.json").read_text())
  assert set(data) == {"program", "flags", "runs", "figures", "claims", "launch_to_first_step_s"}
  assert data["claims"] == [{"claim": "EWC keeps task 1", "evidence": "acc 0.5", "holds": True}]
  assert data["runs"] == [{"method": "ewc", "lambda": 100.0, "seed": 1, "acc": 0.5,
                           "task_accuracy": [0.25, 0.75],
                           "code_version": results.code_version()}]


def test_mean_std_over_seeds():  # exact in float64: mean 0.5, population std 0.25
  assert results.mean_std([0.25, 0.75], scale=100) == "50.00 ± 25.00"  # population std
  assert results.mean_std([0.5], scale=100, digits=1) == "50.0"


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
  path = tmp_path / "results.json"
  files.write_json(str(path), {"a": 1})
  with pytest.raises(TypeError):
    files.write_json(str(path), {"a": object()})
  assert json.loads(path.read_text()) == {"a": 1}
  assert os.listdir(tmp_path) == ["results.json"]


def test_record_round_trip(tmp_path):
  assert results.load_record(str(tmp_path)) is None
  saved = results.save_record(str(tmp_path), {"acc": 0.9})
  assert saved == {"acc": 0.9, "code_version": results.code_version()}
  assert results.load_record(str(tmp_path)) == saved


def test_every_record_carries_the_code_version_that_made_it(tmp_path, monkeypatch):
  """Issue #31: runtime/results.py says every record carries `code_version`; only MeRGAN's and
  mix-and-match's did. Records are stamped where they are saved and where results.json is
  written, with the version of the code that made them: a reused record keeps its own, and one
  saved before versions were kept is 'unknown', never the version of the code reusing it."""
  version = results.code_version()
  assert version == "unknown" or re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", version)
  old = tmp_path / "old"
  old.mkdir()
  (old / "record.json").write_text(json.dumps({"acc": 0.5}))  # saved by an older lamp_tf
  results.save_record(str(tmp_path / "kept"), {"acc": 0.7, "code_version": "0123456789ab"})
  runs = [results.load_record(str(old)), results.load_record(str(tmp_path / "kept")),
          {"acc": 0.9}]  # made by this process, never saved (e.g. evaluated from a checkpoint)
  results.write_results(str(tmp_path), "prog", {}, runs)
  data = json.loads((tmp_path / "results.json").read_text())
  assert [r["code_version"] for r in data["runs"]] == [results.UNKNOWN_VERSION, "0123456789ab",
                                                       version]


def test_a_damaged_record_is_set_aside_and_a_damaged_results_file_named(tmp_path):
  (tmp_path / "record.json").write_text('{"acc": 0.')  # truncated
  assert results.load_record(str(tmp_path)) is None  # the run is rebuilt from its checkpoint
  assert (tmp_path / "record.json.damaged").read_text() == '{"acc": 0.'
  assert results.load_record(str(tmp_path)) is None
  (tmp_path / "results.json").write_text("")
  with pytest.raises(files.DamagedFileError, match=r"results.json is damaged .*delete it"):
    files.read_json(str(tmp_path / "results.json"))


def test_markdown_table_and_report(tmp_path):
  table = results.markdown_table(["a", "b"], [["x", 0.12345], ["y", float("nan")]])
  assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 0.12 |", "| y | nan |"]
  noise = results.markdown_table(["step"], [["+ |N(0, 0.5)| noise"]])
  assert noise.splitlines()[2] == "| + \\|N(0, 0.5)\\| noise |"  # one cell, not three
  results.write_report(str(tmp_path), "Title", [("Section", table)])
  text = (tmp_path / "REPORT.md").read_text()
  assert text.startswith("# Title\n") and "## Section" in text and "| x | 0.12 |" in text


def test_above_needs_a_gap_beyond_the_seed_spread():
  assert results.above([2.0], [1.0]) and not results.above([1.0], [2.0])  # one seed: the means
  assert results.above([10.0, 10.2, 9.8], [8.0, 8.1, 7.9])
  # higher on average by more than either standard deviation, but the seed ranges overlap
  ind, skip = [16.2, 16.5, 17.0], [15.5, 16.1, 16.5]
  assert not results.above(ind, skip)
  assert results.spread_note(ind, skip) == " (within the seed spread)"
  assert results.spread_note([10.0, 10.2], [8.0, 8.1]) == ""


def test_paired_comparison_by_hand():
  a = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.75, 4: 0.71, 9: 0.5}  # seed 9 has no partner
  b = {0: 0.65, 1: 0.70, 2: 0.70, 3: 0.71, 4: 0.66}
  wins, n, t_p, sign_p = results.paired_comparison(a, b)
  d = np.array([0.05, 0.02, -0.01, 0.04, 0.05])
  t = d.mean() / (d.std(ddof=1) / np.sqrt(5))  # paired t statistic, 4 degrees of freedom
  assert (wins, n) == (4, 5)
  # Both sides are float64 from the same SciPy functions on the same five differences (summed
  # in another order): ~eps64 relative, far inside pytest.approx's default 1e-6.
  assert t_p == pytest.approx(2 * scipy.stats.t.sf(abs(t), 4))
  assert sign_p == pytest.approx(2 * (5 + 1) / 2 ** 5)  # P(>= 4 of 5 heads), two-sided
  assert np.isnan(results.paired_comparison({0: 1.0}, {0: 0.5})[2])  # one seed: no t-test
  assert results.paired_comparison({0: 1.0}, {1: 0.5}) is None


def test_metric_writer_writes_all_kinds_and_disabled_writes_nothing(tmp_path):
  w = MetricWriter(str(tmp_path / "on"))
  w.write_scalars(3, {"loss": 1.5})
  w.write_images(3, {"grid": np.zeros([8, 8, 1], np.uint8)})
  w.write_texts(3, {"note": "hello"})
  w.write_hparams({"lr": 0.1, "method": "ewc", "layers": [1, 2]})
  w.close()
  tags = {v.tag for ev in glob.glob(str(tmp_path / "on" / "events*"))
          for e in tf.compat.v1.train.summary_iterator(ev) for v in e.summary.value}
  assert {"loss", "grid", "note", "_hparams_/session_start_info"} <= tags
  off = MetricWriter(str(tmp_path / "off"), enabled=False)
  off.write_scalars(1, {"loss": 1.0})
  off.close()
  assert not os.path.exists(tmp_path / "off")
