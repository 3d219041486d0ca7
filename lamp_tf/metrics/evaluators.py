"""One interface for every evaluator, and evaluators chosen by name (as big_vision's).

An evaluator is built once with what it scores against (test data, a feature extractor) and is
then called on each model to score: `evaluator(model, **context) -> {name: value}`, values that
`json.dump` writes (numbers, lists, dicts of them). What "model" is depends on the evaluator and
is said in its docstring (a classifier, a generator, a translation function).

`register(name)` adds an evaluator class under a name; `make(name, ...)` builds one. The
metrics package's own evaluators ("gan", "seen_classes") are always there; a method package
registers those that need its data or models when it is imported ("task_accuracy" in
`continual.sequential`; "segmentation", "depth", "recolouring", "encoder_agreement" in
`mixmatch.evaluate`; "style_translation" in `mixmatch.style_experiment`).
"""

import abc
import importlib

_REGISTRY = {}
_OWN_MODULES = ("lamp_tf.metrics.gan_eval", "lamp_tf.metrics.seen_classes")


class Evaluator(abc.ABC):
  """Scores a model: `__call__(model, **context)` returns a dict of named JSON-ready values."""

  @abc.abstractmethod
  def __call__(self, model, **context):
    """{name: value} for `model`; `context` names what the call scores (e.g. the task)."""


def register(name):
  """Class decorator: the evaluator class is made by `make(name, ...)`."""
  def add(cls):
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
      raise TypeError(f"evaluator {name!r}: {cls!r} is not an Evaluator subclass")
    if _REGISTRY.get(name, cls) is not cls:
      raise ValueError(f"evaluator {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls
  return add


def names():
  """The names of the evaluators registered so far, sorted."""
  for module in _OWN_MODULES:  # imported here: they import this module
    importlib.import_module(module)
  return sorted(_REGISTRY)


def get(name):
  """The evaluator class registered under `name`."""
  if name not in names():
    raise ValueError(f"unknown evaluator {name!r}: use one of {names()} (a method's evaluators "
                     "are registered when its package is imported).")
  return _REGISTRY[name]


def make(name, *args, **kwargs):
  """An evaluator by name, built with the class's arguments."""
  return get(name)(*args, **kwargs)
