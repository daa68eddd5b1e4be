"""2-d pooling over the last two axes (Theano's theano.tensor.signal.pool).

``Pool`` computes max, sum or average pooling; ``MaxPoolGrad`` and
``AveragePoolGrad`` are its gradients, and ``MaxPoolGradGrad`` the gradient of
``MaxPoolGrad``. The NumPy kernels are in ``pool_numpy``.
"""

from __future__ import annotations

import numbers

import numpy as np

from theanine.graph.basic import Apply, Op
from theanine.tensor import math as tm
from theanine.tensor.basic import zeros_like
from theanine.tensor.signal import pool_numpy
from theanine.tensor.type import FLOAT_DTYPES, TensorType
from theanine.tensor.variable import as_tensor_variable

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _pair(value, name, minimum):
    pair = (value, value) if _is_int(value) else value
    try:
        ok = len(pair) == 2 and all(_is_int(v) and v >= minimum for v in pair)
    except TypeError:
        ok = False
    if not ok:
        what = "positive ints" if minimum == 1 else "non-negative ints"
        raise ValueError(f"pool_2d: {name} must be a pair of {what}, got {value!r}")
    return tuple(int(v) for v in pair)


class _PoolOp(Op):
    """The parameters shared by the pooling ops, checked once."""

    __props__ = ("ws", "ignore_border", "stride", "pad", "mode")

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
        self.ws = _pair(ws, "ws", 1)
        self.stride = self.ws if stride is None else _pair(stride, "stride", 1)
        self.pad = _pair(pad, "pad", 0)
        self.ignore_border = bool(ignore_border)
        if mode not in MODES:
            raise ValueError(f"pool_2d: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        self.mode = mode
        if self.pad != (0, 0) and not self.ignore_border:
            raise ValueError(f"pool_2d: padding (pad={self.pad}) requires ignore_border=True")
        if self.pad[0] >= self.ws[0] or self.pad[1] >= self.ws[1]:
            raise ValueError(f"pool_2d: pad={self.pad} must be smaller than ws={self.ws} in each dimension")

    def __str__(self):
        return (f"{type(self).__name__}{{ws={self.ws}, stride={self.stride}, pad={self.pad}, "
                f"ignore_border={self.ignore_border}, mode={self.mode!r}}}")

    @property
    def params(self):
        return pool_numpy.PoolParams(self.ws, self.stride, self.pad, self.ignore_border)

    def _like(self, cls, mode=None):
        return cls(self.ws, self.ignore_border, self.stride, self.pad, mode or self.mode)

    def _input(self, x, argname="input"):
        x = as_tensor_variable(x)
        if x.ndim < 2:
            raise ValueError(f"pool_2d: {argname} must have at least 2 dimensions (pooling is over "
                             f"the last two), got {x.ndim}")
        if self.mode.startswith("average") and x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"pool_2d: mode {self.mode!r} needs a float {argname}, got {x.dtype}")
        if self.mode == "sum" and x.dtype == "bool":
            raise TypeError(f"pool_2d: mode {self.mode!r} cannot sum a boolean {argname}")
        return x

    def _out_static(self, x):
        p = self.params
        return x.type.shape[:-2] + tuple(None if n is None else p.out_size(axis, n)
                                         for axis, n in enumerate(x.type.shape[-2:]))

    def _check_like(self, v, shape, argname):
        v = as_tensor_variable(v)
        if v.ndim != len(shape):
            raise ValueError(f"{type(self).__name__}: {argname} must have {len(shape)} dimensions, got {v.ndim}")
        for axis, (a, b) in enumerate(zip(v.type.shape, shape)):
            if a is not None and b is not None and a != b:
                raise ValueError(f"{type(self).__name__}: {argname} has static shape {v.type.shape}, "
                                 f"expected size {b} in dimension {axis}")
        return v

    def _symbolic_out_shape(self, shape):
        p = self.params

        def maximum(a, b):
            return max(a, b) if isinstance(a, int) else tm.maximum(a, b)

        return tuple(shape[:-2]) + (p.out_size(0, shape[-2], maximum), p.out_size(1, shape[-1], maximum))


class Pool(_PoolOp):
    """Pooling over the last two axes of its input with window ``ws``, ``stride``, ``pad``
    and ``mode`` ('max', 'sum', 'average_inc_pad', 'average_exc_pad')."""

    def make_node(self, x):
        x = self._input(x)
        return Apply(self, [x], [TensorType(x.dtype, self._out_static(x))()])

    def perform(self, node, inputs, output_storage):
        out = pool_numpy.pool(inputs[0], self.params, self.mode)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return [self._symbolic_out_shape(shapes[0])]

    def L_op(self, inputs, outputs, output_grads):
        (x,), (out,), (gz,) = inputs, outputs, output_grads
        if x.dtype not in FLOAT_DTYPES:
            from theanine.gradient import grad_undefined_for_discrete
            return [grad_undefined_for_discrete(x)]
        if self.mode == "max":
            return [self._like(MaxPoolGrad)(x, out, gz)]
        return [self._like(AveragePoolGrad)(x, gz)]


class MaxPoolGrad(_PoolOp):
    """The gradient of max pooling: MaxPoolGrad(x, maxout, gz) sends each output's gradient
    to the cells of its window equal to the maximum."""

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
        super().__init__(ws, ignore_border, stride, pad, "max")

    def make_node(self, x, maxout, gz):
        x = self._input(x)
        out_shape = self._out_static(x)
        maxout = self._check_like(maxout, out_shape, "maxout")
        gz = self._check_like(gz, out_shape, "gz")
        return Apply(self, [x, maxout, gz], [TensorType(gz.dtype, x.type.shape)()])

    def perform(self, node, inputs, output_storage):
        x, maxout, gz = inputs
        _check_runtime(self, maxout, gz, x.shape)
        out = pool_numpy.max_pool_grad(x, maxout, gz, self.params)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        x, maxout, gz = inputs
        (g,) = output_grads
        return [zeros_like(x), zeros_like(maxout), self._like(MaxPoolGradGrad)(x, maxout, g)]


class MaxPoolGradGrad(_PoolOp):
    """The gradient of MaxPoolGrad in its output gradient: for each window, the sum of gg
    (shaped like x) over the cells equal to the window's maximum."""

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
        super().__init__(ws, ignore_border, stride, pad, "max")

    def make_node(self, x, maxout, gg):
        x = self._input(x)
        maxout = self._check_like(maxout, self._out_static(x), "maxout")
        gg = self._check_like(gg, x.type.shape, "gg")
        return Apply(self, [x, maxout, gg], [TensorType(gg.dtype, maxout.type.shape)()])

    def perform(self, node, inputs, output_storage):
        x, maxout, gg = inputs
        if gg.shape != x.shape:
            raise ValueError(f"MaxPoolGradGrad: gg has shape {gg.shape}, x has shape {x.shape}")
        _check_runtime(self, maxout, maxout, x.shape)
        out = pool_numpy.max_pool_grad_grad(x, maxout, gg, self.params)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, output_grads):
        x, maxout, gg = inputs
        (g,) = output_grads
        return [zeros_like(x), zeros_like(maxout), self._like(MaxPoolGrad)(x, maxout, g)]


class AveragePoolGrad(_PoolOp):
    """The gradient of sum or average pooling: AveragePoolGrad(x, gz) spreads each output's
    gradient over its window (divided by the window's count for averages); only x's shape
    is read."""

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="average_inc_pad"):
        if mode == "max":
            raise ValueError("AveragePoolGrad: mode must be 'sum', 'average_inc_pad' or 'average_exc_pad'")
        super().__init__(ws, ignore_border, stride, pad, mode)

    def make_node(self, x, gz):
        x = self._input(x)
        gz = self._check_like(gz, self._out_static(x), "gz")
        return Apply(self, [x, gz], [TensorType(gz.dtype, x.type.shape)()])

    def perform(self, node, inputs, output_storage):
        x, gz = inputs
        _check_runtime(self, gz, gz, x.shape)
        out = pool_numpy.average_pool_grad(x.shape, gz, self.params, self.mode)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        x, gz = inputs
        (g,) = output_grads
        # linear in gz with adjoint the pooling itself; x's values are not read
        return [zeros_like(x), self._like(Pool)(g)]


def _check_runtime(op, a, b, x_shape):
    want = op.params.out_shape(x_shape)
    for name, v in (("the pooled value", a), ("the output gradient", b)):
        if v.shape != want:
            raise ValueError(f"{type(op).__name__}: {name} has shape {v.shape}, expected {want} "
                             f"for an input of shape {x_shape}")


def pool_2d(input, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    """Pooling of ``input`` (at least 2-d) over its last two axes.

    ``ws`` is the window (rows, columns); ``stride`` defaults to ``ws``; ``pad`` adds
    that many rows and columns on each side (it needs ignore_border=True, and is smaller
    than ws). ``mode``: 'max' (padding never wins), 'sum', 'average_inc_pad' (padding
    counts as zeros) or 'average_exc_pad' (averages over the input cells only). With
    ``ignore_border=False`` the partial windows at the bottom and right borders give
    outputs too, as in Theano.
    """
    return Pool(ws, ignore_border, stride, pad, mode)(input)


__all__ = ["pool_2d", "Pool", "MaxPoolGrad", "MaxPoolGradGrad", "AveragePoolGrad", "MODES"]
