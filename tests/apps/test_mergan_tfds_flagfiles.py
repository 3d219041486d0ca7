"""The SVHN and LSUN flag files (TFDS names; LSUN with 64x64 ResNets) run under
tfds.testing.mock_data."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DRIVER = """
import sys
import tensorflow_datasets as tfds
from absl import app
from lamp_tf.apps import mergan
with tfds.testing.mock_data(num_examples=24):
  app.run(mergan.main, argv=sys.argv)
"""
TINY = ["--tasks=0/1", "--first_task_iterations=1", "--iterations=1", "--batch_size=4",
        "--n_critic=1", "--g_width=4", "--d_width=4", "--eval_samples=2", "--reverse_steps=1",
        "--classifier_steps=2", "--tsne_samples=12", "--log_every_secs=1000"]


# RA (its replays) on SVHN; SFT on LSUN keeps the 64x64 ResNets' test short (the per-class
# replays of the LSUN file are pinned in tests/continual/test_mergan.py).
@pytest.mark.parametrize("flagfile,method,classes,architecture,resolution",
                         [pytest.param("mergan_svhn.cfg", "ra", 10, "dcgan", 32,
                                       marks=pytest.mark.slow),
                          pytest.param("mergan_lsun.cfg", "sft", 4, "resnet", 64,
                                       marks=pytest.mark.slow)])
def test_flag_file_runs_on_mock_data(flagfile, method, classes, architecture, resolution,
                                     tmp_path):
  # Two of the file's tasks keep this a test; its data set, networks and resolution are kept.
  out = subprocess.run(
      [sys.executable, "-c", DRIVER, f"--flagfile={os.path.join(REPO_ROOT, 'flags', flagfile)}",
       f"--methods={method}", *TINY, f"--data_dir={tmp_path / 'tfds'}",
       f"--workdir={tmp_path / 'w'}", f"--export_dir={tmp_path / 'e'}"], cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-4000:]
  record = json.loads((tmp_path / "w" / "results.json").read_text())["runs"][0]
  assert record["num_tasks"] == 2 and len(record["accuracy_matrix"][0]) == classes
  flags = json.loads((tmp_path / "w" / "results.json").read_text())["flags"]
  assert flags["architecture"] == architecture and flags["resolution"] == resolution
