"""The EWC penalty lambda/2 * sum_i F_i (theta_i - theta*_i)^2, usable inside a tf.function step.

`EWCPenalty` is a `tf.Module` (so it lives in checkpoints) holding up to `max_terms` terms, each a
diagonal Fisher and an anchor theta* for every trainable variable of a model:
- mode 'replace' (the paper): one term, overwritten after every task;
- mode 'accumulate': one term per finished task (Kirkpatrick et al.'s sum of penalties).

For an R-EWC model (Rotated* layers) a term also keeps the rotations it was computed in. When
the model's rotations change after a later task, an older term maps the current rotated kernel
back to its own basis, `U1_k^T (U1 W' U2^T) U2_k`, so every term penalises the same function of
the weights it was computed for.

The last layer's penalty is restricted to the old classes' columns by the Fisher itself: the
Fisher is computed with the task's class mask (see `fisher.diagonal_fisher`), so the columns of
classes outside the task have zero Fisher and are not penalised.
"""

import tensorflow as tf

from lamp_tf.nets.rotated import RotatedConv2D, RotatedDense

MODES = ("replace", "accumulate")


class EWCPenalty(tf.Module):
  """Checkpointable EWC terms over a model's trainable variables."""

  def __init__(self, model, mode="replace", max_terms=1, name="ewc"):
    super().__init__(name=name)
    if mode not in MODES:
      raise ValueError(f"--fisher_mode={mode!r}: choose one of {', '.join(MODES)}.")
    self.mode = mode
    self.max_terms = 1 if mode == "replace" else max(1, int(max_terms))
    self._model = model
    self._rotated = [l for l in model.layers if isinstance(l, (RotatedDense, RotatedConv2D))]
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")
    params = model.trainable_variables

    def zeros(shape, name):
      return tf.Variable(tf.zeros(shape), trainable=False, name=name)

    self.fisher = [[zeros(v.shape, "fisher") for v in params] for _ in range(self.max_terms)]
    self.anchor = [[zeros(v.shape, "anchor") for v in params] for _ in range(self.max_terms)]
    self.bases = [[(zeros(l.u1.shape, "u1"), zeros(l.u2.shape, "u2")) for l in self._rotated]
                  for _ in range(self.max_terms)]

  def add_term(self, fisher):
    """Anchors the current weights with `fisher` (arrays aligned with trainable_variables)."""
    k = 0 if self.mode == "replace" else min(int(self.count), self.max_terms - 1)
    params = self._model.trainable_variables
    if len(fisher) != len(params):
      raise ValueError(f"got {len(fisher)} Fisher arrays for {len(params)} variables.")
    for f, a, f_new, v in zip(self.fisher[k], self.anchor[k], fisher, params):
      f.assign(f_new)
      a.assign(v)
    for (u1, u2), layer in zip(self.bases[k], self._rotated):
      u1.assign(layer.u1)
      u2.assign(layer.u2)
    self.count.assign(k + 1)

  def _in_basis(self, k):
    """The trainable variables expressed in term k's basis (only differs for accumulate)."""
    params = list(self._model.trainable_variables)
    if self.max_terms == 1 or not self._rotated:
      return params
    index = {id(v): i for i, v in enumerate(params)}
    for (u1_k, u2_k), layer in zip(self.bases[k], self._rotated):
      a = tf.matmul(u1_k, layer.u1, transpose_a=True)  # U1_k^T U1
      b = tf.matmul(layer.u2, u2_k, transpose_a=True)  # U2^T U2_k
      w = layer.kernel
      if len(w.shape) == 4:
        params[index[id(w)]] = tf.einsum("ij,hwjk,kl->hwil", a, w, b)
      else:
        params[index[id(w)]] = tf.matmul(tf.matmul(a, w), b)
    return params

  def __call__(self):
    """sum_k 1/2 sum_i F_k,i (theta_i - theta*_k,i)^2 over the terms added so far (no lambda)."""
    total = tf.constant(0.0)
    for k in range(self.max_terms):
      term = tf.add_n([tf.reduce_sum(f * tf.square(v - a))
                       for f, a, v in zip(self.fisher[k], self.anchor[k], self._in_basis(k))])
      total += tf.where(k < self.count, 0.5 * term, 0.0)
    return total

