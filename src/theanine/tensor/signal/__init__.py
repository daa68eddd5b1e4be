"""theanine.tensor.signal: signal-processing operations (Theano's names); see ``pool``."""

from theanine.tensor.signal import pool  # noqa: F401

__all__ = ["pool"]
