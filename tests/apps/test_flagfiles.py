"""Every flag file in flags/ parses with its program (names and values), and every registered
experiment points at existing flag files."""

import glob
import json
import os
import subprocess
import sys

import pytest

from lamp_tf.apps import registry
from tests.conftest import REPO_ROOT

# Flag-file prefix -> program module, from the registry.
PROGRAMS = {p.name: p.module for p in registry.PROGRAMS if p.flag_files}
PARSE = """
import sys, importlib
from absl import flags
importlib.import_module(sys.argv[1])
for path in sys.argv[2:]:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['prog', '--flagfile=' + path])
print('parsed', len(sys.argv) - 2)
"""


def _files(prefix):
  return sorted(glob.glob(os.path.join(REPO_ROOT, "flags", f"{prefix}_*.cfg")))


def test_every_flag_file_belongs_to_a_program():
  names = [os.path.basename(p) for p in glob.glob(os.path.join(REPO_ROOT, "flags", "*.cfg"))]
  assert names and all(any(n.startswith(p + "_") for p in PROGRAMS) for n in names), names


@pytest.mark.parametrize("prefix", sorted(PROGRAMS))
def test_flag_files_parse(prefix):
  paths = _files(prefix)
  assert paths
  out = subprocess.run([sys.executable, "-c", PARSE, PROGRAMS[prefix], *paths], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().endswith(f"parsed {len(paths)}")


def test_every_method_program_has_one_experiment_with_quick_and_paper_presets():
  assert sorted(e.program for e in registry.EXPERIMENTS) == sorted(PROGRAMS.values())
  for e in registry.EXPERIMENTS:
    assert set(e.presets) == {"quick", "paper"}
    for files in e.presets.values():
      for f in files:
        assert os.path.exists(os.path.join(REPO_ROOT, "flags", f)), f


HELP = """
import json, sys
from absl import flags
sys.argv[0] = '/venv/bin/lamp-tf-x'  # as a console script starts it
module = __import__(sys.argv[1], fromlist=['run'])
own = flags.FLAGS.flags_by_module_dict()
print(json.dumps(sorted(f.name for m in (sys.argv[1], 'lamp_tf.runtime.flags') for f in own.get(m, ()))))
module.run()
"""


@pytest.mark.parametrize("module", sorted(p.module for p in registry.PROGRAMS))
def test_helpshort_from_the_console_script_lists_the_programs_flags(module):
  """The console scripts start from a wrapper (sys.argv[0] is the script), which absl used not
  to recognise as the module that defines the flags: every flag the program defines (and the
  runtime flags, where it takes them) is listed."""
  out = subprocess.run([sys.executable, "-c", HELP, module, "--helpshort"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=300)
  first, _, listing = out.stdout.partition("\n")
  defined = json.loads(first)
  assert len(defined) >= 2, defined
  missing = [f for f in defined if f"--{f}:" not in listing and f"--[no]{f}:" not in listing]
  assert not missing, (module, missing, listing[-2000:])
