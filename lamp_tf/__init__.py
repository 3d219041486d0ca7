"""lamp_tf: R-EWC, Transferring GANs, MeRGAN and Mix-and-match networks in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
