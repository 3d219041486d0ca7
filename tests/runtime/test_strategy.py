"""Mirrored (two logical CPUs) and multi-worker training match one device."""

import json
import os
import shutil
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.runtime import flags as runtime_flags
from lamp_tf.runtime import strategy as strategy_lib
from tests import numerics
from tests.runtime import helpers, tiny_program


def _runtime(strategy, workdir):
  return runtime_flags.Runtime(strategy=strategy, workdir=str(workdir), export_dir="",
                               log_every_secs=1e9, checkpoint_every=1000)


@pytest.mark.slow
def test_mirrored_on_two_cpus_matches_one_device_with_one_and_three_steps_per_call(tmp_path):
  assert strategy_lib.make_strategy("mirrored").num_replicas_in_sync == 2  # conftest's split
  # Each run in its own process: mirrored collectives of earlier tests in this worker process
  # can share instance keys with this one's and abort it. SGD, not the tiny program's Adam:
  # Adam divides by sqrt(v), which turns rounding of a gradient that nearly cancels into a
  # full-size step (its first step is lr sign(g)); SGD shows the distributed step is the same.
  weights = []
  mirrored = ["--strategy=mirrored", "--cpu_devices=2"]
  for name, args in (("one", ["--strategy=default"]), ("two", mirrored),
                     ("two_3_per_call", mirrored + ["--steps_per_call=3"])):
    proc = helpers.start_tiny(*args, "--steps=12", "--optimizer=sgd", "--lr=0.1",
                              f"--workdir={tmp_path / name}",
                              f"--export_dir={tmp_path / name / 'export'}")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    w = np.load(tmp_path / name / "weights_worker0.npz")
    weights.append([w[k] for k in w.files])
  init, _ = tiny_program.build(_runtime(tf.distribute.get_strategy(), tmp_path), 0.1, 0, "sgd")
  init = init.get_weights()
  # Two replicas sum half-batch gradients (other kernels, another order): each step's gradient
  # differs by rounding, f32(K) of its size with K ~ 300 float32 terms (fan-ins 196 and 16,
  # back through 10 and 16, the batch of 32); SGD adds those differences to the weights, so
  # to first order they stay within f32(K) of how far the weights moved. A wrong reduction
  # (a per-replica mean, a replica's gradient dropped) changes the moves by half.
  moved = max(np.abs(w - w0).max() for w, w0 in zip(weights[0], init))
  for a, b in zip(weights[0], weights[1]):
    np.testing.assert_allclose(a, b, rtol=0, atol=numerics.f32(300) * moved)
  # Three steps to a compiled call under the two replicas (issue #31) run the same steps as one
  # to a call: the same kernels and reductions in the same order, so the same arithmetic; a
  # step skipped, repeated or run on one replica only moves the weights by ~lr |g| instead.
  for a, b in zip(weights[1], weights[2]):
    np.testing.assert_allclose(a, b, rtol=0, atol=numerics.f32(300) * moved)
  # The runs did train: the weights moved away from the common initialisation.
  assert np.abs(weights[0][0] - init[0]).max() > 1e-3


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _start_workers(workdir):
  """Two workers on free ports, started again on new ports (up to 3 times) when a port was
  taken by another process between picking it and a worker binding it; a worker that fails
  stops the other (which would wait for it)."""
  for _ in range(3):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
      procs.append(helpers.start_tiny(
          "--strategy=multi_worker", "--steps=8", f"--workdir={workdir}",
          f"--export_dir={workdir / 'export'}", "--checkpoint_every=4",
          env={"TF_CONFIG": tf_config}))
    deadline = time.monotonic() + 300
    while (time.monotonic() < deadline and any(p.poll() is None for p in procs)
           and not any(p.poll() for p in procs)):
      time.sleep(0.5)
    for p in procs:
      if p.poll() is None:
        p.kill()
    outputs = [p.communicate()[0] for p in procs]
    if not any("Could not start gRPC server" in out for out in outputs):
      break
    shutil.rmtree(workdir, ignore_errors=True)
  return procs, outputs


@pytest.mark.slow
def test_multi_worker_two_processes_end_identical(tmp_path):
  procs, outputs = _start_workers(tmp_path)
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  w0 = np.load(tmp_path / "weights_worker0.npz")
  w1 = np.load(tmp_path / "weights_worker1.npz")
  assert len(w0.files) == 4
  # Both workers apply the same all-reduced gradients (each chunk is summed once and sent to
  # both) to the same weights on this machine: bit-identical by construction.
  for k in w0.files:
    np.testing.assert_array_equal(w0[k], w1[k])
  # Only the chief keeps checkpoints and exports; the other worker's scratch copy is gone.
  assert tf.train.latest_checkpoint(str(tmp_path / "train" / "checkpoints")).endswith("ckpt-8")
  assert not os.path.exists(tmp_path / "train" / "checkpoints" / ".worker1")
  assert os.path.exists(tmp_path / "export" / "1" / "saved_model.pb")


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  try:
    strategy_lib.make_strategy("multi_worker")
  except ValueError as e:
    assert "TF_CONFIG" in str(e)
  else:
    raise AssertionError("multi_worker without TF_CONFIG did not fail")


def test_unknown_strategy_names_the_choices():
  try:
    strategy_lib.make_strategy("tpu")
  except ValueError as e:
    assert "--strategy='tpu'" in str(e) and "mirrored" in str(e)
  else:
    raise AssertionError("unknown strategy accepted")
