"""theanine.tensor.nnet: neural-network functions (Theano's names)."""

from theanine.tensor.math import relu, sigmoid, softplus  # noqa: F401

__all__ = ["relu", "sigmoid", "softplus"]
