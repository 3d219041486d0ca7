r"""lamp-tf-style-transfer: mix-and-match style transfer between photo, Monet, van Gogh, Ukiyo-e
and Cézanne (5 encoders + 5 decoders through one latent; painter -> painter is zero-pair).

  lamp-tf-style-transfer --flagfile=flags/style_transfer_procedural.cfg \
      --workdir=runs/style_transfer_procedural

Trains the mix-and-match model on the anchor's pairs (per seed) and a CycleGAN per pair it never
trained, scores every ordered pair (target-domain accuracy of a domain classifier, SSIM of
luminance, FID on the classifier's features), writes REPORT.md / results.json / figures (the
5x5 grid of one input through every decoder) and exports a SavedModel with a signature
'<source>_to_<target>' per ordered pair (uint8 images in and out). Data: the procedural stand-in
(nothing to download) or TFDS `cycle_gan` (--style_source=cycle_gan). See
lamp_tf/mixmatch/style_experiment.py.
"""

from absl import flags

from lamp_tf.mixmatch import style_experiment
from lamp_tf.runtime import flags as runtime_flags, settings

runtime_flags.define_runtime_flags("style_transfer")
flags.adopt_module_key_flags(runtime_flags)
settings.define_flags(style_experiment.ExperimentConfig)


def experiment_config():
  """The ExperimentConfig of the parsed flags (its fields define them)."""
  return settings.from_flags(style_experiment.ExperimentConfig)


main = runtime_flags.experiment_main(style_experiment, experiment_config)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
