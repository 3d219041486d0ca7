"""SavedModel export with explicit serving signatures, written atomically.

An export is a `tf.Module` holding the models and one `tf.function` per signature (each with an
`input_signature` and a dict of named outputs), so it loads and serves in any process that has
TensorFlow, with no lamp_tf or Keras import: `tf.saved_model.load`, `saved_model_cli run`,
TF Serving.
"""

import tensorflow as tf

from lamp_tf.runtime import files


def export_saved_model(export_dir, signatures, models):
  """Writes a SavedModel to `export_dir`, replacing any earlier export only once complete.

  Args:
    export_dir: target directory.
    signatures: {signature name: tf.function with an input_signature returning a dict}. The
      first one is also exported as 'serving_default' unless one is called that.
    models: {name: keras model or other trackable} the functions use (kept as attributes).
  Returns export_dir.
  """
  if not signatures:
    raise ValueError("export needs at least one signature.")
  module = tf.Module()
  for name, model in models.items():
    setattr(module, name, model)
  concrete = {}
  for name, fn in signatures.items():
    setattr(module, f"sig_{name}", fn)
    concrete[name] = fn.get_concrete_function()
  if "serving_default" not in concrete:
    concrete["serving_default"] = next(iter(concrete.values()))
  with files.atomic_dir(export_dir) as tmp:
    tf.saved_model.save(module, tmp, signatures=concrete)
  return export_dir
