"""Transferring GANs: start a generator and/or critic from a pretrained run.

Weights are exchanged by name: a variable's path inside its model (`fc/kernel`,
`block1/bn1/gamma`, ...). Sources:
- a run directory (`<workdir>/pretrain/<source>`) holding `gan_config.json` and checkpoints of
  `generator` and `critic` (what `lamp-tf-transfer-gan` and `lamp-tf-mergan` write);
- a SavedModel exported by lamp_tf, which carries both networks' weights by name in its
  `weights` attribute beside the serving signatures.

Adaptations, all logged:
- unconditional -> conditional with conditional batch norm: the unconditional scale and shift
  (and calibrated statistics) of the one row are copied to every class;
- unconditional -> conditional with label concatenation: the generator's first kernel gets the
  pretrained rows for z; the rows of the label inputs keep their random initialisation;
- a target variable with no pretrained counterpart (e.g. the AC-GAN classifier head of a
  conditional critic started from an unconditional one) keeps its initialisation;
- names in `reinit` (e.g. 'class_head' when the class count differs) keep their initialisation.
Any other shape difference is an error naming the variable and both shapes.

Freezing the first k critic layers (FreezeD, Mo et al. 2020) is an option beyond the paper.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import export, files, loop

CONFIGS = {"none": (False, False), "critic": (False, True), "generator": (True, False),
           "both": (True, True)}  # config -> (pretrained generator, pretrained critic)
GAN_CONFIG = "gan_config.json"


def relative_path(model, variable):
  path = variable.path
  prefix = model.name + "/"
  return path[len(prefix):] if path.startswith(prefix) else path


def named_weights(model):
  """{path inside the model: variable} for every weight (trainable or not)."""
  return {relative_path(model, v): v for v in model.weights}


def named_weights_arrays(model):
  """{path inside the model: NumPy array}: the form `load_pretrained` returns per network."""
  return {k: v.numpy() for k, v in named_weights(model).items()}


def build_from_config(config):
  """(generator, critic) from a gan_config.json dict (the kwargs of nets.gan.make_gan)."""
  return gan_nets.make_gan(**config)


def save_gan_config(run_dir, config):
  files.write_json(os.path.join(run_dir, GAN_CONFIG), config)


def restore_run(run_dir):
  """(generator to sample from, critic) of a trained run directory: the EMA generator when the
  run kept one."""
  config_path = os.path.join(run_dir, GAN_CONFIG)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{run_dir!r} is not a GAN run directory (no {GAN_CONFIG}).")
  config = files.read_json(config_path)
  generator, critic = build_from_config(config)
  ckpt_dir = os.path.join(run_dir, "checkpoints")
  latest = tf.train.latest_checkpoint(ckpt_dir)
  if latest is None:
    raise FileNotFoundError(f"{run_dir!r} has no checkpoint: train it first.")
  keys = tf.train.load_checkpoint(latest).get_variable_to_shape_map()
  trackables = {"generator": generator, "critic": critic}
  if any(k.startswith("ema/") for k in keys):
    trackables["ema"] = build_from_config(config)[0]
  loop.TrainState(ckpt_dir, 0, **trackables).restore(partial=True)
  return trackables.get("ema", generator), critic


def load_pretrained(source):
  """{'generator': {path: array}, 'critic': {path: array}} from a run directory or SavedModel."""
  saved = export.resolve(source)
  if saved is not None:
    loaded = tf.saved_model.load(saved)
    weights = {net: export.read_named_weights(loaded, net) for net in ("generator", "critic")}
    if any(w is None for w in weights.values()):
      raise ValueError(f"{source} is a SavedModel without lamp_tf's named weights: export it "
                       "with lamp_tf, or pass the training run directory instead.")
    return weights
  if not os.path.exists(os.path.join(source, GAN_CONFIG)):
    raise FileNotFoundError(f"pretrained source {source!r}: neither a SavedModel nor a run "
                            f"directory with {GAN_CONFIG} and checkpoints.")
  generator, critic = restore_run(source)
  return {"generator": named_weights_arrays(generator), "critic": named_weights_arrays(critic)}


def _adapt(name, value, target_shape):
  """A pretrained array reshaped for the target by a documented adaptation, or None."""
  if name.endswith(("/gamma", "/beta", "/class_mean", "/class_var")) and value.ndim == 2 and value.shape[0] == 1 \
      and len(target_shape) == 2 and value.shape[1] == target_shape[1]:
    return "copied the unconditional batch-norm row to every class", np.tile(
        value, [target_shape[0], 1])
  return None


def transfer_weights(model, pretrained, reinit=()):
  """Copies `pretrained` ({path: array}) into `model`; returns {path: what happened}."""
  report = {}
  for name, var in named_weights(model).items():
    if any(name == r or name.startswith(r + "/") for r in reinit):
      report[name] = "re-initialised (reinit)"
      continue
    if name not in pretrained:
      report[name] = "initialised (not in the pretrained model)"
      continue
    value, shape = pretrained[name], tuple(var.shape)
    if tuple(value.shape) == shape:
      var.assign(value)
      report[name] = "copied"
      continue
    adapted = _adapt(name, value, shape)
    if adapted is not None:
      report[name], value = adapted
      var.assign(value)
      continue
    if name == "fc/kernel" and value.ndim == 2 and value.shape[1] == shape[1] \
        and value.shape[0] < shape[0] and getattr(model, "conditioning", None) == "concat":
      merged = var.numpy()
      merged[:value.shape[0]] = value
      var.assign(merged)
      report[name] = "copied the z rows; label rows keep their random initialisation"
      continue
    raise ValueError(f"cannot transfer {model.name} variable {name!r}: pretrained shape "
                     f"{tuple(value.shape)}, target shape {shape}. Use the same architecture "
                     "and width, or list the layer in reinit.")
  counts = {}
  for what in report.values():
    counts[what] = counts.get(what, 0) + 1
  logging.info("transfer into %s: %s", model.name, counts)
  return report


def initialise(generator, critic, pretrained, config, reinit=()):
  """Applies one of the four configurations ('none', 'critic', 'generator', 'both')."""
  if config not in CONFIGS:
    raise ValueError(f"transfer config {config!r}: choose one of {', '.join(CONFIGS)}.")
  use_g, use_d = CONFIGS[config]
  report = {}
  if use_g:
    report["generator"] = transfer_weights(generator, pretrained["generator"], reinit)
  if use_d:
    report["critic"] = transfer_weights(critic, pretrained["critic"], reinit)
  return report


def freeze_critic_layers(critic, k):
  """FreezeD: the first k layers of the critic's trunk (convolutions or residual blocks) stop
  training; returns their names."""
  trunk = critic.trunk
  if not 0 <= k <= len(trunk):
    raise ValueError(f"--freeze_critic={k}: the critic has {len(trunk)} trunk layers.")
  for layer in trunk[:k]:
    layer.trainable = False
  return [l.name for l in trunk[:k]]


def export_generator(generator, critic, export_dir, moments=None, version=None, card=None,
                     formats=("saved_model",)):
  """SavedModel with `generate(z [N, z_dim] float32, label [N] int64) -> {"images"}` and both
  networks' weights by name in its `weights` attribute (so it can be a transfer source).
  `moments`: the generator's batch-norm statistics when serving (None: moving averages;
  'calibrated': per-class statistics from `nets.gan.calibrate_class_moments`). The export goes
  to `export_dir/<version>/` with a model card (`runtime.export`). It rejects labels outside
  the generator's classes, a label count that differs from the noise rows and non-finite noise
  with an InvalidArgumentError."""
  spec = [tf.TensorSpec([None, generator.z_dim], tf.float32, name="z"),
          tf.TensorSpec([None], tf.int64, name="label")]

  @tf.function(input_signature=spec)
  def generate(z, label):
    checks = [tf.debugging.assert_equal(tf.shape(z)[0], tf.shape(label)[0],
                                        message="z and label need the same number of rows"),
              tf.debugging.assert_all_finite(z, "z must be finite")]
    if generator.num_classes:
      checks += [tf.debugging.assert_non_negative(label, message="labels must be >= 0"),
                 tf.debugging.assert_less(label, tf.constant(generator.num_classes, tf.int64),
                                          message=f"labels must be < {generator.num_classes} "
                                                  "(the generator's classes)")]
    with tf.control_dependencies(checks):
      return {"images": tf.identity(generator(z, label, training=False, moments=moments))}

  weights = {"generator": named_weights(generator), "critic": named_weights(critic)}
  card = {**(card or {}), "generator": {  # what a reader needs to sample (lamp-tf-sample)
      "num_classes": generator.num_classes, "z_dim": generator.z_dim, "z": "standard normal",
      "value_range": "-1,1"}}
  return export.export_saved_model(export_dir, {"generate": generate}, [generator, critic],
                                   named_weights=weights, version=version, card=card,
                                   formats=formats,
                                   input_ranges={"label": (0, generator.num_classes or 1)})
