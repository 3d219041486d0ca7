"""A stand-in method program for the reproduce test: writes results.json, REPORT.md, a figure."""

import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from absl import app, flags  # noqa: E402

from lamp_tf.runtime import flags as runtime_flags, results  # noqa: E402

FLAGS = flags.FLAGS
runtime_flags.define_runtime_flags("fake")
flags.DEFINE_float("score", 0.0, "The score to report.")


def main(argv):
  del argv
  os.makedirs(FLAGS.workdir, exist_ok=True)
  fig, ax = plt.subplots()
  ax.plot([0, 1], [0, FLAGS.score])
  results.save_figure(fig, os.path.join(FLAGS.workdir, "curve.png"))
  runs = [{"method": "fake", "seed": 0, "score": FLAGS.score}]
  results.write_results(FLAGS.workdir, "fake", {"score": FLAGS.score}, runs, ["curve.png"])
  results.write_report(FLAGS.workdir, "Fake", [
      ("Scores", results.markdown_table(["method", "score"], [["fake", FLAGS.score]])),
      ("Curve", "![curve](curve.png)")])


if __name__ == "__main__":
  app.run(main)
