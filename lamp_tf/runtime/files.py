"""Atomic writes (readers never see a half-written result, report, figure or export) and the
lock that keeps two programs out of one work directory."""

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile

LOCK = ".lock"
_held = {}  # real path of a locked directory -> (file descriptor, whether we created it)


class DirectoryInUseError(OSError):
  """Another live process holds the directory's lock."""


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path next to `path`; renames it onto `path` when the block succeeds."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path, text):
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


def write_json(path, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


class DamagedFileError(ValueError):
  """A file the program wrote earlier cannot be read back."""


def read_json(path):
  """The JSON in `path`; DamagedFileError naming the file when it is not valid JSON."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as e:
    raise DamagedFileError(f"{path} is damaged (not valid JSON: {e}); delete it and rerun the "
                           "same command to rebuild it.") from None


def _json_default(x):
  """NumPy scalars and arrays become plain JSON numbers and lists."""
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"{type(x).__name__} is not JSON serialisable")


@contextlib.contextmanager
def atomic_dir(path):
  """Yields a temporary directory; it replaces `path` (a directory) when the block succeeds."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    yield tmp
    old = None
    if os.path.exists(path):
      old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".old")
      os.rmdir(old)
      os.replace(path, old)
    os.replace(tmp, path)
    if old:
      shutil.rmtree(old, ignore_errors=True)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def lock_dir(path, flag="workdir"):
  """Takes `path/.lock` (an exclusive `flock`, created with the directory when missing) for
  this process; a second process asking for it gets DirectoryInUseError naming the holder.
  The kernel releases the lock when its holder exits, however it exits (SIGKILL included), so
  a lock left by a dead process is simply taken over. Idempotent within one process."""
  key = os.path.realpath(path)
  if key in _held:
    return
  created = not os.path.exists(path)
  os.makedirs(path, exist_ok=True)
  fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = os.read(fd, 500).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise DirectoryInUseError(
        f"--{flag}={path} is in use by {holder}; wait for it to finish or stop it, or choose "
        f"another --{flag}.") from None
  os.ftruncate(fd, 0)
  started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
  os.write(fd, f"process {os.getpid()} on {socket.gethostname()} "
               f"({os.path.basename(sys.argv[0])}, since {started})".encode())
  _held[key] = (fd, created)


@contextlib.contextmanager
def waiting_lock(path):
  """Holds an exclusive `flock` on the file `path` (created when missing) for the block,
  waiting while another process holds it; the kernel releases it however its holder exits."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


def unlock_dirs():
  """Releases this process's directory locks; a directory it created that holds nothing but
  its lock is removed (a run refused before it wrote anything leaves nothing behind)."""
  for key, (fd, created) in list(_held.items()):
    del _held[key]
    with contextlib.suppress(OSError):
      if created and os.listdir(key) == [LOCK]:
        os.remove(os.path.join(key, LOCK))  # still locked: nobody takes it in between
        os.rmdir(key)
    os.close(fd)
