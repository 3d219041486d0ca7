"""A MeRGAN experiment: every method and seed over the tasks, scored, tabled and exported.

`train_and_evaluate(rt, cfg)` is what `lamp-tf-mergan` runs (the program only turns
its flags into an `ExperimentConfig`); tests and notebooks call it directly. For every seed the
first task is trained once and shared by the conditional methods (they train the identical
task), then each method of `cfg.methods` (EWC once per weight of `cfg.ewc_weights`) runs over
the tasks, resumable mid-task, finished runs reused. After every task the generator is scored on
the classes seen so far (accuracy of a real-data classifier on its samples, reverse accuracy,
FID/KID on that classifier's features). Writes the table in the shape of the paper's Table 1,
the fixed-z grids, the t-SNE of task-1 samples after the last task and accuracy-per-task curves
to REPORT.md / results.json / TensorBoard, and exports the best continual generator.
"""

import dataclasses
import os

import numpy as np
from absl import logging

from lamp_tf.continual import mergan
from lamp_tf.data import gan_data, preprocess, tasks as tasks_lib
from lamp_tf.metrics import evaluators, features as features_lib
from lamp_tf.runtime import figures, flags as runtime_flags, results, settings
from lamp_tf.runtime.settings import setting

PROGRAM = "lamp-tf-mergan"
GRID_SAMPLES = 64  # fixed z per class of the grids and the instance memory
NAMES = {"jt": "JT", "sft": "SFT", "ewc": "EWC", "dgr": "DGR", "jtr": "MeRGAN-JTR",
         "ra": "MeRGAN-RA"}

# The paper's Table 1 (accuracy %), for the rows it has.
PAPER_ACCURACY = {
    ("mnist", 5): {"jt": 97.66, "sft": 19.87, "ewc": 70.62, "dgr": 90.39, "jtr": 97.93,
                   "ra": 98.19},
    ("mnist", 10): {"jt": 96.92, "sft": 10.06, "ewc": 77.03, "dgr": 85.40, "jtr": 97.00,
                    "ra": 97.01},
    ("svhn", 10): {"jt": 84.82, "sft": 10.10, "ewc": 33.02, "dgr": 47.28, "jtr": 66.50,
                   "ra": 66.78},
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """What a MeRGAN experiment runs; each setting is also the program's flag. `train` is the
  training configuration every run starts from (its method, seed and EWC weight are set per
  run); `gan` the kwargs of `nets.gan.make_gan`."""

  train: mergan.MerganConfig
  gan: dict
  dataset: str = setting("mnist5k", "Data set '<name>[:<classes>]' (see lamp_tf.data); name "
                         "folder:PATH for your images in PATH/<class>/<image>.png.")
  test_split: str = setting(
      "test", "Held-out split for evaluation ('validation' for LSUN, which has no test split).")
  tasks: str = setting(
      "0/1/2/3/4/5/6/7/8/9", "Tasks: classes separated by ',', tasks by '/' (the paper: one class "
      "per task, '0/1/2/3/4/5/6/7/8/9').")
  methods: tuple = setting(mergan.METHODS, "Methods: jt, sft, ewc, dgr, jtr, ra.",
                           choices=mergan.METHODS, nonempty=True)
  seeds: tuple = setting((0,), "Seeds (tables: mean and std).", item=int, lower=0, distinct=True,
                         nonempty=True)
  ewc_weights: tuple = setting(
      (1e9,), "EWC weights on the generator: one EWC run per value (a sweep; the paper: about "
      "1e9).", item=float, lower=0.0, distinct=True, nonempty=True)
  share_first_task: bool = setting(
      True, "Train the first task once per seed and start every conditional method (all but DGR) "
      "from it: they train the identical task.")
  classifier_steps: int = 2000  # the GAN programs' scoring flag (lamp_tf.apps.gan_flags)
  eval_samples: int = setting(
      6400, "Generated images per class per evaluation (the reference: 100 x 64).", lower=2)
  reverse_steps: int = setting(500, "Training steps of the reverse-accuracy classifier.", lower=1)
  tsne_samples: int = setting(300, "Task-1 samples per method in the t-SNE figure.", lower=10)

  def run(self, method, seed, ewc_weight=None):
    """The training configuration of one run."""
    return dataclasses.replace(self.train, method=method, seed=seed,
                               ewc_weight=self.ewc_weights[0] if ewc_weight is None
                               else ewc_weight)


def run_specs(cfg):
  """(label, method, EWC weight) of every run of a seed, in `cfg.methods` order; EWC once per
  `cfg.ewc_weights` value."""
  weights = list(cfg.ewc_weights)
  specs = []
  for m in cfg.methods:
    for w in (weights if m == "ewc" else weights[:1]):
      specs.append((f"EWC λ={w:g}" if m == "ewc" and len(weights) > 1 else NAMES[m], m, w))
  return specs


def table_rows(num_tasks):
  """The tasks after which Table 1 reports (the paper: after the 5th and the 10th), and the
  last."""
  return sorted({t for t in (5, 10) if t <= num_tasks} | {num_tasks})


def table1(specs, records, key, num_tasks, scale=100.0, paper=None):
  """Rows 'after task k' x columns runs (by label), mean ± std over seeds of `<key>_per_task`;
  with `paper` ({k: {method: value}}), the paper's row under each of ours."""
  columns = [(label, method) for label, method, _ in specs]
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
                        evidence, holds)] + instance_claims(records)


def _last_instance(records, method, key):
  """Per seed, the instance distance `key` after the last task of `method` (None: not run, or
  made before instance memory was measured)."""
  rs = [r for r in records if r["method"] == method and r.get(f"instance_{key}_per_task")]
  values = [r[f"instance_{key}_per_task"][-1] for r in rs]
  return values if values and None not in values else None


def instance_claims(records):
  """The talk's LSUN claim, measured (issue #33), as two claims: for the same (z, c) of the
  first task, after the last task MeRGAN-RA draws the instance it drew after task 1 (its
  distance to those samples below JTR's and SFT's beyond the seed spread, in pixels and in
  classifier features); MeRGAN-JTR keeps the class but not the instance (its feature distance
  at least half the 'another instance' reference: two draws of z of the same class)."""
  dist = {m: {k: _last_instance(records, m, k) for k in ("mse", "feature")}
          for m in ("sft", "jtr", "ra")}
  if any(v is None for d in dist.values() for v in d.values()):
    return []
  ref = np.mean([r["instance_reference"]["feature"] for r in records
                 if r["method"] == "jtr" and r.get("instance_reference")])
  mean = {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in dist.items()}
  seeds = len(dist["ra"]["mse"])
  evidence = (f"distance after the last task to the first task's samples of the same (z, c), "
              f"pixel MSE / feature distance, mean of {seeds} seed{'s' if seeds > 1 else ''}: " +
              ", ".join(f"{NAMES[m]} {mean[m]['mse']:.3f} / {mean[m]['feature']:.2f}"
                        for m in ("sft", "jtr", "ra")) +
              f"; another instance (two z of a class after task 1): feature distance {ref:.2f}")
  return [
      results.claim("MeRGAN-RA remembers the instance: the same image for the same z and class "
                    "after later tasks, closer than JTR and SFT", evidence,
                    all(results.above(dist[m][k], dist["ra"][k]) for m in ("sft", "jtr")
                        for k in ("mse", "feature"))),
      results.claim("MeRGAN-JTR remembers the category, not the instance (feature distance at "
                    "least half of another instance's)", evidence,
                    mean["jtr"]["feature"] >= 0.5 * ref)]


def paper_rows(dataset):
  family = "mnist" if dataset.startswith("mnist") else "svhn" if dataset.startswith("svhn") \
      else None
  return {k: v for (f, k), v in PAPER_ACCURACY.items() if f == family}


def grid_figure(grids, label, classes):
  """Fixed-z grid: one row per class of the tasks, one column per task (blank before a class
  is seen)."""
  grids = grids[:, list(classes)]
  t, k = grids.shape[:2]
  images = preprocess.unscale(np.transpose(grids, [1, 0, 2, 3, 4]).reshape(k * t, *grids.shape[2:]))
  grid = figures.image_grid(images.numpy(), k, t)
  fig = figures.image(grid, f"{label}: rows = classes, columns = after task 1..{t}",
                      width=max(3.0, 0.9 * t))
  return fig, grid


def tsne_figure(samplers, classifier, real_task1, task1_classes, seed, n):
  """t-SNE of `n` task-1 samples per method after the last task (a panel per method, real
  task-1 images in grey), on the real-data classifier's features."""
  from sklearn.manifold import TSNE
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


class Experiment:
  """The data (from `rt.data_dir`), task list and run directories of one experiment (checked on
  construction: a bad task list, method or batch size raises ValueError before anything is
  written)."""

  def __init__(self, rt, cfg, workdir):
    self.cfg, self.workdir = cfg, workdir
    load = lambda split: gan_data.load_gan_data(cfg.dataset, split, cfg.gan["resolution"],
                                                cfg.gan["channels"], rt.data_dir, rt.download)
    self.train, self.test = load("train"), load(cfg.test_split)
    self.tasks = tuple(tuple(t) for t in tasks_lib.parse_tasks(cfg.tasks,
                                                               self.train.num_classes))
    old_max = sum(len(t) for t in self.tasks[:-1])
    if {"ra", "jtr"} & set(cfg.methods) and cfg.train.replay_batch == "split" \
        and cfg.train.batch_size < old_max:
      raise ValueError(f"--batch_size={cfg.train.batch_size} is smaller than the {old_max} old "
                       "classes of the last task: --replay_batch=split gives each old class "
                       "batch // n_old samples; raise --batch_size or use per_class.")
    for method in cfg.methods:
      cfg.run(method, cfg.seeds[0])  # validates every method's configuration
    self.gan = {**cfg.gan, "num_classes": self.train.num_classes}
    self.image_shape = self.train.images.shape[1:]

  def run_dir(self, method, seed, ewc_weight=None):
    name = f"ewc{ewc_weight:g}" if method == "ewc" else method
    return os.path.join(self.workdir, "runs", f"{name}_seed{seed}")

  def first_task_dir(self, seed):
    budget = self.cfg.train.task_iterations(0)
    return os.path.join(self.workdir, "runs", f"first_task_seed{seed}_{budget}it")

  def restore(self, rt, method, seed, ewc_weight):
    cfg = self.cfg.run(method, seed, ewc_weight)
    return cfg, mergan.restore_networks(rt, cfg, self.gan, self.image_shape, len(self.tasks),
                                        self.run_dir(method, seed, ewc_weight))

  def export_best(self, rt, records, export_dir, version=None, flags=None):
    """Exports the continual generator (JT only when it is the only one) of the highest
    accuracy; returns its path (None when only DGR ran)."""
    continual = [m for m in self.cfg.methods if m not in ("jt", "dgr")] or \
        [m for m in self.cfg.methods if m != "dgr"]
    candidates = [r for r in records if r["method"] in continual]
    if not candidates:
      logging.info("no conditional generator to export (only DGR was run)")
      return None
    best = max(candidates, key=lambda r: r["accuracy"])
    cfg, nets = self.restore(rt, best["method"], best["seed"], best["ewc_weight"])
    card = runtime_flags.model_card(
        PROGRAM, {k: best[k] for k in ("accuracy", "reverse_accuracy", "fid", "kid")},
        flags=flags or {}, method=best["method"], seed=best["seed"], data=self.cfg.dataset,
        tasks=self.cfg.tasks)
    path = mergan.export(cfg, nets, sorted(c for t in self.tasks for c in t), export_dir,
                         version=version, card=card, formats=rt.export_format)
    logging.info("exported %s seed %d (accuracy %.4f) to %s", best["method"], best["seed"],
                 best["accuracy"], path)
    return path

  def train_runs(self, rt):
    """Trains (or reuses) every run; returns the classifier and the records of every seed."""
    cfg = self.cfg
    classifier = features_lib.DomainClassifier.train_or_load(
        features_lib.cache_dir(), self.train.images, self.train.labels, self.test.images,
        self.test.labels, self.train.num_classes, steps=cfg.classifier_steps)
    evaluator = evaluators.make(
        "seen_classes", classifier, self.test.images, self.test.labels, self.train.num_classes,
        samples_per_class=cfg.eval_samples, reverse_steps=cfg.reverse_steps)
    # Fixed noise of the grids: a batch of 64 per class (batch statistics), the first one shown;
    # all of the first task's classes' are the instance memory's fixed (z, c).
    grid_z = np.random.default_rng(1234).normal(
        size=[self.train.num_classes, GRID_SAMPLES, 128]).astype(np.float32)
    records = []
    for seed in cfg.seeds:
      first = None
      if cfg.share_first_task and any(m != "dgr" for m in cfg.methods):
        first = self.first_task_dir(seed)
        if not os.path.exists(os.path.join(first, results.RECORD)):
          rt.seed(seed)
          logging.info("shared first task, seed %d", seed)
          record = mergan.run(rt, cfg.run("sft", seed), self.gan, self.train.images,
                              self.train.labels, self.tasks[:1], first, evaluator, grid_z)
          if rt.is_chief:
            record = results.save_record(first, record)
      for label, method, weight in run_specs(cfg):
        directory = self.run_dir(method, seed, weight)
        record = results.load_record(directory)
        if record is None:
          rt.seed(seed)
          logging.info("run %s seed %d", label, seed)
          record = mergan.run(rt, cfg.run(method, seed, weight), self.gan, self.train.images,
                              self.train.labels, self.tasks, directory, evaluator, grid_z,
                              init_from=None if method == "dgr" else first)
          record = {"dataset": cfg.dataset, "num_tasks": len(self.tasks), **record}
          if rt.is_chief:
            record = results.save_record(directory, record)
        record["label"] = label
        logging.info("%s seed %d: accuracy %.4f reverse %.4f FID %.2f", label, seed,
                     record["accuracy"], record["reverse_accuracy"], record["fid"])
        records.append(record)
    return classifier, records

  def figures(self, rt, records, classifier, writer):
    """Writes the figures (fixed-z grids, accuracy curves, t-SNE); returns their file names."""
    cfg, num_tasks, seed = self.cfg, len(self.tasks), self.cfg.seeds[0]
    figs = []
    for label, method, weight in run_specs(cfg):
      grids = np.load(os.path.join(self.run_dir(method, seed, weight), "grids.npy"))
      fig, grid = grid_figure(grids, label, [c for task in self.tasks for c in task])
      name = f"grid_ewc{weight:g}.png" if method == "ewc" else f"grid_{method}.png"
      results.save_figure(fig, os.path.join(self.workdir, name), writer)
      writer.write_images(num_tasks, {f"fixed_z_grid/{name[5:-4]}": grid})
      figs.append(name)
    curves = {label: (100 * np.mean([r["accuracy_per_task"] for r in records
                                     if r["label"] == label], axis=0), None)
              for label, _, _ in run_specs(cfg)}
    curve = figures.lines(list(range(1, num_tasks + 1)), curves,
                          "Accuracy on the classes seen so far", "after task", "accuracy %")
    results.save_figure(curve, os.path.join(self.workdir, "accuracy.png"), writer)
    figs.append("accuracy.png")
    tsne_runs = [(label, m, w) for label, m, w in run_specs(cfg) if m in ("sft", "ewc", "jtr",
                                                                        "ra")]
    if tsne_runs:
      samplers = {}
      for label, m, w in tsne_runs:
        run_cfg, nets = self.restore(rt, m, seed, w)
        samplers[label] = mergan.sampler(run_cfg, nets, list(range(self.train.num_classes)))
      task1 = self.test.images[np.isin(self.test.labels, self.tasks[0])]
      results.save_figure(tsne_figure(samplers, classifier, task1, self.tasks[0], seed,
                                      cfg.tsne_samples),
                          os.path.join(self.workdir, "tsne_task1.png"), writer)
      figs.append("tsne_task1.png")
    return figs

  def report_sections(self, records, classifier, figs):
    cfg, num_tasks, t = self.cfg, len(self.tasks), self.cfg.train
    specs = run_specs(cfg)
    per_task = lambda key: results.markdown_table(
        ["method"] + [f"after task {k + 1}" for k in range(num_tasks)],
        [[label] + [results.mean_std([r[key][k] for r in records if r["label"] == label], 100.0)
                    for k in range(num_tasks)] for label, _, _ in specs])
    shared = [r for r in records if r.get("shared_first_task")]
    setup = (f"`{cfg.dataset}`, tasks `{cfg.tasks}` ({num_tasks} tasks); "
             f"{cfg.gan['architecture']} {cfg.gan['resolution']}x{cfg.gan['resolution']} AC-GAN "
             f"({cfg.gan['conditioning']}), {t.task_iterations(0)} generator updates on the first "
             f"task and {t.iterations} on each later one (the paper: 4001), batch "
             f"{t.batch_size}, {t.n_critic} critic steps, Adam {t.lr:g} (0, 0.9) reset every "
             f"task, RA weight {t.ra_weight:g}, EWC weights "
             f"{', '.join(f'{w:g}' for w in cfg.ewc_weights)}, generator batch norm when "
             f"sampling: {t.sample_bn}, replays: {t.replay_batch}, JTR: {t.jtr}; seeds "
             f"{list(cfg.seeds)}." + (" The first task was trained once per seed and shared by "
                                      f"{', '.join(sorted({r['label'] for r in shared}))}."
                                      if shared else "") +
             " Training wall time per run, first task included (s): " + ", ".join(
                 f"{r['label']} {r['train_wall_time_s']:.0f}" for r in records
                 if r["seed"] == cfg.seeds[0]) + f". Scores on {cfg.eval_samples} samples per "
             f"class; the real-data classifier (test accuracy {classifier.test_accuracy:.4f}) "
             "gives the accuracy and the FID features.")
    paper = paper_rows(cfg.dataset)
    return [
        ("Setup", setup),
        ("Accuracy % (the paper's Table 1)", table1(specs, records, "accuracy", num_tasks,
                                                     paper=paper) +
         ("\n\nThe paper's rows are on full MNIST at 4001 updates per task; ours at the budget "
          "above." if set(paper) & set(table_rows(num_tasks)) else "")),
        ("Reverse accuracy %", table1(specs, records, "reverse_accuracy", num_tasks)),
        ("FID (classifier features)", table1(specs, records, "fid", num_tasks, scale=1.0)),
        ("Accuracy % on the classes seen so far, after each task",
         per_task("accuracy_per_task")),
        (f"Accuracy % on the first task's classes {list(self.tasks[0])}, after each task",
         per_task("first_task_accuracy_per_task")),
        *self.instance_sections(records, specs, num_tasks),
        ("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)),
    ]

  def instance_sections(self, records, specs, num_tasks):
    """Instance memory per method after each task (none for DGR, or for records made before
    it was measured)."""
    def cell(rs, key, k):
      values = [r[f"instance_{key}_per_task"][k] for r in rs]
      return "-" if None in values else results.mean_std(values, digits=3)

    rows = []
    for label, _, _ in specs:
      rs = [r for r in records if r["label"] == label and r.get("instance_mse_per_task")]
      if rs:
        rows.append([label] + [" / ".join(cell(rs, key, k) for key in
                                          ("mse", "ssim", "feature")) for k in range(num_tasks)])
    refs = [r["instance_reference"] for r in records if r.get("instance_reference")]
    if not rows or not refs:
      return []
    ref = " / ".join(f"{np.mean([x[k] for x in refs]):.3f}" for k in ("mse", "ssim", "feature"))
    return [(f"Instance memory: the same (z, c) of the first task's classes "
             f"{list(self.tasks[0])} against their samples after task 1 (pixel MSE / SSIM / "
             "classifier-feature distance)", results.markdown_table(
                 ["method"] + [f"after task {k + 1}" for k in range(num_tasks)], rows) +
             f"\n\nAnother instance, for scale: two draws of z of the same class after task 1 "
             f"score {ref} (mean over runs). Same instance: 0 / 1 / 0. Mean ± std over seeds; "
             f"{GRID_SAMPLES} fixed z per class, images in [-1, 1].")]


def validate(cfg):
  """`cfg`, or a one-line ValueError naming the flag for a setting outside its choices or
  bounds (nested configs included)."""
  return settings.check(cfg)


def export_only(rt, cfg, *, flags=None):
  """Re-exports the best continual generator of the finished runs in `rt.workdir` to
  `rt.export_dir` (nothing is trained)."""
  records = runtime_flags.finished_results(rt.workdir)["runs"]
  Experiment(rt, cfg, rt.workdir).export_best(rt, records, rt.export_dir, rt.export_version,
                                              flags)


def train_and_evaluate(rt, cfg, *, flags=None):
  """Runs the experiment into `rt.workdir` (resuming and reusing what is finished there), writes
  results.json, REPORT.md and the figures, and exports the best continual generator to
  `rt.export_dir` (when set). `flags`: the program's flag values, kept in results.json and the
  model card. Returns the records."""
  workdir, export_dir = rt.workdir, rt.export_dir
  experiment = Experiment(rt, cfg, workdir)
  classifier, records = experiment.train_runs(rt)
  if not rt.is_chief:
    return records
  writer = rt.writer("summary")
  figs = experiment.figures(rt, records, classifier, writer)
  writer.flush()
  claim_list = claims(records, list(experiment.tasks[0]))
  results.write_results(workdir, PROGRAM, flags or {}, records, figs, claim_list)
  results.write_report(workdir, "MeRGAN: memory replay GANs",
                       experiment.report_sections(records, classifier, figs), claim_list)
  if export_dir:
    experiment.export_best(rt, records, export_dir, rt.export_version, flags)
  return records
