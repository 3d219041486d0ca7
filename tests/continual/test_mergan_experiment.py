"""MeRGAN's experiment end to end on tiny budgets, in-process: Table-1 records, figures, export
(served in a fresh TF-only process: the isolation is the point there)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import mergan, mergan_experiment
from lamp_tf.runtime import flags as runtime_flags
from tests import serving_fuzz

SERVE = """
import sys, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures['generate'](z=tf.random.normal([3, 128]), label=tf.constant([0, 5, 9], tf.int64))
assert out['images'].shape == (3, 32, 32, 1), out['images'].shape
print('ok')
"""


@pytest.mark.slow
def test_mergan_experiment(tmp_path):
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                             export_dir=str(tmp_path / "export"), log_every_secs=1000)
  cfg = mergan_experiment.ExperimentConfig(
      train=mergan.MerganConfig(iterations=2, batch_size=8, n_critic=1),
      gan={"architecture": "dcgan", "num_classes": None, "conditioning": "cbn", "channels": 1,
           "resolution": 32, "g_width": 16, "d_width": 8},
      dataset="mnist5k", tasks="0,1,2,3,4/5,6,7,8,9", methods=("jt", "sft"), seeds=(0,),
      eval_samples=4, reverse_steps=2, classifier_steps=10, tsne_samples=12)
  returned = mergan_experiment.train_and_evaluate(rt, cfg)
  results = json.loads((tmp_path / "results.json").read_text())
  runs = results["runs"]
  assert [r["method"] for r in runs] == ["jt", "sft"] == [r["method"] for r in returned]
  for r in runs:
    assert {"dataset", "num_tasks", "method", "seed", "accuracy", "accuracy_matrix",
            "reverse_accuracy", "fid"} <= set(r)
    assert r["dataset"] == "mnist5k" and r["num_tasks"] == 2
    assert len(r["accuracy_matrix"]) == 2 and len(r["accuracy_matrix"][0]) == 10
    # The same float64 mean of the same per-class accuracies, in the same order: equal.
    assert r["accuracy"] == np.mean([a for a in r["accuracy_matrix"][-1]])
    # Instance memory (issue #33): after task 1 the samples are the first task's own.
    assert r["instance_mse_per_task"][0] == 0 and r["instance_feature_per_task"][0] == 0
    assert abs(r["instance_ssim_per_task"][0] - 1) < 1e-5 and len(r["instance_mse_per_task"]) == 2
    assert r["instance_reference"]["mse"] > 0
  report = (tmp_path / "REPORT.md").read_text()
  assert "| after task 2 |" in report and "| JT | SFT |" in report.replace("|  |", "|")
  assert "batch 8, 1 critic steps" in report and "seeds [0]" in report
  assert set(results["figures"]) == {"grid_jt.png", "grid_sft.png", "accuracy.png",
                                     "tsne_task1.png"}
  for f in results["figures"]:
    assert (tmp_path / f).stat().st_size > 1000
  card = json.loads((tmp_path / "export" / "1" / "model_card.json").read_text())
  assert card["signatures"]["generate"]["inputs"]["label"] == {"shape": [None], "dtype": "int64"}
  assert card["method"] == "sft" and card["metrics"]["accuracy"] == runs[1]["accuracy"]  # a copy
  out = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export" / "1")],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
  serving_fuzz.assert_rejects_bad_requests(str(tmp_path / "export" / "1"))


def test_the_instance_claim_is_computed_from_the_per_seed_distances():
  """RA's claim holds when its distances to its first-task samples are below JTR's and SFT's
  beyond the seed spread (pixels and features), not when the seed ranges overlap; JTR's when
  its feature distance is at least half the 'another instance' reference."""
  def record(method, seed, mse, feature):
    return {"method": method, "seed": seed, "instance_mse_per_task": [0.0, mse],
            "instance_feature_per_task": [0.0, feature],
            "instance_ssim_per_task": [1.0, 0.5],
            "instance_reference": {"mse": 0.5, "ssim": 0.2, "feature": 4.0}}

  def claim(ra_feature_seed1):
    records = [record("sft", 0, 0.6, 5.0), record("sft", 1, 0.5, 4.5),
               record("jtr", 0, 0.4, 3.0), record("jtr", 1, 0.45, 3.5),
               record("ra", 0, 0.05, 0.5), record("ra", 1, 0.06, ra_feature_seed1)]
    ra, jtr = mergan_experiment.instance_claims(records)
    return ra, jtr

  ra, jtr = claim(0.6)
  assert ra["holds"] and "MeRGAN-RA 0.055 / 0.55" in ra["evidence"]
  assert jtr["holds"]  # JTR's feature distance 3.25 >= half the reference 4.0
  assert not claim(3.2)[0]["holds"]  # RA's seed 1 inside JTR's range: not beyond the spread
  close = [record("jtr", 0, 0.1, 1.0), record("jtr", 1, 0.1, 1.2), record("sft", 0, 0.6, 5.0),
           record("ra", 0, 0.05, 0.5)]
  assert not mergan_experiment.instance_claims(close)[1]["holds"]  # 1.1 < half of 4.0
  assert mergan_experiment.instance_claims([record("sft", 0, 0.6, 5.0)]) == []
