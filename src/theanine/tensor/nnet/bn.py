"""Batch normalization (Theano's theano.tensor.nnet.bn), built from elementwise ops and
reductions, so it is differentiable and runs natively without ops of its own."""

from __future__ import annotations

import numpy as np

from theanine.configparser import config
from theanine.tensor import math as tm
from theanine.tensor.elemwise import dimshuffle
from theanine.tensor.variable import as_tensor_variable


def _prepare_axes(axes, ndim):
    """(normalized axes, the other axes) for 'per-activation', 'spatial' or a sequence of ints."""
    if isinstance(axes, str):
        if axes == "per-activation":
            axes = (0,)
        elif axes == "spatial":
            axes = (0,) + tuple(range(2, ndim))
        else:
            raise ValueError(f"batch_normalization: axes must be 'per-activation', 'spatial' or a "
                             f"tuple of ints, got {axes!r}")
    elif isinstance(axes, (tuple, list, np.ndarray)):
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"batch_normalization: axes must be ints, got {axes!r}")
        axes = tuple(int(a) for a in axes)
    else:
        raise ValueError(f"batch_normalization: axes must be 'per-activation', 'spatial' or a "
                         f"tuple of ints, got {axes!r}")
    axes = tuple(sorted(set(axes)))
    if not axes:
        raise ValueError("batch_normalization: there must be at least one normalization axis")
    if min(axes) < 0 or max(axes) >= ndim:
        raise ValueError(f"batch_normalization: axes must lie in [0, {ndim}) for inputs with {ndim} "
                         f"dimensions, got {axes}")
    return axes, tuple(i for i in range(ndim) if i not in axes)


class _Params:
    """How parameter tensors (gamma, beta, mean, var) line up with the inputs: either with
    all of the inputs' dimensions (size 1 on the normalization axes) or with only the
    non-normalized ones."""

    def __init__(self, ndim, axes, non_bc_axes, gamma):
        self.ndim, self.axes, self.non_bc_axes = ndim, axes, non_bc_axes
        self.full = gamma.ndim == ndim
        self.params_ndim = ndim if self.full else len(non_bc_axes)
        self.pattern = ["x"] * ndim
        for i, axis in enumerate(non_bc_axes):
            self.pattern[axis] = i

    def check(self, name, v):
        v = as_tensor_variable(v)
        if v.ndim != self.params_ndim:
            raise ValueError(f"batch_normalization: {name} must have {self.params_ndim} dimensions "
                             f"(the inputs' non-normalized axes {self.non_bc_axes}, or all of "
                             f"the inputs' {self.ndim} dimensions), got {v.ndim}")
        if self.full:
            for a in self.axes:
                if v.type.shape[a] not in (1, None):
                    raise ValueError(f"batch_normalization: {name} must have size 1 on the "
                                     f"normalization axes {self.axes}; its static shape is "
                                     f"{v.type.shape}")
        return v

    def broadcast(self, v):
        """``v`` with the inputs' rank (size-1 normalization axes)."""
        return v if self.full else dimshuffle(v, self.pattern)

    def squeeze(self, v):
        """A statistic computed with keepdims, shaped like the parameters."""
        return v if self.full else dimshuffle(v, self.non_bc_axes)


def _check_epsilon(epsilon):
    eps = np.asarray(epsilon, dtype=config.floatX)
    # checked after the conversion: float32(1e-5) is slightly below 1e-5
    if eps < np.asarray(1e-5, dtype=config.floatX):
        raise ValueError(f"batch_normalization: epsilon must be at least 1e-5, got {epsilon}")
    return float(epsilon)


def _setup(inputs, gamma, axes):
    inputs = as_tensor_variable(inputs)
    if inputs.dtype not in ("float16", "float32", "float64"):
        raise TypeError(f"batch_normalization: inputs must have a float dtype, got {inputs.dtype}")
    axes, non_bc_axes = _prepare_axes(axes, inputs.ndim)
    return inputs, _Params(inputs.ndim, axes, non_bc_axes, as_tensor_variable(gamma))


def batch_normalization_train(inputs, gamma, beta, axes="per-activation", epsilon=1e-4,
                              running_average_factor=0.1, running_mean=None, running_var=None):
    """Normalize ``inputs`` with the mean and variance of the batch over ``axes``
    ('per-activation': axis 0; 'spatial': axes 0, 2, 3, ...; or a tuple of ints), then
    scale by ``gamma`` and shift by ``beta``.

    Returns ``(out, mean, invstd)``, where invstd = 1 / sqrt(var + epsilon); with
    ``running_mean`` and ``running_var`` also ``(new_running_mean, new_running_var)``:
    running * (1 - factor) + batch statistic * factor, the variance unbiased (m / (m - 1)
    for m values per statistic). gamma, beta and the running statistics have the inputs'
    dimensions with size 1 on ``axes``, or only the non-normalized dimensions; mean and
    invstd come back shaped like them.
    """
    x, params = _setup(inputs, gamma, axes)
    gamma, beta = params.check("gamma", gamma), params.check("beta", beta)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_normalization_train: give both running_mean and running_var, or neither")
    eps = _check_epsilon(epsilon)
    axes = params.axes
    mean = tm.mean(x, axes, keepdims=True)
    centered = x - mean
    var = tm.mean(centered * centered, axes, keepdims=True)
    invstd = tm.reciprocal(tm.sqrt(var + eps))
    out = centered * (params.broadcast(gamma) * invstd) + params.broadcast(beta)
    results = [out, params.squeeze(mean), params.squeeze(invstd)]
    if running_mean is not None:
        running_mean = params.check("running_mean", running_mean)
        running_var = params.check("running_var", running_var)
        factor = running_average_factor
        m = tm.cast(tm.mul(*[x.shape[a] for a in axes]), x.dtype)
        unbiased = params.squeeze(var) * (m / (m - 1))
        results.append(running_mean * (1.0 - factor) + params.squeeze(mean) * factor)
        results.append(running_var * (1.0 - factor) + unbiased * factor)
    return tuple(results)


def batch_normalization_test(inputs, gamma, beta, mean, var, axes="per-activation", epsilon=1e-4):
    """Normalize ``inputs`` with given statistics: (inputs - mean) * gamma / sqrt(var +
    epsilon) + beta. ``axes`` and the parameter shapes are as in batch_normalization_train."""
    x, params = _setup(inputs, gamma, axes)
    gamma, beta = params.check("gamma", gamma), params.check("beta", beta)
    mean, var = params.check("mean", mean), params.check("var", var)
    eps = _check_epsilon(epsilon)
    b = params.broadcast
    return (x - b(mean)) * (b(gamma) * tm.reciprocal(tm.sqrt(b(var) + eps))) + b(beta)


def batch_normalization(inputs, gamma, beta, mean, std, mode="low_mem"):
    """(inputs - mean) * (gamma / std) + beta, elementwise with broadcasting (Theano's older
    interface; ``mode`` is accepted for compatibility: both of Theano's modes compute this)."""
    if mode not in ("low_mem", "high_mem"):
        raise ValueError(f"batch_normalization: mode must be 'low_mem' or 'high_mem', got {mode!r}")
    inputs = as_tensor_variable(inputs)
    return (inputs - mean) * (gamma / std) + beta


__all__ = ["batch_normalization_train", "batch_normalization_test", "batch_normalization"]
