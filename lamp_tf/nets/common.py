"""Small helpers shared by the networks."""


def attach(owner, prefix, layers):
  """Sets layers as attributes prefix1, prefix2, ... and returns their names.

  Keras 3 does not checkpoint layers held in Python lists of a subclassed model (see
  runtime.loop.TrainState), so repeated layers are attributes of their own.
  """
  names = []
  for i, layer in enumerate(layers):
    setattr(owner, f"{prefix}{i + 1}", layer)
    names.append(f"{prefix}{i + 1}")
  return tuple(names)
