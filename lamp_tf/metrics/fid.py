"""Frechet distance (FID) and kernel inception distance (KID) between two sets of features.

The features come from a chosen extractor (see `features.py`): by default a classifier trained
by the project on the target domain, reported as "FID (classifier features)"; Inception-v3
when its weights are given. Numbers from different extractors are not comparable.
"""

import warnings

import numpy as np
import scipy.linalg


def gaussian_stats(features):
  f = np.asarray(features, np.float64)
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
  """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians."""
  mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
  sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
  # sqrtm without `disp` (removed in SciPy 1.18): one array on every SciPy version.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise (as the reference FID)
      offset = np.eye(len(sigma1)) * 1e-6
      covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  covmean = covmean.real
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(features1, features2):
  """FID between two feature sets [N, D]."""
  return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def polynomial_kernel(x, y):
  """k(x, y) = (x.y / d + 1)^3, KID's kernel."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
  """Unbiased MMD^2 with the polynomial kernel."""
  m, n = len(x), len(y)
  kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) +
               (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


def kid(features1, features2, subsets=10, subset_size=1000, seed=0):
  """KID: mean (and std) of the unbiased MMD^2 over random subsets (Binkowski et al. 2018)."""
  f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  size = min(subset_size, len(f1), len(f2))
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(f1[rng.choice(len(f1), size, replace=False)],
                          f2[rng.choice(len(f2), size, replace=False)]) for _ in range(subsets)]
  return float(np.mean(values)), float(np.std(values))
