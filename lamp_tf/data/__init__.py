"""Data: named sources, task splits, limited-data subsets, preprocessing, input pipelines."""

from lamp_tf.data.errors import DataNotFoundError, UnknownDataError
from lamp_tf.data.sources import Examples, load, load_examples

__all__ = ["DataNotFoundError", "UnknownDataError", "Examples", "load", "load_examples"]
