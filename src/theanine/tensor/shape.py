"""Shape ops: shape, reshape, specify_shape, transpose, squeeze and friends."""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Constant, Op, Variable
from theanine.tensor.elemwise import dimshuffle
from theanine.tensor.type import INT_DTYPES, TensorType
from theanine.tensor.variable import TensorConstant, as_tensor_variable


def normalize_axis(axis, ndim, opname):
    """``axis`` in ``range(ndim)`` (negative counts from the end); AxisError when out of range."""
    if isinstance(axis, Variable):
        from theanine.tensor.basic import NotScalarConstantError, get_scalar_constant_value
        try:
            axis = get_scalar_constant_value(axis)
        except NotScalarConstantError:
            raise TypeError(f"{opname}: the axis must be known at build time, got {axis}") from None
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{opname}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{opname}: axis {axis} is out of bounds for a tensor with "
                                      f"{ndim} dimensions")
    return int(axis) % ndim


def normalize_axes(axes, ndim, opname):
    """A tuple of distinct normalized axes (from an int or a sequence)."""
    axes = (axes,) if isinstance(axes, (int, np.integer, Variable)) else tuple(axes)
    out = tuple(normalize_axis(a, ndim, opname) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{opname}: repeated axis in {axes}")
    return out


class Shape(Op):
    """The shape of a tensor, as an int64 vector."""

    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.asarray(inputs[0].shape, dtype="int64")

    def infer_shape(self, fgraph, node, shapes):
        return [(len(shapes[0]),)]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        return [DisconnectedType()()]

    def connection_pattern(self, node):
        return [[False]]


_shape = Shape()


def shape(x):
    """The shape of ``x`` as a symbolic int64 vector (a constant when fully static)."""
    x = as_tensor_variable(x)
    if None not in x.type.shape:
        return as_tensor_variable(np.asarray(x.type.shape, dtype="int64"))
    return _shape(x)


def shape_i(x, i):
    """Size of dimension ``i`` of ``x`` (a constant when static)."""
    x = as_tensor_variable(x)
    if x.type.shape[i] is not None:
        return as_tensor_variable(np.int64(x.type.shape[i]))
    return shape(x)[i]


class MakeVector(Op):
    """A vector built from scalars: make_vector(a, b, c) = [a, b, c]."""

    __props__ = ("dtype",)

    def __init__(self, dtype="int64"):
        self.dtype = dtype

    def make_node(self, *scalars):
        scalars = [as_tensor_variable(s) for s in scalars]
        for i, s in enumerate(scalars):
            if s.ndim != 0:
                raise TypeError(f"MakeVector: element {i} must be a scalar, got {s.ndim} dimensions")
        return Apply(self, scalars, [TensorType(self.dtype, (len(scalars),))()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.asarray(inputs, dtype=self.dtype).reshape(len(inputs))

    def infer_shape(self, fgraph, node, shapes):
        return [(len(node.inputs),)]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        (gz,) = output_grads
        if self.dtype in INT_DTYPES or self.dtype == "bool":
            return [grad_undefined_for_discrete(x) for x in inputs]
        return [gz[i] for i in range(len(inputs))]


def make_vector(*scalars, dtype="int64"):
    return MakeVector(dtype)(*scalars)


def as_shape_vector(shp, opname="reshape"):
    """A shape given as ints, scalars or a vector, as a symbolic int64 vector."""
    if isinstance(shp, Variable):
        if shp.ndim == 0:
            shp = [shp]
        else:
            if shp.ndim != 1 or shp.dtype not in INT_DTYPES:
                raise TypeError(f"{opname}: shape must be an integer vector, got {shp.type}")
            return shp if shp.dtype == "int64" else _cast_int64(shp)
    if isinstance(shp, (int, np.integer)):
        shp = [shp]
    shp = list(shp)
    items = []
    for i, s in enumerate(shp):
        if isinstance(s, Variable):
            if s.ndim != 0 or s.dtype not in INT_DTYPES:
                raise TypeError(f"{opname}: shape entry {i} must be an integer scalar, got {s.type}")
            items.append(s)
        elif isinstance(s, (int, np.integer)):
            items.append(int(s))
        else:
            raise TypeError(f"{opname}: shape entry {i} must be an int, got {s!r}")
    if all(isinstance(s, int) for s in items):
        return as_tensor_variable(np.asarray(items, dtype="int64").reshape(len(items)))
    return make_vector(*[_cast_int64(as_tensor_variable(s)) for s in items])


def _cast_int64(v):
    from theanine.tensor.math import cast
    return cast(v, "int64")


def constant_entries(vec) -> list:
    """The entries of a shape vector that are known at build time (None elsewhere)."""
    if isinstance(vec, TensorConstant):
        return [int(v) for v in vec.data]
    if vec.owner is not None and isinstance(vec.owner.op, MakeVector):
        out = []
        for s in vec.owner.inputs:
            s0 = s
            while s0.owner is not None and type(s0.owner.op).__name__ == "Elemwise" \
                    and s0.owner.op.scalar_op.ir == "cast":
                s0 = s0.owner.inputs[0]
            out.append(int(s0.data) if isinstance(s0, TensorConstant) else None)
        return out
    if vec.owner is not None and isinstance(vec.owner.op, Shape):
        return list(vec.owner.inputs[0].type.shape)
    n = vec.type.shape[0]
    return [None] * (n or 0)


class Reshape(Op):
    """x reshaped to a shape vector (one entry may be -1), as numpy.reshape (C order)."""

    __props__ = ("ndim",)

    def __init__(self, ndim):
        self.ndim = int(ndim)

    def make_node(self, x, shp):
        x = as_tensor_variable(x)
        shp = as_shape_vector(shp)
        if shp.type.shape[0] not in (None, self.ndim):
            raise ValueError(f"Reshape: the shape vector has {shp.type.shape[0]} entries, expected {self.ndim}")
        entries = constant_entries(shp) or [None] * self.ndim
        if sum(1 for e in entries if e == -1) > 1:
            raise ValueError(f"reshape: only one dimension can be -1, got {entries}")
        for e in entries:
            if e is not None and e < -1:
                raise ValueError(f"reshape: invalid size {e} in {entries}")
        out_shape = [e if e is not None and e >= 0 else None for e in entries]
        size_in = None if None in x.type.shape else int(np.prod(x.type.shape, dtype=np.int64))
        known = [e for e in entries if e is not None and e >= 0]
        if size_in is not None and len(known) == len(entries):
            if int(np.prod(known, dtype=np.int64)) != size_in:
                raise ValueError(f"reshape: cannot reshape an array of size {size_in} "
                                 f"(shape {tuple(x.type.shape)}) into shape {tuple(entries)}")
        elif size_in is not None:
            # the free entries (-1, or symbolic: a size or -1 at run time) take up the rest
            rest = int(np.prod(known, dtype=np.int64))
            free = [i for i, e in enumerate(entries) if e is None or e == -1]
            if (rest == 0 and size_in != 0) or (rest and size_in % rest):
                raise ValueError(f"reshape: cannot reshape an array of size {size_in} "
                                 f"(shape {tuple(x.type.shape)}) into shape "
                                 f"{tuple('?' if e is None else e for e in entries)}")
            if len(free) == 1 and rest:
                out_shape[free[0]] = size_in // rest
        return Apply(self, [x, shp], [TensorType(x.dtype, tuple(out_shape))()])

    def perform(self, node, inputs, output_storage):
        x, shp = inputs
        if len(shp) != self.ndim:
            raise ValueError(f"Reshape: shape vector has {len(shp)} entries, expected {self.ndim}")
        try:
            output_storage[0][0] = np.reshape(x, tuple(int(s) for s in shp))
        except ValueError as e:
            raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} "
                             f"(size {x.size}) into {tuple(int(s) for s in shp)}") from e

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        x, _ = inputs
        return [reshape(output_grads[0], shape(x), ndim=x.ndim), DisconnectedType()()]

    def connection_pattern(self, node):
        return [[True], [False]]



def reshape(x, newshape, ndim=None):
    """``x`` with a new shape (a tuple of ints/scalars or a vector; one entry may be -1)."""
    x = as_tensor_variable(x)
    vec = as_shape_vector(newshape)
    n = vec.type.shape[0]
    if ndim is None:
        if n is None:
            raise ValueError("reshape: the new shape's length is not known; pass ndim=")
        ndim = n
    return Reshape(ndim)(x, vec)


def flatten(x, ndim=1):
    """``x`` with its trailing dimensions merged so that it has ``ndim`` dimensions."""
    x = as_tensor_variable(x)
    if not 1 <= ndim <= max(x.ndim, 1):
        raise ValueError(f"flatten: ndim must be between 1 and {max(x.ndim, 1)}, got {ndim}")
    if x.ndim == ndim:
        return x
    lead = [shape_i(x, i) for i in range(ndim - 1)]
    return reshape(x, lead + [-1] if x.ndim else [1], ndim=ndim)


class SpecifyShape(Op):
    """Asserts at run time that x has a given static shape (None entries are free)."""

    __props__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(shape)

    def make_node(self, x):
        x = as_tensor_variable(x)
        if len(self.shape) != x.ndim:
            raise ValueError(f"specify_shape: {x} has {x.ndim} dimensions, the shape {self.shape} has {len(self.shape)}")
        for a, b in zip(x.type.shape, self.shape):
            if a is not None and b is not None and a != b:
                raise ValueError(f"specify_shape: {x} has static shape {x.type.shape}, not {self.shape}")
        merged = tuple(b if b is not None else a for a, b in zip(x.type.shape, self.shape))
        return Apply(self, [x], [TensorType(x.dtype, merged)()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        for a, b in zip(x.shape, self.shape):
            if b is not None and a != b:
                raise ValueError(f"specify_shape: expected shape {self.shape}, got {x.shape}")
        output_storage[0][0] = x

    def L_op(self, inputs, outputs, output_grads):
        return [output_grads[0]]


def specify_shape(x, shape):
    """``x``, declared to have ``shape`` (checked at run time)."""
    return SpecifyShape(tuple(shape))(x)


def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    x = as_tensor_variable(x)
    if axes is None:
        axes = list(range(x.ndim))[::-1]
    given = tuple(axes)
    axes = list(normalize_axes(given, x.ndim, "transpose"))
    if len(axes) != x.ndim:
        raise ValueError(f"transpose: axes {given} are not a permutation of {list(range(x.ndim))}")
    return dimshuffle(x, axes)


def swapaxes(x, a, b):
    """``x`` with axes ``a`` and ``b`` exchanged."""
    x = as_tensor_variable(x)
    order = list(range(x.ndim))
    a, b = normalize_axis(a, x.ndim, "swapaxes"), normalize_axis(b, x.ndim, "swapaxes")
    order[a], order[b] = order[b], order[a]
    return dimshuffle(x, order)


def squeeze(x, axis=None):
    """``x`` without its size-1 dimensions (only those statically known, or ``axis``)."""
    x = as_tensor_variable(x)
    if axis is None:
        drop = [i for i, s in enumerate(x.type.shape) if s == 1]
    else:
        drop = normalize_axes(axis, x.ndim, "squeeze")
        for a in drop:
            if x.type.shape[a] not in (1, None):
                raise ValueError(f"squeeze: dimension {a} of {x} has size {x.type.shape[a]}, not 1")
    return dimshuffle(x, [i for i in range(x.ndim) if i not in drop])


def expand_dims(x, axis):
    """``x`` with new size-1 dimensions inserted at ``axis`` (int or tuple)."""
    x = as_tensor_variable(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out_ndim = x.ndim + len(axes)
    axes = sorted(normalize_axes(axes, out_ndim, "expand_dims"))
    pattern, k = [], 0
    for i in range(out_ndim):
        if i in axes:
            pattern.append("x")
        else:
            pattern.append(k)
            k += 1
    return dimshuffle(x, pattern)


def shape_padleft(x, n_ones=1):
    """``x`` with ``n_ones`` leading broadcastable dimensions."""
    x = as_tensor_variable(x)
    return dimshuffle(x, ["x"] * n_ones + list(range(x.ndim)))


def shape_padright(x, n_ones=1):
    """``x`` with ``n_ones`` trailing broadcastable dimensions."""
    x = as_tensor_variable(x)
    return dimshuffle(x, list(range(x.ndim)) + ["x"] * n_ones)


def shape_padaxis(x, axis):
    return expand_dims(x, axis)


def broadcast_shape(*shapes):
    """Symbolic broadcast of shape tuples (entries are ints or scalar variables)."""
    from theanine.tensor.math import maximum
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        non_one = [d for d in dims if not (isinstance(d, (int, np.integer)) and d == 1)]
        if not non_one:
            out.append(1)
        elif len(non_one) == 1:
            out.append(non_one[0])
        else:
            ints = [d for d in non_one if isinstance(d, (int, np.integer))]
            if ints:
                out.append(ints[0])
            else:
                m = non_one[0]
                for d in non_one[1:]:
                    m = maximum(m, d)
                out.append(m)
    return tuple(out)


__all__ = ["Shape", "shape", "shape_i", "MakeVector", "make_vector", "Reshape", "reshape",
           "flatten", "SpecifyShape", "specify_shape", "transpose", "swapaxes", "squeeze",
           "expand_dims", "shape_padleft", "shape_padright", "shape_padaxis", "broadcast_shape",
           "constant_entries"]
