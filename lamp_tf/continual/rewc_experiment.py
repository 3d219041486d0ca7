"""An R-EWC experiment: FT, EWC and R-EWC swept over optimisers, variants, λ and seeds.

`train_and_evaluate(rt, cfg)` is what `lamp-tf-rewc` runs (the program only turns its
flags into an `ExperimentConfig`); tests and notebooks call it directly. Every run resumes from
its checkpoint and a finished run is not trained again. A run whose loss becomes non-finite
(plain SGD with a penalty λ·F beyond its step size's stability limit) is recorded as diverged
and the sweep goes on: a λ that diverged on any seed is shown as such and never selected. λ is
selected per method on validation average accuracy and test accuracy is reported at that λ (the
test-selected λ stays as a labelled oracle column), with per-seed wins against EWC and paired
tests over the seeds. Writes the paper-shaped table, accuracy-matrix heatmaps, Fisher diagonal
energy before/after rotation and the λ sweep to REPORT.md / results.json / TensorBoard, and
exports the best classifier as a SavedModel (uint8 images in, class probabilities out).
"""

import collections
import dataclasses
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.continual import rotation, sequential
from lamp_tf.data import preprocess, sources, tasks as tasks_lib
from lamp_tf.runtime import export, figures, flags as runtime_flags, loop, results, settings
from lamp_tf.runtime.settings import setting

PROGRAM = "lamp-tf-rewc"
SELECT_ON = ("class_incremental", "task_aware")
# The record fields of each evaluation protocol (sequential.TaskAccuracy): validation and test
# average accuracy, test accuracy per task, forgetting, backward transfer, accuracy matrix.
KEYS = {
    "class_incremental": {"val": "val_average_accuracy", "test": "average_accuracy",
                          "tasks": "task_accuracy", "forgetting": "forgetting",
                          "bwt": "backward_transfer", "matrix": "accuracy_matrix"},
    "task_aware": {"val": "val_task_aware_average_accuracy",
                   "test": "task_aware_average_accuracy", "tasks": "task_aware_accuracy",
                   "forgetting": "task_aware_forgetting", "bwt": "task_aware_backward_transfer",
                   "matrix": "task_aware_accuracy_matrix"},
}
PROTOCOL_NAMES = {"class_incremental": "class-incremental", "task_aware": "task-aware"}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """What an R-EWC experiment sweeps; each setting is also the program's flag. `train` is the
  training configuration every run starts from (method, λ, seed, optimiser, learning rate and
  variant are set per run)."""

  train: sequential.RunConfig = sequential.RunConfig(method="ft", lam=0.0)
  dataset: str = setting("mnist5k", "Data set name (see lamp_tf.data.sources), or folder:PATH "
                         "for your images in PATH/<class>/<image>.png.")
  tasks: str = setting("0,1,2,3,4/5,6,7,8,9", "Class-incremental tasks: '/' between tasks.")
  image_size: int = setting(32, "Images are padded (or resized) to this size.", lower=8,
                            upper=512)
  resize: str = setting("pad", "How images reach --image_size.", choices=preprocess.RESIZE)
  max_train: int = setting(0, "Use at most this many training images (0: all).", lower=0)
  methods: tuple = setting(sequential.METHODS, "Methods: ft, ewc, rewc.",
                           choices=sequential.METHODS, nonempty=True)
  rotate: tuple = setting(("all_no_last",), "R-EWC variants: fc, conv, all, all_no_last.",
                          choices=rotation.VARIANTS)
  lambdas: tuple = setting((1.0, 10.0, 100.0, 1000.0, 10000.0), "EWC/R-EWC weights to sweep.",
                           item=float, lower=0.0)
  seeds: tuple = setting((0,), "Seeds; tables show mean and std over them.", item=int, lower=0,
                         distinct=True, nonempty=True)
  optimizer: tuple = setting(
      ("adam",), "Optimisers, each a row of the tables: adam (reference) and/or sgd (plain "
      "gradient descent, blind to the rotation: R-EWC at λ=0 equals FT).",
      choices=sequential.OPTIMIZERS, nonempty=True)
  lr: float = setting(1e-3, "Adam learning rate (the optimiser is reset every task).", lower=0.0)
  sgd_lr: float = setting(0.5, "Learning rate of --optimizer=sgd.", lower=0.0)
  validation_fraction: float = setting(
      0.1, "Share of each class's training images held out for validation (λ selection and, by "
      "default, the Fisher).", lower=0.0, upper=1.0)
  select_on: str = setting(
      "class_incremental", "Evaluation whose validation average accuracy selects λ, the tables' "
      "numbers and the exported run: class_incremental (one head over every class seen so far, "
      "the reference's) or task_aware (each task's images by the argmax over its own classes; "
      "both are recorded).", choices=SELECT_ON)

  @property
  def keys(self):
    """The record fields of the selecting protocol (KEYS)."""
    return KEYS[self.select_on]


def load_data(rt, cfg):
  """Preprocessed TaskData of the experiment (data from `rt.data_dir`); the validation split is
  the same for every run and seed (seeds vary the training only)."""
  shape = sources.image_shape(cfg.dataset, "train", data_dir=rt.data_dir, download=rt.download)
  size = cfg.image_size if None in shape[:2] else None  # varying sizes (CUB): crop and resize
  train, test = (sources.load_examples(cfg.dataset, split, data_dir=rt.data_dir,
                                       download=rt.download, image_size=size)
                 for split in ("train", "test"))
  task_list = tasks_lib.parse_tasks(cfg.tasks, train.num_classes)
  if cfg.max_train:
    train = train.take(np.sort(np.random.default_rng(0).permutation(len(train))[:cfg.max_train]))
  fit, val = tasks_lib.validation_split(train.labels, cfg.validation_fraction, seed=0,
                                       class_names=train.class_names)

  def prep(images):
    return preprocess.prepare(images, cfg.image_size, cfg.resize, value_range="0,1").numpy()

  return sequential.TaskData(prep(train.images[fit]), train.labels[fit], prep(test.images),
                             test.labels, tuple(tuple(t) for t in task_list), train.num_classes,
                             train.images.shape[1:], val_x=prep(train.images[val]),
                             val_y=train.labels[val])


def run_configs(cfg):
  """The RunConfig of every run: seeds x optimisers x (FT, EWC per λ, R-EWC per variant and
  λ), in that order."""
  settings.check(cfg)
  configs = []
  add = lambda **kw: configs.append(dataclasses.replace(cfg.train, **kw))
  for seed in cfg.seeds:
    for opt in dict.fromkeys(cfg.optimizer):
      kw = dict(seed=seed, optimizer=opt, lr=cfg.lr if opt == "adam" else cfg.sgd_lr,
                rotate=sequential.RunConfig.rotate)
      if "ft" in cfg.methods:
        add(method="ft", lam=0.0, **kw)
      for lam in cfg.lambdas:
        if "ewc" in cfg.methods:
          add(method="ewc", lam=lam, **kw)
        for rot in cfg.rotate if "rewc" in cfg.methods else []:
          add(method="rewc", lam=lam, **dict(kw, rotate=rot))
  return configs


def _row_name(r):
  name = f"R-EWC {r['rotate']}" if r["method"] == "rewc" else r["method"].upper()
  return name if r["optimizer"] == "adam" else f"{name} ({r['optimizer'].upper()})"


def _key(r):
  return r["optimizer"], r["method"], r["rotate"], r["lambda"]


def split_diverged(records):
  """(kept, diverged): every run of an (optimiser, method, variant, λ) with a diverged seed goes
  to `diverged`, so that λ is never selected nor averaged over its surviving seeds."""
  bad = {_key(r) for r in records if "diverged" in r}
  return [r for r in records if _key(r) not in bad], [r for r in records if _key(r) in bad]


def _group(records, keys):
  groups = collections.OrderedDict()
  for r in records:
    groups.setdefault(tuple(r[k] for k in keys), []).append(r)
  return groups


def _pm(values):
  return results.mean_std(values, 100.0, 1)


def paper_table(records, lambdas, key="task_accuracy"):
  rows = []
  for _, rs in _group(records, ["optimizer", "method", "rotate"]).items():
    cells = []
    for lam in lambdas:
      sel = [r for r in rs if r["method"] == "ft" or r["lambda"] == lam]
      failed = sum("diverged" in r for r in sel)
      if not sel or failed:
        cells.append(f"diverged ({failed}/{len(sel)} seeds)" if failed else "")
        continue
      accs = np.array([r[key] for r in sel])
      cells.append(" / ".join(_pm(accs[:, j]) for j in range(accs.shape[1])))
    rows.append([_row_name(rs[0])] + cells)
  return results.markdown_table(["method"] + [f"λ={lam:g}" for lam in lambdas], rows)


def best_by_method(records, score="val_average_accuracy"):
  """{row name: (lambda, records)} with the best mean `score` over seeds: validation average
  accuracy (the selection) or test average accuracy (the oracle)."""
  best = {}
  for key, rs in _group(records, ["optimizer", "method", "rotate", "lambda"]).items():
    name = _row_name(rs[0])
    mean = np.mean([r[score] for r in rs])
    if name not in best or mean > best[name][0]:
      best[name] = (mean, key[3], rs)
  return {name: (lam, rs) for name, (_, lam, rs) in best.items()}


def paired_vs_ewc(best, name, key="average_accuracy"):
  """results.paired_comparison of an R-EWC row's test average accuracy (`key`) against the EWC
  row of the same optimiser, each at its selected λ (None for other rows or without an EWC
  row)."""
  rs = best[name][1]
  ewc = best.get(_row_name({"method": "ewc", "optimizer": rs[0]["optimizer"]}))
  if rs[0]["method"] != "rewc" or ewc is None:
    return None
  by_seed = lambda records: {r["seed"]: r[key] for r in records}
  return results.paired_comparison(by_seed(rs), by_seed(ewc[1]))


def summary_table(best, oracle, keys=KEYS["class_incremental"]):
  rows = []
  for name, (lam, rs) in best.items():
    accs = np.array([r[keys["tasks"]] for r in rs])
    o_lam, o_rs = oracle[name]
    vs = paired_vs_ewc(best, name, keys["test"])
    rows.append([name, "-" if lam is None else f"{lam:g}", len(rs),
                 _pm([r[keys["val"]] for r in rs]),
                 _pm([r[keys["test"]] for r in rs]),
                 " / ".join(_pm(accs[:, j]) for j in range(accs.shape[1])),
                 _pm([r[keys["forgetting"]] for r in rs]), _pm([r[keys["bwt"]] for r in rs]),
                 "" if vs is None else f"{vs[0]}/{vs[1]}",
                 "" if vs is None else f"{vs[2]:.3g}", "" if vs is None else f"{vs[3]:.3g}",
                 "-" if o_lam is None else f"{o_lam:g}",
                 _pm([r[keys["test"]] for r in o_rs])])
  return results.markdown_table(
      ["method", "λ (validation)", "seeds", "validation average %", "test average %",
       "test per task %", "forgetting %", "backward transfer %", "seeds won vs EWC",
       "paired t-test p", "sign test p", "oracle λ (test)", "oracle test average %"], rows)


def protocols_table(best):
  """At each method's selected λ: test average accuracy, per task, forgetting and backward
  transfer in both protocols (a run recorded before the task-aware accuracy existed: '-')."""
  rows = []
  for name, (lam, rs) in best.items():
    row = [name, "-" if lam is None else f"{lam:g}"]
    for protocol in SELECT_ON:
      keys = KEYS[protocol]
      if not all(keys["test"] in r for r in rs):
        row += ["-"] * 4
        continue
      accs = np.array([r[keys["tasks"]] for r in rs])
      row += [_pm([r[keys["test"]] for r in rs]),
              " / ".join(_pm(accs[:, j]) for j in range(accs.shape[1])),
              _pm([r[keys["forgetting"]] for r in rs]), _pm([r[keys["bwt"]] for r in rs])]
    rows.append(row)
  header = ["method", "λ (selected)"]
  for protocol in SELECT_ON:
    label = PROTOCOL_NAMES[protocol]
    header += [f"{label} average %", f"{label} per task %", f"{label} forgetting %",
               f"{label} backward transfer %"]
  return results.markdown_table(header, rows)


def decomposition_table(records, best, key="average_accuracy"):
  """Per optimiser: FT, R-EWC at λ=0 (the rotation alone) and at its selected λ (rotation and
  penalty), EWC at its selected λ; test average accuracy (`key`) over seeds. None without λ=0
  runs."""
  rows = []
  for opt in dict.fromkeys(r["optimizer"] for r in records):
    for (rotate,), rs in _group([r for r in records if r["method"] == "rewc" and
                                 r["optimizer"] == opt], ["rotate"]).items():
      zero = [r for r in rs if r["lambda"] == 0]
      if not zero:
        continue
      name = _row_name(rs[0])
      ft = [r for r in records if r["method"] == "ft" and r["optimizer"] == opt]
      ewc = best.get(_row_name({"method": "ewc", "optimizer": opt}))
      rows.append([opt, name, _pm([r[key] for r in ft]) if ft else "",
                   _pm([r[key] for r in zero]),
                   f"{_pm([r[key] for r in best[name][1]])} "
                   f"(λ={best[name][0]:g})",
                   f"{_pm([r[key] for r in ewc[1]])} (λ={ewc[0]:g})"
                   if ewc else ""])
  if not rows:
    return None
  return results.markdown_table(
      ["optimiser", "variant", "FT %", "rotation alone (λ=0) %",
       "rotation + penalty (selected λ) %", "EWC (selected λ) %"], rows)


def claims(best, keys=KEYS["class_incremental"]):
  """The talk's claim on R-EWC, tested at each method's selected λ (the R-EWC variant with the
  best validation accuracy), per seed: R-EWC must keep more of task 1 than EWC beyond the seed
  spread (results.above); in the protocol of `keys` (the one selecting λ)."""
  first = {name: [100 * r[keys["tasks"]][0] for r in rs] for name, (_, rs) in best.items()}
  rewc = [n for n in first if n.startswith("R-EWC")]
  if "FT" not in first or "EWC" not in first or not rewc:
    return []
  top = max(rewc, key=lambda n: np.mean([r[keys["val"]] for r in best[n][1]]))
  protocol = "" if keys is KEYS["class_incremental"] else " (task-aware)"
  evidence = (f"task-1 accuracy{protocol} after the last task, mean over {len(first[top])} "
              f"seed(s): FT "
              f"{np.mean(first['FT']):.1f}%, EWC {np.mean(first['EWC']):.1f}% "
              f"(λ={best['EWC'][0]:g}), {top} {np.mean(first[top]):.1f}% (λ={best[top][0]:g})"
              f"{results.spread_note(first[top], first['EWC'])}")
  return [results.claim("FT forgets task 1 (under 50% of it kept) and R-EWC keeps more of it "
                        "than EWC, each at its selected λ", evidence,
                        np.mean(first["FT"]) < 50 and results.above(first[top], first["EWC"]))]


def diverged_table(diverged):
  """One row per (optimiser, method, variant, λ) with a diverged seed: how many seeds diverged
  and where (the task and the range over seeds of the step of the first non-finite loss)."""
  rows = []
  for (_, _, _, lam), rs in _group(diverged, ["optimizer", "method", "rotate", "lambda"]).items():
    where = collections.defaultdict(list)  # "task2: non-finite loss at step 27": task -> steps
    for r in (r for r in rs if "diverged" in r):
      found = re.fullmatch(r"(.*): non-finite loss at step (\d+)", r["diverged"])
      where[found[1] if found else r["diverged"]].append(int(found[2]) if found else None)
    span = lambda steps: (f", step {min(steps)}" + (f"-{max(steps)}" if max(steps) > min(steps)
                                                    else "")) if None not in steps else ""
    rows.append([_row_name(rs[0]), f"{lam:g}", f"{sum(map(len, where.values()))}/{len(rs)}",
                 "; ".join(f"{task}{span(steps)}" for task, steps in where.items())])
  return results.markdown_table(["method", "λ", "seeds diverged", "first non-finite loss"], rows)


def energy_table(records):
  rows = []
  for _, rs in _group([r for r in records if r["method"] == "rewc"],
                      ["optimizer", "rotate"]).items():
    rows.append([_row_name(rs[0]), len(rs), _pm([r["fisher_energy_before"] for r in rs]),
                 _pm([r["fisher_energy_after"] for r in rs])])
  return results.markdown_table(["variant", "runs", "diagonal energy before %",
                                 "after rotation %"], rows)


def make_figures(workdir, records, best, lambdas, num_tasks, writer=None,
                 keys=KEYS["class_incremental"]):
  paths = []
  for protocol in SELECT_ON:
    for name, (lam, rs) in best.items():
      key = KEYS[protocol]["matrix"]
      if not all(key in r for r in rs):
        continue  # recorded before the task-aware accuracy existed
      stack = np.array([[[np.nan if a is None else a for a in row] for row in r[key]]
                        for r in rs])
      matrix = 100 * stack.mean(axis=0)  # NaN (task not seen yet) stays NaN
      title = f"{name} (λ={lam:g})" if lam is not None else name
      fig = figures.heatmap(matrix, [f"after {t + 1}" for t in range(num_tasks)],
                            [f"task {j + 1}" for j in range(num_tasks)],
                            title if protocol == "class_incremental" else f"{title}, task-aware")
      slug = "".join(c for c in name.replace(" ", "_").lower() if c.isalnum() or c == "_")
      kind = "" if protocol == "class_incremental" else "task_aware_"
      path = f"accuracy_matrix_{kind}{slug}.png"
      results.save_figure(fig, os.path.join(workdir, path), writer)
      paths.append(path)
  series = {}
  for (method, _, _), rs in _group(records, ["method", "optimizer", "rotate"]).items():
    if method == "ft":
      continue
    means, stds = [], []
    for lam in lambdas:
      vals = [100 * r[keys["test"]] for r in rs if r["lambda"] == lam]
      means.append(np.mean(vals) if vals else np.nan)
      stds.append(np.std(vals) if vals else np.nan)
    series[_row_name(rs[0])] = (means, stds)
  for _, rs in _group([r for r in records if r["method"] == "ft"], ["optimizer"]).items():
    series[_row_name(rs[0])] = ([np.mean([100 * r[keys["test"]] for r in rs])] *
                                len(lambdas), None)
  if series and len(lambdas) > 0:
    protocol = "" if keys is KEYS["class_incremental"] else " (task-aware)"
    fig = figures.lines([max(lam, 1e-3) for lam in lambdas], series,
                        f"Average accuracy{protocol} after the last task", "λ", "accuracy %",
                        logx=True)
    results.save_figure(fig, os.path.join(workdir, "lambda_sweep.png"), writer)
    paths.append("lambda_sweep.png")
  rewc = _group([r for r in records if r["method"] == "rewc"], ["optimizer", "rotate"])
  if rewc:
    groups = [_row_name(rs[0]) for rs in rewc.values()]
    fig = figures.grouped_bars(groups, {
        "before rotation": [100 * np.mean([r["fisher_energy_before"] for r in rs])
                            for rs in rewc.values()],
        "after rotation": [100 * np.mean([r["fisher_energy_after"] for r in rs])
                           for rs in rewc.values()]},
        "Share of Fisher energy on the diagonal (task 1)", "%")
    results.save_figure(fig, os.path.join(workdir, "fisher_energy.png"), writer)
    paths.append("fisher_energy.png")
  return paths


def export_classifier(rt, experiment, cfg, data, export_dir, flags=None):
  """Restores run `cfg` of `experiment` from its checkpoint in `rt.workdir` and exports it
  (uint8 images -> probabilities)."""
  model, optimizer = sequential.build_model(cfg, data, rt.strategy)
  state = rt.train_state(os.path.join("runs", cfg.name), cfg.seed, model=model)
  if not state.restore(partial=True):
    raise ValueError(f"no checkpoint for run {cfg.name} in {rt.workdir}/runs: train "
                         "first (drop --export_only).")
  plain = sequential.plain_model(model)
  raw_shape = [None, *data.raw_shape]

  @tf.function(input_signature=[tf.TensorSpec(raw_shape, tf.uint8, name="images")])
  def classify(images):
    x = preprocess.prepare(images, experiment.image_size, experiment.resize, value_range="0,1")
    probs = tf.nn.softmax(plain(x, training=False))
    return {"probabilities": probs, "classes": tf.argmax(probs, axis=1)}

  card = runtime_flags.model_card(PROGRAM, flags=flags or {}, run=cfg.name,
                                  data=experiment.dataset)
  path = export.export_saved_model(export_dir, {"classify": classify}, [plain],
                                   version=rt.export_version, card=card,
                                   formats=rt.export_format)
  logging.info("exported run %s to %s", cfg.name, path)


def _best_config(configs, records, key="val_average_accuracy"):
  """The run to export: the best (method, variant, λ, optimiser) on validation (`key`), its
  first seed."""
  scores = collections.defaultdict(list)
  kept = {id(r) for r in split_diverged(records)[0]}
  for cfg, r in zip(configs, records):
    if id(r) not in kept:
      continue
    scores[(cfg.optimizer, cfg.method, cfg.rotate, cfg.lam)].append((r[key], cfg))
  best = max(scores.values(), key=lambda v: np.mean([s for s, _ in v]))
  return best[0][1]


def _record(run_dir):
  """A finished run's record, None if unfinished; a usage error for a run trained before the
  validation split existed (it trained on the images now held out)."""
  record = results.load_record(run_dir)
  if record is not None and not {"val_average_accuracy", "diverged"} & set(record):
    raise ValueError(f"{run_dir} was trained by an older version on all training images, "
                     "validation included; choose a new --workdir or delete that run.")
  return record


def validate(cfg):
  """`cfg`, or a one-line ValueError naming the flag for a setting outside its choices or
  bounds (nested configs included)."""
  return settings.check(cfg)


def export_only(rt, cfg, *, flags=None):
  """Re-exports the best finished run of `cfg` in `rt.workdir` to `rt.export_dir` (nothing is
  trained)."""
  workdir = rt.workdir
  configs = run_configs(cfg)
  data = load_data(rt, cfg)
  runtime_flags.finished_results(workdir)  # missing or damaged: named, not skipped
  records = [_record(os.path.join(workdir, "runs", c.name)) for c in configs]
  missing = [c.name for c, r in zip(configs, records) if r is None]
  if missing:
    raise ValueError(f"--export_only: runs {missing} of these flags have not finished in "
                     f"{workdir}; train first (drop --export_only).")
  check_protocol(cfg, records)
  export_classifier(rt, cfg, _best_config(configs, records, cfg.keys["val"]), data, rt.export_dir,
                    flags)


def check_protocol(cfg, records):
  """A one-line ValueError when λ is to be selected task-aware on runs recorded before the
  task-aware accuracy existed."""
  old = [r for r in records if r is not None and "diverged" not in r and
         cfg.keys["val"] not in r]
  if old:
    raise ValueError(f"--select_on={cfg.select_on}: {len(old)} finished run(s) (e.g. "
                     f"{old[0]['method']} seed {old[0]['seed']}) were recorded before the "
                     "task-aware accuracy existed; select on class_incremental, or use a new "
                     "--workdir.")


def train_runs(rt, configs, data, workdir, dataset):
  """Trains (or reuses) every run; returns their records (a diverged run's says so)."""
  records = []
  for cfg in configs:
    run_dir = os.path.join(workdir, "runs", cfg.name)
    record = _record(run_dir)
    if record is None:
      rt.seed(cfg.seed)
      logging.info("run %s", cfg.name)
      first = sequential.train_first_task(
          rt, cfg, data, os.path.join(workdir, "runs", cfg.first_task_name))
      try:
        record, _ = sequential.run(rt, cfg, data, run_dir, first)
      except loop.NonFiniteLossError as e:
        logging.warning("%s diverged (%s); recorded as such, the sweep goes on.", cfg.name,
                        str(e).split(". ")[0])
        record = {**cfg.record_config(), "diverged": str(e).split(". ")[0]}
      if rt.is_chief:
        record = results.save_record(run_dir, record)
        rt.writer(os.path.relpath(run_dir, workdir)).write_hparams(
            {**cfg.record_config(), "model": cfg.model, "dataset": dataset})
    if "diverged" not in record:
      logging.info("%s: average accuracy %.4f, per task %s", cfg.name,
                   record["average_accuracy"], np.round(record["task_accuracy"], 4).tolist())
    records.append(record)
  return records


def report_sections(cfg, every, records, best, oracle, lambdas, data, figs, diverged):
  t = cfg.train
  protocol = PROTOCOL_NAMES[cfg.select_on]
  num_tasks = len(data.tasks)
  optimisers = ", ".join(f"{o} {cfg.lr if o == 'adam' else cfg.sgd_lr:g}"
                         for o in cfg.optimizer)
  sections = [
      ("Setup", f"Data set `{cfg.dataset}`, tasks `{cfg.tasks}` ({len(data.train_x)} training "
                f"/ {len(data.test_x)} test images), model `{t.model}`, {t.epochs} epochs "
                f"per task, batch {t.batch_size}, optimisers {optimisers}, "
                f"{t.loss} loss over `{t.loss_classes}` logits, Fisher `{t.fisher}` "
                f"from {t.fisher_samples} {t.fisher_split} images per task "
                f"({t.fisher_mode}), convolution rotations `{t.conv_factor}`, output "
                f"rotation `{t.output_rotation}`, seeds {list(cfg.seeds)}. "
                f"{100 * cfg.validation_fraction:g}% of each class's training images "
                f"({len(data.val_x)}) are held out for validation: λ is selected per method on "
                "validation average accuracy after the last task, and test accuracy is reported "
                "at that λ. Two evaluations are recorded: class-incremental (one head: the "
                "argmax over all classes seen so far, the reference's) and task-aware (each "
                "task's images by the argmax over that task's own classes); the tables use the "
                f"{protocol} one (--select_on={cfg.select_on})."),
      (f"Accuracy after the last task (paper layout, {protocol})",
       "Cells: accuracy % on " + " / ".join(f"task {j + 1}" for j in range(num_tasks)) +
       ", mean±std over seeds; \"diverged\": the loss became non-finite on some seeds (that λ "
       "is not selected).\n\n" + paper_table(every, lambdas, cfg.keys["tasks"])),
      (f"Selected λ per method ({protocol})",
       "λ selected on validation; test accuracies at that λ, mean±std over seeds. Against EWC "
       "(same optimiser, its own selected λ): seeds where the method's test average accuracy "
       "is higher, a paired t-test and a sign test over the seeds. The oracle columns select "
       "λ on test (optimistic, for comparison only).\n\n" +
       summary_table(best, oracle, cfg.keys)),
      ("Class-incremental and task-aware accuracy",
       "At each method's selected λ, mean±std over seeds. Class-incremental: one head over "
       "every class seen so far, so a task's images can be mistaken for any other task's "
       "classes; task-aware: the task is given and only its own classes compete, so forgetting "
       "there is forgetting within a task. Accuracy matrices of both: the figures.\n\n" +
       protocols_table(best)),
  ]
  decomposition = decomposition_table(records, best, cfg.keys["test"])
  if decomposition:
    sections.append(("The rotation alone and with the penalty",
                     "Test average accuracy %, mean±std over seeds. R-EWC at λ=0 trains in the "
                     "rotated basis without any penalty: under SGD it equals FT (an orthogonal "
                     "re-parameterisation is invisible to gradient descent), under Adam it is "
                     "not (Adam's per-coordinate scaling depends on the basis). Plain SGD "
                     "stays stable only while λ·F_ii < 2/lr for every coordinate i; the "
                     "rotation moves the Fisher's energy onto few diagonal entries (the energy "
                     "table below), so under SGD a rotated penalty can diverge at a λ where "
                     "EWC's does not (see Diverged runs).\n\n" +
                     decomposition))
  if any(r["method"] == "rewc" for r in records):
    sections.append(("Fisher energy on the diagonal",
                     "Share ||diag F||² / ||F||²_F of the sample Fisher of the rotated layers' "
                     "kernels on the task-1 Fisher images, before and after the rotation.\n\n" +
                     energy_table(records) + "\n\n![fisher energy](fisher_energy.png)"))
  if diverged:
    sections.append(("Diverged runs",
                     "Settings whose loss became non-finite on some seed; each is left out of "
                     "the selection and of the means.\n\n" + diverged_table(diverged)))
  sections.append(("Figures", "\n\n".join(f"![{p}]({p})" for p in figs
                                          if p != "fisher_energy.png")))
  return sections


def train_and_evaluate(rt, cfg, *, flags=None):
  """Runs the sweep into `rt.workdir` (resuming and reusing what is finished there), writes
  results.json, REPORT.md and the figures, and exports the best run's classifier to
  `rt.export_dir` (when set). `flags`: the program's flag values, kept in results.json and the
  model card. Returns the records (diverged runs included)."""
  workdir, export_dir = rt.workdir, rt.export_dir
  configs = run_configs(cfg)
  data = load_data(rt, cfg)
  every = train_runs(rt, configs, data, workdir, cfg.dataset)
  if not rt.is_chief:
    return every
  check_protocol(cfg, every)
  lambdas = sorted(set(cfg.lambdas))
  records, diverged = split_diverged(every)
  if not records:
    raise ValueError("every run diverged (non-finite loss); lower --sgd_lr or --lr.")
  best, oracle = best_by_method(records, cfg.keys["val"]), best_by_method(records,
                                                                           cfg.keys["test"])
  figs = make_figures(workdir, records, best, lambdas, len(data.tasks), rt.writer("summary"),
                      cfg.keys)
  flat = [{k: v for k, v in r.items() if k != "accuracy_matrix"} | {"accuracy_matrix":
          r.get("accuracy_matrix")} for r in every]
  claim_list = claims(best, cfg.keys)
  results.write_results(workdir, PROGRAM, flags or {}, flat, figs, claim_list)
  results.write_report(workdir, "R-EWC: rotated elastic weight consolidation",
                       report_sections(cfg, every, records, best, oracle, lambdas, data, figs,
                                       diverged), claim_list)
  if export_dir:
    export_classifier(rt, cfg, _best_config(configs, every, cfg.keys["val"]), data, export_dir,
                      flags)
  return every
