"""Accuracy-matrix metrics on hand-computed examples."""

import numpy as np
import pytest

from lamp_tf.metrics import continual

# The metrics are float64 arithmetic on a few numbers (~eps64 ~ 2e-16 relative): pytest.approx's
# default 1e-6 is loose, and a wrong formula (another reference accuracy, a missing task) is off
# by a whole accuracy difference (>= 0.05 here).
NAN = np.nan
R = np.array([[0.9, NAN, NAN],
              [0.6, 0.8, NAN],
              [0.5, 0.7, 0.95]])


def test_average_accuracy():
  assert continual.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)


def test_forgetting_uses_the_best_earlier_accuracy():
  assert continual.forgetting(R) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)


def test_backward_transfer_against_accuracy_just_after_learning():
  assert continual.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


def test_single_task_and_summary():
  assert continual.forgetting(np.array([[0.9]])) == 0.0
  s = continual.summary(R)
  assert s["task_accuracy"] == [0.5, 0.7, 0.95]
  assert s["accuracy_matrix"][0] == [0.9, None, None]


def test_summary_with_a_prefix_names_the_task_aware_fields():
  s = continual.summary(R, prefix="task_aware_")
  assert sorted(s) == ["task_aware_accuracy", "task_aware_accuracy_matrix",
                       "task_aware_average_accuracy", "task_aware_backward_transfer",
                       "task_aware_forgetting"]
  assert s["task_aware_accuracy"] == [0.5, 0.7, 0.95]
  assert s["task_aware_forgetting"] == continual.forgetting(R)
