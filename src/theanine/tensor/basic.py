"""Tensor constructors and array-building ops: alloc, arange, eye, join, split, tile, repeat."""

from __future__ import annotations

import numpy as np

from theanine.configparser import config
from theanine.graph.basic import Apply, Op, Variable
from theanine.tensor import math as tm
from theanine.tensor.elemwise import dimshuffle
from theanine.tensor.shape import (as_shape_vector, constant_entries, expand_dims, normalize_axes,
                                   normalize_axis, reshape, shape, shape_i)
from theanine.tensor.type import DISCRETE_DTYPES, INT_DTYPES, TensorType, upcast
from theanine.tensor.variable import TensorConstant, as_tensor_variable, constant

# --- symbolic inputs ---------------------------------------------------------------------

_PATTERNS = {
    "scalar": (), "vector": (None,), "row": (1, None), "col": (None, 1),
    "matrix": (None, None), "tensor3": (None,) * 3, "tensor4": (None,) * 4,
    "tensor5": (None,) * 5,
}
_PREFIXES = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32",
             "d": "float64", "c": "complex64", "z": "complex128"}


def tensor(dtype=None, shape=None, name=None, broadcastable=None):
    """A symbolic input tensor of ``dtype`` (default floatX) and static ``shape``."""
    if isinstance(dtype, str) and shape is None and broadcastable is None and name is None \
            and dtype not in ("floatX",) and _looks_like_name(dtype):
        raise TypeError(f"tensor: {dtype!r} is not a dtype; call tensor(dtype=..., shape=..., name=...)")
    dtype = config.floatX if dtype in (None, "floatX") else dtype
    if shape is None and broadcastable is None:
        raise TypeError("tensor: give shape= (a tuple with ints or None per dimension)")
    return TensorType(dtype, shape, broadcastable)(name)


def _looks_like_name(s):
    try:
        np.dtype(s)
        return False
    except TypeError:
        return True


def _make_constructor(kind, dtype):
    pattern = _PATTERNS[kind]

    def ctor(name=None, dtype=dtype, shape=None):
        dt = config.floatX if dtype is None else dtype
        shp = pattern if shape is None else tuple(shape)
        if len(shp) != len(pattern):
            raise ValueError(f"{kind}: shape must have {len(pattern)} entries, got {shp}")
        return TensorType(dt, shp)(name)

    ctor.__name__ = kind
    ctor.__doc__ = f"A symbolic {kind} input ({'floatX' if dtype is None else dtype})."
    return ctor


_constructors = {}
for _kind in _PATTERNS:
    _constructors[_kind] = _make_constructor(_kind, None)
    for _p, _dt in _PREFIXES.items():
        _constructors[_p + _kind] = _make_constructor(_kind, _dt)
globals().update(_constructors)


def _make_plural(kind, dtype):
    def many(*names, dtype=dtype):
        """Several inputs at once: ``x, y = dvectors('x', 'y')`` (or one string 'x y')."""
        if len(names) == 1 and isinstance(names[0], str):
            names = names[0].replace(",", " ").split()
        elif len(names) == 1 and isinstance(names[0], int):
            names = [None] * names[0]
        return [_constructors[kind](n, dtype=dtype) for n in names]

    return many


_plurals = {}
for _kind in _PATTERNS:
    _plural = "matrices" if _kind == "matrix" else _kind + "s"
    _plurals[_plural] = _make_plural(_kind, None)
    for _p, _dt in _PREFIXES.items():
        _plurals[_p + _plural] = _make_plural(_kind, _dt)
globals().update(_plurals)


# --- constants and helpers ---------------------------------------------------------------


class NotScalarConstantError(ValueError):
    """The variable's value is not known at graph-build time."""


def get_scalar_constant_value(v):
    """The Python value of a scalar known at build time, else NotScalarConstantError."""
    if isinstance(v, (int, float, bool, np.number, np.bool_)):
        return v.item() if isinstance(v, np.generic) else v
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    if isinstance(v, TensorConstant) and v.data.size == 1:
        return v.data.item()
    if isinstance(v, Variable) and v.owner is not None:
        op = v.owner.op
        if getattr(op, "scalar_op", None) is not None and op.scalar_op.ir == "cast":
            return np.asarray(get_scalar_constant_value(v.owner.inputs[0])).astype(v.dtype).item()
        from theanine.tensor.subtensor import Subtensor
        if isinstance(op, Subtensor) and v.ndim == 0:
            base = v.owner.inputs[0]
            entries = constant_entries(base) if base.ndim == 1 else []
            try:
                idx = get_scalar_constant_value(v.owner.inputs[1])
            except NotScalarConstantError:
                idx = None
            if idx is not None and op.idx_list == (("i",),) and entries and -len(entries) <= idx < len(entries):
                e = entries[idx]
                if e is not None:
                    return e
    raise NotScalarConstantError(f"{v} is not a constant scalar")


# --- alloc and friends -------------------------------------------------------------------


class Alloc(Op):
    """alloc(value, *shape): ``value`` broadcast to ``shape`` (a new array)."""

    __props__ = ()

    def make_node(self, value, *shape):
        value = as_tensor_variable(value)
        dims = [as_tensor_variable(s) for s in shape]
        for i, d in enumerate(dims):
            if d.ndim != 0 or d.dtype not in INT_DTYPES:
                raise TypeError(f"alloc: shape entry {i} must be an integer scalar, got {d.type}")
        if value.ndim > len(dims):
            raise ValueError(f"alloc: value has {value.ndim} dimensions, more than the {len(dims)} requested")
        static = []
        for d in dims:
            try:
                static.append(int(get_scalar_constant_value(d)))
            except NotScalarConstantError:
                static.append(None)
        for i, s in enumerate(static):
            if s is not None and s < 0:
                raise ValueError(f"alloc: negative dimension {s} at position {i}")
        vshape = (None,) * (len(dims) - value.ndim) + value.type.shape
        for i, (vs, s) in enumerate(zip(vshape, static)):
            if vs is not None and s is not None and vs not in (1, s):
                raise ValueError(f"alloc: cannot broadcast value of shape {value.type.shape} to "
                                 f"{tuple(static)} (dimension {i})")
        return Apply(self, [value] + dims, [TensorType(value.dtype, tuple(static))()])

    def perform(self, node, inputs, output_storage):
        value, *dims = inputs
        shp = tuple(int(d) for d in dims)
        if any(d < 0 for d in shp):
            raise ValueError(f"alloc: negative dimension in shape {shp}")
        out = np.empty(shp, dtype=node.outputs[0].dtype)
        try:
            out[...] = value
        except ValueError as e:
            raise ValueError(f"alloc: cannot broadcast value of shape {np.shape(value)} to {shp}") from e
        output_storage[0][0] = out

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(node.inputs[1:])]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        value = inputs[0]
        gz = output_grads[0]
        extra = gz.ndim - value.ndim
        g = tm.sum(gz, axis=list(range(extra))) if extra else gz
        from theanine.tensor.elemwise import sum_to
        return [sum_to(g, value)] + [DisconnectedType()() for _ in inputs[1:]]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in node.inputs[1:]]


_alloc = Alloc()


def _shape_args(shp):
    if isinstance(shp, Variable) and shp.ndim == 1:
        n = shp.type.shape[0]
        if n is None:
            raise ValueError("the shape vector's length must be known statically")
        entries = constant_entries(shp)
        return [e if e is not None else shp[i] for i, e in enumerate(entries or [None] * n)]
    if isinstance(shp, (int, np.integer, Variable)):
        return [shp]
    return list(shp)


def alloc(value, *shape):
    """``value`` broadcast to ``shape`` (given as separate dims)."""
    dims = []
    for i, s in enumerate(shape):
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            dims.append(as_tensor_variable(np.int64(s)))
            continue
        d = as_tensor_variable(s)
        if d.ndim != 0 or d.dtype not in INT_DTYPES:
            raise TypeError(f"alloc: shape entry {i} must be an integer scalar, got {s!r} ({d.type})")
        dims.append(tm.cast(d, "int64"))
    return _alloc(value, *dims)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (NumPy rules)."""
    x = as_tensor_variable(x)
    return alloc(x, *_shape_args(shape))


def zeros(shape, dtype=None):
    """A tensor of zeros of ``shape``."""
    return alloc(np.array(0, dtype=dtype or config.floatX), *_shape_args(shape))


def ones(shape, dtype=None):
    """A tensor of ones of ``shape``."""
    return alloc(np.array(1, dtype=dtype or config.floatX), *_shape_args(shape))


def full(shape, fill_value, dtype=None):
    value = as_tensor_variable(fill_value)
    return alloc(tm.cast(value, dtype) if dtype else value, *_shape_args(shape))


def _like_dims(x):
    return [shape_i(x, i) for i in range(x.ndim)]


def zeros_like(x, dtype=None):
    """Zeros with the shape of ``x`` (and its dtype unless given)."""
    x = as_tensor_variable(x)
    return alloc(np.array(0, dtype=dtype or x.dtype), *_like_dims(x))


def ones_like(x, dtype=None):
    """Ones with the shape of ``x`` (and its dtype unless given)."""
    x = as_tensor_variable(x)
    return alloc(np.array(1, dtype=dtype or x.dtype), *_like_dims(x))


def full_like(x, fill_value, dtype=None):
    x = as_tensor_variable(x)
    value = tm.cast(as_tensor_variable(fill_value), dtype or x.dtype)
    return alloc(value, *_like_dims(x))


# --- ranges --------------------------------------------------------------------------------


class ARange(Op):
    """arange(start, stop, step) of ``dtype``, as numpy.arange."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def make_node(self, start, stop, step):
        start, stop, step = (as_tensor_variable(v) for v in (start, stop, step))
        for name, v in (("start", start), ("stop", stop), ("step", step)):
            if v.ndim != 0:
                raise TypeError(f"arange: {name} must be a scalar, got {v.ndim} dimensions")
        length = None
        try:
            a, b, c = (get_scalar_constant_value(v) for v in (start, stop, step))
            if c == 0:
                raise ValueError("arange: step must not be zero")
            length = len(np.arange(a, b, c))
        except NotScalarConstantError:
            pass
        return Apply(self, [start, stop, step], [TensorType(self.dtype, (length,))()])

    def perform(self, node, inputs, output_storage):
        start, stop, step = (v.item() for v in inputs)
        if step == 0:
            raise ValueError("arange: step must not be zero")
        output_storage[0][0] = np.arange(start, stop, step, dtype=self.dtype)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        return [grad_undefined_for_discrete(x) for x in inputs]


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in [start, stop), as numpy.arange."""
    if stop is None:
        start, stop = 0, start
    start, stop, step = (as_tensor_variable(v) for v in (start, stop, step))
    if dtype is None:
        dtype = upcast(start.dtype, stop.dtype, step.dtype)
        if dtype in INT_DTYPES or dtype == "bool":
            dtype = "int64"
    return ARange(str(np.dtype(dtype)))(start, stop, step)


class Eye(Op):
    """eye(n, m, k): ones on the k-th diagonal of an n x m matrix."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def make_node(self, n, m, k):
        n, m, k = (as_tensor_variable(v) for v in (n, m, k))
        for name, v in (("n", n), ("m", m), ("k", k)):
            if v.ndim != 0 or v.dtype not in INT_DTYPES:
                raise TypeError(f"eye: {name} must be an integer scalar, got {v.type}")
        n, m, k = (tm.cast(v, "int64") for v in (n, m, k))
        static = []
        for v in (n, m):
            try:
                static.append(int(get_scalar_constant_value(v)))
            except NotScalarConstantError:
                static.append(None)
        return Apply(self, [n, m, k], [TensorType(self.dtype, tuple(static))()])

    def perform(self, node, inputs, output_storage):
        n, m, k = (int(v) for v in inputs)
        output_storage[0][0] = np.eye(n, m, k, dtype=self.dtype)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        return [grad_undefined_for_discrete(x) for x in inputs]


def eye(n, m=None, k=0, dtype=None):
    """An n x m matrix with ones on diagonal ``k``."""
    return Eye(str(np.dtype(dtype or config.floatX)))(n, n if m is None else m, k)


def identity_like(x, dtype=None):
    x = as_tensor_variable(x)
    return eye(shape_i(x, 0), shape_i(x, 1), 0, dtype or x.dtype)


# --- joining and splitting ------------------------------------------------------------------


class Join(Op):
    """Concatenation along a fixed ``axis`` (numpy.concatenate)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = int(axis)

    def make_node(self, *tensors):
        if not tensors:
            raise ValueError("join: need at least one tensor")
        tensors = [as_tensor_variable(t) for t in tensors]
        ndim = tensors[0].ndim
        if ndim == 0:
            raise ValueError("join: zero-dimensional tensors cannot be concatenated")
        for i, t in enumerate(tensors):
            if t.ndim != ndim:
                raise ValueError(f"join: all tensors must have the same rank; tensor 0 has {ndim}, "
                                 f"tensor {i} has {t.ndim}")
        if not 0 <= self.axis < ndim:
            raise ValueError(f"join: axis {self.axis} out of range for rank {ndim}")
        dtype = upcast(*[t.dtype for t in tensors])
        shape = []
        for d in range(ndim):
            dims = [t.type.shape[d] for t in tensors]
            if d == self.axis:
                shape.append(None if None in dims else sum(dims))
            else:
                known = {x for x in dims if x is not None}
                if len(known) > 1:
                    raise ValueError(f"join: tensors differ in size along dimension {d} "
                                     f"({[t.type.shape for t in tensors]}); only axis {self.axis} may differ")
                shape.append(known.pop() if known else None)
        return Apply(self, tensors, [TensorType(dtype, tuple(shape))()])

    def perform(self, node, inputs, output_storage):
        try:
            out = np.concatenate(inputs, axis=self.axis)
        except ValueError as e:
            raise ValueError(f"join along axis {self.axis}: shapes {[x.shape for x in inputs]} do not match") from e
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        (gz,) = output_grads
        sizes = [shape_i(t, self.axis) for t in inputs]
        parts = split(gz, sizes, len(inputs), axis=self.axis) if len(inputs) > 1 else [gz]
        return [grad_undefined_for_discrete(t) if t.dtype in DISCRETE_DTYPES else tm.cast(p, t.dtype)
                for t, p in zip(inputs, parts)]


def concatenate(tensor_list, axis=0):
    """numpy.concatenate of a list of tensors along ``axis``."""
    tensors = [as_tensor_variable(t) for t in tensor_list]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    if tensors[0].ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    axis = normalize_axis(axis, tensors[0].ndim, "concatenate")
    if len(tensors) == 1:
        return tensors[0]
    return Join(axis)(*tensors)


def join(axis, *tensors):
    """Theano's join(axis, *tensors): concatenate along ``axis``."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    return concatenate(tensors, axis)


def stack(tensors, axis=0):
    """Join tensors of equal shape along a new ``axis``."""
    if isinstance(tensors, Variable):
        raise TypeError("stack: pass a list of tensors")
    tensors = [as_tensor_variable(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    ndim = tensors[0].ndim
    axis = normalize_axis(axis, ndim + 1, "stack")
    if len(tensors) == 1:
        return expand_dims(tensors[0], axis)
    if all(t.ndim == 0 for t in tensors) and axis == 0:
        from theanine.tensor.shape import make_vector
        dtype = upcast(*[t.dtype for t in tensors])
        return make_vector(*[tm.cast(t, dtype) for t in tensors], dtype=dtype)
    return Join(axis)(*[expand_dims(t, axis) for t in tensors])


def horizontal_stack(*tensors):
    return concatenate(tensors, axis=1)


def vertical_stack(*tensors):
    return concatenate(tensors, axis=0)


class Split(Op):
    """Split x along ``axis`` into ``n_splits`` parts of the given sizes."""

    __props__ = ("n_splits", "axis")

    def __init__(self, n_splits, axis):
        self.n_splits, self.axis = int(n_splits), int(axis)

    def make_node(self, x, sizes):
        x = as_tensor_variable(x)
        sizes = as_shape_vector(sizes, "split")
        if not 0 <= self.axis < x.ndim:
            raise ValueError(f"split: axis {self.axis} out of range for rank {x.ndim}")
        entries = constant_entries(sizes) or [None] * self.n_splits
        if len(entries) != self.n_splits:
            raise ValueError(f"split: {len(entries)} sizes given for {self.n_splits} splits")
        n = x.type.shape[self.axis]
        if n is not None and None not in entries and sum(entries) != n:
            raise ValueError(f"split: sizes {entries} do not add up to {n}, the size of axis {self.axis}")
        outs = []
        for e in entries:
            shape = list(x.type.shape)
            shape[self.axis] = e
            outs.append(TensorType(x.dtype, tuple(shape))())
        return Apply(self, [x, sizes], outs)

    def perform(self, node, inputs, output_storage):
        x, sizes = inputs
        if len(sizes) != self.n_splits or sizes.sum() != x.shape[self.axis] or (sizes < 0).any():
            raise ValueError(f"split: sizes {[int(s) for s in sizes]} do not partition axis {self.axis} "
                             f"of size {x.shape[self.axis]}")
        parts = np.split(x, np.cumsum(sizes)[:-1], axis=self.axis)
        for store, p in zip(output_storage, parts):
            store[0] = p

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType, is_disconnected
        x, sizes = inputs
        parts = [zeros_like(o) if is_disconnected(g) else g for o, g in zip(outputs, output_grads)]
        return [concatenate(parts, axis=self.axis), DisconnectedType()()]

    def connection_pattern(self, node):
        return [[True] * self.n_splits, [False] * self.n_splits]


def split(x, splits_size, n_splits, axis=0):
    """Theano's split: ``x`` cut along ``axis`` into pieces of sizes ``splits_size``."""
    x = as_tensor_variable(x)
    out = Split(n_splits, normalize_axis(axis, x.ndim, "split"))(x, splits_size)
    return out if isinstance(out, list) else [out]


def tile(x, reps, ndim=None):
    """numpy.tile: ``x`` repeated ``reps`` times along each dimension."""
    x = as_tensor_variable(x)
    if isinstance(reps, np.ndarray):
        reps = reps.tolist() if reps.ndim else [reps.item()]
    if isinstance(reps, Variable) and reps.ndim == 1:
        length = reps.type.shape[0] if reps.type.shape[0] is not None else ndim
        if length is None:
            raise ValueError("tile: the length of a symbolic reps vector is not known; pass ndim=")
        entries = constant_entries(reps) or [None] * length
        reps = [e if e is not None else reps[i] for i, e in enumerate(entries)]
    reps = list(reps) if isinstance(reps, (list, tuple)) else [reps]
    for i, r in enumerate(reps):
        rv = as_tensor_variable(r)
        if rv.ndim != 0 or rv.dtype not in INT_DTYPES:
            raise TypeError(f"tile: reps entry {i} must be an integer scalar, got {r!r} ({rv.type})")
    n = max(len(reps), x.ndim)
    if ndim is not None and ndim != n:
        raise ValueError(f"tile: ndim={ndim} does not match the {n} dimensions of the result")
    reps = [1] * (n - len(reps)) + reps
    x = dimshuffle(x, ["x"] * (n - x.ndim) + list(range(x.ndim)))
    # interleave: (r0, s0, r1, s1, ...) then merge pairs
    pattern = []
    for d in range(n):
        pattern += ["x", d]
    xi = dimshuffle(x, pattern)
    dims = []
    for d in range(n):
        dims += [reps[d], shape_i(x, d)]
    big = alloc(xi, *dims)
    sizes = [reps[d] * x.type.shape[d] if isinstance(reps[d], (int, np.integer))
             and x.type.shape[d] is not None else tm.mul(reps[d], shape_i(x, d)) for d in range(n)]
    return reshape(big, sizes, ndim=n)


class Repeat(Op):
    """numpy.repeat along ``axis`` (repeats is a scalar or a vector)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def make_node(self, x, repeats):
        x = as_tensor_variable(x)
        repeats = as_tensor_variable(repeats)
        if repeats.dtype not in INT_DTYPES:
            raise TypeError(f"repeat: repeats must be integers, got {repeats.dtype}")
        if repeats.ndim > 1:
            raise ValueError("repeat: repeats must be a scalar or a vector")
        if self.axis is None:
            shape = (None,)
        else:
            shape = list(x.type.shape)
            shape[self.axis] = None
            try:
                r = get_scalar_constant_value(repeats)
                if r < 0:
                    raise ValueError(f"repeat: negative repeat count {r}")
                if x.type.shape[self.axis] is not None:
                    shape[self.axis] = x.type.shape[self.axis] * int(r)
            except NotScalarConstantError:
                pass
            shape = tuple(shape)
        return Apply(self, [x, repeats], [TensorType(x.dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        x, repeats = inputs
        if (np.asarray(repeats) < 0).any():
            raise ValueError("repeat: negative repeat counts")
        output_storage[0][0] = np.repeat(x, repeats, axis=self.axis)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        from theanine.tensor.subtensor import inc_subtensor
        x, repeats = inputs
        (gz,) = output_grads
        if self.axis is None:
            n = tm.prod(shape(x))
            idx = repeat(arange(n), repeats)
            flat = inc_subtensor(zeros((n,), dtype=gz.dtype)[idx], gz)
            return [reshape(flat, shape(x), ndim=x.ndim), DisconnectedType()()]
        idx = repeat(arange(shape_i(x, self.axis)), repeats)
        index = (slice(None),) * self.axis + (idx,)
        return [inc_subtensor(zeros_like(x, dtype=gz.dtype)[index], gz), DisconnectedType()()]

    def connection_pattern(self, node):
        return [[True], [False]]


def repeat(x, repeats, axis=None):
    """numpy.repeat: each element of ``x`` repeated ``repeats`` times along ``axis``."""
    x = as_tensor_variable(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, "repeat")
    return Repeat(axis)(x, repeats)


def roll(x, shift, axis=None):
    """numpy.roll: elements shifted by ``shift`` along ``axis`` (None: flattened)."""
    x = as_tensor_variable(x)
    if axis is None:
        if isinstance(shift, (list, tuple)):
            raise ValueError("roll: a sequence of shifts needs a sequence of axes")
        return reshape(roll(x.flatten(), shift, 0), shape(x), ndim=x.ndim)
    if isinstance(axis, (list, tuple)) or isinstance(shift, (list, tuple)):
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        shifts = list(shift) if isinstance(shift, (list, tuple)) else [shift]
        if len(shifts) == 1:
            shifts = shifts * len(axes)
        elif len(axes) == 1:
            axes = axes * len(shifts)
        if len(shifts) != len(axes):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(axes)} axes")
        for s, a in zip(shifts, axes):  # numpy adds the shifts of repeated axes
            x = roll(x, s, a)
        return x
    axis = normalize_axis(axis, x.ndim, "roll")
    n = shape_i(x, axis)
    s = tm.mod(tm.neg(as_tensor_variable(shift)), tm.maximum(n, 1))
    head = [slice(None)] * axis + [slice(s, None)]
    tail = [slice(None)] * axis + [slice(0, s)]
    return concatenate([x[tuple(head)], x[tuple(tail)]], axis=axis)


def flip(x, axis=None):
    x = as_tensor_variable(x)
    axes = range(x.ndim) if axis is None else normalize_axes(axis, x.ndim, "flip")
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(None, None, -1)
    return x[tuple(index)]


class Assert(Op):
    """x, after checking at run time that every condition (a boolean scalar) holds;
    ValueError with ``message`` otherwise. Native entries check the conditions too."""

    __props__ = ("message",)

    def __init__(self, message):
        self.message = str(message)

    def make_node(self, x, *conditions):
        x = as_tensor_variable(x)
        conditions = [as_tensor_variable(c) for c in conditions]
        for k, c in enumerate(conditions):
            if c.ndim != 0 or c.dtype != "bool":
                raise TypeError(f"Assert: condition {k} must be a boolean scalar, got {c.type}")
        return Apply(self, [x] + conditions, [x.type()])

    def perform(self, node, inputs, output_storage):
        x, *conditions = inputs
        if not all(bool(c) for c in conditions):
            raise ValueError(self.message)
        output_storage[0][0] = x

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        return [output_grads[0]] + [DisconnectedType()() for _ in inputs[1:]]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in node.inputs[1:]]


def assert_op(x, *conditions, message="assertion failed"):
    """``x``, checked at run time: ValueError(``message``) unless every condition holds."""
    return Assert(message)(x, *conditions)


__all__ = sorted(set(_constructors) | set(_plurals) | {
    "Assert", "assert_op",
    "tensor", "NotScalarConstantError",
    "get_scalar_constant_value", "Alloc", "alloc", "broadcast_to", "zeros", "ones", "full",
    "zeros_like", "ones_like", "full_like", "ARange", "arange", "Eye", "eye", "identity_like",
    "Join", "concatenate", "join", "stack", "horizontal_stack", "vertical_stack", "Split",
    "split", "tile", "Repeat", "repeat", "roll", "flip", "constant", "as_tensor_variable"})
