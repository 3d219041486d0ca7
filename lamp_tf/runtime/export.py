"""SavedModel export with explicit serving signatures, written atomically.

An export is a Keras `ExportArchive` (what `model.export()` uses): the models it tracks and one
endpoint per signature (a `tf.function` with an `input_signature`, returning a dict of named
outputs). It loads and serves in any process that has TensorFlow, with no lamp_tf or Keras
import: `tf.saved_model.load`, `saved_model_cli run` (the graph-mode loader, the path of TF
Serving's C++ loader), TF Serving. (A `tf.Module` wrapper of Keras 3 models saved with
`tf.saved_model.save` loads in Python but fails in the graph-mode loader: "Could not find
variable .../moving_mean".)

Exports follow TF Serving's layout, `<model base path>/<integer version>/saved_model.pb`, each
version with a `model_card.json` (program, flags, data, metrics, signatures with their input and
output shapes and dtypes); a re-export adds a version unless one is pinned.

`formats` adds a TensorFlow Lite model beside the SavedModel ('tflite'): every signature
converted into `model.tflite` with TFLite's builtin ops only (`convert_tflite`), listed in the
model card under "tflite" (per signature, what running it beside the SavedModel on random
valid requests gave, "check": the largest difference of each output; or why it could not
convert, e.g. an op with no builtin kernel, named in one log line, the others still
converting).
A TFLite model takes the
same named inputs and gives the same outputs (`tf.lite.Interpreter(...).get_signature_runner`),
but it does not check its requests: the SavedModel's checks of shapes, labels and finiteness
are not converted.

Weights can also be exported by name (`named_weights`), e.g. so an exported GAN can be a
transfer source: per network, the variables in the collection `<network>_weights` and their
names, in the same order, in the string variable of `<network>_weight_names`; `read_named_weights`
reads them back.
"""

import collections
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.runtime import files

FORMATS = ("saved_model", "tflite")


def _spec(tensor_spec):
  return {"shape": [None if d is None else int(d) for d in tensor_spec.shape],
          "dtype": tensor_spec.dtype.name}


def signature_card(signatures):
  """{signature: {'inputs': {name: {shape, dtype}}, 'outputs': {...}}} of tf.functions."""
  card = {}
  for name, fn in signatures.items():
    concrete = fn.get_concrete_function()
    inputs = {spec.name: _spec(spec) for spec in concrete.structured_input_signature[0]}
    outputs = {k: _spec(v) for k, v in concrete.structured_outputs.items()}
    card[name] = {"inputs": inputs, "outputs": outputs}
  return card


def with_shape_checks(fn):
  """`fn` (a tf.function with an input_signature) behind a check of every input's shape: a
  served request of another rank or image size fails with an InvalidArgumentError naming the
  input and its expected shape ('Shape of tensor z [2,131] is not compatible with expected
  shape [?,128]') before it reaches the model. (A loaded signature does not check shapes
  itself, and an assert on `tf.shape` is folded away against the declared shape; EnsureShape
  is not.)"""
  specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name)  # named after fn's arguments
           for s in fn.get_concrete_function().structured_input_signature[0]]

  @tf.function(input_signature=specs)
  def checked(*args):
    return fn(*[tf.ensure_shape(a, s.shape, name=s.name) for a, s in zip(args, specs)])

  return checked


def next_version(base_dir):
  """The next integer version under a model base path (1 when there is none)."""
  existing = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) \
      else []
  return max(existing, default=0) + 1


def resolve(path):
  """The SavedModel directory of `path`: itself when it holds saved_model.pb, else its highest
  integer version (TF Serving's layout); None when there is neither."""
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  if os.path.isdir(path):
    versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()
                       and os.path.exists(os.path.join(path, d, "saved_model.pb"))))
    if versions:
      return os.path.join(path, str(versions[-1]))
  return None


def check_formats(formats, flag="export_format"):
  """`formats` as a tuple if they are export formats with saved_model among them (the TFLite
  models are converted from it); a one-line ValueError naming --flag otherwise."""
  formats = tuple(formats)
  unknown = [f for f in formats if f not in FORMATS]
  if unknown or "saved_model" not in formats:
    raise ValueError(f"--{flag}={','.join(formats)}: "
                     + (f"unknown {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
                        if unknown else "the SavedModel is always written (the TFLite models "
                        "are converted from it): use saved_model,tflite") + ".")
  return formats


def _tflite_reason(error):
  """Why a conversion failed, in a few words: the ops without a builtin kernel when that is
  it, else the converter's first error line."""
  text = str(error)
  ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
  listed = re.search(r"TF Select ops: ([\w, ]+)", text)
  ops = list(dict.fromkeys(ops + ([o.strip() for o in listed[1].split(",")] if listed else [])))
  if ops:
    return (f"TensorFlow op{'s' * (len(ops) > 1)} {', '.join('tf.' + o for o in ops)} "
            f"{'have' if len(ops) > 1 else 'has'} no TFLite builtin kernel")
  lines = [l.strip() for l in text.splitlines() if "error" in l.lower()] or [text.strip()]
  return " ".join(lines[0].split())[:300] or type(error).__name__


def compare_tflite(interpreter, name, signature, inputs):
  """Signature `name` of a TFLite `interpreter` against the SavedModel's `signature` on the same
  `inputs` ({input name: array}): {"examples": N, "max_abs_difference": {float output: max
  |TFLite - SavedModel|}, "share_different": {integer output: share of values that differ}}."""
  lite = interpreter.get_signature_runner(name)(**inputs)
  saved = {k: v.numpy() for k, v in signature(*[tf.constant(inputs[spec.name]) for spec in
                                                 signature.input_signature]).items()}
  check = {"examples": int(len(next(iter(inputs.values())))), "max_abs_difference": {},
           "share_different": {}}
  for key, want in saved.items():
    got = lite[key]
    if want.dtype.kind == "f":
      check["max_abs_difference"][key] = float(abs(got.astype("float64") - want).max())
    elif want.dtype.kind in "iu" and want.dtype.itemsize > 1:  # labels: a near tie may flip
      check["share_different"][key] = float((got != want).mean())
    else:  # uint8 images: rounding moves a value by one step at most
      check["max_abs_difference"][key] = float(abs(got.astype(int) - want.astype(int)).max())
  return check


def example_inputs(fn, input_ranges=None, n=8, seed=0):
  """Random valid requests for the tf.function `fn` ({input name: array}, `n` rows): values
  uniform in `input_ranges[name]` ((low, high), high excluded for integers) where given, else
  uint8 0..255, other integers 0 and float32 standard normal."""
  rng, out = np.random.default_rng(seed), {}
  for spec in fn.input_signature:
    shape = [n if d is None else d for d in spec.shape]
    low_high = (input_ranges or {}).get(spec.name)
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.is_integer:
      low, high = low_high or ((0, 256) if spec.dtype == tf.uint8 else (0, 1))
      out[spec.name] = rng.integers(low, high, shape).astype(dtype)
    else:
      out[spec.name] = (rng.uniform(*low_high, shape) if low_high else
                        rng.standard_normal(shape)).astype(dtype)
  return out


TFLITE_FILE = "model.tflite"


def _to_tflite(saved_dir, names):
  return tf.lite.TFLiteConverter.from_saved_model(saved_dir, signature_keys=list(names)).convert()


def convert_tflite(saved_dir, signatures, input_ranges=None):
  """Converts the signatures of the SavedModel in `saved_dir` into one TFLite model,
  `<saved_dir>/model.tflite`, holding each as a signature (TFLite builtin ops only; one
  conversion of all is several times faster than one per signature). Where that fails, each
  signature is tried alone to name those that cannot convert and why (one log line per reason),
  and the others convert together. `signatures`: {name: the exported function}; each converted
  signature is run beside it on random valid requests (`example_inputs` with `input_ranges`),
  the differences its "check" (`compare_tflite`). Returns the model card's entry:
  {"file": "model.tflite" (None when nothing converts), "signatures": {name: {"check": ...} or
  {"error": why}}}."""
  names, errors = list(signatures), {}
  try:
    model = _to_tflite(saved_dir, names)
  except Exception:  # noqa: BLE001 (ConverterError and what the converter raises): find which
    for name in names:
      try:
        _to_tflite(saved_dir, [name])
      except Exception as e:  # noqa: BLE001
        errors[name] = _tflite_reason(e)
    model = None
    converted = [n for n in names if n not in errors]
    if converted:
      try:
        model = _to_tflite(saved_dir, converted)
      except Exception as e:  # noqa: BLE001 (each converts alone, not together)
        errors.update({n: _tflite_reason(e) for n in converted})
  entries, reasons = {}, collections.defaultdict(list)
  for name, why in errors.items():
    entries[name] = {"error": why}
    reasons[why].append(name)
  if model is not None:
    path = os.path.join(saved_dir, TFLITE_FILE)
    with open(path, "wb") as f:
      f.write(model)
    interpreter = tf.lite.Interpreter(model_path=path)
    for name in names:
      if name not in errors:
        entries[name] = {"check": compare_tflite(interpreter, name, signatures[name],
                                                 example_inputs(signatures[name], input_ranges))}
  for why, which in reasons.items():
    n = len(names) - len(errors)
    logging.warning("TFLite: %s not converted: %s (%d other signature%s converted).",
                    ", ".join(which), why, n, "s" * (n != 1))
  worst = [(d, n, k) for n, e in entries.items() if "check" in e
           for k, d in e["check"]["max_abs_difference"].items()]
  if worst:
    logging.info("TFLite: %d signature(s) checked against the SavedModel; largest difference "
                 "%.3g (%s, %s).", len(names) - len(errors), *max(worst))
  return {"file": TFLITE_FILE if model is not None else None,
          "signatures": {name: entries[name] for name in names}}


def export_saved_model(base_dir, signatures, models, named_weights=None, version=None,
                       card=None, formats=("saved_model",), input_ranges=None):
  """Writes a SavedModel to `base_dir/<version>/` (TF Serving's layout: a model base path
  holding integer versions), the directory appearing only once complete, with a
  `model_card.json` beside `saved_model.pb`.

  Args:
    base_dir: the model base path (e.g. saved_models/<model name>).
    signatures: {signature name: tf.function with an input_signature returning a dict}. The
      first one is also exported as 'serving_default' unless one is called that. Each is
      exported behind `with_shape_checks`.
    models: Keras models (or layers, or bare variables) whose variables the signatures use.
    named_weights: optional {network: {name: variable}} exported by name.
    version: the integer version; None: the next one after those in `base_dir`.
    card: what the model card says besides the signatures (program, flags, data, metrics).
    formats: 'saved_model' and optionally 'tflite' (module docstring).
    input_ranges: {input name: (low, high)} of valid requests where not every value of the
      dtype is (`example_inputs`): each TFLite model is compared with its signature on random
      ones, the differences in the model card.
  Returns the version directory.
  """
  formats = check_formats(formats)
  if not signatures:
    raise ValueError("export needs at least one signature.")
  version = next_version(base_dir) if not version else int(version)
  import keras  # here: reading an export (resolve, read_named_weights) needs TensorFlow only
  archive = keras.export.ExportArchive()
  loose = [m for m in models if isinstance(m, tf.Variable)]
  for model in models:
    if not isinstance(model, tf.Variable):
      archive.track(model)
  if loose:
    archive.add_variable_collection("variables", loose)
  signatures = {name: with_shape_checks(fn) for name, fn in signatures.items()}
  for name, fn in signatures.items():
    archive.add_endpoint(name, fn)
  if "serving_default" not in signatures:
    archive.add_endpoint("serving_default", next(iter(signatures.values())))
  for network, weights in (named_weights or {}).items():
    archive.add_variable_collection(f"{network}_weights", list(weights.values()))
    archive.add_variable_collection(f"{network}_weight_names",
                                    [tf.Variable(list(weights), trainable=False)])
  model_card = {**(card or {}), "version": version, "signatures": signature_card(signatures),
                "serving_default": next(iter(signatures))
                if "serving_default" not in signatures else "serving_default"}
  target = os.path.join(base_dir, str(version))
  with files.atomic_dir(target) as tmp:
    archive.write_out(tmp, verbose=False)
    if "tflite" in formats:
      model_card["tflite"] = convert_tflite(tmp, signatures, input_ranges=input_ranges)
    files.write_json(os.path.join(tmp, "model_card.json"), model_card)
  return target


def read_named_weights(loaded, network):
  """{name: NumPy array} of a network's weights in a loaded export, or None when absent."""
  names = getattr(loaded, f"{network}_weight_names", None)
  values = getattr(loaded, f"{network}_weights", None)
  if names is None or values is None:
    return None
  names = [n.decode() for n in names[0].numpy()]
  return {n: v.numpy() for n, v in zip(names, values)}
