"""Every flag file in flags/ belongs to a program, and every registered experiment points at
existing flag files (that each file parses with its program, and `--helpshort`, are checked in
the program's own process: tests/apps/test_bad_input.py)."""

import glob
import os

from lamp_tf.apps import registry
from tests.conftest import REPO_ROOT

# Flag-file prefix -> program module, from the registry.
PROGRAMS = {p.name: p.module for p in registry.PROGRAMS if p.flag_files}


def test_every_flag_file_belongs_to_a_program():
  names = [os.path.basename(p) for p in glob.glob(os.path.join(REPO_ROOT, "flags", "*.cfg"))]
  assert names and all(any(n.startswith(p + "_") for p in PROGRAMS) for n in names), names


def test_every_method_program_has_one_experiment_with_quick_and_paper_presets():
  assert sorted(e.program for e in registry.EXPERIMENTS) == sorted(PROGRAMS.values())
  for e in registry.EXPERIMENTS:
    assert set(e.presets) == {"quick", "paper"}
    for files in e.presets.values():
      for f in files:
        assert os.path.exists(os.path.join(REPO_ROOT, "flags", f)), f
