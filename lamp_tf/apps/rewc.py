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

from lamp_tf.continual import rewc_experiment, rotation, sequential
from lamp_tf.runtime import flags as runtime_flags

FLAGS = flags.FLAGS

runtime_flags.define_runtime_flags("rewc")
flags.adopt_module_key_flags(runtime_flags)
flags.DEFINE_string("dataset", "mnist5k", "Data set name (see lamp_tf.data.sources).")
flags.DEFINE_string("tasks", "0,1,2,3,4/5,6,7,8,9", "Class-incremental tasks: '/' between tasks.")
flags.DEFINE_enum("model", "lenet", ["lenet", "mlp", "vgg"], "Classifier architecture.")
flags.DEFINE_integer("image_size", 32, "Images are padded (or resized) to this size.",
                     lower_bound=8, upper_bound=512)
flags.DEFINE_enum("resize", "pad", ["pad", "resize"], "How images reach --image_size.")
flags.DEFINE_integer("max_train", 0, "Use at most this many training images (0: all).",
                     lower_bound=0)
flags.DEFINE_list("methods", ["ft", "ewc", "rewc"], "Methods: ft, ewc, rewc.")
flags.DEFINE_list("rotate", ["all_no_last"], "R-EWC variants: fc, conv, all, all_no_last.")
flags.DEFINE_list("lambdas", ["1", "10", "100", "1000", "10000"], "EWC/R-EWC weights to sweep.")
flags.DEFINE_list("seeds", ["0"], "Seeds; tables show mean and std over them.")
flags.DEFINE_integer("epochs", 5, "Epochs per task.", lower_bound=1)
flags.DEFINE_integer("batch_size", 100, "Global batch size.", lower_bound=1)
flags.DEFINE_float("lr", 1e-3, "Adam learning rate (the optimiser is reset every task).",
                   lower_bound=0.0)
flags.DEFINE_list("optimizer", ["adam"],
                  "Optimisers, each a row of the tables: adam (reference) and/or sgd (plain "
                  "gradient descent, blind to the rotation: R-EWC at λ=0 equals FT).")
flags.DEFINE_float("sgd_lr", 0.5, "Learning rate of --optimizer=sgd.", lower_bound=0.0)
flags.DEFINE_float("validation_fraction", 0.1,
                   "Share of each class's training images held out for validation (λ selection "
                   "and, by default, the Fisher).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("fisher_split", "validation", list(sequential.FISHER_SPLITS),
                  "Images for the rotations and the Fisher: validation (reference) or train.")
flags.DEFINE_enum("output_rotation", "paper", list(rotation.OUTPUT_ROTATIONS),
                  "Output-side rotation: U2 as the paper (diagonalises the Fisher) or the "
                  "reference code's U2ᵀ.")
flags.DEFINE_integer("fisher_samples", 200,
                     "Images of each finished task (equal per class) for rotations and Fisher.",
                     lower_bound=1)
flags.DEFINE_enum("fisher", "true", ["true", "empirical"],
                  "Fisher with labels sampled from the model (true) or the data labels.")
flags.DEFINE_enum("fisher_mode", "replace", ["replace", "accumulate"],
                  "After each task replace the EWC term (paper) or add one more.")
flags.DEFINE_enum("conv_factor", "channel", ["channel", "patch"],
                  "Convolution rotations over channels (paper) or im2col patches (EKFAC).")
flags.DEFINE_enum("loss", "sigmoid", ["sigmoid", "softmax"],
                  "Task loss over the task's logits: sigmoid cross-entropy on one-hot targets "
                  "(the reference code) or softmax cross-entropy.")
flags.DEFINE_enum("loss_classes", "unseen", ["unseen", "task"],
                  "Logits the task loss covers: classes not learned yet (reference code) or "
                  "the current task's only.")
flags.DEFINE_integer("fisher_batch_size", 100, "Examples per vectorised Fisher Jacobian.",
                     lower_bound=1)


def experiment_config():
  """The ExperimentConfig of the parsed flags (each field from the flag of its name)."""
  return runtime_flags.config_from_flags(
      rewc_experiment.ExperimentConfig,
      train=runtime_flags.config_from_flags(sequential.RunConfig, method="ft", lam=0.0, seed=0,
                                            optimizer="adam", rotate=sequential.RunConfig.rotate),
      methods=tuple(FLAGS.methods), rotate=tuple(FLAGS.rotate),
      lambdas=tuple(runtime_flags.floats(FLAGS.lambdas, "lambdas", minimum=0.0)),
      seeds=tuple(runtime_flags.ints(FLAGS.seeds, "seeds", minimum=0, distinct=True)),
      optimizers=tuple(FLAGS.optimizer))


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  cfg = experiment_config()
  if FLAGS.export_only:
    rewc_experiment.export_only(rt, cfg, FLAGS.workdir, FLAGS.export_dir,
                                runtime_flags.flag_values())
    return
  rewc_experiment.train_and_evaluate(rt, cfg, FLAGS.workdir, export_dir=FLAGS.export_dir,
                                     flags=runtime_flags.flag_values())


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
