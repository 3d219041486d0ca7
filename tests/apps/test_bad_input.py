"""Bad input to lamp-tf-mergan and lamp-tf-mixmatch: a one-line error that names the flag and
the allowed values, raised before anything is written to the workdir.

Each program's flags live in absl's global registry, so each program is checked in its own
process (isolation of the registry is the point); inside it, every bad command line is parsed
and run in-process."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

HARNESS = """
import importlib, json, os, sys
from absl import app, flags
module = importlib.import_module(sys.argv[1])
cases = json.loads(sys.argv[2])
out = []
for argv in cases:
  flags.FLAGS.unparse_flags()
  try:
    rest = flags.FLAGS(['prog'] + argv)
    module.main(rest)
    out.append({'argv': argv, 'error': None})
  except (flags.Error, app.UsageError, ValueError) as e:
    workdir = flags.FLAGS['workdir'].value
    out.append({'argv': argv, 'error': str(e), 'kind': type(e).__name__,
                'workdir_exists': os.path.exists(workdir)})
print(json.dumps(out))
"""


def _run(module, cases, tmp_path):
  cases = [c + [f"--workdir={tmp_path / 'w'}", f"--export_dir={tmp_path / 'e'}"] for c in cases]
  out = subprocess.run([sys.executable, "-c", HARNESS, module, json.dumps(cases)],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


MERGAN = [  # (argv, words the one-line error must contain)
    (["--tasks=0/12"], ["--tasks", "[12]", "[0, 10)"]),
    (["--tasks=0//1"], ["--tasks", "no classes"]),
    (["--tasks=0/x"], ["--tasks", "integers"]),
    (["--iterations=0"], ["--iterations", "positive integer"]),
    (["--first_task_iterations=-1"], ["--first_task_iterations", "non-negative"]),
    (["--ra_weight=-1"], ["--ra_weight", "non-negative"]),
    (["--ewc_weights=1e9,-5"], ["--ewc_weights", ">= 0"]),
    (["--methods=sft,nope"], ["--methods", "jt, sft, ewc, dgr, jtr, ra"]),
    (["--sample_bn=sometimes"], ["--sample_bn", "<batch|moving>"]),
    (["--replay_batch=all"], ["--replay_batch", "<split|per_class>"]),
    (["--jtr=both"], ["--jtr", "<reference|union>"]),
    (["--seeds=0,0"], ["--seeds", "once"]),
    (["--precision=half"], ["--precision", "mixed_bfloat16"]),
    (["--tasks=0/1/2/3/4/5", "--batch_size=4", "--methods=ra"], ["--batch_size=4",
                                                                  "per_class"]),
]

MIXMATCH = [
    (["--resolution=30", "--widths=16,32,32"], ["--resolution", "2^(number of --widths)"]),
    (["--side_info=indices,bogus"], ["--side_info", "indices, skip, none"]),
    (["--baselines=pix2pix,gan"], ["--baselines", "pix2pix, pix2pix_l1, cyclegan"]),
    (["--test_bn=sometimes"], ["--test_bn", "<batch|moving>"]),
    (["--rgb_side_info=all"], ["--rgb_side_info", "<none|same>"]),
    (["--num_scenes=0"], ["--num_scenes", ">= 4"]),
    (["--seg_weight=-1"], ["--seg_weight", "non-negative"]),
    (["--latent_levels=0"], ["--latent_levels", "positive integer"]),
    (["--widths=16,x"], ["--widths", "integers"]),
    (["--seeds=1,1"], ["--seeds", "once"]),
]


@pytest.mark.parametrize("module,cases", [("lamp_tf.apps.mergan", MERGAN),
                                          ("lamp_tf.apps.mixmatch", MIXMATCH)])
def test_bad_input_gets_a_one_line_error_naming_the_flag(module, cases, tmp_path):
  results = _run(module, [argv for argv, _ in cases], tmp_path)
  for (argv, words), result in zip(cases, results):
    error = result["error"]
    assert error is not None, f"{argv} was accepted"
    assert "\n" not in error.strip(), (argv, error)
    for word in words:
      assert word in error, (argv, word, error)
    assert not result["workdir_exists"], (argv, "wrote to the workdir")
