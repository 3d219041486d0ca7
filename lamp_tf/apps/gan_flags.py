"""Flags shared by the GAN programs (transfer-gan, mergan, evaluate) and what they build."""

from absl import flags

from lamp_tf.nets import gan as gan_nets

FLAGS = flags.FLAGS


def define_network_flags():
  flags.DEFINE_enum("architecture", "dcgan", list(gan_nets.ARCHITECTURES), "Networks.")
  flags.DEFINE_enum("conditioning", "cbn", ["cbn", "concat"], "Generator conditioning.")
  flags.DEFINE_integer("resolution", 32, "Image size.", lower_bound=8, upper_bound=256)
  flags.DEFINE_integer("channels", 1, "Image channels (1 or 3).", lower_bound=1, upper_bound=3)
  flags.DEFINE_integer("g_width", 0, "Generator width (0: architecture default).",
                       lower_bound=0)
  flags.DEFINE_integer("d_width", 0, "Critic width (0: architecture default).", lower_bound=0)


def define_training_flags():
  flags.DEFINE_integer("batch_size", 64, "Global batch size.", lower_bound=2)
  flags.DEFINE_integer("n_critic", 5, "Critic updates per generator update.", lower_bound=1)
  flags.DEFINE_float("lr", 1e-4, "Adam learning rate (beta1 0, beta2 0.9).", lower_bound=0.0)
  flags.DEFINE_float("gp_weight", 10.0, "Gradient penalty weight.", lower_bound=0.0)
  flags.DEFINE_float("ac_weight", 1.0, "AC-GAN classification weight.", lower_bound=0.0)


def define_scoring_flags():
  flags.DEFINE_integer("classifier_steps", 2000, "Training steps of the real-data classifier "
                       "(features of FID/KID, accuracy of samples).", lower_bound=1)
  flags.DEFINE_string("inception_weights", None,
                      "Keras InceptionV3 no-top weights file: FID on Inception features.")


def gan_config(num_classes, conditioning=None):
  """The kwargs of nets.gan.make_gan for the flags (conditioning: the flag's by default)."""
  return gan_nets.gan_kwargs(FLAGS, num_classes, conditioning)
