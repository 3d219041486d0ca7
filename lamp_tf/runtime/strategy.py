"""Distribution strategies from flags, and the compiled distributed step.

Convention for step functions: a replica computes per-example values and divides their sum by
the *global* batch size, so summing over replicas gives the global mean whatever the number of
replicas. `distributed_step` does that sum.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def split_cpu(num_devices):
  """Splits the physical CPU into `num_devices` logical devices (before TF starts its runtime)."""
  if num_devices < 1:
    raise ValueError(f"--cpu_devices must be >= 1, got {num_devices}.")
  cpu = tf.config.list_physical_devices("CPU")[0]
  have = tf.config.get_logical_device_configuration(cpu)
  if (len(have) if have else 1) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
  except RuntimeError as e:
    raise RuntimeError(f"cannot split the CPU into {num_devices} devices: TensorFlow has already "
                       "started; call split_cpu before building any model or tensor.") from e


def _accelerators_or_cpus():
  gpus = tf.config.list_logical_devices("GPU")
  return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(name="default", cpu_devices=1):
  """The tf.distribute strategy called `name` ('default', 'mirrored' or 'multi_worker')."""
  if name not in STRATEGIES:
    raise ValueError(f"--strategy={name!r}: choose one of {', '.join(STRATEGIES)}.")
  if cpu_devices > 1:
    split_cpu(cpu_devices)
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices=_accelerators_or_cpus())
  if "TF_CONFIG" not in os.environ:
    raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                     '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                     '"task": {"type": "worker", "index": 0}}).')
  try:
    json.loads(os.environ["TF_CONFIG"])
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON: {e}.") from None
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
  """True on the one worker that writes checkpoints, summaries, results and exports."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 0
  return int(resolver.task_id or 0)


def build_optimizer(strategy, optimizer, variables):
  """Creates the optimiser's slots in the strategy's scope before the first distributed step."""
  with strategy.scope():
    optimizer.build(variables)
  return optimizer


def reset_optimizer(optimizer):
  """Zeroes a Keras optimiser's step counter and slots (moments), keeping its learning rate
  (and a loss-scale optimiser's scale)."""
  for v in optimizer.variables:
    if not v.path.endswith(("learning_rate", "dynamic_scale")):
      v.assign(tf.zeros_like(v))


def replica_share(global_tensor):
  """This replica's rows of a tensor computed for the whole global batch (e.g. stateless noise)."""
  ctx = tf.distribute.get_replica_context()
  n = ctx.num_replicas_in_sync
  if n == 1:
    return global_tensor
  per = tf.shape(global_tensor)[0] // n
  start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * per
  return global_tensor[start:start + per]


def distributed_step(strategy, replica_step):
  """Compiles `replica_step(batch, seed) -> {name: scalar}` to run on every replica.

  The returned tf.function takes a distributed batch and a seed (shape [2] int64, the same on
  every replica) and returns the replica values summed, i.e. global means by the convention
  above.
  """
  @tf.function
  def step(batch, seed):
    out = strategy.run(replica_step, args=(batch, seed))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in out.items()}
  return step
