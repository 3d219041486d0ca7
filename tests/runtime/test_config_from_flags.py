"""A setting is written as its flag and its dataclass field; the config is filled by name."""

import dataclasses

import pytest
from absl import flags

from lamp_tf.runtime import flags as runtime_flags


@dataclasses.dataclass(frozen=True)
class _Config:
  seed: int = 0
  lr: float = 1e-3
  loss: str = "sigmoid"
  no_flag: int = 7


def _flags(*argv):
  values = flags.FlagValues()
  flags.DEFINE_list("seed", ["0"], "", flag_values=values)  # a list, as programs' --seeds
  flags.DEFINE_float("lr", 1e-3, "", flag_values=values)
  flags.DEFINE_string("loss", "sigmoid", "", flag_values=values)
  flags.DEFINE_integer("unrelated", 1, "", flag_values=values)
  values(["prog", *argv])
  return values


def test_fields_take_the_flags_of_their_names_given_ones_win_and_the_rest_keep_defaults():
  values = _flags("--lr=0.5", "--loss=softmax", "--seed=3,4")
  config = runtime_flags.config_from_flags(_Config, flag_values=values, seed=4)
  assert config == _Config(seed=4, lr=0.5, loss="softmax", no_flag=7)


def test_a_list_flag_never_fills_a_scalar_field_silently():
  with pytest.raises(TypeError, match="seed"):
    runtime_flags.config_from_flags(_Config, flag_values=_flags())
