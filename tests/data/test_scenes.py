"""Procedural scenes: geometry, alignment, class coverage, determinism, the TFDS builder."""

import numpy as np
import pytest

from lamp_tf.data import rgbd, scenes, scenes_tfds


def _empty_room(size=(4.0, 3.0, 5.0), camera=(2.0, 1.5, 1.0), yaw=0.0, pitch=0.0):
  scene = scenes.SceneBuilder(np.random.default_rng(0))
  scene.size = np.array(size)
  scene.wall_color = scene.floor_color = scene.ceiling_color = np.array([0.5, 0.5, 0.5])
  scene.floor_texture = 0
  scene.camera = scenes.Camera(np.array(camera), yaw, pitch, np.deg2rad(60))
  scene.lamp, scene.light = np.array([2.0, 2.9, 2.5]), (0.3, 0.8)
  return scene


def test_depth_matches_the_geometry_of_a_known_room():
  scene = _empty_room()
  rgb, depth, labels = scenes.render(scene, 33, 33)
  # Rendered in float64, stored as float32: depths within eps32 x 4 m ~ 5e-7 of the geometry;
  # 1e-4 is loose, and a wrong depth (along the ray rather than the z-buffer's, off by 1 %
  # 8 degrees off the axis) or the wrong surface is off by far more.
  # The central ray hits the back wall (z = 5) from z = 1: depth 4.
  assert depth[16, 16] == pytest.approx(4.0, abs=1e-4)
  assert labels[16, 16] == scenes.C["wall"]
  # z-buffer depth is constant across a fronto-parallel wall.
  wall = labels == scenes.C["wall"]
  assert np.allclose(depth[12:21, 12:21], 4.0, atol=1e-4)
  # A floor pixel: depth from the ray's height drop, y = 1.5 at distance d below the horizon.
  row = 32
  v = 1 - (row + 0.5) / 33 * 2
  expected = 1.5 / (-v * np.tan(np.deg2rad(30)))  # forward distance where the ray meets y = 0
  assert expected < 4.0  # the bottom row sees the floor before the back wall
  assert labels[row, 16] == scenes.C["floor"]
  assert depth[row, 16] == pytest.approx(expected, rel=1e-4)
  assert wall.any() and rgb.dtype == np.uint8


def test_rgb_depth_and_labels_align_around_a_box():
  scene = _empty_room()
  scene.boxes = [scenes._box((1.5, 1.2, 2.5), (2.5, 1.8, 3.0), scenes.C["tv"], (0.9, 0.1, 0.1))]
  rgb, depth, labels = scenes.render(scene, 33, 33)
  tv = labels == scenes.C["tv"]
  assert tv.any()
  assert np.allclose(depth[tv], 1.5, atol=1e-4)  # the box's front face at z = 2.5 (as above)
  assert np.all(depth[~tv & (labels == scenes.C["wall"])] > 1.5)
  # The box's red shows exactly where the labels say.
  red = (rgb[..., 0].astype(int) - rgb[..., 1].astype(int)) > 40
  np.testing.assert_array_equal(red, tv)


def test_same_seed_same_scene_and_different_seeds_differ():
  a, b, c = scenes.render_seed(5, 24), scenes.render_seed(5, 24), scenes.render_seed(6, 24)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])


def test_every_class_occurs_across_a_few_hundred_scenes():
  counts = np.zeros(scenes.VOID + 1)
  for seed in range(300):
    counts += np.bincount(scenes.render_seed(seed, 24)[2].ravel(), minlength=scenes.VOID + 1)
  assert np.all(counts[:scenes.VOID] > 0), dict(zip(scenes.CLASSES, counts))


def test_tfds_builder_and_the_pair_sets(tmp_path):
  data = scenes_tfds.load_scenes(16, 12, 4, data_dir=str(tmp_path))
  assert data["train"]["rgb"].shape == (12, 16, 16, 3)
  assert list(data["test"]["seed"]) == [10 ** 6 + i for i in range(4)]
  rgb, depth, labels = scenes.render_seed(3, 16)
  np.testing.assert_array_equal(data["train"]["rgb"][3], rgb)
  np.testing.assert_array_equal(data["train"]["segmentation"][3], labels)
  pairs = rgbd.split_pairs(data)
  # Zero-pair training data: no example holds depth and segmentation together, and the two
  # pair sets come from different scenes.
  assert set(pairs.rgb_seg) == {"rgb", "seg", "seed"}
  assert set(pairs.rgb_depth) == {"rgb", "depth", "seed"}
  assert not set(pairs.rgb_seg["seed"]) & set(pairs.rgb_depth["seed"])
  assert not set(pairs.test["seed"]) & (set(pairs.rgb_seg["seed"]) | set(pairs.rgb_depth["seed"]))


def test_version_2_sets_windows_into_the_walls_and_pictures_off_them():
  """The same rooms, furniture and cameras as version 1; only windows and pictures gain
  relief: the glass 0.12-0.30 m behind the wall plane, picture frames 0.02-0.05 m off it."""
  window, picture = scenes.C["window"], scenes.C["picture"]
  seen = set()
  for seed in range(12):
    (_, d1, l1), (_, d2, l2) = scenes.render_seed(seed, 48, 1), scenes.render_seed(seed, 48, 2)
    flat = ~np.isin(l1, (window, picture)) & ~np.isin(l2, (window, picture))
    np.testing.assert_array_equal(l1[flat], l2[flat])  # everything else as in version 1
    np.testing.assert_array_equal(d1[flat], d2[flat])
    scene = scenes.make_scene(seed, 2)
    # Seen through an opening, the surface is further than the wall plane, by at most the
    # opening's diagonal (a grazing ray on a side wall travels far along the view axis); a
    # picture frame is nearer than the wall, by at most the frame box's diagonal.
    diagonal = lambda lo, hi: float(np.linalg.norm(np.subtract(hi, lo)))
    glass = (l1 == window) & (l2 == window)
    if glass.any():
      seen.add("window")
      gap = d2[glass] - d1[glass]
      deepest = max(np.hypot(r[-1], np.hypot(r[3] - r[1], r[4] - r[2])) for r in scene.recesses)
      assert np.all(gap > 0) and gap.max() <= deepest + 1e-5
      assert np.median(gap) > 0.05
    frame = (l1 == picture) & (l2 == picture)
    if frame.any():
      seen.add("picture")
      gap = d1[frame] - d2[frame]
      frames = [b for b in scene.boxes if b.label == picture]
      assert np.all(gap > 0) and gap.max() <= max(diagonal(b.lo, b.hi) for b in frames) + 1e-5
      assert all(0.02 <= np.min(b.hi - b.lo) <= 0.05 for b in frames)  # the frame's thickness
  assert seen == {"window", "picture"}
  with pytest.raises(ValueError, match="scenes version"):
    scenes.make_scene(0, 3)
