"""Softmax and log-softmax along axes, and the softmax's gradient, as graph ops.

They stay single nodes while the stabilize phase looks for ``log(softmax(x))``
and cross-entropies of a softmax; the specialize phase then expands them into
max, sub, exp, sum, log and true_div (``expand``), which native modes fuse.
"""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply
from theanine.tensor import math as tm
from theanine.tensor.nnet.expandable import ExpandableOp
from theanine.tensor.shape import normalize_axes
from theanine.tensor.type import FLOAT_DTYPES, TensorType
from theanine.tensor.variable import as_tensor_variable


def _axes(axis, ndim, fname):
    """``axis`` (an int, a sequence of ints, or None for all axes) as a sorted tuple."""
    if ndim == 0:
        raise ValueError(f"{fname}: x must have at least one dimension, got a scalar")
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(normalize_axes(axis, ndim, fname)))


def _float_input(x, fname, argname="x"):
    x = as_tensor_variable(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fname}: {argname} must have a float dtype, got {x.dtype} ({x.type}); "
                        f"cast it first")
    return x


def _check_nonempty(x, axes, fname):
    for a in axes:
        if x.type.shape[a] == 0:
            raise ValueError(f"{fname}: cannot normalise over axis {a} of {x}, which is empty "
                             f"(static shape {x.type.shape})")


class _SoftmaxBase(ExpandableOp):
    __props__ = ("axis",)
    fname = ""

    def __init__(self, axis):
        self.axis = tuple(axis)

    def __str__(self):
        return f"{type(self).__name__}{{axis={list(self.axis)}}}"

    def make_node(self, x):
        x = _float_input(x, self.fname)
        if not x.ndim or max(self.axis) >= x.ndim:
            raise ValueError(f"{self}: x has {x.ndim} dimensions, too few for axes {self.axis}")
        _check_nonempty(x, self.axis, self.fname)
        return Apply(self, [x], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def _shifted(self, x):
        if any(x.shape[a] == 0 for a in self.axis):
            raise ValueError(f"{self.fname}: cannot normalise over an empty axis (input shape {x.shape})")
        return x - np.max(x, axis=self.axis, keepdims=True)

    def _expanded_shift(self, x):
        return x - tm.max(x, self.axis, keepdims=True)


class Softmax(_SoftmaxBase):
    """exp(x) / sum(exp(x)) over ``axis``, computed as exp(x - max(x)) / sum(exp(x - max(x)))."""

    fname = "softmax"

    def perform(self, node, inputs, output_storage):
        e = np.exp(self._shifted(inputs[0]))
        out = e / np.sum(e, axis=self.axis, keepdims=True)
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def expand(self, x):
        e = tm.exp(self._expanded_shift(x))
        return [e / tm.sum(e, self.axis, keepdims=True)]

    def L_op(self, inputs, outputs, output_grads):
        return [SoftmaxGrad(self.axis)(output_grads[0], outputs[0])]


class LogSoftmax(_SoftmaxBase):
    """x - log(sum(exp(x))) over ``axis``, computed with the max subtracted first."""

    fname = "log_softmax"

    def perform(self, node, inputs, output_storage):
        s = self._shifted(inputs[0])
        out = s - np.log(np.sum(np.exp(s), axis=self.axis, keepdims=True))
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def expand(self, x):
        s = self._expanded_shift(x)
        return [s - tm.log(tm.sum(tm.exp(s), self.axis, keepdims=True))]

    def L_op(self, inputs, outputs, output_grads):
        (gz,), (z,) = output_grads, outputs
        return [gz - tm.exp(z) * tm.sum(gz, self.axis, keepdims=True)]


class SoftmaxGrad(ExpandableOp):
    """The gradient of softmax: (dy - sum(dy * sm)) * sm over ``axis``, for sm = softmax(x)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(axis)

    def __str__(self):
        return f"SoftmaxGrad{{axis={list(self.axis)}}}"

    def make_node(self, dy, sm):
        dy = _float_input(dy, "SoftmaxGrad", "dy")
        sm = _float_input(sm, "SoftmaxGrad", "sm")
        if dy.ndim != sm.ndim:
            raise ValueError(f"SoftmaxGrad: dy has {dy.ndim} dimensions, sm {sm.ndim}")
        for a, b in zip(dy.type.shape, sm.type.shape):
            if a is not None and b is not None and a != b:
                raise ValueError(f"SoftmaxGrad: dy's shape {dy.type.shape} differs from sm's {sm.type.shape}")
        shape = tuple(b if b is not None else a for a, b in zip(dy.type.shape, sm.type.shape))
        return Apply(self, [dy, sm], [TensorType(sm.dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        dy, sm = inputs
        if dy.shape != sm.shape:
            raise ValueError(f"SoftmaxGrad: dy has shape {dy.shape}, sm has shape {sm.shape}")
        out = (dy - np.sum(dy * sm, axis=self.axis, keepdims=True)) * sm
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def expand(self, dy, sm):
        return [(dy - tm.sum(dy * sm, self.axis, keepdims=True)) * sm]

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, output_grads):
        dy, sm = inputs
        (g,) = output_grads
        # The Jacobian in dy is symmetric, so the gradient in dy is SoftmaxGrad itself.
        s = tm.sum(dy * sm, self.axis, keepdims=True)
        g_sm = g * (dy - s) - dy * tm.sum(g * sm, self.axis, keepdims=True)
        return [SoftmaxGrad(self.axis)(g, sm), g_sm]


def softmax(x, axis=-1):
    """The softmax of ``x`` along ``axis`` (an int, a tuple, or None for all axes):
    exp(x) / sum(exp(x)), computed without overflow."""
    x = _float_input(x, "softmax")
    return Softmax(_axes(axis, x.ndim, "softmax"))(x)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed as x - max - log(sum(exp(x - max)))."""
    x = _float_input(x, "log_softmax")
    return LogSoftmax(_axes(axis, x.ndim, "log_softmax"))(x)


logsoftmax = log_softmax

__all__ = ["Softmax", "LogSoftmax", "SoftmaxGrad", "softmax", "log_softmax", "logsoftmax"]
