"""Every flag file in flags/ parses with its program (names and values), and every registered
experiment points at existing flag files."""

import glob
import os
import subprocess
import sys

import pytest

from lamp_tf.apps import registry
from tests.conftest import REPO_ROOT

PROGRAMS = {"rewc": "lamp_tf.apps.rewc", "transfer_gan": "lamp_tf.apps.transfer_gan",
            "mergan": "lamp_tf.apps.mergan", "mixmatch": "lamp_tf.apps.mixmatch"}
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


def test_registered_experiments_exist_with_quick_and_paper_presets():
  assert {e.method for e in registry.EXPERIMENTS} == {"R-EWC", "Transferring GANs", "MeRGAN",
                                                      "Mix-and-match networks"}
  for e in registry.EXPERIMENTS:
    assert set(e.presets) == {"quick", "paper"}
    for files in e.presets.values():
      for f in files:
        assert os.path.exists(os.path.join(REPO_ROOT, "flags", f)), f


HELP = {"lamp_tf.apps.rewc": ["--lambdas", "--precision"],
        "lamp_tf.apps.transfer_gan": ["--configs", "--steps_per_call"],
        "lamp_tf.apps.mergan": ["--tasks", "--sample_bn", "--replay_batch", "--jtr"],
        "lamp_tf.apps.mixmatch": ["--side_info", "--test_bn", "--latent_levels"],
        "lamp_tf.apps.evaluate": ["--generator", "--workdir"],
        "lamp_tf.apps.reproduce": ["--preset", "--methods"]}


@pytest.mark.parametrize("module", sorted(HELP))
def test_helpshort_from_the_console_script_lists_the_programs_flags(module):
  """The console scripts start from a wrapper (sys.argv[0] is the script), which absl used not
  to recognise as the module that defines the flags."""
  script = (f"import sys; sys.argv[0] = '/venv/bin/lamp-tf-x'; "
            f"from {module} import run; run()")
  out = subprocess.run([sys.executable, "-c", script, "--helpshort"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=300)
  for flag in HELP[module]:
    assert flag in out.stdout, (module, flag, out.stdout[-2000:])
