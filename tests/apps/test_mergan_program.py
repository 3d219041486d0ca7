"""lamp-tf-mergan end to end on tiny budgets: Table-1 records, figures, export."""

import json
import os
import subprocess
import sys

import numpy as np

from tests import serving_fuzz
from tests.conftest import REPO_ROOT

SERVE = """
import sys, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures['generate'](z=tf.random.normal([3, 128]), label=tf.constant([0, 5, 9], tf.int64))
assert out['images'].shape == (3, 32, 32, 1), out['images'].shape
print('ok')
"""


def test_mergan_program(tmp_path):
  args = ["--dataset=mnist5k", "--tasks=0,1,2,3,4/5,6,7,8,9", "--methods=jt,sft", "--seeds=0",
          "--iterations=2", "--batch_size=8", "--n_critic=1", "--g_width=16", "--d_width=8",
          "--eval_samples=4", "--reverse_steps=2", "--classifier_steps=10", "--tsne_samples=12",
          f"--workdir={tmp_path}", f"--export_dir={tmp_path / 'export'}",
          "--log_every_secs=1000"]
  out = subprocess.run([sys.executable, "-m", "lamp_tf.apps.mergan"] + args, cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-4000:]
  results = json.loads((tmp_path / "results.json").read_text())
  runs = results["runs"]
  assert [r["method"] for r in runs] == ["jt", "sft"]
  for r in runs:
    assert {"dataset", "num_tasks", "method", "seed", "accuracy", "accuracy_matrix",
            "reverse_accuracy", "fid"} <= set(r)
    assert r["dataset"] == "mnist5k" and r["num_tasks"] == 2
    assert len(r["accuracy_matrix"]) == 2 and len(r["accuracy_matrix"][0]) == 10
    assert r["accuracy"] == np.mean([a for a in r["accuracy_matrix"][-1]])
  report = (tmp_path / "REPORT.md").read_text()
  assert "| after task 2 |" in report and "| JT | SFT |" in report.replace("|  |", "|")
  assert set(results["figures"]) == {"grid_jt.png", "grid_sft.png", "accuracy.png",
                                     "tsne_task1.png"}
  for f in results["figures"]:
    assert (tmp_path / f).stat().st_size > 1000
  assert json.loads((tmp_path / "export" / "1" / "model_card.json").read_text())[
      "signatures"]["generate"]["inputs"]["label"] == {"shape": [None], "dtype": "int64"}
  out = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export" / "1")],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
  serving_fuzz.assert_rejects_bad_requests(str(tmp_path / "export" / "1"))
