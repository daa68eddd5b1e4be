"""Indexing: basic slicing, integer and boolean (advanced) indexing, set/inc_subtensor.

An index is described statically by ``idx_list``, one entry per index item:

- ``("s", has_start, has_stop, has_step)``: a slice (present parts are inputs)
- ``("i",)``: an integer scalar
- ``("a",)``: an integer array (advanced indexing)
- ``("b",)``: a boolean array (a mask; its result size is known only at run time)
- ``("n",)``: ``None`` / ``np.newaxis``
- ``("e",)``: an ``Ellipsis`` standing for no dimensions, kept only because it still
  separates advanced indices (NumPy then moves their dimensions to the front)

The symbolic values (slice bounds, integers, arrays) are the node's inputs after
``x`` (and ``y`` for IncSubtensor), in order. Semantics are NumPy's exactly,
including where advanced-index dimensions land in the result.
"""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Op, Variable
from theanine.tensor.elemwise import broadcast_static_shapes
from theanine.tensor.type import INT_DTYPES, TensorType
from theanine.tensor.variable import TensorConstant, as_tensor_variable


def _const(v):
    if isinstance(v, TensorConstant):
        return v.data.item() if v.data.ndim == 0 else None
    return None


def _parse_index(x, index):
    """Turn a Python index into (idx_list, inputs), validating it against x's type."""
    if not isinstance(index, tuple):
        index = (index,)
    items = []
    for item in index:
        if isinstance(item, (list, np.ndarray)) or (isinstance(item, Variable) and item.ndim > 0):
            item = as_tensor_variable(item)
            if item.dtype not in INT_DTYPES and item.dtype != "bool":
                raise IndexError(f"{x}[...]: array indices must be integers or booleans, got {item.dtype}")
        items.append(item)
    consumed = 0
    for item in items:
        if item is None or item is Ellipsis:
            continue
        if isinstance(item, Variable) and item.dtype == "bool" and item.ndim > 0:
            consumed += item.ndim
        else:
            consumed += 1
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexError(f"too many indices for {x}: it has {x.ndim} dimensions but {consumed} were indexed")
    if Ellipsis in [i for i in items if not isinstance(i, Variable)]:
        pos = next(k for k, i in enumerate(items) if i is Ellipsis and not isinstance(i, Variable))
        fill = [slice(None)] * (x.ndim - consumed)
        if not fill and any(isinstance(i, Variable) and i.ndim > 0 for i in items):
            fill = [Ellipsis]
        items = items[:pos] + fill + items[pos + 1:]
    idx_list, inputs = [], []
    for item in items:
        if item is None:
            idx_list.append(("n",))
        elif item is Ellipsis:
            idx_list.append(("e",))
        elif isinstance(item, slice):
            parts = []
            for part in (item.start, item.stop, item.step):
                if part is None:
                    parts.append(False)
                    continue
                v = as_tensor_variable(part)
                if v.ndim != 0 or (v.dtype not in INT_DTYPES and v.dtype != "bool"):
                    raise IndexError(f"{x}[...]: slice bounds must be integer scalars, got {v.type}")
                inputs.append(v)
                parts.append(True)
            if item.step is not None and _const(inputs[-1]) == 0:
                raise ValueError("slice step cannot be zero")
            idx_list.append(("s",) + tuple(parts))
        elif isinstance(item, Variable) and item.ndim > 0:
            idx_list.append(("b",) if item.dtype == "bool" else ("a",))
            inputs.append(item)
        else:
            try:
                v = as_tensor_variable(item)
            except TypeError:
                raise IndexError(f"{x}[...]: indices must be integers, slices, None, or integer/"
                                 f"boolean arrays, got {item!r}") from None
            if v.ndim != 0 or v.dtype not in INT_DTYPES:
                if v.dtype == "bool":
                    raise IndexError(f"{x}[...]: a boolean scalar is not a valid index")
                raise IndexError(f"{x}[...]: indices must be integers, slices, None, or integer/"
                                 f"boolean arrays, got {item!r} ({v.type})")
            idx_list.append(("i",))
            inputs.append(v)
    return tuple(idx_list), inputs


def _result_type_shape(x_shape, idx_list, inputs, opname="Subtensor"):
    """Static output shape (ints or None) of indexing an array of ``x_shape``."""
    has_adv = any(e[0] in ("a", "b") for e in idx_list)
    it = iter(inputs)
    dim = 0
    basic_out = []  # list of (entry position, [dims]) for basic entries
    adv_positions, adv_shapes = [], []
    for pos, e in enumerate(idx_list):
        kind = e[0]
        if kind == "n":
            basic_out.append((pos, [1]))
        elif kind == "e":
            basic_out.append((pos, []))
        elif kind == "s":
            parts = [next(it) if present else None for present in e[1:]]
            consts = [None if p is None else _const(p) for p in parts]
            n = x_shape[dim]
            size = None
            if n is not None and all(p is None or c is not None for p, c in zip(parts, consts)):
                size = len(range(*slice(*consts).indices(n)))
            elif (parts[0] is None and parts[1] is None and parts[2] is not None
                  and consts[2] in (1, -1)):
                size = n
            elif parts == [None, None, None]:
                size = n
            basic_out.append((pos, [size]))
            dim += 1
        elif kind == "i":
            v = next(it)
            c = _const(v)
            n = x_shape[dim]
            if c is not None and n is not None and not -n <= c < n:
                raise IndexError(f"{opname}: index {c} is out of bounds for axis {dim} with size {n}")
            if has_adv:
                adv_positions.append(pos)
                adv_shapes.append(())
            dim += 1
        elif kind == "a":
            v = next(it)
            if isinstance(v, TensorConstant) and x_shape[dim] is not None and v.data.size:
                n = x_shape[dim]
                if v.data.max() >= n or v.data.min() < -n:
                    raise IndexError(f"{opname}: index array has entries out of bounds for axis {dim} "
                                     f"with size {n}")
            adv_positions.append(pos)
            adv_shapes.append(v.type.shape)
            dim += 1
        else:  # boolean mask
            v = next(it)
            for k in range(v.ndim):
                a, b = v.type.shape[k], x_shape[dim + k]
                if a is not None and b is not None and a != b:
                    raise IndexError(f"{opname}: boolean index has shape {v.type.shape} but the indexed "
                                     f"dimensions have sizes {x_shape[dim:dim + v.ndim]}")
            count = int(v.data.sum()) if isinstance(v, TensorConstant) else None
            adv_positions.append(pos)
            adv_shapes.append((count,))
            dim += v.ndim
    rest = list(x_shape[dim:])
    if not has_adv:
        out = [d for _, dims in basic_out for d in dims]
        return tuple(out + rest)
    adv = list(broadcast_static_shapes(adv_shapes, opname)) if adv_shapes else []
    contiguous = adv_positions == list(range(adv_positions[0], adv_positions[-1] + 1))
    out = []
    if not contiguous:
        out = adv + [d for _, dims in basic_out for d in dims]
    else:
        inserted = False
        for pos, dims in basic_out:
            if pos > adv_positions[0] and not inserted:
                out += adv
                inserted = True
            out += dims
        if not inserted:
            out += adv
    return tuple(out + rest)


def _build_index(idx_list, values, expand_masks=False):
    """The NumPy index for runtime values of the index inputs."""
    it = iter(values)
    index = []
    for e in idx_list:
        kind = e[0]
        if kind == "n":
            index.append(None)
        elif kind == "e":
            index.append(Ellipsis)
        elif kind == "s":
            parts = [int(next(it)) if present else None for present in e[1:]]
            if parts[2] == 0:
                raise ValueError("slice step cannot be zero")
            index.append(slice(*parts))
        elif kind == "i":
            index.append(int(next(it)))
        elif kind == "a":
            index.append(np.asarray(next(it)))
        else:
            mask = np.asarray(next(it))
            index.extend(np.nonzero(mask) if expand_masks else [mask])
    return tuple(index)


def _check_masks(idx_list, values, shape):
    """Raise NumPy's IndexError for a mask whose shape differs from the sizes of the
    dimensions of ``shape`` it indexes (numpy.add.at of its nonzero indices would not)."""
    it = iter(values)
    dim = 0
    for e in idx_list:
        kind = e[0]
        if kind == "b":
            mask = np.asarray(next(it))
            for k, n in enumerate(mask.shape):
                if dim + k < len(shape) and shape[dim + k] != n:
                    raise IndexError(f"boolean index did not match indexed array along axis {dim + k}; size "
                                     f"of axis is {shape[dim + k]} but size of corresponding boolean axis is {n}")
            dim += mask.ndim
            continue
        for _ in range(sum(e[1:]) if kind == "s" else kind in ("i", "a")):
            next(it)
        dim += kind in ("s", "i", "a")


def _describe_index(idx_list):
    parts = []
    for e in idx_list:
        parts.append({"n": "None", "e": "...", "i": "int", "a": "int array", "b": "bool mask"}.get(e[0]) or
                     ":".join("?" if p else "" for p in e[1:]).rstrip(":") or ":")
    return "[" + ", ".join(parts) + "]"


class Subtensor(Op):
    """x[index] with NumPy semantics (basic and advanced indexing alike)."""

    __props__ = ("idx_list",)

    def __init__(self, idx_list):
        self.idx_list = tuple(idx_list)

    def __str__(self):
        return f"Subtensor{_describe_index(self.idx_list)}"

    @property
    def is_advanced(self):
        return any(e[0] in ("a", "b") for e in self.idx_list)

    def make_node(self, x, *index_inputs):
        x = as_tensor_variable(x)
        index_inputs = [as_tensor_variable(i) for i in index_inputs]
        shape = _result_type_shape(x.type.shape, self.idx_list, index_inputs, str(self))
        return Apply(self, [x] + index_inputs, [TensorType(x.dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        x, *values = inputs
        index = _build_index(self.idx_list, values)
        try:
            out = x[index]
        except IndexError as e:
            raise IndexError(f"{self}: {e} (input shape {x.shape})") from None
        output_storage[0][0] = np.asarray(out)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType, grad_undefined_for_discrete
        from theanine.tensor.basic import zeros_like
        x, *index_inputs = inputs
        (gz,) = output_grads
        if x.dtype not in ("float16", "float32", "float64", "complex64", "complex128"):
            gx = grad_undefined_for_discrete(x)
        else:
            gx = IncSubtensor(self.idx_list, False)(zeros_like(x), gz, *index_inputs)
        return [gx] + [DisconnectedType()() for _ in index_inputs]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in node.inputs[1:]]



class IncSubtensor(Op):
    """A copy of x with x[index] set to y (``set_instead_of_inc``) or incremented by y.

    Increments through repeated advanced indices accumulate (numpy.add.at).
    """

    __props__ = ("idx_list", "set_instead_of_inc")

    def __init__(self, idx_list, set_instead_of_inc):
        self.idx_list = tuple(idx_list)
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def __str__(self):
        kind = "Set" if self.set_instead_of_inc else "Inc"
        return f"{kind}Subtensor{_describe_index(self.idx_list)}"

    @property
    def is_advanced(self):
        return any(e[0] in ("a", "b") for e in self.idx_list)

    def make_node(self, x, y, *index_inputs):
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        index_inputs = [as_tensor_variable(i) for i in index_inputs]
        target = _result_type_shape(x.type.shape, self.idx_list, index_inputs, str(self))
        if y.ndim > len(target):
            raise ValueError(f"{self}: the value has {y.ndim} dimensions, more than the {len(target)} "
                             f"of the indexed region")
        broadcast_static_shapes([target, y.type.shape], str(self))
        padded = (1,) * (len(target) - y.ndim) + y.type.shape
        for t, s in zip(target, padded):
            if s is not None and t is not None and s not in (1, t):
                raise ValueError(f"{self}: cannot broadcast a value of shape {y.type.shape} "
                                 f"into the indexed region of shape {target}")
        if not np.can_cast(y.dtype, x.dtype, casting="same_kind"):
            raise TypeError(f"{self}: cannot store values of dtype {y.dtype} into a tensor of dtype {x.dtype}")
        return Apply(self, [x, y] + index_inputs, [x.type()])

    def perform(self, node, inputs, output_storage):
        x, y, *values = inputs
        out = x.copy()
        try:
            if self.set_instead_of_inc:
                out[_build_index(self.idx_list, values)] = y
            elif self.is_advanced:
                _check_masks(self.idx_list, values, x.shape)
                np.add.at(out, _build_index(self.idx_list, values, expand_masks=True), y)
            else:
                index = _build_index(self.idx_list, values)
                out[index] = out[index] + y
        except IndexError as e:
            raise IndexError(f"{self}: {e} (input shape {x.shape})") from None
        except ValueError as e:
            raise ValueError(f"{self}: {e} (input shape {x.shape}, value shape {np.shape(y)})") from None
        output_storage[0][0] = out

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        from theanine.tensor.elemwise import sum_to
        from theanine.tensor.math import sum as tsum
        x, y, *index_inputs = inputs
        (gz,) = output_grads
        sub = Subtensor(self.idx_list)
        if self.set_instead_of_inc:
            gx = IncSubtensor(self.idx_list, True)(gz, np.zeros((), dtype=gz.dtype), *index_inputs)
        else:
            gx = gz
        gy = sub(gz, *index_inputs)
        extra = gy.ndim - y.ndim
        if extra:
            gy = tsum(gy, axis=list(range(extra)))
        gy = sum_to(gy, y)
        return [gx, gy] + [DisconnectedType()() for _ in index_inputs]

    def connection_pattern(self, node):
        return [[True], [True]] + [[False] for _ in node.inputs[2:]]


def getitem(x, index):
    """x[index] (the implementation of TensorVariable.__getitem__)."""
    x = as_tensor_variable(x)
    idx_list, inputs = _parse_index(x, index)
    # x[:] (or x[...]) is a no-op, but it stays a Subtensor node, as in Theano, so that
    # set_subtensor(x[:], y) and inc_subtensor(x[...], y) work
    return Subtensor(idx_list)(x, *inputs)


def _indexed(x_sub, fname):
    node = getattr(x_sub, "owner", None)
    if node is None or not isinstance(node.op, Subtensor):
        raise TypeError(f"{fname}: the first argument must be an indexed tensor such as x[idx], got {x_sub}")
    return node


def set_subtensor(x_sub, y, inplace=False, tolerate_inplace_aliasing=False):
    """A copy of x with x[idx] replaced by y, given ``x_sub = x[idx]``."""
    node = _indexed(x_sub, "set_subtensor")
    x, *index_inputs = node.inputs
    return IncSubtensor(node.op.idx_list, True)(x, y, *index_inputs)


def inc_subtensor(x_sub, y, inplace=False, set_instead_of_inc=False, tolerate_inplace_aliasing=False):
    """A copy of x with y added to x[idx], given ``x_sub = x[idx]`` (repeated indices accumulate)."""
    node = _indexed(x_sub, "inc_subtensor")
    x, *index_inputs = node.inputs
    return IncSubtensor(node.op.idx_list, set_instead_of_inc)(x, y, *index_inputs)


class Nonzero(Op):
    """The indices of the non-zero entries of x, as an (ndim, count) int64 matrix."""

    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.ndim == 0:
            raise ValueError("nonzero: a 0-d tensor has no indices")
        return Apply(self, [x], [TensorType("int64", (x.ndim, None))()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.asarray(np.nonzero(inputs[0]), dtype="int64").reshape(inputs[0].ndim, -1)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        return [grad_undefined_for_discrete(inputs[0])]


def nonzero(x, return_matrix=False):
    """Indices of non-zero entries: a tuple of vectors, or the (ndim, count) matrix."""
    m = Nonzero()(x)
    if return_matrix:
        return m
    return tuple(m[i] for i in range(as_tensor_variable(x).ndim))


def flatnonzero(x):
    """Indices of the non-zero entries of x flattened."""
    return nonzero(as_tensor_variable(x).flatten())[0]


def take(a, indices, axis=None):
    """numpy.take: entries of ``a`` at ``indices`` along ``axis`` (None: flattened)."""
    a = as_tensor_variable(a)
    if axis is None:
        return a.flatten()[indices]
    from theanine.tensor.shape import normalize_axis
    axis = normalize_axis(axis, a.ndim, "take")
    return a[(slice(None),) * axis + (as_tensor_variable(indices),)]


__all__ = ["Subtensor", "IncSubtensor", "getitem", "set_subtensor", "inc_subtensor",
           "Nonzero", "nonzero", "flatnonzero", "take"]
