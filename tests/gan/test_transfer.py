"""Transfer of pretrained generators and critics: the four configurations, unconditional ->
conditional initialisation, sources (run directory and SavedModel), shape errors, FreezeD."""

import numpy as np
import pytest
import tensorflow as tf

from lamp_tf.gan import training, transfer
from lamp_tf.nets import gan as gan_nets
from lamp_tf.runtime import flags as runtime_flags
from tests import numerics

SMALL = dict(g_width=16, d_width=8)


def _perturbed(model, seed):
  rng = np.random.default_rng(seed)
  for v in model.weights:
    v.assign(v.numpy() + 0.1 * rng.normal(size=v.shape).astype(np.float32))
  return model


def test_unconditional_to_cbn_generator_gives_the_same_images_for_every_class():
  source, _ = gan_nets.make_gan("dcgan", **SMALL)
  _perturbed(source, 0)  # non-trivial BN scale, shift and statistics
  target, _ = gan_nets.make_gan("dcgan", num_classes=5, conditioning="cbn", **SMALL)
  report = transfer.transfer_weights(target, transfer.named_weights_arrays(source))
  assert report["bn0/gamma"].startswith("copied the unconditional batch-norm row")
  z = tf.random.normal([3, 128])
  expected = source(z, tf.zeros([3], tf.int64), training=False)
  # Images in [-1, 1] through the same weights: the generator's longest chain sums ~400 float32
  # terms (fc 128, transposed convolutions <= 144; moving statistics), f32(400) ~ 5e-5. A batch
  # norm rows left at their initialisation instead move the images by ~0.3.
  for c in range(5):
    np.testing.assert_allclose(target(z, tf.fill([3], tf.constant(c, tf.int64)), training=False),
                               expected, rtol=0, atol=numerics.f32(400))


def test_unconditional_to_concat_generator_keeps_random_label_rows():
  source, _ = gan_nets.make_gan("dcgan", **SMALL)
  target, _ = gan_nets.make_gan("dcgan", num_classes=5, conditioning="concat", **SMALL)
  label_rows = target.get_layer("fc").kernel.numpy()[128:].copy()
  report = transfer.transfer_weights(target, transfer.named_weights_arrays(source))
  kernel = target.get_layer("fc").kernel.numpy()  # copied or kept arrays: bit-identical
  np.testing.assert_array_equal(kernel[:128], source.get_layer("fc").kernel.numpy())
  np.testing.assert_array_equal(kernel[128:], label_rows)
  assert "label rows keep their random initialisation" in report["fc/kernel"]


def test_conditional_critic_from_unconditional_copies_trunk_and_value_head():
  _, source = gan_nets.make_gan("dcgan", **SMALL)
  _perturbed(source, 1)
  _, target = gan_nets.make_gan("dcgan", num_classes=5, **SMALL)
  report = transfer.transfer_weights(target, transfer.named_weights_arrays(source))
  assert report["class_head/kernel"].startswith("initialised")
  x = tf.random.uniform([4, 32, 32, 1], -1, 1)
  # Critic values through the same trunk and head: ~1150 float32 terms (fan-ins 25, 200, 400
  # and the head's 512), f32(1150) of their size; an untransferred head gives other values.
  expected = source(x)[0].numpy()
  np.testing.assert_allclose(target(x)[0], expected, rtol=0,
                             atol=numerics.f32(1150) * np.abs(expected).max())


def test_shape_mismatch_names_the_variable_and_both_shapes():
  source, _ = gan_nets.make_gan("dcgan", g_width=16, d_width=8)
  target, _ = gan_nets.make_gan("dcgan", g_width=32, d_width=8)
  with pytest.raises(ValueError, match=r"'fc/kernel': pretrained shape \(128, 256\), target "
                                       r"shape \(128, 512\)"):
    transfer.transfer_weights(target, transfer.named_weights_arrays(source))


def test_configurations_transfer_only_what_they_name():
  g0, d0 = gan_nets.make_gan("dcgan", **SMALL)
  pretrained = {"generator": transfer.named_weights_arrays(_perturbed(g0, 2)),
                "critic": transfer.named_weights_arrays(_perturbed(d0, 3))}
  for config, (use_g, use_d) in transfer.CONFIGS.items():
    g, d = gan_nets.make_gan("dcgan", **SMALL)
    transfer.initialise(g, d, pretrained, config)  # copies are bit-identical
    same_g = np.array_equal(g.get_layer("fc").kernel.numpy(), g0.get_layer("fc").kernel.numpy())
    same_d = np.array_equal(d.get_layer("conv1").kernel.numpy(),
                            d0.get_layer("conv1").kernel.numpy())
    assert (same_g, same_d) == (use_g, use_d), config
  with pytest.raises(ValueError, match="transfer config 'all'"):
    transfer.initialise(g, d, pretrained, "all")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  work = tmp_path_factory.mktemp("gan_run")
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(work),
                             export_dir="", log_every_secs=1e9, checkpoint_every=2)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, [40, 32, 32, 1]).astype(np.float32)
  config = dict(architecture="dcgan", num_classes=None, conditioning=None, channels=1,
                resolution=32, **SMALL)
  run = training.train_gan(rt, str(work / "run"), config, images, np.zeros(40, np.int64),
                           training.TrainConfig(iterations=3, batch_size=8, n_critic=2,
                                                ema_decay=0.9))
  return work, run


def test_run_directory_and_saved_model_sources_agree(trained_run, tmp_path):
  work, run = trained_run
  from_run = transfer.load_pretrained(str(work / "run"))
  transfer.export_generator(run.generator, run.critic, str(tmp_path / "sm"))
  from_saved = transfer.load_pretrained(str(tmp_path / "sm"))
  assert set(from_run) == set(from_saved) == {"generator", "critic"}
  for net in from_run:
    assert set(from_run[net]) == set(from_saved[net])
    for k in from_run[net]:  # the same float32 values, from a checkpoint or a SavedModel
      np.testing.assert_array_equal(from_run[net][k], from_saved[net][k])
  # The EMA generator is the one sampled and transferred.
  g, _ = transfer.restore_run(str(work / "run"))
  np.testing.assert_array_equal(g.get_layer("fc").kernel.numpy(),
                                run.generator.get_layer("fc").kernel.numpy())


def test_missing_sources_fail_clearly(tmp_path):
  with pytest.raises(FileNotFoundError, match="neither a SavedModel nor a run directory"):
    transfer.load_pretrained(str(tmp_path))


def test_freeze_first_critic_layers_keeps_them_fixed(tmp_path):
  rt = runtime_flags.Runtime(strategy=tf.distribute.get_strategy(), workdir=str(tmp_path),
                             export_dir="", log_every_secs=1e9)
  _, d0 = gan_nets.make_gan("dcgan", **SMALL)
  _perturbed(d0, 4)
  pretrained = {"critic": transfer.named_weights_arrays(d0)}
  config = dict(architecture="dcgan", num_classes=3, conditioning="cbn", channels=1,
                resolution=32, **SMALL)
  images = np.random.default_rng(1).uniform(-1, 1, [24, 32, 32, 1]).astype(np.float32)
  run = training.train_gan(
      rt, str(tmp_path / "run"), config, images, np.arange(24) % 3,
      training.TrainConfig(iterations=2, batch_size=8, n_critic=1),
      init=lambda g, d: transfer.initialise(g, d, pretrained, "critic"), freeze_critic=2)
  for name in ("conv1", "conv2"):  # frozen: never written, bit-identical
    np.testing.assert_array_equal(run.critic.get_layer(name).kernel.numpy(),
                                  d0.get_layer(name).kernel.numpy())
  assert not np.array_equal(run.critic.get_layer("conv3").kernel.numpy(),
                            d0.get_layer("conv3").kernel.numpy())
  with pytest.raises(ValueError, match="--freeze_critic=9"):
    transfer.freeze_critic_layers(run.critic, 9)
