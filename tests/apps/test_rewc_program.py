"""R-EWC end to end in-process (`rewc_experiment.train_and_evaluate`, what lamp-tf-rewc runs):
records, report, figures, export served in a fresh process, reuse of finished runs,
export_only, a TFDS name through tfds.testing.mock_data; the program itself interrupted anywhere
(its own processes: signals) resumes to the same numbers."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tensorflow as tf
import tensorflow_datasets as tfds

from lamp_tf.continual import rewc_experiment, sequential
from lamp_tf.data import sources
from lamp_tf.runtime import flags as runtime_flags, results
from tests import numerics, serving_fuzz
from tests.conftest import REPO_ROOT

TINY = ["--dataset=mnist5k", "--max_train=1000", "--epochs=2", "--batch_size=50",
        "--methods=ft,ewc,rewc", "--rotate=all", "--lambdas=10,1000", "--seeds=0",
        "--fisher_samples=50", "--checkpoint_every=10", "--log_every_secs=1000"]
TINY_CONFIG = rewc_experiment.ExperimentConfig(  # TINY as the program turns it into a config
    train=sequential.RunConfig(epochs=2, batch_size=50, fisher_samples=50), max_train=1000,
    methods=("ft", "ewc", "rewc"), rotate=("all",), lambdas=(10.0, 1000.0), seeds=(0,))
SERVE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = m.signatures['classify'](images=tf.constant(x))
np.save(sys.argv[3], out['classes'].numpy())
assert not any(k.startswith('lamp_tf') for k in sys.modules)
"""


def _run(args, timeout=600, driver=None):
  """The program (or `driver`, a script that runs it) in its own process."""
  cmd = [sys.executable] + (["-c", driver] if driver else ["-m", "lamp_tf.apps.rewc"]) + args
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def _runtime(workdir, **kwargs):
  kwargs = {"checkpoint_every": 10, "log_every_secs": 1000, "export_dir": "", **kwargs}
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               **kwargs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  work = tmp_path_factory.mktemp("rewc")
  rewc_experiment.train_and_evaluate(_runtime(work, export_dir=str(work / "export")),
                                     TINY_CONFIG, flags={"lambdas": ["10", "1000"]})
  return work


def test_results_records_and_report(workdir):
  results = json.loads((workdir / "results.json").read_text())
  assert results["program"] == "lamp-tf-rewc" and results["flags"]["lambdas"] == ["10", "1000"]
  runs = results["runs"]
  assert [(r["method"], r["rotate"], r["lambda"]) for r in runs] == [
      ("ft", None, None), ("ewc", None, 10.0), ("rewc", "all", 10.0), ("ewc", None, 1000.0),
      ("rewc", "all", 1000.0)]
  for r in runs:
    assert {"seed", "task_accuracy", "average_accuracy", "forgetting", "val_task_accuracy",
            "val_average_accuracy", "optimizer"} <= set(r)
    # float64 means of the recorded accuracies: ~eps64, inside pytest.approx's default 1e-6.
    assert r["val_average_accuracy"] == pytest.approx(np.mean(r["val_task_accuracy"]))
    assert len(r["task_accuracy"]) == 2
    assert r["average_accuracy"] == pytest.approx(np.mean(r["task_accuracy"]))
  rewc = [r for r in runs if r["method"] == "rewc"]
  assert all(r["fisher_energy_after"] > r["fisher_energy_before"] for r in rewc)
  # The first task is shared: every run starts task 2 from the same accuracy on task 1 (the same
  # stored first-task model evaluated by the same code in one process: equal numbers).
  assert len({r["accuracy_matrix"][0][0] for r in runs}) == 1
  report = (workdir / "REPORT.md").read_text()
  assert "| method | λ=10 | λ=1000 |" in report and "| R-EWC all |" in report
  assert "| method | λ (validation) |" in report and "oracle λ (test)" in report
  # λ is selected on validation: the selected row's λ has the best mean validation accuracy
  section = report.split("Selected λ per method", 1)[1].splitlines()
  row = next(line for line in section if line.startswith("| EWC | "))
  best = max((r for r in runs if r["method"] == "ewc"), key=lambda r: r["val_average_accuracy"])
  assert row.split(" | ")[1] == f"{best['lambda']:g}"
  for fig in results["figures"]:
    assert (workdir / fig).stat().st_size > 1000 and f"({fig})" in report
  assert any(f.startswith("accuracy_matrix") for f in results["figures"])


def test_task_aware_evaluation_is_recorded_and_can_select_lambda(workdir, tmp_path,
                                                                   monkeypatch):
  runs = json.loads((workdir / "results.json").read_text())["runs"]
  for r in runs:
    assert {"task_aware_accuracy", "task_aware_average_accuracy", "task_aware_forgetting",
            "task_aware_backward_transfer", "task_aware_accuracy_matrix",
            "val_task_aware_accuracy", "val_task_aware_average_accuracy"} <= set(r)
    # float64 means of the recorded accuracies (as above).
    assert r["task_aware_average_accuracy"] == pytest.approx(np.mean(r["task_aware_accuracy"]))
    # A task's own head never turns a right answer wrong: the true class is among its classes.
    for aware, single in zip(r["task_aware_accuracy_matrix"], r["accuracy_matrix"]):
      assert all(a >= s for a, s in zip(aware, single) if a is not None)
  report = (workdir / "REPORT.md").read_text()
  assert "## Class-incremental and task-aware accuracy" in report
  assert "| task-aware average % |" in report and "(--select_on=class_incremental)" in report
  assert any(f.startswith("accuracy_matrix_task_aware_") for f in
             json.loads((workdir / "results.json").read_text())["figures"])
  # Selecting on the task-aware accuracy reuses every finished run (nothing is trained).
  work = tmp_path / "w"
  shutil.copytree(workdir, work, ignore=shutil.ignore_patterns("export*", ".lock"))
  monkeypatch.setattr(sequential, "run", lambda *a, **k: pytest.fail("trained again"))
  cfg = dataclasses.replace(TINY_CONFIG, select_on="task_aware")
  rewc_experiment.train_and_evaluate(_runtime(work), cfg)
  report = (work / "REPORT.md").read_text()
  section = report.split("Selected λ per method (task-aware)", 1)[1].splitlines()
  row = next(line for line in section if line.startswith("| EWC | "))
  best = max((r for r in runs if r["method"] == "ewc"),
             key=lambda r: r["val_task_aware_average_accuracy"])
  assert row.split(" | ")[1] == f"{best['lambda']:g}"
  assert row.split(" | ")[4] == results.mean_std([best["task_aware_average_accuracy"]], 100.0, 1)


def _exported_logits(workdir):
  """Test-set logits of the exported run's plain classifier, restored in this process."""
  rt = _runtime(workdir)
  data = rewc_experiment.load_data(rt, TINY_CONFIG)
  configs = rewc_experiment.run_configs(TINY_CONFIG)
  records = [rewc_experiment._record(str(workdir / "runs" / c.name)) for c in configs]
  cfg = rewc_experiment._best_config(configs, records)
  model, _ = sequential.build_model(cfg, data, rt.strategy)
  assert rt.train_state(os.path.join("runs", cfg.name), cfg.seed, model=model).restore(
      partial=True)
  return sequential.plain_model(model)(data.test_x, training=False).numpy()


def test_export_serves_in_fresh_process_with_the_recorded_accuracy(workdir, tmp_path):
  test = sources.load_examples("mnist5k", "test")
  np.save(tmp_path / "x.npy", test.images)
  out = subprocess.run([sys.executable, "-c", SERVE, str(workdir / "export" / "1"),
                        str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  accuracy = float(np.mean(np.load(tmp_path / "y.npy") == test.labels))
  runs = json.loads((workdir / "results.json").read_text())["runs"]
  # The best run on validation was exported; both tasks have 500 test images, so its accuracy
  # over the whole test set is its (test) average accuracy.
  best = max(runs, key=lambda r: r["val_average_accuracy"])
  # The served graph (fused kernels, another process) and the evaluation that recorded the
  # accuracy (the rotated model for R-EWC) compute the logits z to rounding: through a LeNet,
  # K <= 1700 float32 terms (tests/continual/test_rotation.py), each within f32(K) / 2 max|z|
  # of the exact logits. A prediction can differ only where the two largest logits are that
  # close (2 f32(K) max|z| apart in a third computation, this one); each moves the accuracy by
  # one test image. Another model or preprocessing moves it by far more.
  logits = _exported_logits(workdir)
  top2 = np.sort(logits, axis=1)[:, -2:]
  near = np.sum(top2[:, 1] - top2[:, 0] <= 2 * numerics.f32(1700) * np.abs(logits).max())
  assert accuracy == pytest.approx(best["average_accuracy"], abs=(near + 1e-6) / len(logits))


def test_the_tflite_classifier_gives_the_savedmodels_probabilities(workdir, tmp_path):
  rt = _runtime(workdir, export_dir=str(tmp_path / "e"), export_format=("saved_model", "tflite"))
  rewc_experiment.export_only(rt, TINY_CONFIG)
  path = tmp_path / "e" / "1"
  card = json.loads((path / "model_card.json").read_text())
  assert card["tflite"]["file"] == "model.tflite"
  x = sources.load_examples("mnist5k", "test").images[:100]
  lite = tf.lite.Interpreter(model_path=str(path / "model.tflite")).get_signature_runner(
      "classify")(images=x)
  saved = tf.saved_model.load(str(path)).signatures["classify"](images=tf.constant(x))
  # The LeNet's logits z through K <= 1700 float32 terms (as above) in two kernel libraries:
  # |dz| <= f32(1700) max|z|; softmax turns that into at most 2 |dz| in p, plus its own ~12
  # roundings. Another model or preprocessing moves p by O(1).
  z = np.abs(_exported_logits(workdir)).max()
  np.testing.assert_allclose(lite["probabilities"], saved["probabilities"].numpy(),
                             atol=2 * numerics.f32(1700) * z + numerics.f32(12))
  # The export's own check (8 random images) names each output by kind: probabilities by their
  # largest difference, classes by the share that differ.
  check = card["tflite"]["signatures"]["classify"]["check"]
  assert set(check["max_abs_difference"]) == {"probabilities"}
  assert set(check["share_different"]) == {"classes"} and check["examples"] == 8


def test_the_served_classifier_rejects_bad_requests(workdir):
  entries = serving_fuzz.assert_rejects_bad_requests(str(workdir / "export" / "1"))
  assert any(e["request"].startswith("images: size") for e in entries)


def test_rerun_reuses_finished_runs_and_export_only(workdir, monkeypatch):
  before = (workdir / "results.json").read_text()
  os.rename(workdir / "export", workdir / "export_old")
  rewc_experiment.export_only(_runtime(workdir, export_dir=str(workdir / "export")),
                              TINY_CONFIG)
  assert (workdir / "export" / "1" / "saved_model.pb").exists()
  card = json.loads((workdir / "export" / "1" / "model_card.json").read_text())
  assert card["program"] == "lamp-tf-rewc" and "classify" in card["signatures"]
  monkeypatch.setattr(sequential, "run", lambda *a, **k: pytest.fail("trained again"))
  rewc_experiment.train_and_evaluate(_runtime(workdir, export_dir=str(workdir / "export")),
                                     TINY_CONFIG)
  assert (workdir / "export" / "2" / "saved_model.pb").exists()  # a re-export adds a version
  assert json.loads((workdir / "results.json").read_text())["runs"] == json.loads(before)["runs"]


def test_a_diverged_run_is_recorded_and_its_lambda_never_selected(tmp_path, monkeypatch):
  # Plain SGD with a huge penalty weight: λ·F far beyond the step's stability limit 2/lr.
  work = tmp_path / "w"
  rt = _runtime(work, checkpoint_every=500)
  cfg = rewc_experiment.ExperimentConfig(
      train=sequential.RunConfig(epochs=1, batch_size=50, fisher_samples=50),
      max_train=1000, methods=("ft", "ewc"), lambdas=(0.0, 1e9), optimizer=("sgd",))
  returned = rewc_experiment.train_and_evaluate(rt, cfg)
  runs = json.loads((work / "results.json").read_text())["runs"]
  assert [r["method"] for r in returned] == [r["method"] for r in runs] == ["ft", "ewc", "ewc"]
  bad = [r for r in runs if "diverged" in r]
  assert [(r["method"], r["lambda"]) for r in bad] == [("ewc", 1e9)]
  assert "non-finite loss" in bad[0]["diverged"] and bad[0]["accuracy_matrix"] is None
  report = (work / "REPORT.md").read_text()
  assert "| EWC (SGD) | " in report and "diverged (1/1 seeds)" in report
  row = next(line for line in report.split("Selected λ per method", 1)[1].splitlines()
             if line.startswith("| EWC (SGD) | "))
  assert row.split(" | ")[1] == "0"  # the only λ that trained
  assert "Diverged runs" in report and "| EWC (SGD) | 1e+09 | 1/1 | task2, step " in report

  def trains(*args, **kwargs):
    raise AssertionError("a finished or diverged run was trained again")

  monkeypatch.setattr(sequential, "run", trains)  # a rerun keeps every record
  assert rewc_experiment.train_and_evaluate(rt, cfg) == returned


@pytest.mark.slow
def test_a_tfds_name_runs_through_the_same_path(tmp_path):
  cfg = rewc_experiment.ExperimentConfig(
      train=sequential.RunConfig(model="vgg", epochs=1, batch_size=20, fisher_samples=10,
                                 fisher_batch_size=5),
      dataset="svhn_cropped", methods=("ft", "rewc"), rotate=("conv",), lambdas=(10.0,))
  with tfds.testing.mock_data(num_examples=120):
    rewc_experiment.train_and_evaluate(_runtime(tmp_path / "w", data_dir=str(tmp_path / "tfds"),
                                                export_dir=str(tmp_path / "e")), cfg)
  runs = json.loads((tmp_path / "w" / "results.json").read_text())["runs"]
  assert [r["method"] for r in runs] == ["ft", "rewc"]


INTERRUPT = """
import os, signal, sys
from lamp_tf.apps import rewc
from lamp_tf.continual import sequential
from lamp_tf.runtime import files, flags as runtime_flags, loop, results
where, sig = sys.argv.pop(1), getattr(signal, sys.argv.pop(1))
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (xdist ignores it)
def on_call(owner, name, n, before=False, when=lambda *a: True):
  # interrupt at the n-th call of owner.name (counting the calls `when` accepts)
  fn, calls = getattr(owner, name), [0]
  def wrapped(*a, **k):
    counted = bool(when(*a))
    calls[0] += counted
    hit = counted and calls[0] == n
    if hit and before:
      os.kill(os.getpid(), sig)
    out = fn(*a, **k)
    if hit and not before:
      os.kill(os.getpid(), sig)
    return out
  setattr(owner, name, wrapped)
if where == "training":    # after the 3rd checkpoint of the first run
  on_call(loop.TrainState, "save", 3)
elif where == "evaluation":  # in the middle of the second run's first evaluation
  on_call(sequential.TaskAccuracy, "__call__", 3, before=True)
elif where == "export":    # the SavedModel and its card written, not yet in place
  on_call(files, "write_json", 1, when=lambda path, *a: path.endswith("model_card.json"))
elif where == "report":    # results.json written, REPORT.md not yet
  on_call(results, "write_report", 1, before=True)
runtime_flags.run_program(rewc.main, rewc.__name__)
"""


def _readable(work):
  """Every file a finished step left is whole: records and results parse, each export version
  is complete."""
  for path in [*work.glob("runs/*/record.json"), *work.glob("results.json")]:
    json.loads(path.read_text())
  for version in (work / "export").glob("[0-9]*"):
    assert (version / "saved_model.pb").exists() and (version / "model_card.json").exists()
  return sorted(p.parent.name for p in work.glob("runs/*/record.json"))


@pytest.mark.slow
def test_interrupted_anywhere_a_rerun_completes_with_the_same_results(tmp_path):
  # Bit-identical numbers are the point, so the reference is the same program run in one go in
  # a process of its own on this machine, both with --deterministic (never numbers from another
  # process kind, e.g. the in-process fixture above, or from another machine).
  flags = TINY + ["--deterministic"]
  ref = tmp_path / "ref"
  out = _run(flags + [f"--workdir={ref}", f"--export_dir={ref / 'export'}"])
  assert out.returncode == 0, out.stderr[-3000:]
  work, finished = tmp_path / "w", []
  args = flags + [f"--workdir={work}", f"--export_dir={work / 'export'}"]
  for where, sig in [("training", "SIGINT"), ("evaluation", "SIGKILL"), ("export", "SIGINT"),
                     ("report", "SIGKILL")]:
    out = _run([where, sig] + args, driver=INTERRUPT)
    if sig == "SIGINT":
      assert out.returncode == 130 and "Traceback" not in out.stderr, out.stderr[-3000:]
      assert "interrupted: rerun the same command to resume" in out.stderr
    else:
      assert out.returncode == -9, out.stderr[-3000:]
    now = _readable(work)
    assert set(finished) <= set(now), (where, finished, now)  # nothing finished is lost
    finished = now
  assert finished and not (work / "export" / "1").exists()  # the export was interrupted
  out = _run(args)
  assert out.returncode == 0, out.stderr[-3000:]
  _readable(work)
  runs = json.loads((work / "results.json").read_text())["runs"]
  reference = json.loads((ref / "results.json").read_text())["runs"]
  key = lambda r: (r["method"], r["rotate"], r["lambda"], r["seed"])
  assert [key(r) for r in runs] == [key(r) for r in reference]
  for r, expected in zip(runs, reference):  # resumed mid-task, the same numbers as in one go
    assert r["task_accuracy"] == expected["task_accuracy"]
    assert r["val_task_accuracy"] == expected["val_task_accuracy"]
  assert (work / "export" / "1" / "saved_model.pb").exists() and (work / "REPORT.md").exists()
