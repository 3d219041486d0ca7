"""SavedModel export with explicit serving signatures, written atomically.

An export is a Keras `ExportArchive` (what `model.export()` uses): the models it tracks and one
endpoint per signature (a `tf.function` with an `input_signature`, returning a dict of named
outputs). It loads and serves in any process that has TensorFlow, with no lamp_tf or Keras
import: `tf.saved_model.load`, `saved_model_cli run` (the graph-mode loader, the path of TF
Serving's C++ loader), TF Serving. (A `tf.Module` wrapper of Keras 3 models saved with
`tf.saved_model.save` loads in Python but fails in the graph-mode loader: "Could not find
variable .../moving_mean".)

Weights can also be exported by name (`named_weights`), e.g. so an exported GAN can be a
transfer source: per network, the variables in the collection `<network>_weights` and their
names, in the same order, in the string variable of `<network>_weight_names`; `read_named_weights`
reads them back.
"""

import keras
import tensorflow as tf

from lamp_tf.runtime import files


def export_saved_model(export_dir, signatures, models, named_weights=None):
  """Writes a SavedModel to `export_dir`, replacing any earlier export only once complete.

  Args:
    export_dir: target directory.
    signatures: {signature name: tf.function with an input_signature returning a dict}. The
      first one is also exported as 'serving_default' unless one is called that.
    models: Keras models (or layers, or bare variables) whose variables the signatures use.
    named_weights: optional {network: {name: variable}} exported by name.
  Returns export_dir.
  """
  if not signatures:
    raise ValueError("export needs at least one signature.")
  archive = keras.export.ExportArchive()
  loose = [m for m in models if isinstance(m, tf.Variable)]
  for model in models:
    if not isinstance(model, tf.Variable):
      archive.track(model)
  if loose:
    archive.add_variable_collection("variables", loose)
  for name, fn in signatures.items():
    archive.add_endpoint(name, fn)
  if "serving_default" not in signatures:
    archive.add_endpoint("serving_default", next(iter(signatures.values())))
  for network, weights in (named_weights or {}).items():
    archive.add_variable_collection(f"{network}_weights", list(weights.values()))
    archive.add_variable_collection(f"{network}_weight_names",
                                    [tf.Variable(list(weights), trainable=False)])
  with files.atomic_dir(export_dir) as tmp:
    archive.write_out(tmp, verbose=False)
  return export_dir


def read_named_weights(loaded, network):
  """{name: NumPy array} of a network's weights in a loaded export, or None when absent."""
  names = getattr(loaded, f"{network}_weight_names", None)
  values = getattr(loaded, f"{network}_weights", None)
  if names is None or values is None:
    return None
  names = [n.decode() for n in names[0].numpy()]
  return {n: v.numpy() for n, v in zip(names, values)}
