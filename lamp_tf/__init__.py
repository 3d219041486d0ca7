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

# TensorFlow's oneDNN kernels, on every x86 CPU unless the user says otherwise
# (TF_ENABLE_ONEDNN_OPTS=0). TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI,
# BF16 or AMX; on an AMD EPYC (Zen 3, AVX2) it ran its default kernels, where the mix-and-match
# training step took 2.0-2.4x as long as with oneDNN and the R-EWC Fisher benchmark 3x
# (issue #34, benchmarks/RESULTS.md). Read when TensorFlow loads: set before any lamp_tf module
# imports it (a process that imported TensorFlow first keeps TensorFlow's choice).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
