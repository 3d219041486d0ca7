r"""lamp-tf-sample: images out of any program's export, with TensorFlow and the export alone.

  lamp-tf-sample --export_dir=saved_models/transfer_gan --classes=3,0 --count=16 --fixed_z
  lamp-tf-sample --export_dir=saved_models/mixmatch --from=depth --to=seg --inputs=depth/*.png

From a generator (the export of lamp-tf-transfer-gan or lamp-tf-mergan): a grid PNG per seed
(one row per class, in the order of --classes) and/or one PNG per image (--individual). From a
translator (lamp-tf-mixmatch's modalities, lamp-tf-style-transfer's domains): each input file
translated --from one --to another; segmentation is written colour-coded with legend.png and
legend.json. Nothing of lamp_tf's training code is imported (lamp_tf/runtime/sampling.py).
"""

from absl import flags

from lamp_tf.runtime import boundary, sampling, settings

FLAGS = flags.FLAGS

settings.define_flags(sampling.SampleConfig)
flags.DEFINE_string("from", "", "Translator: the input modality or domain (e.g. depth, monet); "
                    "with --to, translate --inputs instead of sampling.")
flags.DEFINE_string("to", "", "Translator: the output modality or domain (e.g. seg, photo).")


def main(argv):
  del argv
  cfg = settings.from_flags(sampling.SampleConfig, source=FLAGS["from"].value,
                            target=FLAGS["to"].value)
  sampling.run(cfg)


def run():
  boundary.run_program(main, __name__)


if __name__ == "__main__":
  run()
