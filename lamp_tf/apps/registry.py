"""The programs and the experiments `lamp-tf-reproduce` runs: the one list a new program joins.

`setup.py` makes a console script of every `PROGRAMS` entry (it reads this file without
importing the package, so keep it free of imports beyond the standard library), `BUILD` makes a
`py_binary` of every program module (a test checks it matches), and the flag-file tests take the
programs, their flag-file prefixes and their own flags from here.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Program:
  """A console script `lamp-tf-<name with '-'>` running `lamp_tf.apps.<name>:run`; its flag
  files are `flags/<name>_*.cfg` (none for the programs that take no flag file)."""

  name: str
  flag_files: bool = True

  @property
  def module(self):
    return f"lamp_tf.apps.{self.name}"

  @property
  def script(self):
    return "lamp-tf-" + self.name.replace("_", "-")


PROGRAMS = (
    Program("rewc"),
    Program("transfer_gan"),
    Program("mergan"),
    Program("mixmatch"),
    Program("style_transfer"),
    Program("evaluate", flag_files=False),
    Program("sample", flag_files=False),
    Program("reproduce", flag_files=False),
)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One method's experiments: the program module and its flag files per preset."""

  method: str   # section title in the combined report
  program: str  # module run as `python -m <program>`
  presets: dict  # preset name ('quick', 'paper') -> list of flag files under flags/
  # preset -> seconds of the program alone on 2 idle cores, for the overall ETA of
  # lamp-tf-reproduce (quick: `lamp-tf-reproduce --preset=quick --jobs=1` of 2026-12-03 from
  # an empty classifier cache and TFDS directory, 412 s in all, rounded up)
  expected_s: dict = dataclasses.field(default_factory=dict)


EXPERIMENTS = (
    Experiment("R-EWC", "lamp_tf.apps.rewc", {
        # rewc_fashion_quick.cfg stays out of the demo: at its budget R-EWC does not beat EWC
        # (the Fashion-MNIST claim is rewc_fashion.cfg's, 5 seeds).
        "quick": ["rewc_mnist_quick.cfg"],
        "paper": ["rewc_mnist.cfg", "rewc_fashion.cfg"],
    }, expected_s={"quick": 30}),
    Experiment("Transferring GANs", "lamp_tf.apps.transfer_gan", {
        "quick": ["transfer_gan_quick.cfg"],
        "paper": ["transfer_gan_table1.cfg", "transfer_gan_fashion.cfg"],
    }, expected_s={"quick": 100}),
    Experiment("MeRGAN", "lamp_tf.apps.mergan", {
        "quick": ["mergan_mnist_quick.cfg"],
        "paper": ["mergan_mnist_5tasks.cfg", "mergan_fashion_5tasks.cfg"],
    }, expected_s={"quick": 110}),
    Experiment("Mix-and-match networks", "lamp_tf.apps.mixmatch", {
        "quick": ["mixmatch_quick.cfg"],
        "paper": ["mixmatch_scenes.cfg"],
    }, expected_s={"quick": 110}),
    Experiment("Mix-and-match style transfer", "lamp_tf.apps.style_transfer", {
        "quick": ["style_transfer_quick.cfg"],
        "paper": ["style_transfer_scenes.cfg"],
    }, expected_s={"quick": 90}),
)
