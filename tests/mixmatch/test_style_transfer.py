"""Mix-and-match style transfer: the CycleGAN baseline's objective, the pair sets, bad input, and
`train_and_evaluate` end to end in-process on the procedural styles and on TFDS `cycle_gan`
(`tfds.testing.mock_data`), each export run in `saved_model_cli`."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from lamp_tf.data import styles
from lamp_tf.mixmatch import domains, style_experiment, train
from lamp_tf.runtime import flags as runtime_flags
from tests import numerics
from tests import serving_fuzz
from tests.runtime import helpers

TINY = dict(resolution=16, num_train=6, num_test=3, steps=3, baseline_steps=2,
            classifier_steps=5, width=8, critic_width=8, batch_size=4, res_blocks=1)


def test_pair_cyclegan_step_is_lsgan_plus_ten_cycle_written_out():
  tf.keras.utils.set_random_seed(0)
  model = domains.PairCycleGAN(width=8, critic_width=8).build(16)
  g_opt = train.adam(tf.distribute.get_strategy(), 1e-4, model.generator_variables)
  d_opt = train.adam(tf.distribute.get_strategy(), 1e-4, model.critic.trainable_variables)
  xa, xb = (tf.random.uniform([3, 16, 16, 3], -1, 1, seed=s) for s in (1, 2))
  # CycleGAN (Zhu et al. 2017) with LSGAN: G_ab, G_ba, D_b (head 0), D_a (head 1).
  g_ab = lambda x: model.decoders(model.encoders(x, domain=0), domain=0)
  g_ba = lambda x: model.decoders(model.encoders(x, domain=1), domain=1)
  fake_b, fake_a = g_ab(xa), g_ba(xb)
  adv = (np.mean((model.critic(fake_b, domain=0).numpy() - 1) ** 2) +
         np.mean((model.critic(fake_a, domain=1).numpy() - 1) ** 2))
  cyc = np.mean(np.abs(g_ba(fake_b) - xa)) + np.mean(np.abs(g_ab(fake_a) - xb))
  d_loss = 0.5 * (np.mean((model.critic(xb, domain=0).numpy() - 1) ** 2) +
                  np.mean(model.critic(fake_b, domain=0).numpy() ** 2) +
                  np.mean((model.critic(xa, domain=1).numpy() - 1) ** 2) +
                  np.mean(model.critic(fake_a, domain=1).numpy() ** 2))
  out = model.step(g_opt, d_opt)(xa, xb, 0, 1)
  # The compiled step and this eager recomputation run the generators twice (the cycle) and the
  # critics with their own kernels: K ~ 20,000 float32 terms (norm sums over 16 x 16 positions,
  # fan-ins <= 147), and an L1 or LSGAN term of a difference amplifies the images' error ~2x:
  # 4 f32(20000). A wrong weight (cycle 10 vs 1), loss or direction is off by O(1).
  np.testing.assert_allclose(out["g_loss"], adv + 10 * cyc, rtol=4 * numerics.f32(20000))
  np.testing.assert_allclose(out["cycle"], cyc, rtol=4 * numerics.f32(20000))
  # The critic sees the generators after their update: only its real terms are unchanged.
  assert np.isfinite(out["d_loss"]) and abs(float(out["d_loss"]) - d_loss) < 1.0


def test_pairs_baselines_and_network_counts():
  cfg = style_experiment.ExperimentConfig()
  trained = cfg.trained_pairs()
  assert len(trained) == 8 and all(0 in p for p in trained)  # photo <-> each painter
  assert cfg.baseline_pair_list() == [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
  assert len(dataclasses.replace(cfg, baseline_pairs="all").baseline_pair_list()) == 10
  assert dataclasses.replace(cfg, baseline_pairs="none").baseline_pair_list() == []
  assert len(dataclasses.replace(cfg, pairs="all").trained_pairs()) == 20
  assert style_experiment.network_counts(5) == {"mixmatch": 10, "cyclegan_all_pairs": 20}
  assert style_experiment.network_counts(11) == {"mixmatch": 22, "cyclegan_all_pairs": 110}


@pytest.mark.parametrize("change, message", [
    (dict(domains=("photo", "monet", "picasso")), r"--domains: unknown domain 'picasso'"),
    (dict(anchor="vangogh", domains=("photo", "monet", "ukiyoe")),
     r"--anchor='vangogh' is not one of --domains"),
    (dict(domains=("photo", "monet", "monet")), r"--domains=photo,monet,monet: list at least 3"),
    (dict(resolution=18), r"--resolution=18: must be divisible by 4"),
])
def test_bad_settings_are_one_line_errors_naming_the_flag(change, message):
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(style_experiment.ExperimentConfig(), **change).validate()


def _runtime(workdir, export_dir=""):
  return runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(workdir),
                               export_dir=export_dir, log_every_secs=1e9)


def _check_export(export_dir, cfg, model, images, tmp_path):
  card = json.loads(open(os.path.join(export_dir, "model_card.json")).read())
  n = len(cfg.domains)
  assert len([s for s in card["signatures"] if "_to_" in s]) == n * (n - 1)
  src, dst = cfg.domains.index("monet"), cfg.domains.index("vangogh")
  out = helpers.saved_model_cli_run(export_dir, "monet_to_vangogh", {"images": images}, tmp_path)
  expected = domains.from_model(model.translate(tf.constant(domains.to_model(images)), src, dst))
  assert out["images"].dtype == np.uint8
  np.testing.assert_allclose(out["images"].astype(int), expected.astype(int), atol=1)


def test_train_and_evaluate_on_the_procedural_styles(tmp_path):
  painters = ("monet", "vangogh")
  cfg = style_experiment.ExperimentConfig(**TINY, domains=("photo", *painters),
                                          data_dir=str(tmp_path / "tfds"))
  workdir = tmp_path / "run"
  records = style_experiment.train_and_evaluate(_runtime(workdir), cfg)
  assert [r["method"] for r in records] == ["mix-and-match", "cyclegan"]
  mm, cyc = records
  for key in ("accuracy_trained", "accuracy_zero_pair", "pair/monet->vangogh/accuracy"):
    assert 0.0 <= mm[key] <= 1.0, key
  for key in ("ssim_target_zero_pair", "pair/photo->monet/ssim_input"):
    assert -1.0 <= mm[key] <= 1.0, key
  assert len(mm["fid_zero_pair"]) == 3 and np.isnan(mm["fid_zero_pair"][0])  # none into photo
  # The CycleGAN covers the painter pair (both directions), never photo.
  assert sorted(k for k in cyc if k.endswith("/accuracy")) == sorted(
      f"pair/{a}->{b}/accuracy" for a in painters for b in painters if a != b)
  saved = json.loads((workdir / "results.json").read_text())
  assert 0 <= saved["runs"][0]["latent_distance_zero_pair"]
  assert [c["claim"][:40] for c in saved["claims"]] == [
      "Mix-and-match translates between styles ", "Zero-pair translation keeps the content "]
  report = (workdir / "REPORT.md").read_text()
  for text in ("## Claims", "CycleGAN per pair", "true rendering", "monet->vangogh",
               "style_grid.png", "6 networks instead of 6", "## Encoder alignment"):
    assert text in report, text
  assert (workdir / "style_grid.png").exists() and (workdir / "style_accuracy.png").exists()
  # A rerun reuses the finished records.
  again = style_experiment.train_and_evaluate(_runtime(workdir), cfg)
  assert json.dumps(again, sort_keys=True) == json.dumps(records, sort_keys=True)  # NaN-safe


@pytest.mark.slow
def test_train_and_evaluate_on_tfds_cycle_gan(tmp_path):
  cfg = style_experiment.ExperimentConfig(**{**TINY, "num_train": 0, "num_test": 0},
                                          style_source="cycle_gan", baseline_pairs="none",
                                          domains=("photo", "monet", "vangogh"))
  workdir = tmp_path / "run"
  with tfds.testing.mock_data(num_examples=5):
    records = style_experiment.train_and_evaluate(
        _runtime(workdir, export_dir=str(tmp_path / "export")), cfg)
    images = styles.load_styles("cycle_gan", 16, 0, 0)["test"]["monet"]
  (mm,) = records
  assert "ssim_target_zero_pair" not in mm and 0 <= mm["accuracy_zero_pair"] <= 1
  assert sorted(k for k in mm if k.endswith("/accuracy") and "monet" in k and
                "vangogh" in k) == ["pair/monet->vangogh/accuracy", "pair/vangogh->monet/accuracy"]
  model = domains.DomainMixMatch(3, 8, 8, res_blocks=1).build(16)
  assert _runtime(workdir).train_state(os.path.join("runs", "mixmatch_seed0"), 0,
                                       **model.trackables()).restore(partial=True)
  _check_export(str(tmp_path / "export" / "1"), cfg, model, images, tmp_path)
  entries = serving_fuzz.assert_rejects_bad_requests(str(tmp_path / "export" / "1"))
  assert {e["signature"] for e in entries} == {
      f"{a}_to_{b}" for a in cfg.domains for b in cfg.domains if a != b} | {"serving_default"}


def test_latent_distance_written_out():
  class Scaled:  # encoder of domain d: (d + 1) * x
    def encoders(self, x, domain):
      return x * (domain + 1.0)

  rng = np.random.default_rng(0)
  scenes = rng.integers(0, 255, [6, 4, 4, 3], dtype=np.uint8)
  test = [scenes, scenes, scenes[::-1]]  # domain 2 holds the scenes in another order
  dist = style_experiment.latent_distances(Scaled(), test, batch=4)
  x = domains.to_model(scenes).reshape(6, -1).astype(np.float64)
  z = [x, 2 * x, 3 * x[::-1]]
  for a, b in [(0, 1), (1, 0), (0, 2), (2, 1)]:
    expected = np.mean(np.sum((z[a] - z[b]) ** 2, axis=1)) / np.sum(np.var(z[b], axis=0))
    # float32 encodings (rounded a few times, u relative), amplified by |z| / |z_a - z_b| (~3)
    # and squared: ~10 u at worst; the rest is float64. A wrong normalisation is off by a factor.
    np.testing.assert_allclose(dist[a, b], expected, rtol=1e-5)
  assert np.isnan(dist[1, 1])


def test_residual_blocks_belong_to_their_domain():
  model = domains.DomainMixMatch(3, width=8, critic_width=8, res_blocks=1).build(16)
  x = tf.random.uniform([2, 16, 16, 3], -1, 1, seed=3)
  before = model.translate(x, 0, 1).numpy()
  k = model.encoders.res2.kernel  # the second convolution of the block: [domains, 3, 3, w, w]
  k.assign(tf.tensor_scatter_nd_update(k, [[2]], [tf.zeros_like(k[2])]))
  np.testing.assert_array_equal(model.translate(x, 0, 1).numpy(), before)  # another domain's
  k.assign(tf.tensor_scatter_nd_update(k, [[0]], [tf.zeros_like(k[0])]))
  assert not np.allclose(model.translate(x, 0, 1).numpy(), before)  # the source's own
