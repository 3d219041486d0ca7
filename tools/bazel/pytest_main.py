"""Entry point of every Bazel py_test: runs every test of the file given as argument under
pytest, the ones marked slow included (as `make test`)."""

import os
import sys

import pytest

if __name__ == "__main__":
  here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  os.chdir(here)  # the workspace root inside the runfiles tree
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-m", "", *sys.argv[1:]]))
