"""Running the tiny program, and an export's signature in `saved_model_cli`, as separate processes."""

import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "tiny_program.py")


def run_tiny(*args, env=None, timeout=300):
  """Runs the tiny program with `args`; returns the CompletedProcess (stdout+stderr in .stdout)."""
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  full_env.update(env or {})
  return subprocess.run([sys.executable, TINY, *args], env=full_env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=timeout)


def start_tiny(*args, env=None):
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  full_env.update(env or {})
  return subprocess.Popen([sys.executable, TINY, *args], env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def saved_model_cli_run(export_dir, signature, inputs, tmp_path):
  """Runs a signature with `saved_model_cli run` (the graph-mode loader TF Serving's C++ loader
  resembles); returns {output key: array}."""
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  args = []
  for name, value in inputs.items():
    np.save(tmp_path / f"{name}.npy", value)
    args.append(f"{name}={tmp_path / f'{name}.npy'}")
  out_dir = tmp_path / "cli_out"
  out = subprocess.run([cli, "run", "--dir", export_dir, "--tag_set", "serve",
                        "--signature_def", signature, "--inputs", ";".join(args),
                        "--outdir", str(out_dir), "--overwrite"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert out.returncode == 0, out.stderr[-3000:]
  return {p.stem: np.load(p) for p in out_dir.glob("*.npy")}
