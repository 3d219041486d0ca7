"""Timing side by side: configurations alternate in rounds inside one process, so the machine's
load affects them alike; each reports the median over rounds."""

import time

import numpy as np


def median_seconds(runs, rounds, n):
  """{name: median seconds per unit} of `runs` ({name: run(n)} doing n units of work, already
  warmed up), each run once per round, in the same order every round."""
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      t0 = time.perf_counter()
      run(n)
      times[name].append((time.perf_counter() - t0) / n)
  return {name: float(np.median(t)) for name, t in times.items()}
