"""Mix-and-match style transfer across five domains (photo, Monet, van Gogh, Ukiyo-e, Cézanne).

`train_and_evaluate(rt, cfg)` is what `lamp-tf-style-transfer` runs; tests and notebooks
call it directly. One encoder and one decoder per domain through a shared latent
(`domains.DomainMixMatch`, the recolouring model of the paper's many-to-many setting: unpaired,
LSGAN multi-head PatchGAN, cycle weight 10, autoencoding and latent consistency; each encoder
ends in 6 residual blocks as the authors' CycleGAN-style generator), trained on the
pairs with the anchor domain only (photo <-> each painter), so painter -> painter translation is
zero-pair; `pairs='all'` trains every pair instead (the non-zero-pair upper bound). Baseline:
`domains.PairCycleGAN`, one CycleGAN per domain pair with the same networks, on the pairs the
mix-and-match model never trained (or all pairs).

Evaluation on the test images of every ordered pair (a, b):
- target-domain accuracy: a 5-way domain classifier trained on real training images of the
  domains (`features.DomainClassifier`) labels the outputs; chance is 1/N;
- content: SSIM of the output's luminance against the input's and, where the test set is paired
  (the procedural styles: every test scene in every domain), against the same scene's true
  rendering in b;
- FID per target domain on the classifier's 128-d features: the outputs into b from trained
  sources and from zero-pair sources against b's real test images, beside the real-vs-real
  floor (b's training images against its test images).
Each run resumes from its checkpoint and a finished run (its record.json) is not trained again.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.data import colours, folder, preprocess, styles
from lamp_tf.metrics import evaluators, features as features_lib, fid as fid_lib
from lamp_tf.mixmatch import domains, train
from lamp_tf.runtime import export, figures, flags as runtime_flags, results
from lamp_tf.runtime import settings
from lamp_tf.runtime.settings import setting

PROGRAM = "lamp-tf-style-transfer"
PAIRS = ("star", "all")
FIGURE_CAPTIONS = {
    "style_grid.png": "One test scene through every decoder: row a, column b is a -> b (the "
                      "diagonal autoencodes; pairs without the anchor are zero-pair); the first "
                      "column is the input and, on a paired test set, the last row the true "
                      "renderings. Look for the target's palette and texture on the input's "
                      "layout.",
    "style_accuracy.png": "Share of outputs the domain classifier assigns to the target "
                          "domain, per ordered pair (chance 1/N).",
}
BASELINE_PAIRS = ("zero_pair", "all", "none")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """The settings of a style-transfer experiment; each is also the program's flag."""

  style_source: str = setting(
      "procedural", "Data: procedural (the five rendered styles, built offline as the TFDS data "
      "set procedural_styles), cycle_gan (TFDS cycle_gan/<painter>2photo, prepared with `tfds "
      "build`) or folder:PATH (your images, PATH/<domain>/<image>; --domains then names those "
      "folders).")
  domains: tuple = setting(styles.DOMAINS,
                           f"Domains, at least 3 of {', '.join(styles.DOMAINS)} (or of the "
                           "class folders of --style_source=folder:PATH).")
  anchor: str = setting(
      "photo", "The domain trained with every other (one of --domains); pairs without it are "
      "zero-pair.")
  pairs: str = setting(
      "star", "Training pairs: star = anchor <-> each other domain (zero-pair elsewhere), all = "
      "every pair (the non-zero-pair upper bound).", choices=PAIRS)
  resolution: int = setting(32, "Image size in pixels (divisible by 4).", lower=8, upper=512)
  num_train: int = setting(400, "Training images per domain (cycle_gan: at most; 0: all).",
                           lower=0)
  num_test: int = setting(200, "Test images per domain (cycle_gan: at most; 0: all).", lower=0)
  steps: int = setting(3000, "Training steps of the mix-and-match model.", lower=1)
  batch_size: int = setting(16, "Images per domain per step.", lower=1)
  lr: float = setting(2e-4, "Adam learning rate (beta1 0.5), every network.", lower=0.0)
  width: int = setting(64, "Encoder / decoder width (channels of the latent).", lower=4)
  critic_width: int = setting(32, "Width of the PatchGAN critic's first layer.", lower=4)
  cycle_weight: float = setting(10.0, "Weight of cycle consistency (paper: 10).", lower=0.0)
  latent_weight: float = setting(1.0, "Weight of latent consistency.", lower=0.0)
  rec_weight: float = setting(10.0, "Weight of autoencoding (reconstruction).", lower=0.0)
  res_blocks: int = setting(
      6, "Residual blocks ending each encoder, at the latent's resolution (the authors' "
      "CycleGAN-style generator: 6; 0: none).", lower=0)
  baseline_pairs: str = setting(
      "zero_pair", "CycleGAN baseline on: zero_pair (the pairs mix-and-match never trained), all "
      "pairs, or none.", choices=BASELINE_PAIRS)
  baseline_steps: int = setting(1500, "Training steps of each CycleGAN.", lower=1)
  classifier_steps: int = setting(1000, "Training steps of the domain classifier.", lower=1)
  seeds: tuple = setting(
      (0,), "Seeds of the mix-and-match model (tables: mean ± std); the baseline and the export "
      "use the first.", item=int, lower=0, distinct=True)
  data_dir: str = None  # the runtime's
  download: bool = False

  def validate(self):
    """A one-line ValueError naming the flag for a setting that cannot run."""
    settings.check(self)
    styles.domain_indices(self.domains, "domains", styles.domain_names(self.style_source))
    if len(set(self.domains)) != len(self.domains) or len(self.domains) < 3:
      raise ValueError(f"--domains={','.join(self.domains)}: list at least 3 distinct domains.")
    if self.anchor not in self.domains:
      raise ValueError(f"--anchor={self.anchor!r} is not one of --domains "
                       f"({', '.join(self.domains)}).")
    if self.resolution % 4:
      raise ValueError(f"--resolution={self.resolution}: must be divisible by 4 (two stride-2 "
                       "layers).")
    return self

  @property
  def anchor_index(self):
    return self.domains.index(self.anchor)

  def trained_pairs(self):
    """Ordered (a, b) index pairs the mix-and-match model trains on."""
    n = len(self.domains)
    return domains.star_pairs(self.anchor_index, n) if self.pairs == "star" \
        else domains.all_pairs(n)

  def zero_pair_pairs(self):
    """Ordered (a, b), a != b, the mix-and-match model never trains."""
    n, trained = len(self.domains), set(self.trained_pairs())
    return [(a, b) for a in range(n) for b in range(n) if a != b and (a, b) not in trained]

  def baseline_pair_list(self):
    """Unordered (a, b), a < b, that get a CycleGAN."""
    n = len(self.domains)
    trained = {tuple(sorted(p)) for p in self.trained_pairs()}
    every = [(a, b) for a in range(n) for b in range(a + 1, n)]
    if self.baseline_pairs == "none":
      return []
    return every if self.baseline_pairs == "all" else [p for p in every if p not in trained]


def network_counts(n):
  """Networks (encoder + decoder = 2 per domain; a CycleGAN generator = 1) for N domains."""
  return {"mixmatch": 2 * n, "cyclegan_all_pairs": 2 * (n * (n - 1) // 2)}


def load_data(cfg):
  data = styles.load_styles(cfg.style_source, cfg.resolution, cfg.num_train, cfg.num_test,
                            cfg.data_dir, cfg.download)
  for d in cfg.domains:
    for split in ("train", "test"):
      if not len(data[split][d]):
        raise folder.TooFewImagesError(f"--domains: domain {d!r} of --style_source="
                                       f"{cfg.style_source} has no {split} images.")
  return {"train": [data["train"][d] for d in cfg.domains],
          "test": [data["test"][d] for d in cfg.domains], "paired_test": data["paired_test"]}


def domain_classifier(cfg, data):
  """The N-way classifier of real images by domain (cached; its test accuracy is reported)."""
  label = lambda arrays: np.concatenate([np.full(len(x), i) for i, x in enumerate(arrays)])
  return features_lib.DomainClassifier.train_or_load(
      features_lib.cache_dir(), domains.to_model(np.concatenate(data["train"])),
      label(data["train"]), domains.to_model(np.concatenate(data["test"])), label(data["test"]),
      len(cfg.domains), steps=cfg.classifier_steps)


def _ssim(x, y):
  """Mean SSIM of the luminance of uint8 images x and y."""
  lum = lambda z: tf.constant(colours.luminance(z)[..., None])
  return float(tf.reduce_mean(tf.image.ssim(lum(x), lum(y), 1.0)))


def translate_batched(fn, images, batch=100):
  """uint8 outputs of `fn` (model-range images -> model-range images) on uint8 `images`."""
  return np.concatenate([domains.from_model(fn(tf.constant(domains.to_model(
      images[i:i + batch])))) for i in range(0, len(images), batch)])


def translate_all(translate, test):
  """{(a, b): uint8 outputs} of `translate(x, a, b)` on domain a's test images, a != b."""
  return {(a, b): translate_batched(lambda x, a=a, b=b: translate(x, a, b), images)
          for a, images in enumerate(test) for b in range(len(test)) if a != b}


def pair_scores(outputs, test, classifier, paired):
  """{(a, b): {accuracy, ssim_input, ssim_target (paired test only)}} of translated outputs."""
  scores = {}
  for (a, b), out in outputs.items():
    s = {"accuracy": float(np.mean(classifier.predict(domains.to_model(out)) == b)),
         "ssim_input": _ssim(out, test[a])}
    if paired:
      s["ssim_target"] = _ssim(out, test[b])
    scores[a, b] = s
  return scores


def target_fid(outputs, test, train_images, classifier, groups):
  """{group: [FID per target domain]} of the outputs into b from the sources of each group
  ({name: set of (a, b)}), against b's real test images; 'real' is b's training images."""
  real = [classifier.features(domains.to_model(x)) for x in test]
  out = {"real": [fid_lib.fid(classifier.features(domains.to_model(x)), r)
                  for x, r in zip(train_images, real)]}
  for name, pairs in groups.items():
    values = []
    for b, r in enumerate(real):
      fakes = [outputs[p] for p in sorted(pairs) if p[1] == b]
      values.append(fid_lib.fid(classifier.features(domains.to_model(np.concatenate(fakes))), r)
                    if fakes else float("nan"))
    out[name] = values
  return out


def latent_distances(model, test, batch=100):
  """[N, N] distance between domain a's and domain b's encodings of the same test scenes (a
  paired test set): mean |z_a - z_b|^2 over z_b's total variance across scenes (0: aligned, as
  zero-pair translation needs; 1: what a constant encoding, z_b's mean, scores; 2: what another
  scene's encoding scores)."""
  z = [np.concatenate([model.encoders(tf.constant(domains.to_model(x[i:i + batch])),
                                      domain=d).numpy() for i in range(0, len(x), batch)])
       .reshape(len(x), -1).astype(np.float64) for d, x in enumerate(test)]
  n = len(z)
  out = np.full([n, n], np.nan)
  for a in range(n):
    for b in range(n):
      if a != b:
        out[a, b] = np.mean(np.sum((z[a] - z[b]) ** 2, axis=1)) / np.sum(np.var(z[b], axis=0))
  return out


def summarise(scores, pairs):
  """Means of each score over the ordered `pairs`."""
  keys = next(iter(scores.values())).keys()
  return {k: float(np.mean([scores[p][k] for p in pairs])) for k in keys} if pairs else {}


def identity_scores(test, classifier, paired):
  """The scores of not translating at all (output = input) and, on a paired test set, of the
  true renderings (output = the target's real image): the floor and the ceiling."""
  n = len(test)
  same = {(a, b): test[a] for a in range(n) for b in range(n) if a != b}
  out = {"input unchanged": pair_scores(same, test, classifier, paired)}
  if paired:
    truth = {(a, b): test[b] for a in range(n) for b in range(n) if a != b}
    out["true rendering"] = pair_scores(truth, test, classifier, paired)
  return out


def _run_dir(name):
  return os.path.join("runs", name)


def train_mixmatch(rt, cfg, data, seed):
  model = domains.DomainMixMatch(len(cfg.domains), cfg.width, cfg.critic_width, cfg.cycle_weight,
                                 cfg.latent_weight, cfg.rec_weight,
                                 cfg.res_blocks).build(cfg.resolution)
  rt.seed(seed)
  train.fit_unpaired(rt, _run_dir(f"mixmatch_seed{seed}"), f"mixmatch seed {seed}", model,
                     data["train"], cfg.trained_pairs(), cfg.batch_size, cfg.steps, cfg.lr, seed)
  return model


def train_cyclegan(rt, cfg, data, a, b, seed):
  model = domains.PairCycleGAN(cfg.width, cfg.critic_width, cfg.cycle_weight,
                               cfg.res_blocks).build(cfg.resolution)
  rt.seed(seed)
  name = f"cyclegan_{cfg.domains[a]}_{cfg.domains[b]}_seed{seed}"
  train.fit_unpaired(rt, _run_dir(name), name, model, [data["train"][a], data["train"][b]],
                     [(0, 1)], cfg.batch_size, cfg.baseline_steps, cfg.lr, seed)
  return model


def _pair_name(cfg, p):
  return f"{cfg.domains[p[0]]}->{cfg.domains[p[1]]}"


@evaluators.register("style_translation")
class StyleTranslation(evaluators.Evaluator):
  """Scores of translations between styles on the test images of `data`. model: the outputs
  {(a, b): images of domain a's test set translated into b}; context: the `trained` and the
  `zero_pair` pairs. A flat record: per-pair scores (keys 'pair/<a>-><b>/<score>', see
  `pair_scores`), their means over each group and the FID per target domain (`target_fid`)."""

  def __init__(self, cfg, data, classifier):
    self.cfg, self.data, self.classifier = cfg, data, classifier

  def __call__(self, outputs, *, trained, zero_pair):
    cfg, data, classifier = self.cfg, self.data, self.classifier
    scores = pair_scores(outputs, data["test"], classifier, data["paired_test"])
    record = {f"pair/{_pair_name(cfg, p)}/{k}": v
              for p, s in scores.items() for k, v in s.items()}
    for group, pairs in (("trained", trained), ("zero_pair", zero_pair)):
      record.update({f"{k}_{group}": v for k, v in summarise(scores, pairs).items()})
    groups = {g: set(p) for g, p in (("trained", trained), ("zero_pair", zero_pair)) if p}
    for group, values in target_fid(outputs, data["test"], data["train"], classifier,
                                    groups).items():
      record[f"fid_{group}"] = values
    return record


def run_mixmatch(rt, cfg, data, classifier, seed, workdir):
  """Trains (or resumes; a finished one restores) seed `seed`'s model and evaluates it unless
  its record is there; returns (record, model)."""
  run_dir = os.path.join(workdir, _run_dir(f"mixmatch_seed{seed}"))
  record = results.load_record(run_dir)
  model = train_mixmatch(rt, cfg, data, seed)
  if record is None:
    outputs = translate_all(model.translate, data["test"])
    record = {"method": "mix-and-match", "seed": seed, "pairs": cfg.pairs,
              **evaluators.make("style_translation", cfg, data, classifier)(
                  outputs, trained=sorted(cfg.trained_pairs()), zero_pair=cfg.zero_pair_pairs())}
    if rt.is_chief:
      record = results.save_record(run_dir, record)
  return record, model


def run_cyclegans(rt, cfg, data, classifier, seed, workdir):
  """Trains (or reuses) a CycleGAN per baseline pair; one record over all of them (their
  pairs count as trained)."""
  pairs = cfg.baseline_pair_list()
  if not pairs:
    return None
  run_dir = os.path.join(workdir, _run_dir(f"cyclegan_seed{seed}"))
  record = results.load_record(run_dir)
  if record is not None:
    return record
  outputs = {}
  for a, b in pairs:
    model = train_cyclegan(rt, cfg, data, a, b, seed)
    for src, dst, direction in ((a, b, 0), (b, a, 1)):
      outputs[src, dst] = translate_batched(lambda x, d=direction: model.translate(x, d),
                                            data["test"][src])
  ordered = sorted(outputs)
  record = {"method": "cyclegan", "seed": seed, "pairs": cfg.baseline_pairs,
            **evaluators.make("style_translation", cfg, data, classifier)(
                outputs, trained=ordered, zero_pair=[])}
  if rt.is_chief:
    os.makedirs(run_dir, exist_ok=True)
    record = results.save_record(run_dir, record)
  return record


def _pm(records, key, scale=1.0, digits=2):
  values = [r[key] for r in records if key in r]
  return results.mean_std(values, scale, digits) if values else "-"


def _mean_fid(records, group):
  values = [np.nanmean(r[f"fid_{group}"]) for r in records if f"fid_{group}" in r]
  return results.mean_std(values, 1.0, 1) if values else "-"


def summary_table(cfg, mixmatch, cyclegan, reference, zero_pair):
  """Rows: the mix-and-match groups, the CycleGANs, and the floor / ceiling references (over
  the zero-pair pairs); columns: accuracy, SSIM to input and to the true target, FID."""
  paired = "ssim_target_trained" in mixmatch[0]
  header = ["outputs", "pairs", "target-domain accuracy %", "SSIM to input"] + \
      (["SSIM to true target"] if paired else []) + ["FID (classifier features)"]
  rows = []
  for label, recs, group, pairs in (
      ("mix-and-match, trained pairs", mixmatch, "trained", "anchor <-> others"
       if cfg.pairs == "star" else "all"),
      ("mix-and-match, zero-pair", mixmatch, "zero_pair", "never trained together"),
      ("CycleGAN per pair", cyclegan, "trained",
       f"{cfg.baseline_pairs.replace('_', '-')} pairs")):
    if not recs or f"accuracy_{group}" not in recs[0]:
      continue
    rows.append([label, pairs, _pm(recs, f"accuracy_{group}", 100, 1),
                 _pm(recs, f"ssim_input_{group}")] +
                ([_pm(recs, f"ssim_target_{group}")] if paired else []) +
                [_mean_fid(recs, group)])
  for name, scores in reference.items():
    s = summarise(scores, zero_pair)
    rows.append([name, "zero-pair pairs", f"{100 * s['accuracy']:.1f}", f"{s['ssim_input']:.2f}"]
                + ([f"{s['ssim_target']:.2f}"] if paired else []) + ["-"])
  rows.append(["real training images (FID floor)", "-", "-", "-"] + (["-"] if paired else []) +
              [_mean_fid(mixmatch, "real")])
  return results.markdown_table(header, rows)


def alignment_section(mixmatch):
  """How far apart two domains' encodings of the same scene are (paired test sets)."""
  rows = [["with the anchor (trained)", _pm(mixmatch, "latent_distance_trained")],
          ["between the others (zero-pair)", _pm(mixmatch, "latent_distance_zero_pair")]]
  return (results.markdown_table(["domain pairs", "latent distance"], rows) +
          "\n\nLatent distance: mean |z_a - z_b|² between two domains' encodings of the same "
          "test scene over z_b's total variance across scenes (0: the encoders agree, as "
          "zero-pair translation needs; 1: what a constant encoding, z_b's mean, scores; 2: what "
          "another scene's encoding scores). The "
          "latent consistency loss only ties each domain to the anchor's latents.")


def pair_table(cfg, mixmatch, cyclegan, trained):
  paired = any(k.endswith("/ssim_target") for k in mixmatch[0])
  score = "ssim_target" if paired else "ssim_input"
  header = ["pair", "mix-and-match trained on it?", "M&M accuracy %", f"M&M {score}",
            "CycleGAN accuracy %", f"CycleGAN {score}"]
  n, rows = len(cfg.domains), []
  for a in range(n):
    for b in range(n):
      if a == b:
        continue
      key = f"pair/{_pair_name(cfg, (a, b))}"
      cyc = [r for r in cyclegan if f"{key}/accuracy" in r]
      rows.append([_pair_name(cfg, (a, b)), "yes" if (a, b) in trained else "no (zero-pair)",
                   _pm(mixmatch, f"{key}/accuracy", 100, 1), _pm(mixmatch, f"{key}/{score}"),
                   _pm(cyc, f"{key}/accuracy", 100, 1) if cyc else "-",
                   _pm(cyc, f"{key}/{score}") if cyc else "-"])
  return results.markdown_table(header, rows)


def claims(cfg, mixmatch, cyclegan, reference, zero_pair):
  if not zero_pair:
    return []
  n = len(cfg.domains)
  chance = 100.0 / n
  acc = [100 * r["accuracy_zero_pair"] for r in mixmatch]
  trained = [100 * r["accuracy_trained"] for r in mixmatch]
  counts = network_counts(n)
  out = [results.claim(
      f"Mix-and-match translates between styles it never saw paired (zero-pair) into the "
      f"target style, with {counts['mixmatch']} networks instead of "
      f"{counts['cyclegan_all_pairs']}",
      f"zero-pair target-domain accuracy {results.mean_std(acc, digits=1)}% vs chance "
      f"{chance:.0f}% (trained pairs {results.mean_std(trained, digits=1)}%; {len(acc)} "
      "seed(s); holds: every seed above twice chance)", min(acc) > 2 * chance)]
  if cyclegan:  # content: as well kept as by a translator trained on that very pair
    score = "ssim_target" if "ssim_target_zero_pair" in mixmatch[0] else "ssim_input"
    what = "the true rendering in the target style" if score == "ssim_target" else "the input"
    ours = [r[f"{score}_zero_pair"] for r in mixmatch]
    theirs = [r[f"{score}_trained"] for r in cyclegan]
    out.append(results.claim(
        "Zero-pair translation keeps the content as well as a CycleGAN trained on that pair",
        f"SSIM of luminance to {what}: zero-pair {results.mean_std(ours)} vs CycleGAN "
        f"{results.mean_std(theirs)} on the same pairs (the unchanged input scores "
        f"{summarise(reference['input unchanged'], zero_pair)[score]:.2f})",
        np.mean(ours) >= np.mean(theirs)))
  return out


def make_figures(cfg, workdir, model, data, mixmatch, writer=None):
  """The 5x5 grid (one test scene through every decoder) and the accuracy heatmap."""
  n, paths = len(cfg.domains), []
  rows = []
  for a in range(n):
    x = tf.constant(domains.to_model(data["test"][a][:1]))
    rows.append([data["test"][a][0]] + [domains.from_model(model.translate(x, a, b))[0]
                                        for b in range(n)])
  if data["paired_test"]:
    rows.append([np.full_like(data["test"][0][0], 255)] + [t[0] for t in data["test"]])
  grid = figures.image_grid(np.stack([im for row in rows for im in row]), len(rows), n + 1)
  caption = "Rows: source domain; columns: input, then " + ", ".join(cfg.domains)
  results.save_figure(figures.image(grid, caption, width=8.0),
                      os.path.join(workdir, "style_grid.png"), writer)
  paths.append("style_grid.png")
  acc = np.full([n, n], np.nan)
  for a in range(n):
    for b in range(n):
      if a != b:
        acc[a, b] = 100 * np.mean([r[f"pair/{_pair_name(cfg, (a, b))}/accuracy"]
                                   for r in mixmatch])
  results.save_figure(figures.heatmap(acc, cfg.domains, cfg.domains,
                                      "Target-domain accuracy % (row: source, column: target)"),
                      os.path.join(workdir, "style_accuracy.png"), writer)
  paths.append("style_accuracy.png")
  return paths


def export_model(rt, cfg, model, export_dir, flags=None, metrics=None):
  """A signature '<source>_to_<target>' per ordered pair: uint8 images [n, r, r, 3] ->
  {'images': uint8}; the first is also 'serving_default'."""
  spec = tf.TensorSpec([None, cfg.resolution, cfg.resolution, 3], tf.uint8, name="images")
  def signature(a, b):
    return tf.function(lambda images: {"images": preprocess.unscale(
        model.translate(preprocess.scale(images), a, b))}, input_signature=[spec])

  signatures = {f"{src}_to_{dst}": signature(a, b) for a, src in enumerate(cfg.domains)
                for b, dst in enumerate(cfg.domains) if a != b}
  card = runtime_flags.model_card(PROGRAM, metrics, flags=flags or {}, domains=list(cfg.domains),
                                  anchor=cfg.anchor, data=cfg.style_source,
                                  resolution=cfg.resolution)
  path = export.export_saved_model(export_dir, signatures,
                                   [model.encoders, model.decoders], version=rt.export_version,
                                   card=card, formats=rt.export_format)
  logging.info("exported the style-transfer model to %s", path)
  return path


def report_sections(cfg, mixmatch, cyclegan, reference, classifier, figs, trained, zero_pair):
  n, counts = len(cfg.domains), network_counts(len(cfg.domains))
  data_text = ("the procedural stand-in (TFDS `procedural_styles`: procedural indoor scenes "
               "rendered in five styles, disjoint scenes per domain for training, every test "
               "scene in every domain)" if cfg.style_source == "procedural" else
               "TFDS `cycle_gan/{monet,vangogh,ukiyoe,cezanne}2photo` (photos merged and "
               "deduplicated)" if cfg.style_source == "cycle_gan" else
               f"the image folder `{cfg.style_source}` (one class folder per domain, unpaired)")
  setup = (f"Domains: {', '.join(cfg.domains)}; data: {data_text}; {cfg.resolution} px, up to "
           f"{cfg.num_train} training and {cfg.num_test} test images per domain. Mix-and-match: "
           f"{n} encoders + {n} decoders ({counts['mixmatch']} networks; CycleGANs for every "
           f"pair: {counts['cyclegan_all_pairs']}), trained on "
           + (f"the {len(trained)} ordered pairs with the anchor {cfg.anchor}" if cfg.pairs ==
              "star" else "every pair") +
           f" for {cfg.steps} steps (batch {cfg.batch_size}, Adam {cfg.lr:g}, cycle "
           f"{cfg.cycle_weight:g}, reconstruction {cfg.rec_weight:g}, latent "
           f"{cfg.latent_weight:g}; {cfg.res_blocks} residual blocks per encoder); seeds {', '.join(map(str, cfg.seeds))} (mean ± std). "
           f"CycleGAN baseline: one per {cfg.baseline_pairs.replace('_', '-')} pair, "
           f"{cfg.baseline_steps} steps each, seed {cfg.seeds[0]}. Domain classifier (real "
           f"images, {cfg.classifier_steps} steps): test accuracy "
           f"{100 * classifier.test_accuracy:.1f}% (chance {100 / n:.0f}%).")
  reading = ("Target-domain accuracy: the share of outputs the domain classifier assigns to "
             "the target domain. SSIM of luminance to the input measures kept structure; to the "
             "true target (paired test sets only) the whole translation. FID: per target domain "
             "on the classifier's features, averaged over the target domains; the 'true "
             "rendering' row gives the real-vs-real floor (training against test images). "
             "'input unchanged' is what doing nothing scores.")
  return [("Setup", setup),
          ("Results", summary_table(cfg, mixmatch, cyclegan, reference, zero_pair) + "\n\n"
           + reading),
          ("Every ordered pair", pair_table(cfg, mixmatch, cyclegan, set(trained))),
          *([("Encoder alignment", alignment_section(mixmatch))]
            if "latent_distance_trained" in mixmatch[0] else []),
          ("Figures", "\n\n".join(f"![{p}]({p})\n\n{FIGURE_CAPTIONS[p]}" for p in figs))]


def validate(cfg):
  """`cfg`, or a one-line ValueError naming the flag for a setting that cannot run."""
  return cfg.validate()


def train_and_evaluate(rt, cfg, *, flags=None):
  """Trains (or reuses) the mix-and-match model per seed and the CycleGAN baseline, writes
  results.json, REPORT.md and the figures into `rt.workdir`, and exports the first seed's model
  to `rt.export_dir` (when set). Returns the records."""
  cfg.validate()
  workdir, export_dir = rt.workdir, rt.export_dir
  data = load_data(cfg)
  classifier = domain_classifier(cfg, data)
  mixmatch, models = [], {}
  for seed in cfg.seeds:
    record, models[seed] = run_mixmatch(rt, cfg, data, classifier, seed, workdir)
    mixmatch.append(record)
  baseline = run_cyclegans(rt, cfg, data, classifier, cfg.seeds[0], workdir)
  cyclegan = [baseline] if baseline else []
  if not rt.is_chief:
    return mixmatch + cyclegan
  trained, zero_pair = sorted(cfg.trained_pairs()), cfg.zero_pair_pairs()
  reference = identity_scores(data["test"], classifier, data["paired_test"])
  if data["paired_test"]:  # how aligned the encoders are (recomputed from the models)
    for i, seed in enumerate(cfg.seeds):
      dist = latent_distances(models[seed], data["test"])
      mixmatch[i] = {**mixmatch[i], "latent_distance": dist.tolist(),
                     "latent_distance_trained": float(np.mean([dist[p] for p in trained])),
                     "latent_distance_zero_pair": float(np.mean([dist[p] for p in zero_pair]))}
  figs = make_figures(cfg, workdir, models[cfg.seeds[0]], data, mixmatch, rt.writer("summary"))
  claim_list = claims(cfg, mixmatch, cyclegan, reference, zero_pair)
  records = [{**r, "classifier_test_accuracy": classifier.test_accuracy}
             for r in mixmatch + cyclegan]
  results.write_results(workdir, PROGRAM, flags or {}, records, figs, claim_list)
  results.write_report(workdir, "Mix-and-match style transfer across five domains",
                       report_sections(cfg, mixmatch, cyclegan, reference, classifier, figs,
                                       trained, zero_pair), claim_list)
  if export_dir:
    metrics = {k: v for k, v in mixmatch[0].items() if k.startswith(("accuracy_", "ssim_"))}
    export_model(rt, cfg, models[cfg.seeds[0]], export_dir, flags, metrics)
  return mixmatch + cyclegan


def export_only(rt, cfg, *, flags=None):
  """Re-exports the first seed's model from its checkpoint in `rt.workdir` to `rt.export_dir`
  (the run must have finished)."""
  cfg.validate()
  runtime_flags.finished_results(rt.workdir)
  model = domains.DomainMixMatch(len(cfg.domains), cfg.width, cfg.critic_width,
                                 res_blocks=cfg.res_blocks).build(cfg.resolution)
  state = rt.train_state(_run_dir(f"mixmatch_seed{cfg.seeds[0]}"), cfg.seeds[0],
                         **model.trackables())
  if not state.restore(partial=True):
    raise ValueError(f"no checkpoint of mixmatch_seed{cfg.seeds[0]} in {rt.workdir}/runs: "
                     "train first (drop --export_only).")
  return export_model(rt, cfg, model, rt.export_dir, flags)
