"""Class-incremental task splits and deterministic per-class subsets.

Everything here works on integer label arrays and returns sorted index arrays, so the same
selection applies to images, labels and any side arrays, and is reproducible from a seed.
"""

import numpy as np


def parse_tasks(spec, num_classes=None, flag="tasks"):
  """Parses '0,1,2,3,4/5,6,7,8,9' into [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]].

  Raises ValueError naming the problem (and `--flag`) when a class is not an integer, is
  repeated, or is outside [0, num_classes).
  """
  tasks = []
  for part in str(spec).split("/"):
    try:
      classes = [int(c) for c in part.split(",") if c.strip()]
    except ValueError:
      raise ValueError(f"--{flag}={spec!r}: classes must be integers, tasks separated by '/', "
                       "classes by ',' (e.g. '0,1,2,3,4/5,6,7,8,9').") from None
    if not classes:
      raise ValueError(f"--{flag}={spec!r}: task {len(tasks) + 1} has no classes.")
    tasks.append(classes)
  flat = [c for t in tasks for c in t]
  if len(set(flat)) != len(flat):
    raise ValueError(f"--{flag}={spec!r}: a class appears in more than one task.")
  if num_classes is not None:
    bad = [c for c in flat if not 0 <= c < num_classes]
    if bad:
      raise ValueError(f"--{flag}={spec!r}: classes {bad} are outside [0, {num_classes}) "
                       "for this data set.")
  return tasks


def class_indices(labels, classes):
  """Sorted indices of the examples whose label is in `classes`."""
  return np.flatnonzero(np.isin(labels, np.asarray(classes)))


def per_class_subset(labels, n_per_class, seed, classes=None):
  """Sorted indices of `n_per_class` examples drawn without replacement from each class.

  Deterministic in `seed`; a class with fewer than `n_per_class` examples raises ValueError.
  """
  labels = np.asarray(labels)
  classes = np.unique(labels) if classes is None else classes
  rng = np.random.default_rng(seed)
  chosen = []
  for c in classes:
    idx = np.flatnonzero(labels == c)
    if len(idx) < n_per_class:
      raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {n_per_class} "
                       "per class asked for.")
    chosen.append(rng.choice(idx, n_per_class, replace=False))
  return np.sort(np.concatenate(chosen)) if chosen else np.zeros([0], np.int64)


def stratified_split(labels, test_per_class, seed):
  """(train, test) sorted index arrays with `test_per_class` test examples from every class."""
  test = per_class_subset(labels, test_per_class, seed)
  train = np.setdiff1d(np.arange(len(labels)), test)
  return train, test


def validation_split(labels, fraction, seed=0, class_names=None):
  """(train, validation) sorted index arrays: round(fraction * n_c) validation examples drawn
  from every class c (stratified, deterministic in `seed`).

  Raises ValueError (naming --validation_fraction) when a class would give all or none of its
  examples to validation.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  chosen = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    k = int(round(fraction * len(idx)))
    if not 0 < k < len(idx):
      name = f" ({class_names[c]!r})" if class_names is not None else ""
      raise ValueError(f"--validation_fraction={fraction:g}: class {c}{name} has {len(idx)} "
                       f"training examples, which would give {k} to validation; choose a "
                       "fraction that leaves at least one example on each side.")
    chosen.append(rng.choice(idx, k, replace=False))
  val = np.sort(np.concatenate(chosen))
  return np.setdiff1d(np.arange(len(labels)), val), val
