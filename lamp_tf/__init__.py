"""lamp_tf: R-EWC, Transferring GANs, MeRGAN and Mix-and-match networks in TensorFlow 2 / Keras 3."""

import os
import time

# When the program started, as near as the package can tell (it is imported before TensorFlow):
# the training loop reports the time from here to the first training step.
LAUNCH_TIME = time.time()

# TensorFlow's C++ start-up chatter stays off the terminal unless asked for (LAMP_TF_VERBOSE=1,
# or TF_CPP_MIN_LOG_LEVEL set by the user); set before any lamp_tf module imports TensorFlow.
if not os.environ.get("LAMP_TF_VERBOSE"):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
