"""Tables of the mix-and-match report made from its records (lamp_tf.mixmatch.experiment):
record selection, mean ± std cells, per-class differences between two methods, the encoders'
alignment during training and the interventions beside the reference."""

import numpy as np

from lamp_tf.data import scenes
from lamp_tf.runtime import results


def select(records, **conditions):
  return [r for r in records if all(r.get(k) == v for k, v in conditions.items())]


def cell(records, key, scale=100.0):
  values = [r[key] for r in records if r.get(key) is not None]
  return results.mean_std(values, scale) if values else "-"


def per_seed(records, key="miou"):
  return {r["seed"]: r[key] for r in records if r.get(key) is not None}


def class_iou(records):
  """[seeds, classes] per-class IoU % (NaN where a class is absent)."""
  return 100 * np.array([[np.nan if v is None else v for v in r["per_class_iou"]]
                         for r in records], np.float64)


def difference_row(name, a, b):
  """A table row of a minus b (record lists of two methods, paired by seed): mIoU difference
  mean ± std, the seeds where a is below, and the mean per-class IoU difference."""
  sa, sb = {r["seed"]: r for r in a}, {r["seed"]: r for r in b}
  seeds = sorted(set(sa) & set(sb))
  if not seeds:
    return None
  diff = [100 * (sa[s]["miou"] - sb[s]["miou"]) for s in seeds]
  below = sum(d < 0 for d in diff)
  per_class = (class_iou([sa[s] for s in seeds]) - class_iou([sb[s] for s in seeds]))
  cls = [f"{np.nanmean(c):+.1f}" if np.isfinite(c).any() else "-" for c in per_class.T]
  return [name, f"{results.mean_std(diff, 1.0)} (below in {below}/{len(seeds)})", ""] + cls


def alignment_sections(records, side_infos, bn, objective="flags"):
  """(title, markdown) sections: the depth and RGB encoders' agreement on the probed training
  (RGB, depth) pairs at the probe steps, and each loss term's first and last value (mean over
  seeds), per side information; [] when no record has a training trace."""
  probe_rows, loss_rows = [], []
  for side in side_infos:
    zero = [r for r in select(records, method="mm_zero_pair", side_info=side, test_bn=bn,
                              objective=objective) if r.get("probe_steps")]
    if not zero:
      continue
    steps = zero[0]["probe_steps"]
    zero = [r for r in zero if r["probe_steps"] == steps]
    for i, step in enumerate(steps):
      mean = lambda key: np.mean([r[key][i] for r in zero], axis=0)
      agreement = mean("probe_indices_agreement")
      probe_rows.append([side, step, f"{mean('probe_latent_distance'):.2f}",
                         " / ".join(f"{100 * a:.0f}" for a in agreement),
                         f"{mean('probe_alignment_raw'):.4f}",
                         f"{mean('probe_alignment_relative'):.3f}"])
    terms = sorted({k[len("loss_end_"):] for r in zero for k in r
                    if k.startswith("loss_end_") and k != "loss_end_step"})
    for term in terms:
      start = [r[f"loss_start_{term}"] for r in zero if f"loss_start_{term}" in r]
      end = [r[f"loss_end_{term}"] for r in zero if f"loss_end_{term}" in r]
      # A term recorded on fewer steps than the run (e.g. the discriminator's, every other
      # step) is shown with the steps it was recorded at.
      own = {tuple(r[f"loss_steps_{term}"]) for r in zero if f"loss_steps_{term}" in r}
      runs = {(r["loss_start_step"], r["loss_end_step"]) for r in zero if "loss_end_step" in r}
      note = lambda i: (f" (step {next(iter(own))[i]})" if len(own) == 1 and own != runs
                        else "")
      loss_rows.append([side, term, f"{np.mean(start):.4g}{note(0)}",
                        f"{np.mean(end):.4g}{note(1)}"])
  if not probe_rows:
    return []
  return [
      ("The encoders' alignment during training (training pairs, mean over seeds)",
       results.markdown_table(
           ["side information", "step", "latent distance", "indices agreement % per block",
            "alignment loss, raw", "alignment loss, relative"], probe_rows) +
       "\n\nMeasured on the first training (RGB, depth) pairs the alignment loss sees, before "
       "training (step 0) and at four points during it; steps count the mix-and-match "
       "objective's, after the warm start's paired translations where the model has one. Latent "
       "distance: as in the section above (0 identical, 1 the constant mean latent, 2 another "
       "scene). Alignment loss: the objective's alignment term without its weight, at the maps "
       "the flags align, raw (the reference's mean squared difference) and relative (divided by "
       "the two maps' variance across each batch's scenes, `--align_scale=relative`; about 2 for"
       " unrelated scenes). A raw loss that falls while the latent distance does not is the "
       "encodings shrinking or turning scene-independent, not aligning."),
      ("Loss terms at the first and the last recorded step (weighted, mean over seeds)",
       results.markdown_table(["side information", "term", "first step", "last step"],
                              loss_rows))]


def interventions_section(records, interventions, main, bn, cascades):
  """(title, markdown): the flags' model and each intervention (one trained model per seed,
  `main` side information): zero-pair mIoU, its per-class difference from the flags' model, the
  M&M cascade and paired R->S of the same models, the alignment at the end of training; then
  zero-pair against each cascade of `cascades(objective)` ({name: records}: the M&M cascade of
  the same models and the baseline cascades)."""
  header = (["model", "zero-pair mIoU %", "M&M cascade mIoU %", "R→S mIoU %",
             "latent distance (train)", "indices agreement % (test)"] +
            [f"Δ {c}" for c in scenes.CLASSES])
  rows = []
  ref = select(records, method="mm_zero_pair", side_info=main, test_bn=bn, objective="flags")
  for name in ("flags",) + tuple(interventions):
    sel = lambda m: select(records, method=m, side_info=main, test_bn=bn, objective=name)
    zero = sel("mm_zero_pair")
    if not zero:
      continue
    agreement = np.mean([r["indices_agreement"] for r in zero if "indices_agreement" in r],
                        axis=0)
    cls = ["" for _ in scenes.CLASSES]
    if name != "flags":
      row = difference_row(name, zero, ref)
      cls = row[3:] if row is not None else cls
    rows.append([("the flags' model" if name == "flags" else name), cell(zero, "miou"),
                 cell(sel("mm_cascade"), "miou"), cell(sel("mm_rgb2seg"), "miou"),
                 cell(zero, "latent_distance_train", 1.0),
                 " / ".join(f"{100 * a:.0f}" for a in np.atleast_1d(agreement))] + cls)
  versus = []
  for name in ("flags",) + tuple(interventions):
    zero = per_seed(select(records, method="mm_zero_pair", side_info=main, test_bn=bn,
                           objective=name))
    for cname, crecs in cascades(name).items():
      other = per_seed(crecs)
      seeds = sorted(set(zero) & set(other))
      if seeds:
        above = sum(zero[s] > other[s] for s in seeds)
        versus.append([name if name != "flags" else "the flags' model", cname,
                       results.mean_std([100 * (zero[s] - other[s]) for s in seeds], 1.0),
                       f"{above}/{len(seeds)}"])
  return ("Interventions, one change at a time from the model of the flags (zero-pair D→S, "
          f"{main}; IoU %)",
          results.markdown_table(header, rows) +
          "\n\nΔ: the intervention's zero-pair per-class IoU minus that of the flags' model, "
          "mean over the paired seeds. Latent distance on the training (RGB, depth) pairs after "
          "training; indices agreement per encoder block on the test scenes.\n\n" +
          results.markdown_table(["model", "cascade", "zero-pair minus cascade, mIoU points",
                                  "seeds where zero-pair is above"], versus))
