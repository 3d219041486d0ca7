"""What a mix-and-match training did on its way: every loss term and the encoders' alignment.

`TrainingTrace` is the run's metric writer (every loss term at the summary steps goes to
TensorBoard and is kept) and a periodic action that measures, on a fixed probe of the training
(RGB, depth) pairs the alignment loss sees, how far apart the depth and RGB encoders are
(`encoder_agreement`: latent distance, pooling-index agreement per block). Both are kept in
`run_dir/trace.json` (written atomically at every point), so a resumed run continues its trace
and a finished one is read back without training.
"""

import os

from lamp_tf.runtime import files


class TrainingTrace:
  """Loss terms by step and alignment probes by step of one run (see the module docstring).

  Args:
    run_dir: the run's directory; the trace is `run_dir/trace.json`.
    writer: the run's MetricWriter (TensorBoard); every value is forwarded to it.
    probe: a function of no argument -> {name: number or list of numbers}, measured on the
      model as it is at the probe's step.
  """

  def __init__(self, run_dir, writer, probe=None, enabled=True):
    self.path = os.path.join(run_dir, "trace.json")
    self.writer, self.probe_fn, self.enabled = writer, probe, enabled
    self.data = (files.read_json(self.path) if os.path.exists(self.path)
                 else {"losses": {}, "probes": {}})

  # The MetricWriter interface that runtime.loop.train_loop writes the step values through.
  def write_scalars(self, step, scalars):
    self.writer.write_scalars(step, scalars)
    self.data["losses"][str(int(step))] = {k.rsplit("/", 1)[-1]: float(v)
                                           for k, v in scalars.items()}
    self._save()

  def flush(self):
    self.writer.flush()

  def probe(self, step):
    """Measures the probe at `step` (kept once per step) and writes its scalars."""
    values = self.probe_fn()
    self.data["probes"][str(int(step))] = values
    scalars = {}
    for k, v in values.items():
      if isinstance(v, (list, tuple)):
        scalars.update({f"alignment/{k}_{i + 1}": x for i, x in enumerate(v)})
      else:
        scalars[f"alignment/{k}"] = v
    self.writer.write_scalars(step, scalars)
    self._save()

  def probe_at(self, step):
    """The probe at `step` unless the trace has it already (a resumed or finished run)."""
    if self.probe_fn is not None and str(int(step)) not in self.data["probes"]:
      self.probe(step)

  def actions(self, steps, points=4):
    """Loop actions probing at `points` evenly spaced steps up to `steps` (the last included)."""
    if self.probe_fn is None:
      return ()
    return ((max(1, steps // points), self.probe_at),)

  def _save(self):
    if self.enabled:  # the chief's (other workers keep theirs in memory)
      files.write_json(self.path, self.data)

  def summary(self):
    """A flat record of the trace: 'loss_start_<term>' and 'loss_end_<term>' (each term's
    first and last recorded value; 'loss_start_step' and 'loss_end_step' the first and last
    recorded steps, 'loss_steps_<term>' the term's own: a term of some steps only, e.g. the
    discriminator's loss of every other step, may be recorded at the first step alone),
    'probe_steps' and, per probe value, 'probe_<name>': its values at those steps."""
    losses = {int(k): v for k, v in self.data["losses"].items()}
    probes = {int(k): v for k, v in self.data["probes"].items()}
    out = {}
    if losses:
      out.update(loss_start_step=min(losses), loss_end_step=max(losses))
      for step in sorted(losses, reverse=True):
        out.update({f"loss_start_{k}": v for k, v in losses[step].items()})
      for step in sorted(losses):
        out.update({f"loss_end_{k}": v for k, v in losses[step].items()})
      for k in {k for values in losses.values() for k in values}:
        seen = [s for s in sorted(losses) if k in losses[s]]
        out[f"loss_steps_{k}"] = [seen[0], seen[-1]]
    if probes:
      steps = sorted(probes)
      out["probe_steps"] = steps
      for name in probes[steps[0]]:
        out[f"probe_{name}"] = [probes[s].get(name) for s in steps]
    return out
