"""Your own images end to end: one folder of 300 generated PNGs in class folders trains a
Transferring-GANs target (from a source in the same folder), a MeRGAN task sequence and an R-EWC
sequence at the smallest budgets, in-process (each experiment's `train_and_evaluate`, what its
program runs), and lamp-tf-evaluate scores the exported generator against the folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.continual import mergan, mergan_experiment, rewc_experiment, sequential
from lamp_tf.gan import training
from lamp_tf.mixmatch import style_experiment
from lamp_tf.runtime import flags as runtime_flags
from lamp_tf.transfer_gan import experiment as transfer_experiment
from tests import image_folders
from tests.conftest import REPO_ROOT

CLASSES = ("ant", "bee", "cow", "dog")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
  """folder:PATH of 4 classes x 75 RGB 16x16 PNGs (60 train, 15 held out per class)."""
  root = tmp_path_factory.mktemp("own") / "images"
  image_folders.write_folder(str(root), CLASSES, 75)
  return f"folder:{root}"


def _runtime(work, **kwargs):
  kwargs = {"export_dir": "", "log_every_secs": 1e9, **kwargs}
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(work),
                               **kwargs)


@pytest.fixture(scope="module")
def transfer_export(images, tmp_path_factory):
  work = tmp_path_factory.mktemp("transfer")
  cfg = transfer_experiment.ExperimentConfig(
      sources=(f"{images}:0,1",), target=f"{images}:2,3", target_mode="conditional",
      experiments=("configs",), configs=("none", "both"), main_size=10, seeds=(0,), channels=3,
      g_width=16, d_width=8, pretrain_iterations=2, iterations=2,
      train=training.TrainConfig(batch_size=8, n_critic=1, eval_every=0), num_samples=20,
      iw_steps=2, classifier_steps=10)
  records = transfer_experiment.train_and_evaluate(
      _runtime(work, checkpoint_every=2, export_dir=str(work / "export")), cfg)
  return work, records


@pytest.mark.slow
def test_a_transfer_target_trains_from_a_source_in_the_folder(transfer_export, images):
  work, records = transfer_export
  assert [r["config"] for r in records] == ["none", "both"]
  assert all(np.isfinite(r["fid"]) and r["train_images"] == 20 for r in records)
  assert records[1]["source"] == f"{images}:0,1"
  # The folder's path makes no subdirectories: one directory per pretrained source and run.
  assert [p.name for p in (work / "pretrain").iterdir()][0].startswith("folder-images-")
  assert all("/" not in r["run"] for r in records)
  card = json.loads((work / "export" / "1" / "model_card.json").read_text())
  assert card["data"] == f"{images}:2,3"
  assert card["signatures"]["generate"]["outputs"]["images"]["shape"] == [None, 32, 32, 3]


@pytest.mark.slow
def test_lamp_tf_evaluate_scores_the_export_against_the_folder(transfer_export, images,
                                                                 tmp_path):
  work, _ = transfer_export
  out = subprocess.run(
      [sys.executable, "-m", "lamp_tf.apps.evaluate", f"--generator={work / 'export'}",
       f"--dataset={images}:2,3", "--num_samples=20", "--iw_steps=2", "--classifier_steps=10",
       f"--workdir={tmp_path}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  record = json.loads((tmp_path / "results.json").read_text())["runs"][0]
  assert record["dataset"] == f"{images}:2,3" and len(record["sample_accuracy_per_class"]) == 2
  assert np.isfinite(record["fid"]) and np.isfinite(record["iw"])
  assert "| 0 | cow |" in (tmp_path / "REPORT.md").read_text()


@pytest.mark.slow
def test_a_mergan_task_sequence_over_the_folder(images, tmp_path):
  cfg = mergan_experiment.ExperimentConfig(
      train=mergan.MerganConfig(iterations=2, batch_size=8, n_critic=1),
      gan={"architecture": "dcgan", "num_classes": None, "conditioning": "cbn", "channels": 3,
           "resolution": 32, "g_width": 16, "d_width": 8},
      dataset=images, tasks="0/1", methods=("ra",), seeds=(0,), eval_samples=4,
      reverse_steps=2, classifier_steps=10, tsne_samples=12)
  records = mergan_experiment.train_and_evaluate(_runtime(tmp_path), cfg)
  assert [r["method"] for r in records] == ["ra"] and records[0]["num_tasks"] == 2
  assert len(records[0]["accuracy_matrix"]) == 2 and len(records[0]["accuracy_matrix"][0]) == 4
  assert records[0]["dataset"] == images


def test_an_rewc_sequence_over_the_folder(images, tmp_path):
  cfg = rewc_experiment.ExperimentConfig(
      train=sequential.RunConfig(epochs=1, batch_size=20, fisher_samples=20), dataset=images,
      tasks="0,1/2,3", methods=("ft", "rewc"), rotate=("fc",), lambdas=(10.0,), seeds=(0,),
      image_size=16)
  records = rewc_experiment.train_and_evaluate(_runtime(tmp_path, checkpoint_every=100), cfg)
  runs = json.loads((tmp_path / "results.json").read_text())["runs"]
  assert [r["method"] for r in records] == [r["method"] for r in runs] == ["ft", "rewc"]
  for r in runs:
    assert len(r["task_accuracy"]) == 2 and np.isfinite(r["average_accuracy"])
  report = (tmp_path / "REPORT.md").read_text()
  # 240 training images, 10 % of each class's held out for validation: 216 to train on.
  assert f"Data set `{images}`" in report and "(216 training" in report


def test_style_transfer_between_the_folders_domains(tmp_path):
  root = tmp_path / "styles"
  image_folders.write_folder(str(root), ("ink", "oil", "wash"), 8, channels=1)
  cfg = style_experiment.ExperimentConfig(
      style_source=f"folder:{root}", domains=("ink", "oil", "wash"), anchor="ink",
      resolution=16, num_train=6, num_test=2, steps=2, baseline_pairs="none",
      classifier_steps=5, width=8, critic_width=8, batch_size=4, res_blocks=1).validate()
  (mm,) = style_experiment.train_and_evaluate(_runtime(tmp_path / "w"), cfg)
  assert 0 <= mm["pair/oil->wash/accuracy"] <= 1 and "ssim_target_zero_pair" not in mm
  assert f"the image folder `folder:{root}`" in (tmp_path / "w" / "REPORT.md").read_text()
  with pytest.raises(ValueError, match="--domains: unknown domain 'photo'; choose from ink, oil"):
    style_experiment.ExperimentConfig(style_source=f"folder:{root}").validate()
