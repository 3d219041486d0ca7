"""Evaluation of a class-conditional generator on the classes seen so far (MeRGAN).

- accuracy: a classifier trained by the project on real data (its test accuracy is reported)
  classifies generated samples of every seen class; per class and averaged;
- reverse accuracy: a classifier trained only on generated samples of the seen classes,
  tested on the real test images of those classes (argmax over the seen classes);
- FID and KID on the real-data classifier's features, generated vs real test images of the
  seen classes.

`generate(labels, seed) -> images` abstracts how samples of a class are obtained (a conditional
generator, or rejection sampling for deep generative replay).
"""

import numpy as np

from lamp_tf.metrics import evaluators, features as features_lib, fid as fid_lib


@evaluators.register("seen_classes")
class SeenClassesEvaluator(evaluators.Evaluator):
  """model: `generate(labels, seed) -> images`; context: the `classes` seen so far and whether
  to train the `reverse` classifier."""

  def __init__(self, classifier, test_images, test_labels, num_classes, *, samples_per_class=500,
               reverse_steps=500, seed=0):
    self.classifier = classifier
    self.test_images, self.test_labels = test_images, np.asarray(test_labels)
    self.num_classes, self.samples_per_class = num_classes, samples_per_class
    self.reverse_steps, self.seed = reverse_steps, seed

  def __call__(self, generate, *, classes, reverse=True):
    classes = sorted(classes)
    labels = np.repeat(np.asarray(classes, np.int64), self.samples_per_class)
    fake = generate(labels, self.seed)
    pred = self.classifier.predict(fake)
    per_class = {str(c): float(np.mean(pred[labels == c] == c)) for c in classes}  # JSON keys
    real_idx = np.flatnonzero(np.isin(self.test_labels, classes))
    real = self.test_images[real_idx]
    fake_features = self.classifier.features(fake)
    real_features = self.classifier.features(real)
    out = {"accuracy": float(np.mean(list(per_class.values()))),
           "accuracy_per_class": per_class,
           "fid": fid_lib.fid(real_features, fake_features),
           "kid": fid_lib.kid(real_features, fake_features,
                              subset_size=min(1000, len(fake), len(real)))[0],
           "num_samples": int(len(fake))}
    if reverse:
      mask = np.zeros(self.num_classes, bool)
      mask[classes] = True
      reverse_clf = features_lib.DomainClassifier.train(
          fake, labels, real, self.test_labels[real_idx], self.num_classes,
          steps=self.reverse_steps, seed=self.seed, test_mask=mask)
      out["reverse_accuracy"] = reverse_clf.test_accuracy
    return out
