"""Rounding-error bounds the numerical tests derive their tolerances from.

The same quantity computed twice in floating point (two code paths, another batch shape, another
process, another CPU: oneDNN's AVX-512 or AVX2 blockings or TensorFlow's Eigen kernels without
oneDNN, NumPy's BLAS) differs only by rounding. A sum of K terms, in any order and with or without
FMA, is within (K - 1) u sum|terms| of the exact sum, u = eps / 2 the unit roundoff (Higham,
"Accuracy and Stability of Numerical Algorithms", 2002, section 3.1); through a chain of such sums
(the layers of a network, forward then backward) the first-order relative errors add up. Two
computations, each within K u, differ by at most K eps. K counts the terms summed along the
longest chain (the fan-ins of the layers, the sizes of the reductions); each test names its K.

For a network the tests take the size of the compared values as the size of sum|terms|: the
bound over every sign pattern (|W| |x| through every layer) is orders of magnitude larger and
would accept anything. K eps |value| is still far above typical rounding, which grows like
sqrt(K) u, and far below what a wrong formula changes; each test says why it catches one.
"""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23 ~ 1.19e-7
EPS64 = float(np.finfo(np.float64).eps)  # 2^-52 ~ 2.22e-16


def f32(k):
  """Relative difference bound of two float32 computations through K accumulated terms."""
  return k * EPS32


def f64(k):
  """The same for float64."""
  return k * EPS64
