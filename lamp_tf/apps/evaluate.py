r"""lamp-tf-evaluate: scores an exported generator against a named data set.

  lamp-tf-evaluate --generator=saved_models/transfer_gan --dataset=fashion_mnist:5,6,7,8,9
  lamp-tf-evaluate --generator=saved_models/transfer_gan --dataset=folder:/data/pets:0,1

The generator is any SavedModel with a `generate(z, label) -> {"images": ...}` signature (what
lamp_tf's GAN programs export; models trained elsewhere can be wrapped the same way). Generated
label k stands for the k-th class of the data set spec. Scores: FID and KID on the features of a
classifier trained by the project on the data set's real training images (or Inception-v3 from
--inception_weights), IW from a fresh critic, and the classifier's accuracy on the samples per
class. Writes results.json and REPORT.md in --workdir.
"""

import tensorflow as tf
from absl import app, flags, logging

from lamp_tf.apps import gan_flags
from lamp_tf.data import gan_data
from lamp_tf.metrics import evaluators, features as features_lib
from lamp_tf.runtime import export, flags as runtime_flags, results

FLAGS = flags.FLAGS
PROGRAM = "lamp-tf-evaluate"

runtime_flags.define_runtime_flags("evaluate")
flags.adopt_module_key_flags(runtime_flags)
gan_flags.define_scoring_flags()
flags.adopt_module_key_flags(gan_flags)
flags.DEFINE_string("generator", None, "Exported generator SavedModel directory.")
flags.DEFINE_string("dataset", "fashion_mnist", "Real data '<data set>[:<classes>]' (data set "
                    "folder:PATH: your images in PATH/<class>/<image>.png).")
flags.DEFINE_string("split", "test", "Split of the real images the samples are compared with.")
flags.DEFINE_integer("num_samples", 5000, "Generated images.", lower_bound=10)
flags.DEFINE_integer("iw_steps", 500, "Training steps of the IW critic.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the noise and the IW critic.")
flags.mark_flag_as_required("generator")


class SavedGenerator:
  """A `generate(z, label)` SavedModel signature as a generator callable."""

  def __init__(self, path):
    saved = export.resolve(path)
    if saved is None:
      raise app.UsageError(f"--generator={path}: neither a SavedModel directory nor a model base "
                           "path with integer versions (saved_models/<model>/<version>/).")
    self._loaded = tf.saved_model.load(saved)
    if "generate" not in self._loaded.signatures:
      raise app.UsageError(f"--generator={path}: no 'generate' signature (has "
                           f"{sorted(self._loaded.signatures)}).")
    self._fn = self._loaded.signatures["generate"]
    self.z_dim = int(self._fn.structured_input_signature[1]["z"].shape[-1])
    self.image_shape = tuple(self(tf.zeros([1, self.z_dim]), tf.zeros([1], tf.int64)).shape[1:])

  def __call__(self, z, labels, training=False):
    del training
    return self._fn(z=tf.cast(z, tf.float32), label=tf.cast(labels, tf.int64))["images"]


def main(argv):
  del argv
  generator = SavedGenerator(FLAGS.generator)
  resolution, channels = generator.image_shape[0], generator.image_shape[-1]
  real = gan_data.load_gan_data(FLAGS.dataset, FLAGS.split, resolution, channels,
                                FLAGS.data_dir, FLAGS.download)
  train = gan_data.load_gan_data(FLAGS.dataset, "train", resolution, channels, FLAGS.data_dir,
                                 FLAGS.download)
  classifier = features_lib.DomainClassifier.train_or_load(
      features_lib.cache_dir(), train.images, train.labels,
      real.images, real.labels, train.num_classes, steps=FLAGS.classifier_steps)
  extractor = (features_lib.InceptionFeatures(FLAGS.inception_weights)
               if FLAGS.inception_weights else classifier)
  evaluator = evaluators.make("gan", real.images, real.labels, extractor,
                              num_samples=FLAGS.num_samples, num_classes=real.num_classes,
                              iw_steps=FLAGS.iw_steps, classifier=classifier,
                              z_dim=generator.z_dim, seed=FLAGS.seed)
  scores = evaluator(generator)
  record = {"generator": FLAGS.generator, "dataset": FLAGS.dataset, "split": FLAGS.split,
            "seed": FLAGS.seed, **scores, "features": evaluator.label,
            "classifier_test_accuracy": classifier.test_accuracy}
  results.write_results(FLAGS.workdir, PROGRAM, runtime_flags.flag_values(), [record])
  per_class = results.markdown_table(
      ["class", "name", "accuracy of samples"],
      [[k, real.class_names[k], a] for k, a in enumerate(scores["sample_accuracy_per_class"])])
  results.write_report(FLAGS.workdir, "Generator evaluation", [
      ("Scores", results.markdown_table(
          ["generator", "data", "samples", "FID", "KID", "IW", "sample accuracy"],
          [[f"`{FLAGS.generator}`", f"`{FLAGS.dataset}` ({FLAGS.split})", scores["num_samples"],
            scores["fid"], f"{scores['kid']:.4f}", scores["iw"], scores["sample_accuracy"]]]) +
       f"\n\nFID and KID: {evaluator.label}."),
      ("Accuracy of a real-data classifier on the samples, per class", per_class)])
  logging.info("FID %.2f KID %.4f IW %.3f sample accuracy %.3f", scores["fid"], scores["kid"],
               scores["iw"], scores["sample_accuracy"])


def run():
  runtime_flags.run_program(main, __name__)


if __name__ == "__main__":
  run()
