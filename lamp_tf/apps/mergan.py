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
from lamp_tf.data import gan_data, tasks as tasks_lib
from lamp_tf.gan import transfer
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
flags.DEFINE_string("tasks", "0,1/2,3/4,5/6,7/8,9",
                    "Tasks: classes separated by ',', tasks by '/'.")
flags.DEFINE_list("methods", list(mergan.METHODS), "Methods: jt, sft, ewc, dgr, jtr, ra.")
flags.DEFINE_list("seeds", ["0"], "Seeds (tables: mean and std).")
flags.DEFINE_integer("iterations", 4001, "Generator updates per task.", lower_bound=1)
flags.DEFINE_float("ra_weight", 1e-3, "Replay alignment weight (reference-code scale).",
                   lower_bound=0.0)
flags.DEFINE_float("ewc_weight", 1e9, "EWC weight on the generator.", lower_bound=0.0)
flags.DEFINE_integer("fisher_samples", 512, "Samples for the generator's Fisher.", lower_bound=1)
flags.DEFINE_integer("solver_steps", 1000, "DGR classifier steps per task.", lower_bound=1)
flags.DEFINE_integer("eval_samples", 500, "Generated images per class per evaluation.",
                     lower_bound=2)
flags.DEFINE_integer("reverse_steps", 500, "Training steps of the reverse-accuracy classifier.",
                     lower_bound=1)
flags.DEFINE_integer("tsne_samples", 300, "Task-1 samples per method in the t-SNE figure.",
                     lower_bound=10)


def table(records, row, key, scale=100.0, digits=2):
  methods = [m for m in mergan.METHODS if any(r["method"] == m for r in records)]
  cells = [results.mean_std([r[key] for r in records if r["method"] == m], scale, digits)
           for m in methods]
  return results.markdown_table([""] + [NAMES[m] for m in methods], [[row] + cells])


def grid_figure(grids, class_names, method):
  """Fixed-z grid: one row per class, one column per task (blank before a class is seen)."""
  t, k = grids.shape[:2]
  images = ((np.transpose(grids, [1, 0, 2, 3, 4]).reshape(k * t, *grids.shape[2:]) + 1) * 127.5)
  grid = figures.image_grid(images.clip(0, 255).astype(np.uint8), k, t)
  fig = figures.image(grid, f"{NAMES[method]}: rows = classes, columns = after task 1..{t}",
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
  for method, generate in samplers.items():
    feats.append(classifier.features(generate(labels, seed)))
    groups += [method] * n
  feats = np.concatenate(feats)
  perplexity = min(30.0, (len(feats) - 1) / 3)  # scikit-learn needs perplexity < samples
  emb = TSNE(2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(feats)
  groups = np.array(groups)
  fig, axes = figures.plt.subplots(1, len(samplers), figsize=(3.2 * len(samplers), 3.4),
                                   squeeze=False)
  for ax, method in zip(axes[0], samplers):
    ax.scatter(*emb[groups == "real"].T, s=3, c="lightgray", label="real task 1")
    ax.scatter(*emb[groups == method].T, s=3, c="tab:red", label="generated task 1")
    ax.set_title(NAMES[method])
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0][0].legend(fontsize=7, markerscale=3)
  fig.suptitle("t-SNE of task-1 samples after the last task")
  return fig


def config(method, seed):
  return mergan.MerganConfig(
      method=method, seed=seed, iterations=FLAGS.iterations, batch_size=FLAGS.batch_size,
      n_critic=FLAGS.n_critic, lr=FLAGS.lr, gp_weight=FLAGS.gp_weight, ac_weight=FLAGS.ac_weight,
      ra_weight=FLAGS.ra_weight, ewc_weight=FLAGS.ewc_weight, fisher_samples=FLAGS.fisher_samples,
      solver_steps=FLAGS.solver_steps)


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  bad = set(FLAGS.methods) - set(mergan.METHODS)
  if bad:
    raise app.UsageError(f"--methods: unknown {sorted(bad)}; choose from "
                         f"{', '.join(mergan.METHODS)}.")
  seeds = runtime_flags.ints(FLAGS.seeds, "seeds")
  load = lambda split: gan_data.load_gan_data(FLAGS.dataset, split, FLAGS.resolution,
                                              FLAGS.channels, FLAGS.data_dir, FLAGS.download)
  train, test = load("train"), load(FLAGS.test_split)
  task_list = tuple(tuple(t) for t in tasks_lib.parse_tasks(FLAGS.tasks, train.num_classes))
  num_tasks = len(task_list)
  gan_config = gan_flags.gan_config(train.num_classes)
  image_shape = train.images.shape[1:]
  run_dir = lambda method, seed: os.path.join(FLAGS.workdir, "runs", f"{method}_seed{seed}")
  continual = [m for m in FLAGS.methods if m not in ("jt", "dgr")] or \
      [m for m in FLAGS.methods if m != "dgr"]

  def export_best(records):
    candidates = [r for r in records if r["method"] in continual]
    if not candidates:
      logging.info("no conditional generator to export (only DGR was run)")
      return
    best = max(candidates, key=lambda r: r["accuracy"])
    nets = mergan.restore_networks(rt, config(best["method"], best["seed"]), gan_config,
                                   image_shape, num_tasks, run_dir(best["method"], best["seed"]))
    transfer.export_generator(nets.generator, nets.critic, FLAGS.export_dir)
    logging.info("exported %s seed %d (accuracy %.4f) to %s", best["method"], best["seed"],
                 best["accuracy"], FLAGS.export_dir)

  if FLAGS.export_only:
    path = os.path.join(FLAGS.workdir, results.RESULTS)
    if not os.path.exists(path):
      raise app.UsageError(f"--export_only: {path} is missing; train first.")
    export_best(results.files.read_json(path)["runs"])
    return

  classifier = features_lib.DomainClassifier.train_or_load(
      os.path.join(FLAGS.workdir, "domain_classifier"), train.images, train.labels, test.images,
      test.labels, train.num_classes, steps=FLAGS.classifier_steps)
  evaluator = seen_classes.SeenClassesEvaluator(
      classifier, test.images, test.labels, train.num_classes,
      samples_per_class=FLAGS.eval_samples, reverse_steps=FLAGS.reverse_steps)
  grid_z = np.random.default_rng(1234).normal(size=[train.num_classes, 128]).astype(np.float32)
  records = []
  for seed in seeds:
    for method in FLAGS.methods:
      directory = run_dir(method, seed)
      record = results.load_record(directory)
      if record is None:
        rt.seed(seed)
        logging.info("run %s seed %d", method, seed)
        record = mergan.run(rt, config(method, seed), gan_config, train.images, train.labels,
                            task_list, directory, evaluator, grid_z)
        record = {"dataset": FLAGS.dataset, "num_tasks": num_tasks, **record}
        if rt.is_chief:
          results.save_record(directory, record)
      logging.info("%s seed %d: accuracy %.4f reverse %.4f FID %.2f", method, seed,
                   record["accuracy"], record["reverse_accuracy"], record["fid"])
      records.append(record)
  if not rt.is_chief:
    return

  row = f"{FLAGS.dataset} ({num_tasks} tasks)"
  figs, writer = [], rt.writer("summary")
  for method in FLAGS.methods:
    grids = np.load(os.path.join(run_dir(method, seeds[0]), "grids.npy"))
    fig, grid = grid_figure(grids, train.class_names, method)
    results.save_figure(fig, os.path.join(FLAGS.workdir, f"grid_{method}.png"), writer)
    writer.write_images(num_tasks, {f"fixed_z_grid/{method}": grid})
    figs.append(f"grid_{method}.png")
  curves = {NAMES[m]: (100 * np.mean([r["accuracy_per_task"] for r in records
                                      if r["method"] == m], axis=0), None)
            for m in FLAGS.methods}
  curve = figures.lines(list(range(1, num_tasks + 1)), curves,
                        "Accuracy on the classes seen so far", "after task", "accuracy %")
  results.save_figure(curve, os.path.join(FLAGS.workdir, "accuracy.png"), writer)
  figs.append("accuracy.png")
  tsne_methods = [m for m in ("sft", "ewc", "jtr", "ra") if m in FLAGS.methods]
  if tsne_methods:
    samplers = {m: mergan.sampler(config(m, seeds[0]), mergan.restore_networks(
        rt, config(m, seeds[0]), gan_config, image_shape, num_tasks, run_dir(m, seeds[0])),
        list(range(train.num_classes))) for m in tsne_methods}
    task1 = test.images[np.isin(test.labels, task_list[0])]
    results.save_figure(tsne_figure(samplers, classifier, task1, task_list[0], seeds[0]),
                        os.path.join(FLAGS.workdir, "tsne_task1.png"), writer)
    figs.append("tsne_task1.png")
  per_task = results.markdown_table(
      ["method"] + [f"after task {t + 1}" for t in range(num_tasks)],
      [[NAMES[m]] + [results.mean_std([r["accuracy_per_task"][t] for r in records
                                       if r["method"] == m], 100.0)
                     for t in range(num_tasks)] for m in FLAGS.methods])
  setup = (f"`{FLAGS.dataset}`, tasks `{FLAGS.tasks}`; {FLAGS.architecture} "
           f"{FLAGS.resolution}x{FLAGS.resolution} AC-GAN ({FLAGS.conditioning}), "
           f"{FLAGS.iterations} generator updates per task, batch {FLAGS.batch_size}, "
           f"{FLAGS.n_critic} critic steps, Adam {FLAGS.lr:g} (0, 0.9) reset every task, RA "
           f"weight {FLAGS.ra_weight:g}, EWC weight {FLAGS.ewc_weight:g}, seeds {FLAGS.seeds}. "
           f"Training wall time per run (s): " + ", ".join(
               f"{NAMES[r['method']]} {r['train_wall_time_s']:.0f}" for r in records
               if r["seed"] == seeds[0]) + ". Scores after the last task on "
           f"{FLAGS.eval_samples} samples per class; the real-data classifier (test accuracy "
           f"{classifier.test_accuracy:.4f}) gives the accuracy and the FID features.")
  sections = [
      ("Setup", setup),
      ("Accuracy % (the shape of the paper's Table 1)", table(records, row, "accuracy")),
      ("Reverse accuracy %", table(records, row, "reverse_accuracy")),
      ("FID (classifier features)", table(records, row, "fid", scale=1.0)),
      ("Accuracy % on the classes seen so far, after each task", per_task),
      ("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)),
  ]
  writer.flush()
  results.write_results(FLAGS.workdir, PROGRAM, runtime_flags.flag_values(), records, figs)
  results.write_report(FLAGS.workdir, "MeRGAN: memory replay GANs", sections)
  export_best(records)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
