"""The mix-and-match experiment end to end, in-process on tiny budgets (what lamp-tf-mixmatch
runs): records, tables, figures, export signatures served in a TensorFlow-only process."""

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
def test_mixmatch_experiment(tmp_path):
  cfg = experiment.ExperimentConfig(
      resolution=16, num_scenes=16, num_test_scenes=4, widths=(4, 8), side_info=("indices",),
      steps=3, baseline_steps=2, batch_size=4, baselines=("pix2pix", "cyclegan"), seeds=(3,),
      recolour_steps=2, recolour_width=8, panel_scenes=2, data_dir=str(tmp_path / "tfds"))
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path / "w"),
                             export_dir="", log_every_secs=1e9)
  experiment.train_and_evaluate(rt, cfg, str(tmp_path / "w"), export_dir=str(tmp_path / "export"))
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
  report = (tmp_path / "w" / "REPORT.md").read_text()
  for heading in ("Depth → segmentation", "Side information", "Many-to-many recolouring",
                  "Batch norm at test"):
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


def test_the_ablation_walks_one_change_at_a_time_to_the_default_objective():
  """Its last step trains the default (reference) model, which the experiment reuses."""
  steps = experiment.ablation_steps()
  default = experiment.reference_variant(experiment.ExperimentConfig())
  assert experiment.trains_like(steps[-1], default)
  assert not any(experiment.trains_like(s, default) for s in steps[:-1])
  assert experiment.trains_like(steps[0], steps[1]) and steps[0].test_bn != steps[1].test_bn
  for a, b in zip(steps[1:], steps[2:]):
    assert not experiment.trains_like(a, b), (a.name, b.name)
