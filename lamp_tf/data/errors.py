"""Errors raised by data sources."""


class DataNotFoundError(FileNotFoundError):
  """A data set is known but not available on this machine; the message says how to get it."""


class UnknownDataError(ValueError):
  """A data set name that neither lamp_tf nor TFDS knows."""


class DamagedDataError(OSError):
  """A data file is present but truncated or corrupt; the message names it and how to rebuild."""
