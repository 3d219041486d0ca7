"""The mix-and-match experiment end to end, in-process on tiny budgets (what lamp-tf-mixmatch
runs): records, tables, figures, export signatures served in a TensorFlow-only process."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.mixmatch import experiment
from lamp_tf.runtime import flags as runtime_flags
from tests import serving_fuzz

SERVE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
names = sorted(m.signatures)
depth = tf.constant(np.full([2, 16, 16], 2.0, np.float32))
out = m.signatures['depth_to_seg'](depth=depth)
assert out['labels'].shape == (2, 16, 16) and out['probabilities'].shape == (2, 16, 16, 13)
rgb = tf.zeros([2, 16, 16, 3], tf.uint8)
assert m.signatures['rgbd_to_seg'](rgb=rgb, depth=depth)['labels'].shape == (2, 16, 16)
assert m.signatures['seg_to_depth'](seg=tf.zeros([2, 16, 16], tf.uint8))['depth'].shape == (2, 16, 16)
print(' '.join(names))
"""


@pytest.mark.slow
def test_mixmatch_experiment(tmp_path, monkeypatch):
  cfg = experiment.ExperimentConfig(
      resolution=16, num_scenes=16, num_test_scenes=4, widths=(4, 8), side_info=("indices",),
      steps=3, baseline_steps=2, batch_size=4, baselines=("pix2pix", "cyclegan"), seeds=(3,),
      recolour_steps=2, recolour_width=8, panel_scenes=2, data_dir=str(tmp_path / "tfds"),
      warm_start=0.0,  # tested on its own (tests/mixmatch); here it would double the compiling
      interventions=("align_scale=relative+latent_weight=2",))
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path / "w"),
                             export_dir=str(tmp_path / "export"), log_every_secs=1e9)
  experiment.train_and_evaluate(rt, cfg)
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  runs = results["runs"]
  methods = {(r["method"], r["side_info"]) for r in runs}
  assert {("mm_zero_pair", "indices"), ("mm_cascade", "indices"),
          ("mm_multimodal", "indices"), ("pix2pix_cascade", "skip"), ("cyclegan", "skip"),
          ("recolouring", "none")} <= methods
  assert {r["seed"] for r in runs} == {3}
  assert {r.get("test_bn") for r in runs if r["method"] == "mm_zero_pair"} == {"batch", "moving"}
  for r in runs:
    assert {"method", "side_info", "seed", "miou", "global_accuracy", "per_class_iou"} <= set(r)
    if r["method"] != "recolouring":
      assert 0 <= r["miou"] <= 1 and len(r["per_class_iou"]) == 13
      assert np.array(r["confusion"]).shape == (13, 13)
  # The intervention's models are trained and scored beside the flags' ones, with their trace.
  changed = [r for r in runs if r.get("objective") == "align_scale=relative+latent_weight=2"]
  assert {r["method"] for r in changed} >= {"mm_zero_pair", "mm_cascade", "mm_rgb2seg"}
  zero = [r for r in runs if r["method"] == "mm_zero_pair" and r["test_bn"] == "batch"]
  for r in zero:
    assert r["warm_start_steps"] == 0
    assert r["probe_steps"][0] == 0 and r["probe_steps"][-1] == 3
    assert len(r["probe_indices_agreement"][0]) == 2 and "loss_end_latent_depth" in r
  assert any(c["claim"].endswith("(intervention align_scale=relative+latent_weight=2)")
             for c in results["claims"])
  report = (tmp_path / "w" / "REPORT.md").read_text()
  for heading in ("Depth → segmentation", "Side information", "Many-to-many recolouring",
                  "Batch norm at test", "zero-pair minus M&M cascade",
                  "The encoders' alignment during training", "Interventions, one change"):
    assert heading in report
  assert "| method | mIoU % | global % | bed | books |" in report
  for f in results["figures"]:
    assert (tmp_path / "w" / f).stat().st_size > 1000
  out = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export" / "1")],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  names = out.stdout.split()
  assert len([n for n in names if "_to_" in n]) == 7  # 6 modality pairs + (RGB, depth) -> seg
  assert np.isin(["rgb_to_seg", "depth_to_rgb", "seg_to_rgb"], names).all()
  entries = serving_fuzz.assert_rejects_bad_requests(str(tmp_path / "export" / "1"))
  assert {e["signature"] for e in entries} == set(names)
  assert any(e["request"] == "seg: seg 255" for e in entries)
  # Issue #31: under --strategy=multi_worker only the chief writes results, report, figures and
  # the export; a worker rerunning the finished main model (restored, not trained; the other
  # models left out to save compiling) writes none.
  for f in ["results.json", "REPORT.md"] + results["figures"]:
    (tmp_path / "w" / f).unlink()
  monkeypatch.setattr(runtime_flags.Runtime, "is_chief", property(lambda self: False))
  worker_records = experiment.train_and_evaluate(
      dataclasses.replace(rt, export_dir=str(tmp_path / "export_worker")),
      dataclasses.replace(cfg, baselines=(), interventions=(), recolour=False))
  assert {r["method"] for r in worker_records} >= {"mm_zero_pair", "mm_cascade"}
  assert not (tmp_path / "export_worker").exists()
  assert not [f for f in ["results.json", "REPORT.md"] + results["figures"]
              if (tmp_path / "w" / f).exists()]


def test_the_ablation_walks_one_change_at_a_time_to_the_default_objective():
  """Its last step trains the default (reference) model, which the experiment reuses."""
  steps = experiment.ablation_steps()
  default = experiment.reference_variant(experiment.ExperimentConfig())
  assert experiment.trains_like(steps[-1], default)
  assert not any(experiment.trains_like(s, default) for s in steps[:-1])
  assert experiment.trains_like(steps[0], steps[1]) and steps[0].test_bn != steps[1].test_bn
  for a, b in zip(steps[1:], steps[2:]):
    assert not experiment.trains_like(a, b), (a.name, b.name)


def test_an_intervention_names_what_it_changes_and_refuses_anything_else():
  cfg = experiment.ExperimentConfig(steps=1200)
  changed = experiment.intervention_config(cfg, "align_at=features+warm_start=0.25+widths=8:16")
  assert (changed.align_at, changed.warm_start, changed.widths) == ("features", 0.25, (8, 16))
  assert experiment.reference_variant(changed).warm_start_steps == 300
  assert changed.align_scale == cfg.align_scale and changed.seeds == cfg.seeds
  for bad, match in (("num_scenes=10", "not name=value with a name among"),
                     ("align_at", "not name=value"), ("latent_weight=lots", "not a valid value"),
                     ("align_at=nowhere", "--align_at=nowhere"),
                     ("max_feature=maybe", "not a valid value")):
    with pytest.raises(ValueError, match=match):
      experiment.intervention_config(cfg, bad)
  with pytest.raises(ValueError, match="divisible"):
    experiment.validate(experiment.ExperimentConfig(resolution=16, widths=(4, 8),
                                                    interventions=("widths=4:8:8:8:8",)))
