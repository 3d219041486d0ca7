"""Scores of a generator against real data: FID and KID on a chosen feature extractor, IW, and
the accuracy of a domain classifier on its samples (per class and mean).

Every result carries `num_samples` and the label of the features it was computed on.
"""

import numpy as np

from lamp_tf.metrics import evaluators, features as features_lib, fid as fid_lib, iw as iw_lib
from lamp_tf.nets.gan import generate


@evaluators.register("gan")
class GANEvaluator(evaluators.Evaluator):
  """Scores generators against `real` images ([-1, 1]) with labels in the generator's space.
  model: a generator `g(z, labels, training=False)`; `with_iw=False` skips the IW critic.

  extractor: a features.DomainClassifier (its predictions also give sample accuracy) or
    features.InceptionFeatures.
  classifier: the DomainClassifier for sample accuracy (defaults to the extractor when it is one).
  """

  def __init__(self, real, real_labels, extractor, *, num_samples=5000, num_classes=None,
               iw_steps=500, classifier=None, z_dim=128, seed=0):
    self.real, self.real_labels = real, np.asarray(real_labels)
    self.extractor, self.num_samples, self.iw_steps = extractor, num_samples, iw_steps
    self.classifier = classifier or (extractor if isinstance(
        extractor, features_lib.DomainClassifier) else None)
    self.num_classes = num_classes
    self.z_dim, self.seed = z_dim, seed
    self.real_features = extractor.features(real)
    self.label = features_lib.describe(extractor)

  def sample_labels(self):
    """Labels of the generated set: the real set's label frequencies (uniform if unknown)."""
    rng = np.random.default_rng(self.seed)
    if self.num_classes is None:
      return np.zeros(self.num_samples, np.int64)
    return rng.choice(self.real_labels, self.num_samples).astype(np.int64)

  def samples(self, generator):
    """(labels, images) of the generated set every score is computed on."""
    labels = self.sample_labels()
    return labels, generate(generator, labels, self.seed, self.z_dim)

  def iw_curve(self, generator, steps):
    """IW of the generator's samples after each number of critic steps in `steps`."""
    return iw_lib.iw_curve(self.real, self.samples(generator)[1], steps, seed=self.seed)

  def __call__(self, generator, with_iw=True):
    labels, fake = self.samples(generator)
    fake_features = self.extractor.features(fake)
    out = {"fid": fid_lib.fid(self.real_features, fake_features),
           "kid": fid_lib.kid(self.real_features, fake_features,
                              subset_size=min(1000, self.num_samples))[0],
           "num_samples": int(self.num_samples)}
    if with_iw:
      out["iw"] = iw_lib.independent_wasserstein(self.real, fake, steps=self.iw_steps,
                                                 seed=self.seed)
    if self.classifier is not None and self.num_classes:
      pred = self.classifier.predict(fake)
      per_class = [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else float("nan")
                   for c in range(self.num_classes)]
      out["sample_accuracy"] = float(np.nanmean(per_class))
      out["sample_accuracy_per_class"] = per_class
    return out
