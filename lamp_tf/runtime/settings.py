"""A setting is written once: a config dataclass field that carries its flag's help and allowed
values, and the program's flags are generated from the fields.

  @dataclasses.dataclass(frozen=True)
  class ExperimentConfig:
    steps: int = setting(3000, "Training steps.", lower=1)
    side_info: tuple = setting(("indices",), "Decoder side information.",
                               choices=("indices", "skip", "none"))
    seeds: tuple = setting((0,), "Seeds (tables: mean and std).", item=int, lower=0,
                           distinct=True)

  settings.define_flags(ExperimentConfig)   # at import of the program module
  cfg = settings.from_flags(ExperimentConfig)  # in main

The flag's kind follows the field: bool, int, float, str (an enum with `choices`), tuple (a
comma-separated list of `item`s, each one of `choices` when given; `multi=True`: a repeated
flag). A field without help (a value set per run, e.g. the seed of one run) defines no flag. A
field whose default is a dataclass instance (a nested config, e.g. the training settings every
run starts from) defines its own fields' flags with the nested defaults, and `from_flags` fills
it the same way. This keeps flag files working where configs as code (flax, big_vision) would
replace them.
"""

import dataclasses
import sys

from absl import app, flags

FLAGS = flags.FLAGS
_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "tuple": tuple}


def setting(default, help, *, choices=None, lower=None, upper=None, item=str, multi=False,
            distinct=False, nonempty=False):
  """A dataclass field with its flag's help and allowed values (see the module docstring);
  `distinct` and `nonempty` apply to lists."""
  return dataclasses.field(default=default, metadata={
      "help": help, "choices": tuple(choices) if choices is not None else None, "lower": lower,
      "upper": upper, "item": item, "multi": multi, "distinct": distinct,
      "nonempty": nonempty})


def _kind(field):
  kind = _TYPES.get(field.type, field.type) if isinstance(field.type, str) else field.type
  if kind not in _TYPES.values():
    raise TypeError(f"{field.name}: a setting must be bool, int, float, str or tuple, not "
                    f"{field.type}.")
  return kind


def _nested(field):
  return dataclasses.is_dataclass(field.default) and not isinstance(field.default, type)


def _settings(cls_or_config):
  """(field, default) of every flag-carrying field, nested configs' included."""
  for field in dataclasses.fields(cls_or_config):
    default = (getattr(cls_or_config, field.name) if not isinstance(cls_or_config, type)
               else field.default)
    if _nested(field):
      yield from _settings(default)
    elif "help" in field.metadata:
      yield field, default


def define_flags(cls, flag_values=FLAGS, exclude=()):
  """Defines a flag for every field of `cls` with help (nested configs' fields included), but
  those named in `exclude`; its module is the caller's (it lists them under --helpshort)."""
  common = dict(flag_values=flag_values, module_name=_caller_module())
  for field, default in _settings(cls):
    if field.name in exclude:
      continue
    meta, kind = field.metadata, _kind(field)
    bounds = dict(lower_bound=meta["lower"], upper_bound=meta["upper"])
    if kind is bool:
      flags.DEFINE_bool(field.name, default, meta["help"], **common)
    elif kind is int:
      flags.DEFINE_integer(field.name, default, meta["help"], **bounds, **common)
    elif kind is float:
      flags.DEFINE_float(field.name, default, meta["help"], **bounds, **common)
    elif kind is str and meta["choices"]:
      flags.DEFINE_enum(field.name, default, list(meta["choices"]), meta["help"], **common)
    elif kind is str:
      flags.DEFINE_string(field.name, default, meta["help"], **common)
    elif meta["multi"]:
      flags.DEFINE_multi_string(field.name, _strings(default), meta["help"], **common)
    else:
      flags.DEFINE_list(field.name, _strings(default), meta["help"], **common)


def _strings(values):
  """A list default as its flag's strings (floats short: 1e9, 0.5, 10)."""
  short = lambda v: f"{v:g}".replace("e+0", "e").replace("e+", "e")
  return [short(v) if isinstance(v, float) else str(v) for v in values]


def _caller_module():
  return sys._getframe(2).f_globals.get("__name__")  # define_flags's caller


def _items(field, values):
  """A list flag's strings as the field's tuple of `item`s; a usage error naming the flag when
  one does not convert."""
  item = field.metadata.get("item", str)
  try:
    return tuple(item(v) for v in values)
  except ValueError:
    raise app.UsageError(f"--{field.name}={','.join(values)}: expected "
                         f"{'integers' if item is int else 'numbers'}.") from None


def check(config):
  """`config` (nested configs included) if every setting is within its choices and bounds, a
  `distinct` list repeats nothing and a `nonempty` one has a value; a one-line ValueError naming
  the flag otherwise."""
  for field, value in _settings(config):
    meta, items = field.metadata, value if isinstance(value, tuple) else (value,)
    shown = f"--{field.name}={','.join(map(str, items))}"
    if meta["choices"] and value is not None:
      unknown = [v for v in items if v not in meta["choices"]]
      if unknown:
        raise ValueError(f"{shown}: unknown {', '.join(map(str, unknown))}; choose from "
                         f"{', '.join(meta['choices'])}.")
    for bound, outside in (("lower", lambda v, b: v < b), ("upper", lambda v, b: v > b)):
      if meta[bound] is not None and any(outside(v, meta[bound]) for v in items):
        raise ValueError(f"{shown}: values must be {'>=' if bound == 'lower' else '<='} "
                         f"{meta[bound]:g}.")
    if meta["distinct"] and len(set(items)) != len(items):
      raise ValueError(f"{shown}: a value is repeated; list each once.")
    if meta["nonempty"] and not items:
      raise ValueError(f"{shown}: give at least one value.")
  return config


def from_flags(cls, flag_values=FLAGS, **given):
  """An instance of `cls`: the fields `given` take those values, every other field the value of
  the flag of its name (list flags as tuples of their items), or its default where no such flag
  is defined; a nested config takes its settings' flags (see `_fill`). A list flag never fills
  a scalar field (e.g. --seeds vs the `seed` of one run): such fields must be given. A setting
  outside its choices or bounds is a usage error naming the flag (see `check`)."""
  values = {}
  for field in dataclasses.fields(cls):
    if field.name in given:
      continue
    if _nested(field):
      values[field.name] = _fill(field.default, flag_values)
    elif field.name in flag_values:
      values[field.name] = _value(field, flag_values[field.name].value)
  try:
    return check(cls(**values, **given))
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def _fill(config, flag_values):
  """`config` (a nested default) with its settings from their flags; its other fields are set
  per run (e.g. the seed or λ of one run), whatever flag shares their name."""
  changes = {f.name: _value(f, flag_values[f.name].value) for f in dataclasses.fields(config)
             if not _nested(f) and "help" in f.metadata and f.name in flag_values}
  nested = {f.name: _fill(getattr(config, f.name), flag_values)
            for f in dataclasses.fields(config) if _nested(f)}
  return dataclasses.replace(config, **changes, **nested)


def _value(field, value):
  if not isinstance(value, list):
    return value
  if field.default is dataclasses.MISSING or not isinstance(field.default, (list, tuple)):
    raise TypeError(f"{field.name}: --{field.name} is a list flag; give the field's value "
                    "explicitly.")
  return _items(field, value)
