"""Flags every program shares, and the `Runtime` they describe.

Each program calls `define_runtime_flags(name)` at import and `runtime_from_flags()` in `main`.
"""

import dataclasses
import os

from absl import app, flags

from lamp_tf.runtime import export, files, precision, seeds, settings, strategy as strategy_lib
from lamp_tf.runtime.boundary import (  # noqa: F401 (the programs' entry, here as before)
    TRACEBACK_ENV, error_boundary, parse_flags, run_program)
from lamp_tf.runtime.loop import TrainState
from lamp_tf.runtime.summary import MetricWriter

FLAGS = flags.FLAGS


def define_runtime_flags(program):
  """Defines --workdir, --export_dir, --export_only, --strategy, --cpu_devices, ... ."""
  flags.DEFINE_string("workdir", os.path.join("runs", program),
                      "Checkpoints, TensorBoard logs, results.json and REPORT.md go here; "
                      "rerunning with the same workdir resumes.")
  flags.DEFINE_string("export_dir", os.path.join("saved_models", program),
                      "Where the trained model is exported as a SavedModel.")
  flags.DEFINE_integer("export_version", 0, "Version directory of the export under --export_dir "
                       "(TF Serving's layout); 0: the next integer.", lower_bound=0)
  flags.DEFINE_list("export_format", ["saved_model"],
                    "Export formats: saved_model (always) and tflite (model.tflite beside it, "
                    "every signature in it, each checked against the SavedModel in "
                    "model_card.json; a signature that cannot convert is named in the log with "
                    "why, and the others convert).")
  flags.DEFINE_bool("export_only", False,
                    "Re-export from the latest checkpoint in --workdir without training.")
  flags.DEFINE_enum("strategy", "default", strategy_lib.STRATEGIES,
                    "tf.distribute strategy: default (one device), mirrored (all local GPUs, or "
                    "--cpu_devices logical CPUs), multi_worker (hosts from TF_CONFIG).")
  flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices.",
                       lower_bound=1, upper_bound=64)
  flags.DEFINE_bool("deterministic", False, "Deterministic TF ops (slower; exact resumes).")
  flags.DEFINE_enum("precision", "float32", list(precision.PRECISIONS),
                    "Numeric precision: float32, mixed_bfloat16 (needs native bfloat16: x86 CPUs "
                    "with AVX512_BF16 or AMX, GPUs, TPUs; other CPUs emulate it, 10x slower than "
                    "float32 on an AMD EPYC) or mixed_float16 (GPUs, with loss scaling); "
                    "variables, losses and metrics stay float32. A mixed precision this machine "
                    "runs slower than float32 is refused unless --allow_slow_precision.")
  flags.DEFINE_bool("allow_slow_precision", False,
                    "Run a --precision this machine has no fast path for (mixed_bfloat16 on a "
                    "CPU without AVX512_BF16/AMX, mixed_float16 without a GPU) instead of "
                    "refusing it: for checking its numerics, not for speed.")
  flags.DEFINE_integer("checkpoint_every", 500, "Checkpoint period in steps.", lower_bound=1)
  flags.DEFINE_integer("summary_every", 50, "TensorBoard scalar period in steps.", lower_bound=1)
  flags.DEFINE_integer("steps_per_call", 1, "Training steps per compiled call (fewer Python "
                       "round-trips; summaries and checkpoints stay at their steps).",
                       lower_bound=1, upper_bound=10000)
  flags.DEFINE_float("log_every_secs", 10.0, "Progress line period in seconds.", lower_bound=0.0)
  flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's own).")
  flags.DEFINE_bool("download", False,
                    "Let TFDS download data sets that are not prepared (needs internet).")


@dataclasses.dataclass
class Runtime:
  """What a program needs from the runtime flags: strategy, directories, periods, precision.

  Building one applies its precision (the global Keras dtype policy; a ValueError for a mixed
  precision this machine runs slower than float32 unless `allow_slow_precision`), so a Runtime
  made in a notebook trains in the precision it names, as one made from the flags does."""

  strategy: object
  workdir: str
  export_dir: str
  export_only: bool = False
  export_version: int = 0
  export_format: tuple = ("saved_model",)
  deterministic: bool = False
  precision: str = "float32"
  allow_slow_precision: bool = False
  checkpoint_every: int = 500
  summary_every: int = 50
  steps_per_call: int = 1
  log_every_secs: float = 10.0
  data_dir: str = None
  download: bool = False

  def __post_init__(self):
    precision.set_precision(self.precision, allow_slow=self.allow_slow_precision)

  @property
  def is_chief(self):
    return strategy_lib.is_chief(self.strategy)

  def seed(self, seed):
    seeds.seed_everything(seed, self.deterministic)

  def writer(self, subdir):
    """A MetricWriter for `workdir/subdir` (a no-op on non-chief workers)."""
    return MetricWriter(os.path.join(self.workdir, subdir), enabled=self.is_chief)

  def train_state(self, subdir, seed, **trackables):
    """A TrainState checkpointing to `workdir/subdir/checkpoints`."""
    return TrainState(os.path.join(self.workdir, subdir, "checkpoints"), seed,
                      is_chief=self.is_chief, worker=strategy_lib.worker_id(self.strategy),
                      **trackables)

  def loop_kwargs(self):
    return dict(checkpoint_every=self.checkpoint_every, summary_every=self.summary_every,
                log_every_secs=self.log_every_secs, steps_per_call=self.steps_per_call,
                strategy=self.strategy)


def check_writable_dir(flag, path):
  """Raises UsageError when `path` cannot be (or become) a writable directory, without
  creating anything."""
  if not path:
    return
  probe = os.path.abspath(path)
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise app.UsageError(f"--{flag}={path}: {probe} is a file, not a directory; choose another "
                         "path.")
  if not os.access(probe, os.W_OK | os.X_OK):
    raise app.UsageError(f"--{flag}={path}: {probe} is not writable; choose another path.")


def finished_results(workdir):
  """The results.json of the runs finished in `workdir`, which `--export_only` exports from;
  a usage error naming the file when the program has not finished there (a damaged file is
  named by `files.read_json`)."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    raise app.UsageError(f"--export_only: {path} is missing; train first (drop --export_only).")
  return files.read_json(path)


def runtime_from_flags():
  """Builds the strategy and the Runtime from the parsed flags; sets the dtype policy (a usage
  error for a precision this machine runs slower than float32, see precision.check_speed)."""
  check_writable_dir("workdir", FLAGS.workdir)
  check_writable_dir("export_dir", FLAGS.export_dir)
  try:
    export.check_formats(FLAGS.export_format)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:  # before the workdir is locked: a refused precision leaves nothing behind
    precision.set_precision(FLAGS.precision, allow_slow=FLAGS.allow_slow_precision)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  strategy = strategy_lib.make_strategy(FLAGS.strategy, FLAGS.cpu_devices)
  if strategy_lib.is_chief(strategy):  # one program per workdir (workers write elsewhere)
    files.lock_dir(FLAGS.workdir)
  return settings.from_flags(Runtime, strategy=strategy)


def model_card(program, metrics=None, flags=None, **extra):
  """What an export's model_card.json says besides its signatures: the program, its flags (by
  default the parsed ones), the code version and the metric values of the exported run."""
  from lamp_tf.runtime import results  # noqa: F401 (results imports nothing from here)
  flags = flag_values() if flags is None else flags
  return {"program": program, "flags": {k: v for k, v in flags.items()
                                        if isinstance(v, (int, float, str, bool, list))
                                        or v is None},
          "code_version": results.code_version(), "metrics": metrics or {}, **extra}


def flag_values(names=None):
  """{flag: value} for the program's own and runtime flags (for results.json and hparams)."""
  module_flags = {}
  for module, defined in FLAGS.flags_by_module_dict().items():
    if "absl" in module or module.startswith("tensorflow") or "/absl/" in module:
      continue
    for f in defined:
      module_flags[f.name] = f.value
  if names is not None:
    module_flags = {k: v for k, v in module_flags.items() if k in names}
  return dict(sorted(module_flags.items()))


def _allowed(flag):
  """What a flag accepts, from its parser (enum values, numeric bounds, booleans)."""
  parser = flag.parser
  if getattr(parser, "enum_values", None):
    return "|".join(parser.enum_values)
  if isinstance(flag, flags.BooleanFlag):
    return "true, false"
  lo, hi = getattr(parser, "lower_bound", None), getattr(parser, "upper_bound", None)
  kind = "list" if isinstance(parser, flags.ListParser) else parser.flag_type()
  if lo is not None and hi is not None:
    return f"{kind} in [{lo}, {hi}]"
  if lo is not None:
    return f"{kind} >= {lo}"
  if hi is not None:
    return f"{kind} <= {hi}"
  return kind


def flags_table(module_name):
  """Markdown table of a program module's flags (its own and those it adopts): name, allowed
  values, default and help, generated from the definitions (README's flag tables)."""
  rows = []
  for flag in sorted(FLAGS.get_key_flags_for_module(module_name), key=lambda f: f.name):
    default = flag.default_as_str if flag.default is not None else ""
    meaning = " ".join(flag.help.split())
    if getattr(flag.parser, "enum_values", None):  # absl puts '<a|b>: ' before an enum's help
      meaning = meaning.split(">: ", 1)[-1]
    cells = [f"`--{flag.name}`", _allowed(flag), default.strip("'"), meaning]
    rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
  return "\n".join(["| flag | allowed | default | meaning |", "|---|---|---|---|", *rows])


def experiment_main(experiment, make_config):
  """The `main` of every program (`apps/<method>.py`): the config of the parsed flags, validated
  by `experiment.validate` (any ValueError from either is a usage error, before anything is
  built or locked), then the Runtime, then `experiment.export_only(rt, cfg, flags=...)` under
  --export_only or `experiment.train_and_evaluate(rt, cfg, flags=...)`; the experiment takes
  its workdir, export directory and version from the Runtime."""
  def main(argv):
    del argv
    try:
      cfg = experiment.validate(make_config())
    except ValueError as e:
      raise app.UsageError(str(e)) from None
    rt = runtime_from_flags()
    run = experiment.export_only if rt.export_only else experiment.train_and_evaluate
    run(rt, cfg, flags=flag_values())

  return main
