"""A program's entry: absl's flag parsing and the error boundary around its `main`.

Kept apart from `flags` (the runtime flags, strategies, the training state) so that a program
that only serves an export (`lamp-tf-sample`) starts with TensorFlow and absl alone.
`runtime.flags` re-exports these names.
"""

import os
import sys

import tensorflow as tf
from absl import app, flags

from lamp_tf.runtime import files

FLAGS = flags.FLAGS

TRACEBACK_ENV = "LAMP_TF_TRACEBACK"


def _one_line(error):
  text = " ".join(str(getattr(error, "message", None) or error).split())
  return text if len(text) <= 400 else text[:397] + "..."


def _exit(kind, error, code, hint):
  sys.stderr.write(f"{os.path.basename(sys.argv[0])}: {kind}: {_one_line(error)}\n({hint})\n")
  sys.exit(code)


def error_boundary(main):
  """`main` with the program's error boundary: an error from input the user controls (a bad
  value, a missing or damaged file, an unusable or busy directory) ends the program with one
  line on stderr and exit code 2 (usage: UsageError, ValueError, the library's
  UnknownDataError) or 1 (files, the run itself), Ctrl-C with exit code 130 and how to resume;
  anything else ends it with one line asking for a bug report. The full traceback is shown
  with --verbosity=1 or LAMP_TF_TRACEBACK=1. The workdir's lock is released however `main`
  ends."""
  def wrapped(argv):
    try:
      return main(argv)
    except KeyboardInterrupt:
      _exit("interrupted", "rerun the same command to resume from the last checkpoint", 130,
            "finished runs, results and exports are kept")
    except SystemExit:
      raise
    except Exception as e:  # noqa: BLE001 (this is the boundary)
      if os.environ.get(TRACEBACK_ENV) == "1" or FLAGS["verbosity"].value >= 1:
        raise
      hint = f"the full traceback: {TRACEBACK_ENV}=1 or --verbosity=1"
      if isinstance(e, app.UsageError):
        _exit("usage error", e, 2, "the flags: --helpshort")
      if isinstance(e, (OSError, tf.errors.OpError, FloatingPointError)):
        _exit("error", e, 1, hint)
      if isinstance(e, ValueError):
        _exit("error", e, 2, hint)
      _exit(f"internal error ({type(e).__name__}; please report it)", e, 1, hint)
    finally:
      files.unlock_dirs()

  return wrapped


def parse_flags(argv):
  """absl's flag parsing with a flag error as one line and exit code 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _exit("usage error", e, 2, "the flags: --helpshort")


def run_program(main, module_name):
  """`app.run(main)` for a program module, inside its `error_boundary`; its key flags (its own
  and those it adopts) are also registered for the running script, so `--helpshort` lists them
  when the program starts from a console-script wrapper (absl looks them up by sys.argv[0])."""
  for flag in FLAGS.get_key_flags_for_module(module_name):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(error_boundary(main), flags_parser=parse_flags)
