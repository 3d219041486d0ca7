"""Transferring GANs end to end on tiny budgets, in-process (`experiment.train_and_evaluate`,
what lamp-tf-transfer-gan runs), and lamp-tf-evaluate on its export; the export is served in a
fresh TF-only process."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.gan import training
from lamp_tf.transfer_gan import experiment
from lamp_tf.runtime import flags as runtime_flags
from tests import serving_fuzz
from tests.conftest import REPO_ROOT

TINY = experiment.ExperimentConfig(
    sources=("fashion_mnist:0,1", "mnist5k"), target="fashion_mnist:5,7",
    target_mode="conditional", configs=("none", "both"), main_size=4, target_sizes=(4,),
    seeds=(0,), g_width=16, d_width=8, pretrain_iterations=3, iterations=4,
    train=training.TrainConfig(batch_size=8, n_critic=2, eval_every=2), num_samples=40,
    iw_steps=5, classifier_steps=20)
SERVE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures['generate'](z=tf.random.normal([6, 128]), label=tf.constant([0, 1] * 3,
                                                                           tf.int64))['images']
assert out.shape == (6, 32, 32, 1), out.shape
assert float(tf.reduce_max(tf.abs(out))) <= 1.0
assert m.generator_weight_names[0].shape[0] == len(m.generator_weights) > 0
assert m.critic_weight_names[0].shape[0] == len(m.critic_weights) > 0
assert not any(k.startswith('lamp_tf') for k in sys.modules)
print('ok')
"""


def _runtime(workdir, export_dir=""):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               export_dir=export_dir, checkpoint_every=2, log_every_secs=1e9)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  work = tmp_path_factory.mktemp("transfer_gan")
  experiment.train_and_evaluate(_runtime(work, export_dir=str(work / "export")), TINY,
                                flags={"target": TINY.target})
  return work


def test_records_tables_and_figures(workdir):
  results = json.loads((workdir / "results.json").read_text())
  runs = results["runs"]
  assert {r["experiment"] for r in runs} == {"configs", "limited", "sources"}
  assert [r["config"] for r in runs if r["experiment"] == "configs"] == ["none", "both"]
  for r in runs:
    assert {"source", "config", "target_size", "seed", "iterations", "fid", "kid", "iw",
            "num_samples"} <= set(r)
    assert r["num_samples"] == 40 and r["iterations"] == 4 and np.isfinite(r["fid"])
    assert [it for it, _ in r["fid_curve"]] == [2, 4]
  limited = {(r["config"], r["target_size"]) for r in runs if r["experiment"] == "limited"}
  assert limited == {("none", 4), ("both", 4)}
  assert {r["source"] for r in runs if r["experiment"] == "sources"} == {
      "fashion_mnist:0,1", "mnist5k", "none"}
  # Runs shared between experiments were trained once: the same record, equal numbers.
  both4 = [r["fid"] for r in runs if r["config"] == "both" and r["target_size"] == 4
           and r["source"] == "fashion_mnist:0,1"]
  assert len(both4) == 3 and len(set(both4)) == 1
  report = (workdir / "REPORT.md").read_text()
  for heading in ("What to transfer", "Limited data", "Source selection"):
    assert heading in report
  assert "G pretrained / D pretrained" in report and "FID (classifier features" in report
  # The tables show the recorded numbers themselves (one seed: no ± part).
  configs = [r for r in runs if r["experiment"] == "configs"]
  fid_row = next(l for l in report.splitlines() if l.startswith("| FID (lower better)"))
  kid_row = next(l for l in report.splitlines() if l.startswith("| KID (lower better)"))
  assert fid_row == "| FID (lower better) | " + " | ".join(f"{r['fid']:.2f}" for r in configs) + " |"
  assert kid_row == "| KID (lower better) | " + " | ".join(f"{r['kid']:.4f}" for r in configs) + " |"
  for fig in results["figures"]:
    assert (workdir / fig).stat().st_size > 1000


@pytest.mark.slow
def test_export_serves_in_a_fresh_process_and_evaluates(workdir, tmp_path):
  out = subprocess.run([sys.executable, "-c", SERVE, str(workdir / "export" / "1")],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
  serving_fuzz.assert_rejects_bad_requests(str(workdir / "export" / "1"))
  evaluate = [sys.executable, "-m", "lamp_tf.apps.evaluate", f"--generator={workdir / 'export'}",
              "--dataset=fashion_mnist:5,7", "--num_samples=40", "--iw_steps=5",
              "--classifier_steps=20", f"--workdir={tmp_path}"]
  out = subprocess.run(evaluate, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  record = json.loads((tmp_path / "results.json").read_text())["runs"][0]
  assert record["num_samples"] == 40 and len(record["sample_accuracy_per_class"]) == 2
  assert np.isfinite(record["fid"]) and np.isfinite(record["iw"])
  assert "classifier test accuracy" in record["features"]


@pytest.mark.slow
def test_unconditional_target_with_iw_curve_and_rank_agreement(tmp_path, monkeypatch):
  work = tmp_path / "w"
  cfg = dataclasses.replace(TINY, target_mode="unconditional", experiments=("configs",),
                            configs=("none", "generator", "both"), seeds=(0, 1), iw_curve=(2, 5),
                            pretrain_lr=0.0002, pretrain_batch_size=4)
  experiment.train_and_evaluate(_runtime(work), cfg)
  runs = json.loads((work / "results.json").read_text())["runs"]
  assert len(runs) == 6 and {r["target_mode"] for r in runs} == {"unconditional"}
  assert all("sample_accuracy" not in r and r["run"].endswith(("__uncond__seed0",
                                                                "__uncond__seed1")) for r in runs)
  config = json.loads((work / "runs" / runs[0]["run"] / "gan_config.json").read_text())
  assert config["num_classes"] is None
  report = (work / "REPORT.md").read_text()
  assert "unconditional WGAN-GP" in report and "sample accuracy" not in report
  assert "batch 4, Adam 0.0002" in report  # the pretraining's own settings
  # The IW curve at --iw_steps (5) is the IW in the records: the same critic, trained as long.
  for r in (r for r in runs if r["seed"] == 0):
    curve = json.loads((work / "runs" / r["run"] / "iw_curve.json").read_text())
    assert curve["steps"] == [2, 5]
    # The same critic training in the same process (tests/metrics/test_gan_metrics.py): equal
    # by construction; 1e-4 is far below the change of IW from 2 to 5 critic steps.
    assert curve["iw"][1] == pytest.approx(r["iw"], abs=1e-4)
  # Rank agreement: each metric's order per seed, as the records give it.
  line = next(l for l in report.splitlines() if l.startswith("| FID | "))
  for seed in (0, 1):
    rs = sorted((r for r in runs if r["seed"] == seed), key=lambda r: r["fid"])
    assert f"seed {seed}: " + " > ".join(r["config"] for r in rs) in line
  # Kendall's τ by hand: concordant minus discordant pairs of configurations, over all pairs.
  fid = {seed: {r["config"]: r["fid"] for r in runs if r["seed"] == seed} for seed in (0, 1)}
  names = sorted(fid[0])
  pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
  tau = sum(np.sign((fid[0][a] - fid[0][b]) * (fid[1][a] - fid[1][b])) for a, b in pairs)
  assert line.endswith(f" | {tau / len(pairs):.2f} (1 pairs) |")
  assert "Kendall τ between seeds" in report and "| FID vs IW |" in report
  assert (work / "iw_curve.png").stat().st_size > 1000
  # --iw_steps chosen again from the curve: no retraining, every IW measured with the new
  # critic length (the curve's value at 2 steps).
  monkeypatch.setattr(experiment, "train_target", lambda *a: pytest.fail("trained again"))
  experiment.train_and_evaluate(_runtime(work), dataclasses.replace(cfg, iw_steps=2))
  again = json.loads((work / "results.json").read_text())["runs"]
  for r in (r for r in again if r["seed"] == 0):
    curve = json.loads((work / "runs" / r["run"] / "iw_curve.json").read_text())
    assert r["iw_steps"] == 2 and r["iw"] == pytest.approx(curve["iw"][0], abs=1e-4)  # (as above)
  assert [r["fid"] for r in again] == [r["fid"] for r in runs]  # reused records: equal
  # The source was pretrained at another rate: refused in one line, nothing retrained.
  with pytest.raises(ValueError, match=r"was pretrained with .*'lr': 0.0002"):
    experiment.train_and_evaluate(_runtime(work), dataclasses.replace(cfg, pretrain_lr=0.001))
