"""Each program's error boundary: one line and an exit code for input the user controls, the
traceback only on request."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import app

from lamp_tf.data.errors import DataNotFoundError, UnknownDataError
from lamp_tf.runtime import flags as runtime_flags
from tests.conftest import REPO_ROOT


def _raising(error):
  def main(argv):
    raise error
  return main


@pytest.mark.parametrize("error,code,words", [
    (UnknownDataError("unknown data set 'x': use one of ..."), 2,
     ["error:", "unknown data set 'x'"]),
    (ValueError("--tasks: class 12 is not in [0, 10)"), 2, ["error:", "--tasks"]),
    (DataNotFoundError("fashion_mnist is not installed: apt install ..."), 1, ["apt install"]),
    (PermissionError(13, "Permission denied", "/data/x"), 1, ["Permission denied", "/data/x"]),
    (tf.errors.FailedPreconditionError(None, None, "/w is not a directory"), 1,
     ["/w is not a directory"]),
    (KeyError("bug"), 1, ["internal error (KeyError; please report it)", "bug"]),
    (app.UsageError("--x=3: must be even"), 2, ["usage error:", "--x=3"]),
])
def test_errors_end_in_one_line_and_an_exit_code(error, code, words, capsys, monkeypatch):
  monkeypatch.delenv(runtime_flags.TRACEBACK_ENV, raising=False)
  with pytest.raises(SystemExit) as exit_info:
    runtime_flags.error_boundary(_raising(error))([])
  assert exit_info.value.code == code
  err = capsys.readouterr().err
  assert "Traceback" not in err
  first, hint = err.strip().split("\n")
  assert all(w in first for w in words), first
  assert ("--helpshort" if code == 2 and "usage" in first else runtime_flags.TRACEBACK_ENV) \
      in hint


def test_traceback_on_request(monkeypatch):
  monkeypatch.setenv(runtime_flags.TRACEBACK_ENV, "1")
  with pytest.raises(ValueError, match="bad"):
    runtime_flags.error_boundary(_raising(ValueError("bad")))([])
  monkeypatch.delenv(runtime_flags.TRACEBACK_ENV)
  assert runtime_flags.error_boundary(lambda argv: 7)([]) == 7


def test_a_workdir_is_locked_while_a_program_runs_and_left_clean_when_refused(tmp_path):
  from lamp_tf.runtime import files
  work = tmp_path / "w"
  def main(argv):
    files.lock_dir(str(work))
    files.lock_dir(str(work))  # again in the same process: a no-op
    holder = subprocess.run(
        [sys.executable, "-c", "import sys; from lamp_tf.runtime import files; "
         "files.lock_dir(sys.argv[1])", str(work)], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=120)
    assert holder.returncode != 0
    assert f"--workdir={work} is in use by process {os.getpid()}" in holder.stderr, \
        holder.stderr[-2000:]
    raise app.UsageError("refused before writing anything")
  with pytest.raises(SystemExit):
    runtime_flags.error_boundary(main)([])
  assert not work.exists()  # created for the lock only, so removed with it
  work.mkdir()
  (work / "kept").write_text("")
  files.lock_dir(str(work))
  files.unlock_dirs()
  assert sorted(os.listdir(work)) == [".lock", "kept"]


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
  from lamp_tf.runtime import files
  work = tmp_path / "w"
  killed = subprocess.run(
      [sys.executable, "-c", "import os, signal, sys; from lamp_tf.runtime import files; "
       "files.lock_dir(sys.argv[1]); os.kill(os.getpid(), signal.SIGKILL)", str(work)],
      cwd=REPO_ROOT, timeout=120)
  assert killed.returncode == -9 and "process" in (work / ".lock").read_text()
  files.lock_dir(str(work))
  assert f"process {os.getpid()}" in (work / ".lock").read_text()
  files.unlock_dirs()


def test_unusable_directories_are_refused_without_creating_anything(tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("")
  with pytest.raises(app.UsageError, match=r"--workdir=.*afile/w: .*afile is a file"):
    runtime_flags.check_writable_dir("workdir", str(afile / "w"))
  runtime_flags.check_writable_dir("workdir", str(tmp_path / "new" / "deeper"))
  assert os.listdir(tmp_path) == ["afile"]


@pytest.mark.parametrize("module,args,words", [
    ("rewc", ["--workdir={file}/w"], ["--workdir=", "is a file, not a directory"]),
])
def test_programs_end_bad_input_without_a_traceback(module, args, words, tmp_path):
  """Through `python -m` (the program's own `run()`, absl's app.run); every program's cases go
  through its entry path in tests/apps/test_bad_input.py."""
  (tmp_path / "afile").write_text("")
  args = [a.format(file=tmp_path / "afile") for a in args]
  out = subprocess.run([sys.executable, "-m", f"lamp_tf.apps.{module}",
                        f"--flagfile=flags/{module}_mnist_quick.cfg", *args], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode != 0
  assert "Traceback" not in out.stdout + out.stderr
  assert all(w in out.stderr for w in words), out.stderr[-2000:]
