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

import os

import numpy as np
from absl import app, flags, logging

from lamp_tf.apps import gan_flags
from lamp_tf.continual import mergan
from lamp_tf.data import gan_data, preprocess, tasks as tasks_lib
from lamp_tf.metrics import features as features_lib, seen_classes
from lamp_tf.runtime import figures, flags as runtime_flags, results

FLAGS = flags.FLAGS
PROGRAM = "lamp-tf-mergan"
NAMES = {"jt": "JT", "sft": "SFT", "ewc": "EWC", "dgr": "DGR", "jtr": "MeRGAN-JTR",
         "ra": "MeRGAN-RA"}

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


def run_specs():
  """(label, method, EWC weight) of every run of a seed, in --methods order; EWC once per
  --ewc_weights value."""
  weights = [float(w) for w in FLAGS.ewc_weights]
  specs = []
  for m in FLAGS.methods:
    for w in (weights if m == "ewc" else weights[:1]):
      specs.append((f"EWC λ={w:g}" if m == "ewc" and len(weights) > 1 else NAMES[m], m, w))
  return specs


# The paper's Table 1 (accuracy %), for the rows it has.
PAPER_ACCURACY = {
    ("mnist", 5): {"jt": 97.66, "sft": 19.87, "ewc": 70.62, "dgr": 90.39, "jtr": 97.93,
                   "ra": 98.19},
    ("mnist", 10): {"jt": 96.92, "sft": 10.06, "ewc": 77.03, "dgr": 85.40, "jtr": 97.00,
                    "ra": 97.01},
    ("svhn", 10): {"jt": 84.82, "sft": 10.10, "ewc": 33.02, "dgr": 47.28, "jtr": 66.50,
                   "ra": 66.78},
}


def table_rows(num_tasks):
  """The tasks after which Table 1 reports (the paper: after the 5th and the 10th), and the
  last."""
  return sorted({t for t in (5, 10) if t <= num_tasks} | {num_tasks})


def table1(records, key, num_tasks, scale=100.0, paper=None):
  """Rows 'after task k' x columns runs (by label), mean ± std over seeds of `<key>_per_task`;
  with `paper` ({k: {method: value}}), the paper's row under each of ours."""
  columns = [(label, method) for label, method, _ in run_specs()]
  rows = []
  for k in table_rows(num_tasks):
    rows.append([f"after task {k}"] + [
        results.mean_std([r[f"{key}_per_task"][k - 1] for r in records if r["label"] == label],
                         scale) for label, _ in columns])
    if paper and k in paper:
      rows.append([f"paper, after task {k}"] + [paper[k].get(m, "-") for _, m in columns])
  return results.markdown_table([""] + [label for label, _ in columns], rows)


def claims(records, first_classes):
  """The talk's claim on MeRGAN: after the last task, SFT keeps under half of what it had of
  the first task's classes after task 1, while JTR and RA keep at least 80% of it (mean over
  seeds)."""
  keep = {}
  for m in ("sft", "jtr", "ra"):
    rs = [r for r in records if r["method"] == m]
    if not rs or len(rs[0]["first_task_accuracy_per_task"]) < 2:
      return []
    first = np.mean([r["first_task_accuracy_per_task"][0] for r in rs])
    last = np.mean([r["first_task_accuracy_per_task"][-1] for r in rs])
    keep[m] = (100 * first, 100 * last)
  evidence = (f"accuracy on class(es) {first_classes} after task 1 → after the last task: " +
              ", ".join(f"{NAMES[m]} {a:.1f}% → {b:.1f}%" for m, (a, b) in keep.items()))
  holds = (keep["sft"][1] < 0.5 * keep["sft"][0] and
           all(keep[m][1] >= 0.8 * keep[m][0] for m in ("jtr", "ra")))
  return [results.claim("SFT forgets the first class while MeRGAN-JTR and MeRGAN-RA keep it",
                        evidence, holds)]


def paper_rows(dataset):
  family = "mnist" if dataset.startswith("mnist") else "svhn" if dataset.startswith("svhn") \
      else None
  return {k: v for (f, k), v in PAPER_ACCURACY.items() if f == family}


def grid_figure(grids, class_names, label, classes):
  """Fixed-z grid: one row per class of the tasks, one column per task (blank before a class
  is seen)."""
  grids = grids[:, list(classes)]
  t, k = grids.shape[:2]
  images = preprocess.unscale(np.transpose(grids, [1, 0, 2, 3, 4]).reshape(k * t, *grids.shape[2:]))
  grid = figures.image_grid(images.numpy(), k, t)
  fig = figures.image(grid, f"{label}: rows = classes, columns = after task 1..{t}",
                      width=max(3.0, 0.9 * t))
  return fig, grid


def tsne_figure(samplers, classifier, real_task1, task1_classes, seed):
  """t-SNE of task-1 samples after the last task (a panel per method, real task-1 images in
  grey), on the real-data classifier's features."""
  from sklearn.manifold import TSNE
  n = FLAGS.tsne_samples
  real = real_task1[:n]
  feats, groups = [classifier.features(real)], ["real"] * len(real)
  labels = np.asarray(task1_classes, np.int64)[np.arange(n) % len(task1_classes)]
  for label, generate in samplers.items():
    feats.append(classifier.features(generate(labels, seed)))
    groups += [label] * n
  feats = np.concatenate(feats)
  perplexity = min(30.0, (len(feats) - 1) / 3)  # scikit-learn needs perplexity < samples
  emb = TSNE(2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(feats)
  groups = np.array(groups)
  fig, axes = figures.plt.subplots(1, len(samplers), figsize=(3.2 * len(samplers), 3.4),
                                   squeeze=False)
  for ax, label in zip(axes[0], samplers):
    ax.scatter(*emb[groups == "real"].T, s=3, c="lightgray", label="real task 1")
    ax.scatter(*emb[groups == label].T, s=3, c="tab:red", label="generated task 1")
    ax.set_title(label)
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0][0].legend(fontsize=7, markerscale=3)
  fig.suptitle("t-SNE of task-1 samples after the last task")
  return fig


def config(method, seed, ewc_weight=None):
  return runtime_flags.config_from_flags(
      mergan.MerganConfig, method=method, seed=seed,
      ewc_weight=float(FLAGS.ewc_weights[0]) if ewc_weight is None else ewc_weight)


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  seeds = runtime_flags.ints(FLAGS.seeds, "seeds", minimum=0, distinct=True)
  load = lambda split: gan_data.load_gan_data(FLAGS.dataset, split, FLAGS.resolution,
                                              FLAGS.channels, FLAGS.data_dir, FLAGS.download)
  train, test = load("train"), load(FLAGS.test_split)
  try:
    task_list = tuple(tuple(t) for t in tasks_lib.parse_tasks(FLAGS.tasks, train.num_classes))
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  num_tasks = len(task_list)
  old_max = sum(len(t) for t in task_list[:-1])
  if {"ra", "jtr"} & set(FLAGS.methods) and FLAGS.replay_batch == "split" \
      and FLAGS.batch_size < old_max:
    raise app.UsageError(f"--batch_size={FLAGS.batch_size} is smaller than the {old_max} old "
                         "classes of the last task: --replay_batch=split gives each old class "
                         "batch // n_old samples; raise --batch_size or use per_class.")
  try:
    for method in FLAGS.methods:
      config(method, seeds[0])
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  gan_config = gan_flags.gan_config(train.num_classes)
  image_shape = train.images.shape[1:]
  def run_dir(method, seed, ewc_weight=None):
    name = f"ewc{ewc_weight:g}" if method == "ewc" else method
    return os.path.join(FLAGS.workdir, "runs", f"{name}_seed{seed}")

  first_budget = FLAGS.first_task_iterations or FLAGS.iterations
  first_task_dir = lambda seed: os.path.join(FLAGS.workdir, "runs",
                                             f"first_task_seed{seed}_{first_budget}it")
  continual = [m for m in FLAGS.methods if m not in ("jt", "dgr")] or \
      [m for m in FLAGS.methods if m != "dgr"]

  def export_best(records):
    candidates = [r for r in records if r["method"] in continual]
    if not candidates:
      logging.info("no conditional generator to export (only DGR was run)")
      return
    best = max(candidates, key=lambda r: r["accuracy"])
    cfg = config(best["method"], best["seed"], best["ewc_weight"])
    nets = mergan.restore_networks(rt, cfg, gan_config, image_shape, num_tasks,
                                   run_dir(best["method"], best["seed"], best["ewc_weight"]))
    card = runtime_flags.model_card(
        PROGRAM, {k: best[k] for k in ("accuracy", "reverse_accuracy", "fid", "kid")},
        method=best["method"], seed=best["seed"], data=FLAGS.dataset, tasks=FLAGS.tasks)
    path = mergan.export(cfg, nets, sorted(c for t in task_list for c in t), FLAGS.export_dir,
                         version=rt.export_version, card=card)
    logging.info("exported %s seed %d (accuracy %.4f) to %s", best["method"], best["seed"],
                 best["accuracy"], path)

  if FLAGS.export_only:
    export_best(runtime_flags.finished_results(FLAGS.workdir)["runs"])
    return

  classifier = features_lib.DomainClassifier.train_or_load(
      features_lib.cache_dir(), train.images, train.labels, test.images,
      test.labels, train.num_classes, steps=FLAGS.classifier_steps)
  evaluator = seen_classes.SeenClassesEvaluator(
      classifier, test.images, test.labels, train.num_classes,
      samples_per_class=FLAGS.eval_samples, reverse_steps=FLAGS.reverse_steps)
  # Fixed noise of the grids: a batch of 64 per class (batch statistics), the first one shown.
  grid_z = np.random.default_rng(1234).normal(size=[train.num_classes, 64, 128]).astype(
      np.float32)
  records = []
  for seed in seeds:
    first = None
    if FLAGS.share_first_task and any(m != "dgr" for m in FLAGS.methods):
      first = first_task_dir(seed)
      if not os.path.exists(os.path.join(first, results.RECORD)):
        rt.seed(seed)
        logging.info("shared first task, seed %d", seed)
        record = mergan.run(rt, config("sft", seed), gan_config, train.images, train.labels,
                            task_list[:1], first, evaluator, grid_z)
        if rt.is_chief:
          results.save_record(first, record)
    for label, method, weight in run_specs():
      directory = run_dir(method, seed, weight)
      record = results.load_record(directory)
      if record is None:
        rt.seed(seed)
        logging.info("run %s seed %d", label, seed)
        record = mergan.run(rt, config(method, seed, weight), gan_config, train.images,
                            train.labels, task_list, directory, evaluator, grid_z,
                            init_from=None if method == "dgr" else first)
        record = {"dataset": FLAGS.dataset, "num_tasks": num_tasks, **record,
                  "code_version": results.code_version()}
        if rt.is_chief:
          results.save_record(directory, record)
      record["label"] = label
      logging.info("%s seed %d: accuracy %.4f reverse %.4f FID %.2f", label, seed,
                   record["accuracy"], record["reverse_accuracy"], record["fid"])
      records.append(record)
  if not rt.is_chief:
    return

  figs, writer = [], rt.writer("summary")
  for label, method, weight in run_specs():
    grids = np.load(os.path.join(run_dir(method, seeds[0], weight), "grids.npy"))
    fig, grid = grid_figure(grids, train.class_names, label,
                            [c for task in task_list for c in task])
    name = f"grid_ewc{weight:g}.png" if method == "ewc" else f"grid_{method}.png"
    results.save_figure(fig, os.path.join(FLAGS.workdir, name), writer)
    writer.write_images(num_tasks, {f"fixed_z_grid/{name[5:-4]}": grid})
    figs.append(name)
  curves = {label: (100 * np.mean([r["accuracy_per_task"] for r in records
                                   if r["label"] == label], axis=0), None)
            for label, _, _ in run_specs()}
  curve = figures.lines(list(range(1, num_tasks + 1)), curves,
                        "Accuracy on the classes seen so far", "after task", "accuracy %")
  results.save_figure(curve, os.path.join(FLAGS.workdir, "accuracy.png"), writer)
  figs.append("accuracy.png")
  tsne_runs = [(label, m, w) for label, m, w in run_specs() if m in ("sft", "ewc", "jtr", "ra")]
  if tsne_runs:
    samplers = {label: mergan.sampler(config(m, seeds[0], w), mergan.restore_networks(
        rt, config(m, seeds[0], w), gan_config, image_shape, num_tasks,
        run_dir(m, seeds[0], w)), list(range(train.num_classes))) for label, m, w in tsne_runs}
    task1 = test.images[np.isin(test.labels, task_list[0])]
    results.save_figure(tsne_figure(samplers, classifier, task1, task_list[0], seeds[0]),
                        os.path.join(FLAGS.workdir, "tsne_task1.png"), writer)
    figs.append("tsne_task1.png")
  per_task = lambda key: results.markdown_table(
      ["method"] + [f"after task {t + 1}" for t in range(num_tasks)],
      [[label] + [results.mean_std([r[key][t] for r in records if r["label"] == label], 100.0)
                  for t in range(num_tasks)] for label, _, _ in run_specs()])
  first_budget = FLAGS.first_task_iterations or FLAGS.iterations
  shared = [r for r in records if r.get("shared_first_task")]
  setup = (f"`{FLAGS.dataset}`, tasks `{FLAGS.tasks}` ({num_tasks} tasks); {FLAGS.architecture} "
           f"{FLAGS.resolution}x{FLAGS.resolution} AC-GAN ({FLAGS.conditioning}), "
           f"{first_budget} generator updates on the first task and {FLAGS.iterations} on each "
           f"later one (the paper: 4001), batch {FLAGS.batch_size}, {FLAGS.n_critic} critic "
           f"steps, Adam {FLAGS.lr:g} (0, 0.9) reset every task, RA weight {FLAGS.ra_weight:g}, "
           f"EWC weights {', '.join(FLAGS.ewc_weights)}, generator batch norm when sampling: "
           f"{FLAGS.sample_bn}, replays: {FLAGS.replay_batch}, JTR: {FLAGS.jtr}; seeds "
           f"{FLAGS.seeds}." + (" The first task was trained once per seed and shared by "
                                f"{', '.join(sorted({r['label'] for r in shared}))}."
                                if shared else "") +
           " Training wall time per run, first task included (s): " + ", ".join(
               f"{r['label']} {r['train_wall_time_s']:.0f}" for r in records
               if r["seed"] == seeds[0]) + f". Scores on {FLAGS.eval_samples} samples per "
           f"class; the real-data classifier (test accuracy {classifier.test_accuracy:.4f}) "
           "gives the accuracy and the FID features.")
  paper = paper_rows(FLAGS.dataset)
  sections = [
      ("Setup", setup),
      ("Accuracy % (the paper's Table 1)", table1(records, "accuracy", num_tasks,
                                                   paper=paper) +
       ("\n\nThe paper's rows are on full MNIST at 4001 updates per task; ours at the budget "
        "above." if set(paper) & set(table_rows(num_tasks)) else "")),
      ("Reverse accuracy %", table1(records, "reverse_accuracy", num_tasks)),
      ("FID (classifier features)", table1(records, "fid", num_tasks, scale=1.0)),
      ("Accuracy % on the classes seen so far, after each task",
       per_task("accuracy_per_task")),
      (f"Accuracy % on the first task's classes {list(task_list[0])}, after each task",
       per_task("first_task_accuracy_per_task")),
      ("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)),
  ]
  writer.flush()
  claim_list = claims(records, list(task_list[0]))
  results.write_results(FLAGS.workdir, PROGRAM, runtime_flags.flag_values(), records, figs,
                        claim_list)
  results.write_report(FLAGS.workdir, "MeRGAN: memory replay GANs", sections, claim_list)
  export_best(records)


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
