"""Transferring GANs: what to transfer when training a GAN on little data (Wang et al., ECCV 2018).

`train_and_evaluate(rt, cfg)` is what `lamp-tf-transfer-gan` runs; tests and notebooks
call it directly. An unconditional WGAN-GP is pretrained on each source (once, cached in
<workdir>/pretrain/<source>), then a GAN is trained on the target with n images per class,
starting the generator and/or critic from the pretrained run (configurations none, critic,
generator, both): unconditional as the paper's Table 1 (`target_mode='unconditional'`, the
default; the reference code fine-tunes every weight at lr 1e-5, batch 16:
flags/transfer_gan_table1.cfg) or a class-conditional AC-GAN (`target_mode='conditional'`, the
paper's unconditional -> conditional experiment). Every run is scored against the real target
test images: FID and KID on the features of a target-domain classifier trained by the project (or
Inception-v3 from `inception_weights`), IW from a fresh critic, and (conditional) the
classifier's accuracy on the samples. `iw_curve` measures IW after several critic lengths for the
first seed's four configurations, to choose `iw_steps` where the ranking no longer changes; with
several seeds the report gives the rank agreement (Kendall's tau) of FID, KID and IW across seeds
and between metrics. Experiments:
- configs: the four configurations at `main_size` images per class;
- limited: scratch vs pretrained (both) for each of `target_sizes`;
- sources: every `sources` entry (both) and scratch at `main_size`, ranked by FID.
Runs shared by experiments are trained once; a finished run (its record.json) is not trained
again. Writes the three tables, FID-vs-iteration curves and sample grids to REPORT.md /
results.json / TensorBoard, and exports the best generator as a SavedModel: signature
`generate(z [N, z_dim] float32, label [N] int64) -> images [N, R, R, C]`, with both networks'
weights by name in its `weights` attribute (usable as a transfer source).
"""

import dataclasses
import os

import numpy as np
import scipy.stats
from absl import logging

from lamp_tf.data import gan_data, preprocess
from lamp_tf.gan import training, transfer
from lamp_tf.metrics import evaluators, features as features_lib
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import figures, flags as runtime_flags, results, settings
from lamp_tf.runtime.settings import setting

PROGRAM = "lamp-tf-transfer-gan"
EXPERIMENTS = ("configs", "limited", "sources")
TARGET_MODES = ("unconditional", "conditional")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """The settings of a Transferring-GANs experiment. The fields with help, and `train`'s, are
  the program's flags; the networks' and the scores' fields are filled from the flags the GAN
  programs share (lamp_tf.apps.gan_flags)."""

  train: training.TrainConfig = training.TrainConfig(eval_every=500)  # every target run's
  sources: tuple = setting(
      ("fashion_mnist:0,1,2,3,4", "mnist5k"), "Pretraining source '<data set>[:<classes>]'; "
      "repeat the flag for several; the first is the one of the configs and limited "
      "experiments.", multi=True, nonempty=True)
  target: str = setting("fashion_mnist:5,6,7,8,9", "Target '<data set>[:<classes>]' (data set "
                        "folder:PATH: your images in PATH/<class>/<image>.png).")
  experiments: tuple = setting(EXPERIMENTS, "Which of configs, limited, sources to run.",
                               choices=EXPERIMENTS)
  configs: tuple = setting(tuple(transfer.CONFIGS), "Configurations for the configs experiment.",
                           choices=transfer.CONFIGS)
  main_size: int = setting(100, "Target images per class (configs, sources); 0: all.", lower=0)
  target_sizes: tuple = setting(
      (10, 100, 1000, 0), "Target images per class for the limited experiment (0: all).",
      item=int, lower=0)
  seeds: tuple = setting((0,), "Seeds (tables: mean and std).", item=int, lower=0,
                         distinct=True, nonempty=True)
  target_mode: str = setting(
      "unconditional", "Target GAN: unconditional (the paper's Table 1) or class-conditional "
      "AC-GAN (the pretrained unconditional batch norm copied to every class).",
      choices=TARGET_MODES)
  pretrain_iterations: int = setting(5000, "Generator updates on the source.", lower=1)
  pretrain_lr: float = setting(
      0.0, "Adam learning rate on the source (0: --lr). The reference fine-tunes at 1e-5 from "
      "sources trained at the usual 1e-4.", lower=0.0)
  pretrain_batch_size: int = setting(0, "Batch size on the source (0: --batch_size).", lower=0)
  iterations: int = setting(2000, "Generator updates on the target.", lower=1)
  freeze_critic: int = setting(
      0, "FreezeD: freeze the first k critic layers of pretrained critics.", lower=0)
  num_samples: int = setting(5000, "Generated images per score.", lower=10)
  iw_steps: int = setting(500, "Training steps of the IW critic.", lower=1)
  iw_curve: tuple = setting(
      (), "Critic steps at which IW is measured for the first seed's configs runs (a figure and "
      "table to choose --iw_steps from; empty: none).", item=int, lower=1, distinct=True)
  # networks (nets.gan.make_gan)
  architecture: str = "dcgan"
  conditioning: str = "cbn"
  resolution: int = 32
  channels: int = 1
  g_width: int = 0  # 0: the architecture's default
  d_width: int = 0
  # scoring
  classifier_steps: int = 2000
  inception_weights: str = None
  data_dir: str = None
  download: bool = False

  def validate(self):
    """A one-line ValueError naming the flag for a setting that cannot run."""
    settings.check(self)
    return self

  @property
  def conditional(self):
    return self.target_mode == "conditional"

  def gan_config(self, num_classes):
    """The kwargs of nets.gan.make_gan (`num_classes` None: unconditional)."""
    return gan_nets.gan_kwargs(self, num_classes)

  def train_config(self, iterations, seed, **changes):
    """training.TrainConfig of a run: `train` with these updates and seed."""
    return dataclasses.replace(self.train, iterations=iterations, seed=seed, **changes)


@dataclasses.dataclass(frozen=True)
class Run:
  source: str  # 'none' for scratch
  config: str
  size: int
  seed: int
  conditional: bool

  @property
  def name(self):
    src = "scratch" if self.config == "none" else gan_data.dirname(self.source)
    mode = "" if self.conditional else "__uncond"
    return f"{src}__{self.config}__n{self.size or 'all'}{mode}__seed{self.seed}"


def planned_runs(cfg):
  """{experiment: [Run]} for the config."""
  main, first = cfg.main_size, cfg.sources[0]
  run = lambda source, config, size, seed: Run(source, config, size, seed, cfg.conditional)
  plan = {}
  if "configs" in cfg.experiments:
    plan["configs"] = [run(first, c, main, s) for s in cfg.seeds for c in cfg.configs]
  if "limited" in cfg.experiments:
    plan["limited"] = [run(first, c, n, s) for s in cfg.seeds for n in cfg.target_sizes
                       for c in ("none", "both")]
  if "sources" in cfg.experiments:
    plan["sources"] = [run(src, "both", main, s) for s in cfg.seeds for src in cfg.sources] + \
        [run(first, "none", main, s) for s in cfg.seeds]
  return plan


def load(cfg, spec, split):
  return gan_data.load_gan_data(spec, split, cfg.resolution, cfg.channels, cfg.data_dir,
                                cfg.download)


def pretrain(rt, cfg, workdir, source):
  """The unconditional source run (trained once); returns its directory. Its settings are kept
  in pretrain.json: a workdir whose source was pretrained otherwise is refused, not reused."""
  run_dir = os.path.join(workdir, "pretrain", gan_data.dirname(source))
  used = {"iterations": cfg.pretrain_iterations, "lr": cfg.pretrain_lr or cfg.train.lr,
          "batch_size": cfg.pretrain_batch_size or cfg.train.batch_size}
  path = os.path.join(run_dir, "pretrain.json")
  if os.path.exists(path) and results.files.read_json(path) != used:
    raise ValueError(
        f"{run_dir} was pretrained with {results.files.read_json(path)}, not {used}: use "
        "another --workdir, or the --pretrain_* flags it was trained with.")
  data = load(cfg, source, "train")
  training.train_gan(rt, run_dir, cfg.gan_config(None), data.images,
                     np.zeros(len(data.labels), np.int64),
                     cfg.train_config(cfg.pretrain_iterations, 0, eval_every=0,
                                      lr=used["lr"], batch_size=used["batch_size"]),
                     name=f"pretrain {source}")
  if rt.is_chief:
    results.files.write_json(path, used)
  return run_dir


def make_evaluator(cfg, target_test, target_train):
  extractor = features_lib.InceptionFeatures(cfg.inception_weights) \
      if cfg.inception_weights else None
  classifier = features_lib.DomainClassifier.train_or_load(
      features_lib.cache_dir(), target_train.images, target_train.labels,
      target_test.images, target_test.labels, target_train.num_classes,
      steps=cfg.classifier_steps)
  return evaluators.make("gan", target_test.images, target_test.labels, extractor or classifier,
                         num_samples=cfg.num_samples,
                         num_classes=target_test.num_classes if cfg.conditional else None,
                         iw_steps=cfg.iw_steps, classifier=classifier)


def train_target(rt, cfg, workdir, run, target_train, evaluator, pretrained_dirs):
  """One target run; returns (record, generator)."""
  run_dir = os.path.join(workdir, "runs", run.name)
  data = target_train.limit(run.size, seed=run.seed)
  init = None
  if run.config != "none":
    weights = transfer.load_pretrained(pretrained_dirs[run.source])
    init = lambda generator, critic: transfer.initialise(generator, critic, weights, run.config)

  freeze = cfg.freeze_critic if run.config in ("critic", "both") else 0
  num_classes = target_train.num_classes if run.conditional else None
  labels = data.labels if run.conditional else np.zeros(len(data.labels), np.int64)
  result = training.train_gan(
      rt, run_dir, cfg.gan_config(num_classes), data.images, labels,
      cfg.train_config(cfg.iterations, run.seed), init=init,
      evaluate=lambda it, g: evaluator(g, with_iw=False), freeze_critic=freeze, name=run.name)
  final = evaluator(result.generator, with_iw=True)
  record = {"source": "none" if run.config == "none" else run.source, "config": run.config,
            "target_size": run.size if run.size else "all", "images_per_class": run.size,
            "train_images": int(len(data.labels)), "seed": run.seed,
            "target_mode": "conditional" if run.conditional else "unconditional",
            "iterations": cfg.iterations, **final, "iw_steps": cfg.iw_steps,
            "features": evaluator.label,
            "fid_curve": [[c["iteration"], c["fid"]] for c in result.curve]}
  return record, result.generator


def _select(records, **match):
  return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def claims(cfg, records):
  """The talk's claim on transfer: with limited data and the same budget, a pretrained
  generator and critic reach a lower FID than training from scratch (mean over seeds)."""
  pool = _select(records, experiment="configs") or records
  scratch, both = _select(pool, config="none"), _select(pool, config="both")
  if not scratch or not both:
    return []
  size = scratch[0]["images_per_class"] or "all"
  scratch = [r for r in scratch if (r["images_per_class"] or "all") == size]
  both = [r for r in both if (r["images_per_class"] or "all") == size]
  if not both:
    return []
  a, b = np.mean([r["fid"] for r in both]), np.mean([r["fid"] for r in scratch])
  return [results.claim(
      "Pretrained G+D reaches a lower FID than scratch with limited data at the same budget",
      f"FID with {size} images per class, {cfg.iterations} updates, {len(both)} seed(s): "
      f"pretrained G+D {a:.2f}, scratch {b:.2f}", a < b)]


CONFIG_NAMES = {"none": "G scratch / D scratch", "critic": "G scratch / D pretrained",
                "generator": "G pretrained / D scratch", "both": "G pretrained / D pretrained"}
BETTER = {"fid": -1.0, "kid": -1.0, "iw": 1.0}  # the sign that makes higher better


def configs_table(records):
  present = [c for c in transfer.CONFIGS if _select(records, config=c)]
  rows = []
  for metric, label in (("fid", "FID (lower better)"), ("kid", "KID (lower better)"),
                        ("iw", "IW (higher better)"),
                        ("sample_accuracy", "sample accuracy (higher better)")):
    if not all(metric in r for r in records):
      continue  # sample accuracy: conditional targets only
    rows.append([label] +
                [results.mean_std([r[metric] for r in _select(records, config=c)],
                                  digits=4 if metric == "kid" else 2)
                 for c in present])
  return results.markdown_table(["metric"] + [CONFIG_NAMES[c] for c in present], rows)


def ranking(records, metric):
  """The configurations present, best first by `metric`."""
  return sorted((r["config"] for r in records), key=lambda c: -BETTER[metric] * next(
      r[metric] for r in records if r["config"] == c))


def rank_agreement(records):
  """Kendall's tau of the configurations' order by FID, KID and IW (records of one experiment):
  per metric between every two seeds, and per pair of metrics within each seed, as mean over
  the pairs (resp. seeds). Two tables, or None with fewer than two configurations."""
  by_seed = {}
  for r in records:
    by_seed.setdefault(r["seed"], []).append(r)
  configs = [c for c in transfer.CONFIGS if _select(records, config=c)]
  by_seed = {s: rs for s, rs in by_seed.items() if sorted(r["config"] for r in rs) ==
             sorted(configs)}
  if len(configs) < 2 or not by_seed:
    return None
  score = lambda rs, m: [BETTER[m] * next(r[m] for r in rs if r["config"] == c) for c in configs]
  tau = lambda a, b: float(scipy.stats.kendalltau(a, b).statistic)
  seeds, rows = sorted(by_seed), []
  for m in BETTER:
    taus = [tau(score(by_seed[a], m), score(by_seed[b], m))
            for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    rows.append([m.upper(), "; ".join(f"seed {s}: " + " > ".join(ranking(by_seed[s], m))
                                       for s in seeds),
                 f"{np.mean(taus):.2f} ({len(taus)} pairs)" if taus else "- (one seed)"])
  seeds_table = results.markdown_table(
      ["metric", "order of the configurations, best first", "Kendall τ between seeds"], rows)
  rows = []
  for a, b in (("fid", "kid"), ("fid", "iw"), ("kid", "iw")):
    taus = [tau(score(rs, a), score(rs, b)) for rs in by_seed.values()]
    rows.append([f"{a.upper()} vs {b.upper()}", f"{np.mean(taus):.2f}", len(taus)])
  return seeds_table, results.markdown_table(
      ["metrics", "Kendall τ (mean over seeds)", "seeds"], rows)


def iw_curves(cfg, workdir, evaluator, records):
  """{config: [IW after each of cfg.iw_curve's critic steps]} for the first seed's runs of
  `records`, each kept in its run directory (iw_curve.json) so a rerun does not train the
  critics again."""
  steps = sorted(cfg.iw_curve)
  seed = min(r["seed"] for r in records)
  curves = {}
  for r in _select(records, seed=seed):
    path = os.path.join(workdir, "runs", r["run"], "iw_curve.json")
    cached = results.files.read_json(path) if os.path.exists(path) else {}
    if cached.get("steps") != steps or cached.get("num_samples") != cfg.num_samples:
      generator, _ = transfer.restore_run(os.path.join(workdir, "runs", r["run"]))
      logging.info("IW curve of %s over %s critic steps", r["run"], steps)
      cached = {"steps": steps, "num_samples": cfg.num_samples,
                "iw": evaluator.iw_curve(generator, steps)}
      results.files.write_json(path, cached)
    curves[r["config"]] = cached["iw"]
  return seed, curves


def iw_curve_table(curves, steps):
  rows = []
  for i, n in enumerate(steps):
    order = sorted(curves, key=lambda c: -curves[c][i])
    rows.append([n] + [f"{curves[c][i]:.3f}" for c in curves] + [" > ".join(order)])
  return results.markdown_table(["critic steps"] + [CONFIG_NAMES[c] for c in curves] +
                                ["order, best first"], rows)


def limited_table(records):
  sizes = sorted({r["images_per_class"] for r in records}, key=lambda n: n or 10 ** 9)
  rows = []
  for n in sizes:
    s, p = _select(records, images_per_class=n, config="none"), _select(
        records, images_per_class=n, config="both")
    stat = lambda rs, key, digits=2: results.mean_std([r[key] for r in rs], digits=digits) \
        if rs else ""
    rows.append([n or "all", s[0]["train_images"] if s else "", stat(s, "fid"), stat(p, "fid"),
                 stat(s, "kid", 4), stat(p, "kid", 4)])
  return results.markdown_table(["images per class", "training images", "FID scratch",
                                 "FID pretrained", "KID scratch", "KID pretrained"], rows)


def sources_table(records):
  groups = {}
  for r in records:
    groups.setdefault(r["source"] if r["config"] != "none" else "scratch", []).append(r)
  ranked = sorted(groups.items(), key=lambda kv: np.mean([r["fid"] for r in kv[1]]))
  rows = [[i + 1, src, results.mean_std([r["fid"] for r in rs]),
           results.mean_std([r["kid"] for r in rs], digits=4),
           results.mean_std([r["iw"] for r in rs])] for i, (src, rs) in enumerate(ranked)]
  return results.markdown_table(["rank", "source", "FID", "KID", "IW"], rows)


def curve_figure(records, label_key, title):
  """FID against generator iterations per label: the mean over seeds with a ± std band."""
  series = {}
  for r in records:
    series.setdefault(r[label_key], []).append(r["fid_curve"])
  fig_series, x = {}, None
  for label, curves in series.items():
    x = [c[0] for c in curves[0]]
    ys = np.array([[c[1] for c in curve] for curve in curves])
    fig_series[str(label)] = (ys.mean(axis=0), ys.std(axis=0) if len(ys) > 1 else None)
  seeds = len({r["seed"] for r in records})
  return figures.lines(x, fig_series, f"{title} ({seeds} seed{'s' * (seeds > 1)}"
                       f"{', ± std' if seeds > 1 else ''})", "generator iterations", "FID",
                       band=True)


def sample_grid(generator, num_classes, seed, per_class=8):
  """One row per class (num_classes rows), or 8 rows of samples of an unconditional one."""
  rows = num_classes or 8
  labels = np.repeat(np.arange(num_classes), per_class) if num_classes else \
      np.zeros(rows * per_class, np.int64)
  images = gan_nets.generate(generator, labels, seed)
  return figures.image_grid(preprocess.unscale(images).numpy(), rows, per_class)


def _best(records):
  return min(records, key=lambda r: r["fid"])


def export_best(rt, cfg, workdir, export_dir, best, flags=None):
  """Exports the run with the lowest FID (TF Serving layout, model card); returns its path."""
  generator, critic = transfer.restore_run(os.path.join(workdir, "runs", best["run"]))
  card = runtime_flags.model_card(PROGRAM, {k: best.get(k) for k in ("fid", "kid", "iw")},
                                  flags=flags or {}, run=best["run"], data=cfg.target)
  path = transfer.export_generator(generator, critic, export_dir, version=rt.export_version,
                                   card=card, formats=rt.export_format)
  logging.info("exported %s (FID %.2f) to %s", best["run"], best["fid"], path)
  return path


def export_only(rt, cfg, *, flags=None):
  """Re-exports the finished run of `rt.workdir` with the lowest FID to `rt.export_dir` (the
  program must have finished)."""
  cfg.validate()
  return export_best(rt, cfg, rt.workdir, rt.export_dir,
                     _best(runtime_flags.finished_results(rt.workdir)["runs"]), flags)


def run_all(rt, cfg, workdir, plan, target_train, evaluator):
  """{run name: record}: every planned run trained (or its record reused; IW measured again
  when `iw_steps` changed)."""
  by_name = {run.name: run for runs in plan.values() for run in runs}
  needed = sorted({r.source for r in by_name.values() if r.config != "none"})
  pretrained_dirs = {src: pretrain(rt, cfg, workdir, src) for src in needed}
  done = {}
  for name, run in by_name.items():
    run_dir = os.path.join(workdir, "runs", name)
    record = results.load_record(run_dir)
    if record is None:
      logging.info("run %s", name)
      record, _ = train_target(rt, cfg, workdir, run, target_train, evaluator, pretrained_dirs)
      record["run"] = name
      if rt.is_chief:
        record = results.save_record(run_dir, record)
    elif record.get("iw_steps") != cfg.iw_steps:  # iw_steps chosen again (from iw_curve)
      generator, _ = transfer.restore_run(run_dir)
      logging.info("%s: IW again with a %d-step critic", name, cfg.iw_steps)
      record.update(iw=evaluator.iw_curve(generator, [cfg.iw_steps])[0], iw_steps=cfg.iw_steps)
      if rt.is_chief:
        record = results.save_record(run_dir, record)
    done[name] = record
    logging.info("%s: FID %.2f KID %.4f IW %.3f", name, record["fid"], record["kid"], record["iw"])
  return done


def validate(cfg):
  """`cfg`, or a one-line ValueError naming the flag for a setting that cannot run."""
  return cfg.validate()


def train_and_evaluate(rt, cfg, *, flags=None):
  """Runs the planned experiments, writes results.json, REPORT.md and the figures into
  `rt.workdir`, and exports the best generator to `rt.export_dir` (when set). Returns the
  records (one per experiment and run; a run shared by experiments appears in each)."""
  cfg.validate()
  workdir, export_dir = rt.workdir, rt.export_dir
  for flag, spec in [("sources", s) for s in cfg.sources] + [("target", cfg.target)]:
    gan_data.check_spec(spec, flag, cfg.data_dir, cfg.download)  # before any training
  plan = planned_runs(cfg)
  target_train, target_test = load(cfg, cfg.target, "train"), load(cfg, cfg.target, "test")
  for exp, flag, sizes in (("configs", "main_size", [cfg.main_size]),
                           ("sources", "main_size", [cfg.main_size]),
                           ("limited", "target_sizes", cfg.target_sizes)):
    for size in sizes if exp in plan else ():
      target_train.check_limit(size, flag)  # before any training
  evaluator = make_evaluator(cfg, target_test, target_train)
  done = run_all(rt, cfg, workdir, plan, target_train, evaluator)
  records = [{"experiment": exp, **done[run.name]} for exp, runs in plan.items() for run in runs]
  if not rt.is_chief:
    return records
  writer = rt.writer("summary")
  sections, figs = report_sections(cfg, workdir, plan, records, target_train, target_test,
                                   evaluator, writer)
  writer.flush()
  claim_list = claims(cfg, records)
  results.write_results(workdir, PROGRAM, flags or {}, records, figs, claim_list)
  results.write_report(workdir, "Transferring GANs", sections, claim_list)
  if export_dir:
    export_best(rt, cfg, workdir, export_dir, _best(records), flags)
  return records


def report_sections(cfg, workdir, plan, records, target_train, target_test, evaluator, writer):
  """(REPORT.md sections, figure files written into `workdir`)."""
  figs, sections = [], [("Setup", setup_text(cfg, target_test, evaluator))]
  if "configs" in plan:
    rs = _select(records, experiment="configs")
    sections.append(("What to transfer (four configurations)",
                     f"{cfg.main_size} target images per class.\n\n" + configs_table(rs)))
    results.save_figure(curve_figure(rs, "config", "FID during target training"),
                        os.path.join(workdir, "fid_curves_configs.png"), writer)
    figs.append("fid_curves_configs.png")
    seed0 = cfg.seeds[0]
    for r in _select(rs, seed=seed0):
      config = r["config"]
      generator, _ = transfer.restore_run(os.path.join(workdir, "runs", r["run"]))
      grid = sample_grid(generator, target_train.num_classes if cfg.conditional else None, seed0)
      path = f"samples_{config}.png"
      results.save_figure(figures.image(grid, f"{config}: one row per class" if cfg.conditional
                                        else f"{config}: unconditional samples"),
                          os.path.join(workdir, path), writer)
      writer.write_images(0, {f"samples/{config}": grid})
      figs.append(path)
    agreement = rank_agreement(rs)
    if agreement:
      sections.append(("Do FID, KID and IW rank the configurations alike?",
                       "Kendall's τ (1: the same order, -1: reversed) of the configurations "
                       f"ordered by each metric (IW after {cfg.iw_steps} critic steps), "
                       "between seeds and between metrics.\n\n" + agreement[0] + "\n\n" +
                       agreement[1]))
    if cfg.iw_curve:
      steps = sorted(cfg.iw_curve)
      seed, curves = iw_curves(cfg, workdir, evaluator, rs)
      fig = figures.lines(steps, {CONFIG_NAMES[c]: (v, None) for c, v in curves.items()},
                          f"IW against the IW critic's training length (seed {seed})",
                          "critic steps", "IW (higher better)", logx=True)
      results.save_figure(fig, os.path.join(workdir, "iw_curve.png"), writer)
      figs.append("iw_curve.png")
      sections.append(("IW against the critic's training length",
                       f"IW of the seed-{seed} model of each configuration, the fresh critic "
                       "measured after each number of steps (one critic per model, trained once "
                       f"up to the largest); the tables above use --iw_steps={cfg.iw_steps}. "
                       "Choose it where the order stops changing.\n\n" +
                       iw_curve_table(curves, steps) + "\n\n![IW curve](iw_curve.png)"))
  if "limited" in plan:
    rs = _select(records, experiment="limited")
    sections.append(("Limited data: scratch vs pretrained", limited_table(rs)))
    for config in ("none", "both"):
      sub = _select(rs, config=config)
      if sub:
        label = "scratch" if config == "none" else "pretrained"
        fig = curve_figure(sub, "images_per_class",
                           f"FID during training ({label}), by images per class")
        results.save_figure(fig, os.path.join(workdir, f"fid_curves_limited_{config}.png"),
                            writer)
        figs.append(f"fid_curves_limited_{config}.png")
  if "sources" in plan:
    sections.append(("Source selection", f"{cfg.main_size} target images per class, "
                     "generator and critic pretrained, ranked by FID.\n\n" +
                     sources_table(_select(records, experiment="sources"))))
  sections.append(("Figures", "\n\n".join(f"![{f}]({f})" for f in figs)))
  return sections, figs


def setup_text(cfg, target_test, evaluator):
  if cfg.conditional:
    target = (f"class-conditional AC-GAN ({cfg.conditioning}; the pretrained unconditional "
              "batch norm copied to every class)")
  else:
    target = "unconditional WGAN-GP (the paper's Table 1)"
  t = cfg.train
  return (
      f"Target `{cfg.target}` (test split: {len(target_test.labels)} real images, the "
      f"reference for every score); sources {', '.join(f'`{s}`' for s in cfg.sources)} "
      f"(unconditional pretraining, {cfg.pretrain_iterations} generator updates, batch "
      f"{cfg.pretrain_batch_size or t.batch_size}, Adam {cfg.pretrain_lr or t.lr:g}); "
      f"target runs: {target}, {cfg.architecture} {cfg.resolution}x{cfg.resolution}, "
      f"{cfg.iterations} generator updates, batch {t.batch_size}, {t.n_critic} critic "
      f"steps, Adam {t.lr:g} (0, 0.9), seeds {', '.join(map(str, cfg.seeds))}. Scores on "
      f"{cfg.num_samples} samples: {evaluator.label}; IW from a fresh critic trained "
      f"{cfg.iw_steps} steps (higher is better).")
