"""A setting is written once, as a config field with its help and allowed values; the flags are
generated from the fields and the config is filled from the flags."""

import dataclasses

import pytest
from absl import app, flags

from lamp_tf.runtime import settings
from lamp_tf.runtime.settings import setting


@dataclasses.dataclass(frozen=True)
class _Train:
  seed: int = 0  # set per run: no flag
  epochs: int = setting(5, "Epochs per task.", lower=1)
  loss: str = setting("sigmoid", "Task loss.", choices=("sigmoid", "softmax"))


@dataclasses.dataclass(frozen=True)
class _Config:
  train: _Train = _Train(epochs=7)
  steps: int = setting(100, "Training steps.", lower=1, upper=1000)
  lr: float = setting(1e-3, "Learning rate.", lower=0.0)
  ablation: bool = setting(False, "Also the ablation.")
  name: str = setting(None, "A name.")
  seeds: tuple = setting((0,), "Seeds.", item=int, lower=0, distinct=True, nonempty=True)
  lambdas: tuple = setting((1.0, 10.0), "Weights.", item=float, lower=0.0)
  methods: tuple = setting(("ft", "ewc"), "Methods.", choices=("ft", "ewc", "rewc"))
  sources: tuple = setting(("a:1,2", "b"), "Sources (repeat the flag).", multi=True)
  data_dir: str = None  # another module's flag, filled by name


def _flags(*argv):
  values = flags.FlagValues()
  settings.define_flags(_Config, flag_values=values)
  flags.DEFINE_string("data_dir", None, "", flag_values=values)
  values(["prog", *argv])
  return values


def test_every_field_with_help_is_a_flag_of_its_kind_with_its_help_bounds_and_default():
  values = _flags()
  assert sorted(values) == sorted(["epochs", "loss", "steps", "lr", "ablation", "name", "seeds",
                                   "lambdas", "methods", "sources", "data_dir"])
  assert values["epochs"].default == 7  # the nested config's default instance
  assert values["epochs"].help == "Epochs per task."
  assert (values["steps"].parser.lower_bound, values["steps"].parser.upper_bound) == (1, 1000)
  assert values["loss"].parser.enum_values == ["sigmoid", "softmax"]
  assert isinstance(values["ablation"], flags.BooleanFlag)
  assert values["lambdas"].default == ["1", "10"] and values["sources"].default == ["a:1,2", "b"]
  assert isinstance(values["seeds"].parser, flags.ListParser)
  assert isinstance(values["sources"], flags.MultiFlag)  # a repeated flag, commas kept


def test_flags_belong_to_the_defining_module_so_helpshort_lists_them():
  values = flags.FlagValues()
  settings.define_flags(_Config, flag_values=values, exclude=("name",))
  listed = {f.name for f in values.get_key_flags_for_module(__name__)}
  assert listed == set(values) and "name" not in listed and "seeds" in listed


def test_the_config_takes_the_flags_converted_to_the_fields_types():
  values = _flags("--steps=50", "--lr=0.5", "--ablation", "--seeds=3,1", "--lambdas=0,1e3",
                  "--methods=rewc", "--sources=c:5", "--sources=d", "--epochs=2",
                  "--loss=softmax", "--data_dir=/tmp/d")
  config = settings.from_flags(_Config, flag_values=values, name="given")
  assert config == _Config(train=_Train(seed=0, epochs=2, loss="softmax"), steps=50, lr=0.5,
                           ablation=True, name="given", seeds=(3, 1), lambdas=(0.0, 1000.0),
                           methods=("rewc",), sources=("c:5", "d"), data_dir="/tmp/d")
  assert settings.from_flags(_Config, flag_values=_flags()) == _Config()


@pytest.mark.parametrize("argv, words", [
    (["--seeds=1,x"], ["--seeds=1,x", "expected integers"]),
    (["--lambdas=1,big"], ["--lambdas=1,big", "expected numbers"]),
    (["--seeds=2,2"], ["--seeds=2,2", "once"]),
    (["--seeds=-1"], ["--seeds=-1", ">= 0"]),
    (["--seeds="], ["--seeds=", "at least one"]),
    (["--lambdas=-5"], ["--lambdas=-5", ">= 0"]),
    (["--methods=ft,sgd"], ["--methods=ft,sgd", "unknown sgd", "ft, ewc, rewc"]),
])
def test_a_list_setting_outside_its_items_is_a_usage_error_naming_the_flag(argv, words):
  with pytest.raises(app.UsageError) as e:
    settings.from_flags(_Config, flag_values=_flags(*argv))
  for word in words:
    assert word in str(e.value), (word, str(e.value))


def test_check_applies_the_same_rules_to_a_config_made_in_python():
  assert settings.check(_Config()) == _Config()
  for bad, words in ((dict(steps=0), ["--steps=0", ">= 1"]), (dict(steps=2000), ["<= 1000"]),
                     (dict(methods=("ft", "x")), ["--methods", "unknown x"]),
                     (dict(train=_Train(loss="hinge")), ["--loss=hinge", "sigmoid, softmax"]),
                     (dict(seeds=(1, 1)), ["--seeds=1,1", "once"])):
    with pytest.raises(ValueError) as e:
      settings.check(_Config(**bad))
    assert all(w in str(e.value) for w in words), (bad, str(e.value))


def test_a_nested_config_takes_only_its_settings_flags():
  """`seed` of one run is set per run: a --seed flag (here a list, as programs' --seeds might
  be named) does not reach it."""
  values = _flags()
  flags.DEFINE_list("seed", ["4", "5"], "", flag_values=values)
  values(["prog"])
  assert settings.from_flags(_Config, flag_values=values).train.seed == 0


def test_a_list_flag_never_fills_a_scalar_field_silently():
  @dataclasses.dataclass(frozen=True)
  class Run:
    seed: int = 0

  values = flags.FlagValues()
  flags.DEFINE_list("seed", ["0"], "", flag_values=values)
  values(["prog"])
  with pytest.raises(TypeError, match="seed"):
    settings.from_flags(Run, flag_values=values)
  assert settings.from_flags(Run, flag_values=values, seed=3) == Run(seed=3)


def test_a_setting_of_another_type_is_refused_when_its_flag_is_defined():
  @dataclasses.dataclass(frozen=True)
  class Bad:
    table: dict = setting(None, "A dict.")

  with pytest.raises(TypeError, match="table"):
    settings.define_flags(Bad, flag_values=flags.FlagValues())
