"""The procedural scenes as a TFDS data set (built offline, cached like any TFDS data set).

`ProceduralScenes` renders scene seeds [0, num_train) for 'train' and [10^6, 10^6 + num_test)
for 'test' (disjoint), each example holding the RGB image, metric depth, the 13-class
segmentation (13 = void) and the seed. Configs are named by resolution, counts and scenes
version, e.g. '64px_2000_300' (version 1) or '64px_2000_300_v2'; `load_scenes` builds the config
it needs and returns arrays.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from lamp_tf.data import scenes, sources

TEST_SEED_OFFSET = 10 ** 6


@dataclasses.dataclass
class SceneConfig(tfds.core.BuilderConfig):
  resolution: int = 64
  num_train: int = 2000
  num_test: int = 300
  scenes_version: int = 1  # lamp_tf.data.scenes.VERSIONS


def config_name(resolution, num_train, num_test, scenes_version=1):
  """'64px_2000_300' (scenes version 1, the names of every earlier build) or
  '64px_2000_300_v2'."""
  suffix = "" if scenes_version == 1 else f"_v{scenes_version}"
  return f"{resolution}px_{num_train}_{num_test}{suffix}"


class ProceduralScenes(tfds.core.GeneratorBasedBuilder):
  """Rendered indoor scenes: RGB, depth, segmentation (NYU-13 + void)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [SceneConfig(name=config_name(64, 2000, 300))]

  def _info(self):
    r = self.builder_config.resolution
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "rgb": tfds.features.Image(shape=(r, r, 3)),
            "depth": tfds.features.Tensor(shape=(r, r), dtype=np.float32),
            "segmentation": tfds.features.Tensor(shape=(r, r), dtype=np.uint8),
            "seed": np.int64,
        }),
        homepage="https://github.com/lamp-tf (procedural; lamp_tf/data/scenes.py)",
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    return {"train": self._generate_examples(range(cfg.num_train)),
            "test": self._generate_examples(range(TEST_SEED_OFFSET,
                                                  TEST_SEED_OFFSET + cfg.num_test))}

  def _generate_examples(self, seeds):
    r, version = self.builder_config.resolution, self.builder_config.scenes_version
    for seed in seeds:
      rgb, depth, labels = scenes.render_seed(seed, r, version)
      yield int(seed), {"rgb": rgb, "depth": depth, "segmentation": labels, "seed": seed}


def load_scenes(resolution=64, num_train=2000, num_test=300, data_dir=None, scenes_version=1):
  """{'train': {...}, 'test': {...}} arrays (rgb uint8, depth float32, segmentation uint8,
  seed int64) of scenes `scenes_version`, building the TFDS data set on first use."""
  name = config_name(resolution, num_train, num_test, scenes_version)
  config = SceneConfig(name=name, resolution=resolution, num_train=num_train, num_test=num_test,
                       scenes_version=scenes_version)
  builder = sources.prepared(lambda: ProceduralScenes(config=config, data_dir=data_dir))
  out = {}
  for split in ("train", "test"):
    arrays = {k: [] for k in ("rgb", "depth", "segmentation", "seed")}
    for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).batch(512)):
      for k in arrays:
        arrays[k].append(ex[k])
    out[split] = {k: np.concatenate(v) for k, v in arrays.items()}
    order = np.argsort(out[split]["seed"])  # TFDS shuffles examples; keep seed order
    out[split] = {k: v[order] for k, v in out[split].items()}
  return out
