"""Running the tiny program as a separate process."""

import os
import subprocess
import sys

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
