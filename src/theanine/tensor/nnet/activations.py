"""Elementwise activation functions, built from elementwise ops so that they fuse into kernels."""

from __future__ import annotations

from theanine.graph.basic import Variable
from theanine.tensor import math as tm
from theanine.tensor.math import sigmoid, softplus
from theanine.tensor.variable import as_tensor_variable

#: the constants of the scaled exponential linear unit (Klambauer et al., 2017)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def hard_sigmoid(x):
    """A piecewise-linear approximation of the sigmoid: clip(0.2 * x + 0.5, 0, 1)."""
    x = as_tensor_variable(x)
    return tm.clip(x * 0.2 + 0.5, 0, 1)


def relu(x, alpha=0):
    """The rectifier max(x, 0); with ``alpha`` (a number or a symbolic scalar), the leaky
    version: x where x > 0, else alpha * x."""
    x = as_tensor_variable(x)
    if not isinstance(alpha, Variable) and alpha == 0:
        return tm.maximum(x, 0)
    return tm.switch(tm.gt(x, 0), x, alpha * x)


def elu(x, alpha=1):
    """The exponential linear unit: x where x > 0, else alpha * (exp(x) - 1)."""
    x = as_tensor_variable(x)
    # expm1 sees min(x, 0) so that the branch not taken cannot overflow: an inf there
    # would turn the switch's zero gradient into 0 * inf = nan.
    return tm.switch(tm.gt(x, 0), x, alpha * tm.expm1(tm.minimum(x, 0)))


def selu(x):
    """The scaled exponential linear unit: SELU_SCALE * elu(x, SELU_ALPHA)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


__all__ = ["sigmoid", "hard_sigmoid", "softplus", "relu", "elu", "selu", "SELU_ALPHA", "SELU_SCALE"]
