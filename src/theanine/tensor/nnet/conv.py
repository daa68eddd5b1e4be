"""2-d convolution in NCHW layout (Theano's conv2d) and its two gradient ops.

``Conv2d`` computes the convolution, ``Conv2dGradWeights`` its gradient in the
filters and ``Conv2dGradInputs`` its gradient in the input. Each is linear in
each argument and the three are adjoint to one another, so each one's gradient
is expressed with the other two and derivatives of any order exist. The NumPy
kernels are in ``conv_numpy``.
"""

from __future__ import annotations

import numbers

import numpy as np

from theanine.gradient import DisconnectedType
from theanine.graph.basic import Apply, Op
from theanine.tensor.nnet import conv_numpy
from theanine.tensor.shape import (as_shape_vector, constant_entries, make_vector, shape_i,
                                   specify_shape)
from theanine.tensor.type import FLOAT_DTYPES, TensorType, upcast
from theanine.tensor.variable import as_tensor_variable

_BORDER_MODES = ("valid", "full", "half")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _pair(value, name, fname, minimum):
    """``value`` (an int or a pair of ints, each >= minimum) as a pair of ints."""
    pair = (value, value) if _is_int(value) else value
    try:
        ok = len(pair) == 2 and all(_is_int(v) and v >= minimum for v in pair)
    except TypeError:
        ok = False
    if not ok:
        what = "positive ints" if minimum == 1 else "non-negative ints"
        raise ValueError(f"{fname}: {name} must be a pair of {what}, got {value!r}")
    return tuple(int(v) for v in pair)


def normalize_border_mode(border_mode, fname="conv2d"):
    """'valid', 'full', 'half', or a (rows, columns) pair of paddings; 'valid' becomes (0, 0)."""
    if isinstance(border_mode, str):
        if border_mode not in _BORDER_MODES:
            raise ValueError(f"{fname}: border_mode must be 'valid', 'full', 'half', a non-negative "
                             f"int or a pair of them, got {border_mode!r}")
        return (0, 0) if border_mode == "valid" else border_mode
    try:
        return _pair(border_mode, "border_mode", fname, 0)
    except ValueError:
        raise ValueError(f"{fname}: border_mode must be 'valid', 'full', 'half', a non-negative int "
                         f"or a pair of them, got {border_mode!r}") from None


def _dim(v, i):
    """Static size of dimension ``i`` of ``v``, or None."""
    return v.type.shape[i]


def _spatial_shape(v):
    """The last two sizes of ``v`` as an int64 vector (a constant when they are static)."""
    static = v.type.shape[-2:]
    if None not in static:
        return as_tensor_variable(np.asarray(static, dtype="int64"))
    return make_vector(shape_i(v, v.ndim - 2), shape_i(v, v.ndim - 1))


def _shape_input(shape, fname, what):
    """A 2-vector of sizes (ints or symbolic) as an int64 vector variable."""
    if isinstance(shape, (tuple, list)):
        if len(shape) != 2:
            raise ValueError(f"{fname}: {what} must have 2 entries (rows, columns), got {shape!r}")
        if any(isinstance(s, int) and s < 0 for s in shape):
            raise ValueError(f"{fname}: {what} must be non-negative, got {shape!r}")
        return as_shape_vector(list(shape), fname)
    shape = as_tensor_variable(shape)
    if shape.ndim != 1 or shape.dtype not in ("int8", "int16", "int32", "int64"):
        raise TypeError(f"{fname}: {what} must be a vector of 2 integers, got {shape.type}")
    return shape


class _ConvOp(Op):
    """The parameters shared by the three convolution ops."""

    __props__ = ("border_mode", "subsample", "filter_flip", "filter_dilation", "num_groups")
    fname = "conv2d"

    def __init__(self, border_mode="valid", subsample=(1, 1), filter_flip=True,
                 filter_dilation=(1, 1), num_groups=1):
        self.border_mode = normalize_border_mode(border_mode, self.fname)
        self.subsample = _pair(subsample, "subsample", self.fname, 1)
        self.filter_dilation = _pair(filter_dilation, "filter_dilation", self.fname, 1)
        if not _is_int(num_groups) or num_groups < 1:
            raise ValueError(f"{self.fname}: num_groups must be a positive int, got {num_groups!r}")
        self.filter_flip = bool(filter_flip)
        self.num_groups = int(num_groups)

    def __str__(self):
        return (f"{type(self).__name__}{{border_mode={self.border_mode!r}, subsample={self.subsample}, "
                f"filter_flip={self.filter_flip}, filter_dilation={self.filter_dilation}, "
                f"num_groups={self.num_groups}}}")

    @property
    def params(self):
        return conv_numpy.ConvParams(self.border_mode, self.subsample, self.filter_flip,
                                     self.filter_dilation, self.num_groups)

    def _like(self, cls):
        return cls(self.border_mode, self.subsample, self.filter_flip, self.filter_dilation,
                   self.num_groups)

    def _check_4d(self, v, argname, layout):
        v = as_tensor_variable(v)
        if v.ndim != 4:
            raise TypeError(f"{self.fname}: {argname} must be a 4-d tensor {layout}, got {v.ndim} "
                            f"dimensions ({v.type})")
        if v.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{self.fname}: {argname} must have a float dtype, got {v.dtype}")
        return v

    def _check_channels(self, n_channels, filters_channels, n_filters):
        """Static checks of the channel counts against the filters and num_groups."""
        g = self.num_groups
        if n_channels is not None and n_channels % g:
            raise ValueError(f"{self.fname}: num_groups={g} does not divide the {n_channels} input channels")
        if n_filters is not None and n_filters % g:
            raise ValueError(f"{self.fname}: num_groups={g} does not divide the {n_filters} filters")
        if n_channels is not None and filters_channels is not None and n_channels != filters_channels * g:
            raise ValueError(f"{self.fname}: the input has {n_channels} channels but the filters expect "
                             f"{filters_channels * g} (filters.shape[1]={filters_channels} * "
                             f"num_groups={g})")

    def _out_size(self, axis, n, k):
        """Static output size along spatial ``axis`` (0: rows, 1: columns), or None."""
        if n is None or k is None:
            return None
        size = self.params.out_size(axis, n, k)
        if size < 1:
            raise ValueError(f"{self.fname}: the filters span {self.params.effective(axis, k)} "
                             f"{('rows', 'columns')[axis]} (with dilation), more than the "
                             f"{n + 2 * self.params.pad(axis, k)} of the padded input")
        return size

    def _check_output_grad(self, gz, n_batch, n_filters, rows, cols):
        want = (n_batch, n_filters, rows, cols)
        for axis, (a, b) in enumerate(zip(gz.type.shape, want)):
            if a is not None and b is not None and a != b:
                raise ValueError(f"{self.fname}: the output gradient has static shape {gz.type.shape}, "
                                 f"but the convolution's output has size {b} in dimension {axis}")


class Conv2d(_ConvOp):
    """conv2d(input, filters): input (batch, channels, rows, columns), filters
    (n_filters, channels / num_groups, rows, columns), output (batch, n_filters, rows', columns')."""

    def make_node(self, x, w):
        x = self._check_4d(x, "input", "(batch, channels, rows, columns)")
        w = self._check_4d(w, "filters", "(n_filters, channels / num_groups, rows, columns)")
        self._check_channels(_dim(x, 1), _dim(w, 1), _dim(w, 0))
        shape = (_dim(x, 0), _dim(w, 0), self._out_size(0, _dim(x, 2), _dim(w, 2)),
                 self._out_size(1, _dim(x, 3), _dim(w, 3)))
        return Apply(self, [x, w], [TensorType(upcast(x.dtype, w.dtype), shape)()])

    def perform(self, node, inputs, output_storage):
        x, w = inputs
        out = conv_numpy.conv2d(x, w, self.params)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (n, _, h, wd), (f, _, kh, kw) = shapes
        return [(n, f, self.params.out_size(0, h, kh), self.params.out_size(1, wd, kw))]

    def L_op(self, inputs, outputs, output_grads):
        x, w = inputs
        (gz,) = output_grads
        gx = self._like(Conv2dGradInputs)(w, gz, _spatial_shape(x))
        gw = self._like(Conv2dGradWeights)(x, gz, _spatial_shape(w))
        return [gx, gw]


class Conv2dGradWeights(_ConvOp):
    """The gradient of conv2d in its filters, given the input, the output gradient and the
    filters' (rows, columns)."""

    def make_node(self, x, gz, shape):
        x = self._check_4d(x, "input", "(batch, channels, rows, columns)")
        gz = self._check_4d(gz, "output gradient", "(batch, n_filters, rows, columns)")
        shape = _shape_input(shape, self.fname, "filter shape")
        kh, kw = (constant_entries(shape) + [None, None])[:2]
        self._check_channels(_dim(x, 1), None, _dim(gz, 1))
        rows, cols = self._out_size(0, _dim(x, 2), kh), self._out_size(1, _dim(x, 3), kw)
        self._check_output_grad(gz, _dim(x, 0), None, rows, cols)
        n_channels = _dim(x, 1)
        shape_out = (_dim(gz, 1), None if n_channels is None else n_channels // self.num_groups, kh, kw)
        return Apply(self, [x, gz, shape], [TensorType(upcast(x.dtype, gz.dtype), shape_out)()])

    def perform(self, node, inputs, output_storage):
        x, gz, shape = inputs
        out = conv_numpy.conv2d_grad_weights(x, gz, tuple(int(s) for s in shape), self.params)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (_, c, _, _), (_, f, _, _), _ = shapes
        shape = node.inputs[2]
        return [(f, c // self.num_groups, shape[0], shape[1])]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def L_op(self, inputs, outputs, output_grads):
        x, gz, _ = inputs
        (g,) = output_grads
        gx = self._like(Conv2dGradInputs)(g, gz, _spatial_shape(x))
        ggz = self._like(Conv2d)(x, g)
        return [gx, ggz, DisconnectedType()()]


class Conv2dGradInputs(_ConvOp):
    """The gradient of conv2d in its input, given the filters, the output gradient and the
    input's (rows, columns)."""

    def make_node(self, w, gz, shape):
        w = self._check_4d(w, "filters", "(n_filters, channels / num_groups, rows, columns)")
        gz = self._check_4d(gz, "output gradient", "(batch, n_filters, rows, columns)")
        shape = _shape_input(shape, self.fname, "input shape")
        h, wd = (constant_entries(shape) + [None, None])[:2]
        self._check_channels(None, _dim(w, 1), _dim(w, 0))
        rows, cols = self._out_size(0, h, _dim(w, 2)), self._out_size(1, wd, _dim(w, 3))
        self._check_output_grad(gz, None, _dim(w, 0), rows, cols)
        cg = _dim(w, 1)
        shape_out = (_dim(gz, 0), None if cg is None else cg * self.num_groups, h, wd)
        return Apply(self, [w, gz, shape], [TensorType(upcast(w.dtype, gz.dtype), shape_out)()])

    def perform(self, node, inputs, output_storage):
        w, gz, shape = inputs
        out = conv_numpy.conv2d_grad_inputs(w, gz, tuple(int(s) for s in shape), self.params)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (_, cg, _, _), (n, _, _, _), _ = shapes
        shape = node.inputs[2]
        return [(n, cg * self.num_groups, shape[0], shape[1])]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def L_op(self, inputs, outputs, output_grads):
        w, gz, _ = inputs
        (g,) = output_grads
        gw = self._like(Conv2dGradWeights)(g, gz, _spatial_shape(w))
        ggz = self._like(Conv2d)(g, w)
        return [gw, ggz, DisconnectedType()()]


def _with_shape(v, shape, argname):
    """``v`` with the static sizes of ``shape`` (a 4-tuple of ints or None), checked."""
    if shape is None:
        return v
    shape = tuple(shape)
    if len(shape) != 4 or not all(s is None or (_is_int(s) and s >= 0) for s in shape):
        raise ValueError(f"conv2d: {argname} must be 4 entries, each a non-negative int or None, "
                         f"got {shape!r}")
    for axis, (a, b) in enumerate(zip(v.type.shape, shape)):
        if a is not None and b is not None and a != b:
            raise ValueError(f"conv2d: {argname}={shape} disagrees with the static shape "
                             f"{v.type.shape} in dimension {axis}")
    if all(b is None or a == b for a, b in zip(v.type.shape, shape)):
        return v
    return specify_shape(v, shape)


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1):
    """2-d convolution of a batch of images with a bank of filters (NCHW layout).

    ``input`` is (batch, channels, rows, columns); ``filters`` is (n_filters,
    channels / num_groups, rows, columns). ``border_mode`` pads the input: 'valid' (no
    padding), 'full' (filter size - 1), 'half' (filter size // 2), an int or a pair of
    ints. ``subsample`` is the stride, ``filter_dilation`` spaces the filter taps, and
    ``num_groups`` splits channels and filters into independent groups. With
    ``filter_flip`` (the default) the filters are flipped, a true convolution, as in
    Theano; without it this is a cross-correlation. ``input_shape`` and ``filter_shape``
    (4 entries, ints or None) declare static sizes, checked at run time.
    """
    op = Conv2d(border_mode, subsample, filter_flip, filter_dilation, num_groups)
    x = _with_shape(as_tensor_variable(input), input_shape, "input_shape")
    w = _with_shape(as_tensor_variable(filters), filter_shape, "filter_shape")
    return op(x, w)


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None, border_mode="valid",
                           subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1):
    """The gradient of conv2d in its input (a transposed convolution): ``output_grad`` is
    (batch, n_filters, rows, columns); ``input_shape`` gives the input's 4 sizes (ints or
    symbolic scalars; only the last two are needed)."""
    op = Conv2dGradInputs(border_mode, subsample, filter_flip, filter_dilation, num_groups)
    w = _with_shape(as_tensor_variable(filters), filter_shape, "filter_shape")
    return op(w, output_grad, _last_two(input_shape, "input_shape"))


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None, border_mode="valid",
                            subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1):
    """The gradient of conv2d in its filters: ``filter_shape`` gives the filters' 4 sizes
    (ints or symbolic scalars; only the last two are needed)."""
    op = Conv2dGradWeights(border_mode, subsample, filter_flip, filter_dilation, num_groups)
    x = _with_shape(as_tensor_variable(input), input_shape, "input_shape")
    return op(x, output_grad, _last_two(filter_shape, "filter_shape"))


def _last_two(shape, argname):
    if isinstance(shape, (tuple, list)):
        if len(shape) != 4:
            raise ValueError(f"conv2d: {argname} must have 4 entries, got {shape!r}")
        return list(shape[2:])
    shape = as_tensor_variable(shape)
    return shape[2:]


__all__ = ["conv2d", "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights", "Conv2d",
           "Conv2dGradWeights", "Conv2dGradInputs", "normalize_border_mode"]
