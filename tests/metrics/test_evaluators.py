"""One evaluator interface: every evaluator is registered by name, built by `make`, called on a
model and returns named JSON-ready values; programs make them by name only."""

import ast
import glob
import json
import os

import numpy as np
import pytest
import keras

from lamp_tf.continual import sequential
from lamp_tf.data import rgbd
from lamp_tf.metrics import evaluators
from lamp_tf.mixmatch import evaluate as mixmatch_evaluate, style_experiment  # noqa: F401
from tests.conftest import REPO_ROOT

EVERY = {"gan", "seen_classes", "task_accuracy", "segmentation", "depth", "recolouring",
         "encoder_agreement", "style_translation"}


def test_every_evaluator_is_registered_and_an_evaluator():
  assert set(evaluators.names()) == EVERY
  for name in evaluators.names():
    assert issubclass(evaluators.get(name), evaluators.Evaluator)


def test_registry_errors_name_the_problem():
  with pytest.raises(ValueError, match="unknown evaluator 'fid'.*'gan'"):
    evaluators.make("fid")
  with pytest.raises(ValueError, match="'gan' is already registered"):
    evaluators.register("gan")(type("Other", (evaluators.Evaluator,), {"__call__": print}))
  with pytest.raises(TypeError, match="not an Evaluator"):
    evaluators.register("plain")(object)
  assert "plain" not in evaluators.names()


def test_programs_build_evaluators_by_name_only():
  """No module but the one defining an evaluator class calls it: programs use `make`."""
  classes = {evaluators.get(n).__name__: evaluators.get(n).__module__ for n in evaluators.names()}
  direct = []
  for path in glob.glob(os.path.join(REPO_ROOT, "lamp_tf", "**", "*.py"), recursive=True):
    module = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
    with open(path) as f:
      for node in ast.walk(ast.parse(f.read())):
        if isinstance(node, ast.Call):
          name = getattr(node.func, "attr", getattr(node.func, "id", None))
          if name in classes and classes[name] != module:
            direct.append(f"{module}:{node.lineno} calls {name}")
  assert not direct, direct


def test_task_accuracy_is_single_head_over_the_seen_classes():
  """The reference protocol written out: after task t, argmax over the classes of tasks 0..t;
  accuracy per task on its own test images; NaN for tasks not trained yet."""
  rng = np.random.default_rng(0)
  logits = rng.normal(size=[60, 6]).astype(np.float32)
  labels = rng.integers(0, 6, 60)
  data = sequential.TaskData(logits, labels, logits, labels, ((0, 1), (2, 3), (4, 5)), 6)
  model = keras.Sequential([keras.layers.Identity()])  # logits are the images
  evaluator = evaluators.make("task_accuracy", data)
  for t in range(3):
    got = evaluator(model, task=t)
    seen = [c for task in data.tasks[:t + 1] for c in task]
    pred = np.array(seen)[np.argmax(logits[:, seen], axis=1)]
    expected = [np.mean(pred[np.isin(labels, task)] == labels[np.isin(labels, task)])
                if j <= t else np.nan for j, task in enumerate(data.tasks)]
    # The same argmax of the same float32 logits: the same counts, ratios in float64.
    np.testing.assert_allclose(got["task_accuracy"], expected, rtol=1e-6)
    assert got["average_accuracy"] == pytest.approx(np.mean(expected[:t + 1]))
    own = [np.array(task)[np.argmax(logits[np.isin(labels, task)][:, list(task)], axis=1)]
           for task in data.tasks]  # task-aware: each task's images by its own head
    aware = [np.mean(own[j] == labels[np.isin(labels, task)]) if j <= t else np.nan
             for j, task in enumerate(data.tasks)]
    np.testing.assert_allclose(got["task_aware_accuracy"], aware, rtol=1e-6)  # (as above)
    assert got["task_aware_average_accuracy"] == pytest.approx(np.mean(aware[:t + 1]))
    json.dumps(got)
  with pytest.raises(TypeError, match="task"):
    evaluator(model)  # which task must be named


def test_task_aware_accuracy_uses_each_tasks_own_head_written_out():
  """Task-aware (multi-head): task j's images by the argmax over task j's classes only. Four
  images of two tasks (0, 1) and (2, 3), their logits chosen so the protocols disagree; the
  expected accuracies counted by hand."""
  logits = np.array([[1, 0, 5, 0],   # label 0: all heads -> 2 (wrong); task 1's head -> 0 (right)
                     [2, 1, 0, 0],   # label 1: -> 0 either way (wrong)
                     [9, 0, 1, 3],   # label 2: all heads -> 0 (wrong); task 2's head -> 3 (wrong)
                     [0, 0, 1, 2]],  # label 3: -> 3 either way (right)
                    np.float32)
  labels = np.array([0, 1, 2, 3])
  data = sequential.TaskData(logits, labels, logits, labels, ((0, 1), (2, 3)), 4)
  model = keras.Sequential([keras.layers.Identity()])
  evaluator = evaluators.make("task_accuracy", data)
  after_2 = evaluator(model, task=1)
  assert after_2["task_accuracy"] == [0.0, 0.5]  # class-incremental: a and b both wrong
  assert after_2["task_aware_accuracy"] == [0.5, 0.5]  # a right within its task
  assert after_2["task_aware_average_accuracy"] == 0.5 and after_2["average_accuracy"] == 0.25
  after_1 = evaluator(model, task=0)  # task 1 only: its head is the seen classes' head
  assert after_1["task_accuracy"][0] == after_1["task_aware_accuracy"][0] == 0.5
  assert np.isnan(after_1["task_aware_accuracy"][1])


def test_segmentation_and_depth_score_a_translation_function():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, rgbd.NUM_CLASSES, [5, 4, 4]).astype(np.uint8)
  depth_m = rng.uniform(1, 5, [5, 4, 4]).astype(np.float32)
  inputs = {"seg": labels, "depth": rgbd.encode_depth(depth_m).numpy()}
  perfect = lambda b: np.eye(rgbd.NUM_CLASSES, dtype=np.float32)[b["seg"]]
  seg = evaluators.make("segmentation", inputs, labels, batch=2)(perfect)
  valid = labels != rgbd.VOID
  assert seg["global_accuracy"] == 1.0 and seg["miou"] == 1.0
  assert np.trace(np.array(seg["confusion"])) == valid.sum()
  depth = evaluators.make("depth", inputs, depth_m, batch=3)(lambda b: b["depth"])
  # Encoding to [-1, 1] and back is four float32 roundings of depths <= 5 m: <= 4 eps32 x 5
  # ~ 2.4e-6 m; the scores are float64.
  assert depth["rmse"] == pytest.approx(0, abs=1e-5) and depth["delta1"] == 1.0
  half = evaluators.make("depth", inputs, depth_m, batch=3)(
      lambda b: rgbd.encode_depth(rgbd.decode_depth(b["depth"]) / 2).numpy())
  assert half["rmse"] == pytest.approx(np.sqrt(np.mean((depth_m / 2) ** 2)), rel=1e-5)  # ~8 eps32
  assert half["delta1"] == 0.0
  json.dumps(seg), json.dumps(depth)
