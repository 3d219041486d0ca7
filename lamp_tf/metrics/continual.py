"""Continual-learning metrics from an accuracy matrix.

R[t, j] = accuracy on task j's test data after training task t (NaN where j > t).
- average accuracy after the last task: mean_j R[T-1, j];
- forgetting (Chaudhry et al. 2018): mean over j < T-1 of max_{t < T-1} R[t, j] - R[T-1, j];
- backward transfer (Lopez-Paz & Ranzato 2017): mean over j < T-1 of R[T-1, j] - R[j, j].
"""

import numpy as np


def average_accuracy(matrix):
  return float(np.nanmean(np.asarray(matrix, np.float64)[-1]))


def forgetting(matrix):
  r = np.asarray(matrix, np.float64)
  t = r.shape[0]
  if t < 2:
    return 0.0
  return float(np.mean([np.nanmax(r[:t - 1, j]) - r[t - 1, j] for j in range(t - 1)]))


def backward_transfer(matrix):
  r = np.asarray(matrix, np.float64)
  t = r.shape[0]
  if t < 2:
    return 0.0
  return float(np.mean([r[t - 1, j] - r[j, j] for j in range(t - 1)]))


def summary(matrix, prefix=""):
  """The record fields of an accuracy matrix: task_accuracy (after the last task), average
  accuracy, forgetting, backward transfer and the matrix (`prefix` before each name, except
  that 'task_accuracy' becomes '<prefix>accuracy' under a prefix: 'task_aware_accuracy')."""
  r = np.asarray(matrix, np.float64)
  return {f"{prefix}accuracy" if prefix else "task_accuracy": [float(a) for a in r[-1]],
          f"{prefix}average_accuracy": average_accuracy(r),
          f"{prefix}forgetting": forgetting(r), f"{prefix}backward_transfer": backward_transfer(r),
          f"{prefix}accuracy_matrix": [[None if np.isnan(a) else float(a) for a in row]
                                       for row in r]}
