r"""lamp-tf-rewc: class-incremental classification with fine-tuning, EWC and R-EWC.

  lamp-tf-rewc --flagfile=flags/rewc_mnist.cfg --workdir=runs/rewc_mnist

Sweeps optimisers x methods x rotation variants x lambdas x seeds; every run resumes from its
checkpoint and a finished run is not trained again. A run whose loss becomes non-finite (plain
SGD with a penalty λ·F beyond its step size's stability limit) is recorded as diverged and the
sweep goes on: a λ that diverged on any seed is shown as such and never selected. A validation
split is carved from the training data of every class (--validation_fraction); lambda is
selected per method on validation average accuracy and test accuracy is reported at that lambda
(the test-selected lambda stays as a labelled oracle column), with per-seed wins against EWC and
paired tests over the seeds. Writes the paper-shaped table (rows FT, EWC, R-EWC variants per
optimiser; columns lambda; cells per-task accuracy after the last task, mean +- std over seeds),
accuracy-matrix heatmaps, Fisher diagonal energy before/after rotation and the lambda sweep to
REPORT.md / results.json / TensorBoard, and exports the best classifier as a SavedModel
(uint8 images in, class probabilities out).
"""

from absl import flags

from lamp_tf.continual import rewc_experiment
from lamp_tf.runtime import flags as runtime_flags, settings

runtime_flags.define_runtime_flags("rewc")
flags.adopt_module_key_flags(runtime_flags)
settings.define_flags(rewc_experiment.ExperimentConfig)


def experiment_config():
  """The ExperimentConfig of the parsed flags (its fields and `train`'s define them)."""
  return settings.from_flags(rewc_experiment.ExperimentConfig)


main = runtime_flags.experiment_main(rewc_experiment, experiment_config)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
