"""The five style domains: the procedural renderings (TFDS `procedural_styles`) and the TFDS
`cycle_gan` loader (under `tfds.testing.mock_data`)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lamp_tf.data import colours, scenes, styles
from lamp_tf.data.errors import DataNotFoundError


def _lum(x):
  return colours.luminance(x).reshape(len(x), -1)


def test_styles_are_deterministic_distinct_and_keep_each_scene():
  photos = np.stack([scenes.render_seed(s, 16)[0] for s in range(5)])
  rendered = {d: styles.stylise(photos, d, range(5)) for d in styles.DOMAINS}
  np.testing.assert_array_equal(rendered["photo"], photos)
  for d in styles.DOMAINS[1:]:
    np.testing.assert_array_equal(styles.stylise(photos, d, range(5)), rendered[d])
    assert rendered[d].dtype == np.uint8 and rendered[d].shape == photos.shape
    # Content: each rendering's luminance correlates best with its own scene's photo.
    corr = np.corrcoef(np.concatenate([_lum(rendered[d]), _lum(photos)]))[:5, 5:]
    assert np.all(np.argmax(corr, axis=1) == np.arange(5)), (d, corr.round(2))
  # Style: the domains differ from each other (mean absolute difference of several levels).
  for i, a in enumerate(styles.DOMAINS):
    for b in styles.DOMAINS[i + 1:]:
      gap = np.mean(np.abs(rendered[a].astype(float) - rendered[b].astype(float)))
      assert gap > 10, (a, b, gap)


def test_procedural_data_set_is_unpaired_for_training_and_paired_for_test(tmp_path):
  data = styles.load_styles("procedural", resolution=16, num_train=3, num_test=2,
                            data_dir=str(tmp_path))
  assert data["paired_test"] and set(data["train"]) == set(styles.DOMAINS)
  assert all(x.shape == (3, 16, 16, 3) for x in data["train"].values())
  test_seeds = [styles.TEST_SEED_OFFSET, styles.TEST_SEED_OFFSET + 1]
  photos = np.stack([scenes.render_seed(s, 16)[0] for s in test_seeds])
  for d in styles.DOMAINS:  # every test scene in every domain, in scene order
    np.testing.assert_array_equal(data["test"][d], styles.stylise(photos, d, test_seeds))
  builder = styles.ProceduralStyles(config=styles.StyleConfig(
      name=styles.config_name(16, 3, 2), resolution=16, num_train=3, num_test=2),
      data_dir=str(tmp_path))
  ex = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
  by_domain = [set(ex["scene"][ex["domain"] == i]) for i in range(len(styles.DOMAINS))]
  assert sum(len(s) for s in by_domain) == len(set().union(*by_domain)) == 15  # disjoint


def test_cycle_gan_loader_merges_the_painters_and_deduplicates_photos():
  with tfds.testing.mock_data(num_examples=4):
    data = styles.load_styles("cycle_gan", resolution=16, num_train=0, num_test=0)
  assert not data["paired_test"] and set(data["train"]) == set(styles.DOMAINS)
  for split in ("train", "test"):
    for d in styles.DOMAINS[1:]:
      assert data[split][d].shape == (4, 16, 16, 3)
    photos = data[split]["photo"]
    keys = {p.tobytes() for p in photos}
    assert len(keys) == len(photos) and 4 <= len(photos) <= 16


def test_dedupe_keeps_the_first_of_each_image():
  x = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
  out = styles._dedupe(np.concatenate([x, x[1:3], x[:1]]))
  np.testing.assert_array_equal(out, x)


def test_unprepared_cycle_gan_names_the_tfds_command(tmp_path):
  with pytest.raises(DataNotFoundError, match=r"tfds build cycle_gan/monet2photo"):
    styles.load_styles("cycle_gan", resolution=16, data_dir=str(tmp_path))


def test_unknown_domain_and_source_are_one_line_errors():
  with pytest.raises(ValueError, match=r"--domains: unknown domain 'picasso'; choose from photo"):
    styles.domain_indices(["photo", "picasso"])
  with pytest.raises(ValueError, match=r"--style_source='flickr'"):
    styles.load_styles("flickr")
  with pytest.raises(ValueError, match=r"--num_train=0 --num_test=5: .* at least 1 each"):
    styles.load_styles("procedural", num_train=0, num_test=5)


def test_luminance_reads_integer_images_as_0_255_and_floats_as_0_1():
  dark = np.ones([1, 2, 2, 3], np.uint8)  # nearly black, not white
  # float32: 1 / 255, three products and two sums with weights summing to 1 (each rounded):
  # ~4 eps32 ~ 5e-7 relative; the wrong scale is off by a factor 255.
  np.testing.assert_allclose(colours.luminance(dark), 1 / 255, rtol=1e-6)
  np.testing.assert_allclose(colours.luminance(dark.astype(np.float32)), 1.0, rtol=1e-6)
