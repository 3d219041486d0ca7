"""Test set-up: quiet TF, and two logical CPU devices so mirrored training runs in-process."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Classifiers the tests train are cached apart from a user's cache.
os.environ.setdefault("LAMP_TF_CACHE", os.path.join(tempfile.gettempdir(), "lamp_tf_test_cache"))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from lamp_tf.runtime import strategy  # noqa: E402

strategy.split_cpu(2)
