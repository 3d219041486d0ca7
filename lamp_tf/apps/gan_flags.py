"""Flags shared by the GAN programs (transfer-gan, mergan, evaluate) and what they build."""

from absl import flags

from lamp_tf.gan import training
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import settings

FLAGS = flags.FLAGS


def define_network_flags():
  flags.DEFINE_enum("architecture", "dcgan", list(gan_nets.ARCHITECTURES), "Networks.")
  flags.DEFINE_enum("conditioning", "cbn", ["cbn", "concat"], "Generator conditioning.")
  flags.DEFINE_integer("resolution", 32, "Image size.", lower_bound=8, upper_bound=256)
  flags.DEFINE_integer("channels", 1, "Image channels (1 or 3).", lower_bound=1, upper_bound=3)
  flags.DEFINE_integer("g_width", 0, "Generator width (0: architecture default).",
                       lower_bound=0)
  flags.DEFINE_integer("d_width", 0, "Critic width (0: architecture default).", lower_bound=0)


def define_training_flags(exclude=("ema_decay", "eval_every")):
  """The flags of `training.TrainConfig`'s settings (a program that nests the config in its own
  defines them with it instead)."""
  settings.define_flags(training.TrainConfig, exclude=exclude)


def define_scoring_flags():
  flags.DEFINE_integer("classifier_steps", 2000, "Training steps of the real-data classifier "
                       "(features of FID/KID, accuracy of samples).", lower_bound=1)
  flags.DEFINE_string("inception_weights", None,
                      "Keras InceptionV3 no-top weights file: FID on Inception features.")


def gan_config(num_classes, conditioning=None):
  """The kwargs of nets.gan.make_gan for the flags (conditioning: the flag's by default)."""
  return gan_nets.gan_kwargs(FLAGS, num_classes, conditioning)
