"""absl programs, one per method, plus reproduce.

A program imports TensorFlow here, before anything else does, with the process's standard error
(file descriptor 2) pointed at /dev/null: TensorFlow 2.21 prints its native start-up lines
(absl's "All log messages before absl::InitializeLog() is called ..." and the oneDNN notice)
whatever TF_CPP_MIN_LOG_LEVEL says. LAMP_TF_VERBOSE=1 keeps them. An import error still shows:
it is raised after standard error is restored.
"""

import os
import sys


def _import_tensorflow_quietly():
  saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(null, 2)
  try:
    import tensorflow  # noqa: F401
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)


if not os.environ.get("LAMP_TF_VERBOSE") and "tensorflow" not in sys.modules:
  _import_tensorflow_quietly()
