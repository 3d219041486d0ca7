r"""lamp-tf-mergan: sequential class-conditional GANs without forgetting (MeRGAN) and baselines.

  lamp-tf-mergan --flagfile=flags/mergan_mnist_5tasks.cfg --workdir=runs/mergan_mnist_5tasks

Runs every --methods entry (jt, sft, ewc, dgr, jtr, ra) for every seed over the tasks, each
resumable mid-task; after every task it scores the generator on the classes seen so far
(accuracy of a real-data classifier on its samples, reverse accuracy, FID/KID on that
classifier's features). Writes the table in the shape of the paper's Table 1 (rows: data set and
number of tasks; columns: methods), the fixed-z grids (one row per class, one column per task,
same z throughout), the t-SNE of task-1 samples after the last task and accuracy-per-task curves
to REPORT.md / results.json / TensorBoard, and exports the best continual generator as a
SavedModel `generate(z, label) -> images`.
"""

from absl import app, flags

from lamp_tf.apps import gan_flags
from lamp_tf.continual import mergan, mergan_experiment
from lamp_tf.data import tasks as tasks_lib
from lamp_tf.runtime import flags as runtime_flags, settings

FLAGS = flags.FLAGS

runtime_flags.define_runtime_flags("mergan")
flags.adopt_module_key_flags(runtime_flags)
gan_flags.define_network_flags()
gan_flags.define_training_flags()
gan_flags.define_scoring_flags()
flags.adopt_module_key_flags(gan_flags)
flags.DEFINE_string("dataset", "mnist5k", "Data set '<name>[:<classes>]' (see lamp_tf.data).")
flags.DEFINE_string("test_split", "test", "Held-out split for evaluation ('validation' for LSUN, "
                    "which has no test split).")
flags.DEFINE_string("tasks", "0/1/2/3/4/5/6/7/8/9",
                    "Tasks: classes separated by ',', tasks by '/' (the paper: one class per "
                    "task, '0/1/2/3/4/5/6/7/8/9').")
flags.DEFINE_list("methods", list(mergan.METHODS), "Methods: jt, sft, ewc, dgr, jtr, ra.")
flags.DEFINE_list("seeds", ["0"], "Seeds (tables: mean and std).")
flags.DEFINE_integer("iterations", 4001, "Generator updates per task (the paper: 4001).",
                     lower_bound=1)
flags.DEFINE_integer("first_task_iterations", 0, "Generator updates of the first task, which "
                     "starts from an untrained generator (0: --iterations).", lower_bound=0)
flags.DEFINE_bool("share_first_task", True, "Train the first task once per seed and start every "
                  "conditional method (all but DGR) from it: they train the identical task.")
flags.DEFINE_float("ra_weight", 1e-3, "Replay alignment weight (the reference's RA_FACTOR: 1e-3 "
                   "on MNIST and LSUN, 1e-2 on SVHN).", lower_bound=0.0)
flags.DEFINE_list("ewc_weights", ["1e9"], "EWC weights on the generator: one EWC run per value "
                  "(a sweep; the paper: about 1e9).")
flags.DEFINE_enum("sample_bn", "batch", list(mergan.SAMPLE_BN), "Generator batch norm when "
                  "sampling, replaying and aligning: batch = per-class batch moments (the "
                  "reference), moving = moving averages.")
flags.DEFINE_enum("replay_batch", "split", list(mergan.REPLAY_BATCH), "Replayed samples per "
                  "step: split = batch // n_old per old class (the reference on MNIST/SVHN), "
                  "per_class = a batch per old class (the reference on LSUN).")
flags.DEFINE_enum("jtr", "reference", list(mergan.JTR_MODES), "MeRGAN-JTR: reference = "
                  "per-class replay terms, old samples as real, no GP on replays; union = real "
                  "and replayed batches joined (the project's earlier variant).")
flags.DEFINE_integer("fisher_samples", 512, "Samples for the generator's Fisher.", lower_bound=1)
flags.DEFINE_integer("solver_steps", 1000, "DGR classifier steps per task.", lower_bound=1)
flags.DEFINE_integer("eval_samples", 6400, "Generated images per class per evaluation (the "
                     "reference: 100 x 64).", lower_bound=2)
flags.DEFINE_integer("reverse_steps", 500, "Training steps of the reverse-accuracy classifier.",
                     lower_bound=1)
flags.DEFINE_integer("tsne_samples", 300, "Task-1 samples per method in the t-SNE figure.",
                     lower_bound=10)


def _valid_tasks(spec):
  try:
    tasks_lib.parse_tasks(spec)
  except ValueError as e:
    raise flags.ValidationError(str(e).replace(f"--tasks={spec!r}: ", "")) from None
  return True


def _valid_seeds(values):
  try:
    seeds = [int(v) for v in values]
  except ValueError:
    raise flags.ValidationError("expected integers, e.g. --seeds=0,1,2.") from None
  if len(set(seeds)) != len(seeds) or not seeds:
    raise flags.ValidationError("give each seed once, at least one.")
  return True


flags.register_validator("tasks", _valid_tasks)
flags.register_validator(
    "methods", lambda m: bool(m) and set(m) <= set(mergan.METHODS),
    f"unknown method; choose from {', '.join(mergan.METHODS)} (comma-separated).")
flags.register_validator("seeds", _valid_seeds)


def _valid_weights(values):
  try:
    weights = [float(v) for v in values]
  except ValueError:
    raise flags.ValidationError("expected numbers, e.g. --ewc_weights=1e3,1e6,1e9.") from None
  if not weights or any(w < 0 for w in weights) or len(set(weights)) != len(weights):
    raise flags.ValidationError("give each weight once, each >= 0.")
  return True


flags.register_validator("ewc_weights", _valid_weights)


def experiment_config():
  """The ExperimentConfig of the parsed flags (each field from the flag of its name)."""
  seeds = tuple(int(s) for s in FLAGS.seeds)
  return settings.from_flags(
      mergan_experiment.ExperimentConfig,
      train=settings.from_flags(mergan.MerganConfig, method=FLAGS.methods[0], seed=seeds[0]),
      gan=gan_flags.gan_config(None, conditioning=FLAGS.conditioning),
      methods=tuple(FLAGS.methods), seeds=seeds,
      ewc_weights=tuple(float(w) for w in FLAGS.ewc_weights))


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  try:
    cfg = experiment_config()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.export_only:
    records = runtime_flags.finished_results(FLAGS.workdir)["runs"]
    mergan_experiment.Experiment(rt, cfg, FLAGS.workdir).export_best(
        rt, records, FLAGS.export_dir, rt.export_version, runtime_flags.flag_values())
    return
  mergan_experiment.train_and_evaluate(rt, cfg, FLAGS.workdir, export_dir=FLAGS.export_dir,
                                       export_version=rt.export_version,
                                       flags=runtime_flags.flag_values())


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
