"""The experiments `lamp-tf-reproduce` runs, registered by each method's program."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One method's experiments: the program module and its flag files per preset."""

  method: str   # section title in the combined report
  program: str  # module run as `python -m <program>`
  presets: dict  # preset name ('quick', 'paper') -> list of flag files under flags/
  expected_s: dict = dataclasses.field(default_factory=dict)  # preset -> seconds on 2 cores


EXPERIMENTS = (
    Experiment("R-EWC", "lamp_tf.apps.rewc", {
        "quick": ["rewc_mnist_quick.cfg", "rewc_fashion_quick.cfg"],
        "paper": ["rewc_mnist.cfg", "rewc_fashion.cfg"],
    }),
    Experiment("Transferring GANs", "lamp_tf.apps.transfer_gan", {
        "quick": ["transfer_gan_quick.cfg"],
        "paper": ["transfer_gan_table1.cfg", "transfer_gan_fashion.cfg"],
    }),
    Experiment("MeRGAN", "lamp_tf.apps.mergan", {
        "quick": ["mergan_mnist_quick.cfg"],
        "paper": ["mergan_mnist_5tasks.cfg", "mergan_fashion_5tasks.cfg"],
    }),
    Experiment("Mix-and-match networks", "lamp_tf.apps.mixmatch", {
        "quick": ["mixmatch_quick.cfg"],
        "paper": ["mixmatch_scenes.cfg"],
    }),
)
