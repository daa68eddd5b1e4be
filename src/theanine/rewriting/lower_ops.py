"""Core tensor ops without a native schedule step, rewritten into ops that have one.

These rewrites run in the ``native`` phase (rewriting.NATIVE_PHASES: native modes only,
first, after ``grad`` has built the backward graph), so that a compiled function runs
them inside its native entry instead of calling back into Python (``f.fallbacks``).
Each lowering computes what the op's ``perform`` computes, with the same dtypes (bit for
bit, except float products, which BLAS rounds as it blocks them); where ``perform`` raises
for bad input, the lowered graph raises the same exception type (an ``Assert``, or the
gather, scatter or product that meets the bad index or size).

- ``ScalarGradOp`` (zero_grad, grad_clip, ...): the identity in the forward pass.
- ``Eye``: 1 where ``cols - rows == k``, over an arange row and an arange column.
- ``ARange`` of floats: NumPy's own formula (``start + i * delta`` with ``delta`` the
  difference of the first two values rounded to the dtype) over an integer arange.
- ``Split``: basic slices of x between the running sums of the sizes.
- ``Repeat``: a scalar count broadcasts a new axis after ``axis`` (Alloc) and merges the
  two (Reshape); a vector of counts gathers ``x`` at the source index of every output
  position, which is the running sum of a scatter of ones at the first position of each
  source index.
- ``Subtensor`` / ``IncSubtensor`` with integer arrays anywhere (NumPy's mixed advanced
  indexing): the basic part of the index as a view, the indexed axes moved to the front,
  a gather (or scatter) with index vectors on leading axes, and NumPy's result layout
  restored (the arrays' dimensions in place when the advanced entries are adjacent, first
  otherwise). One index array of any rank is flattened; several must be vectors.
- Boolean masks in a ``Subtensor`` / ``IncSubtensor``: each mask becomes the integer
  vectors of ``nonzero(mask)`` (a native step), one per dimension it spans, as NumPy
  defines them, checked by an ``IndexAssert`` (IndexError, as NumPy raises) per axis for a
  mask of the size of the dimension it spans; the integer index is then lowered as above.
  Not in mode 'cuda' (``CPU_ONLY``), which runs indexing on the host: there one op would
  become several.
- ``Dot`` on dtypes BLAS does not take: mixed floats are cast to the result dtype first
  (as NumPy does); integers become an elementwise product summed over the inner axis.
- ``MatMul``: when one operand has no batch dimensions (or only static size-1 ones) the
  batch folds into the rows (or columns) of one BLAS product; a static size-1 row or
  column count (batched matrix-vector products) becomes a fused product and sum; integers
  always do. Other float batched products keep NumPy's ``matmul``: the fused product and
  sum is slower than it once the inner sizes pass a handful.

- Indices of dtype uint64, as int64 the way NumPy takes them: arrays cast (wrapping),
  integers of 2**63 or more an OverflowError (``OverflowAssert``), slice bounds clamped.

Left alone: repeats, several index arrays that are not all
vectors (their broadcasting rules; a mask counts as vectors), and complex or float16 data,
which native steps do not hold.
"""

from __future__ import annotations


import numpy as np

from theanine.gradient import ScalarGradOp
from theanine.rewriting.lowering import CPU_ONLY
from theanine.rewriting.lowering import (Unlowerable, checked, eq, lowering, product, size, sizes,
                                          static)
from theanine.tensor import math as tm
from theanine.tensor.basic import (ARange, Eye, NotScalarConstantError, Repeat, Split, alloc, arange,
                                   Assert, get_scalar_constant_value, zeros)
from theanine.tensor.elemwise import dimshuffle
from theanine.tensor.math import Dot, MatMul
from theanine.tensor.shape import constant_entries, flatten, reshape
from theanine.tensor.subtensor import IncSubtensor, Nonzero, Subtensor, inc_subtensor

#: integer dtypes that native steps read as sizes and indices
_INDEX_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64")
#: dtypes that native steps hold
_NATIVE_DTYPES = ("bool",) + _INDEX_DTYPES + ("uint64", "float32", "float64")
_FULL = ("s", False, False, False)



# --- sizes and checks ---------------------------------------------------------------------








# --- identities and constructors -----------------------------------------------------------


@lowering(ScalarGradOp)
def remove_gradient_op(node):
    """zero_grad(x), disconnected_grad(x), grad_clip(x), grad_scale(x) -> x (the forward
    pass; gradients were built before compiling)"""
    return [node.inputs[0]]


@lowering(Eye)
def lower_eye(node):
    """eye(n, m, k) -> switch(arange(m)[None, :] - arange(n)[:, None] == k, 1, 0), after an
    Assert that n and m are not negative"""
    n, m, k = node.inputs
    dtype = node.op.dtype
    message = "eye: negative dimensions are not allowed"
    n = checked(n, [_nonnegative(n)], message)
    m = checked(m, [_nonnegative(m)], message)
    rows, cols = arange(n, dtype="int64"), arange(m, dtype="int64")
    diagonal = tm.eq(tm.sub(dimshuffle(cols, ["x", 0]), dimshuffle(rows, [0, "x"])), k)
    if dtype == "bool":
        return [diagonal]
    # a select of two constants: a kernel that vectorizes (a cast of the comparison did not in C)
    return [tm.switch(diagonal, np.array(1, dtype=dtype), np.array(0, dtype=dtype))]


@lowering(ARange)
def lower_float_arange(node):
    """arange(start, stop, step) of floats -> NumPy's fill: first = start and second =
    start + step (each rounded to the dtype), then first + i * (second - first) for
    i < ceil((stop - start) / step), all computed as NumPy does; after an Assert that the
    step is not zero and the length is a number"""
    dtype = node.op.dtype
    if dtype not in ("float32", "float64") or any(v.dtype not in _NATIVE_DTYPES for v in node.inputs):
        return None
    start, stop, step = (tm.cast(v, "float64") for v in node.inputs)
    step = checked(step, [tm.neq(step, 0)], "arange: step must not be zero")
    quotient = tm.true_div(tm.sub(stop, start), step)
    quotient = checked(quotient, [tm.lt(tm.abs(quotient), np.float64(2.0 ** 62))],
                        "arange: cannot compute the length (too large, infinite or nan)")
    i = arange(tm.maximum(tm.cast(tm.ceil(quotient), "int64"), np.int64(0)), dtype="int64")
    first, second = tm.cast(start, dtype), tm.cast(tm.add(start, step), dtype)
    values = tm.add(first, tm.mul(tm.cast(i, dtype), tm.sub(second, first)))
    return [tm.switch(tm.eq(i, np.int64(0)), first, tm.switch(tm.eq(i, np.int64(1)), second, values))]


def _nonnegative(v):
    """v >= 0 for an integer scalar: a Python bool when ``v`` is known at build time."""
    try:
        return get_scalar_constant_value(v) >= 0
    except NotScalarConstantError:
        return tm.ge(v, np.int64(0))


# --- split and repeat ------------------------------------------------------------------------


def _along(x, axis, index):
    """x[:, ..., index] with ``index`` on ``axis``."""
    return x[(slice(None),) * axis + (index,)]


@lowering(Split)
def lower_split(node):
    """split(x, sizes) -> x[..., c[k]:c[k + 1]] along the axis for c = [0, *cumsum(sizes)],
    after an Assert that the sizes are n_splits non-negative counts adding up to its size"""
    x, sizes = node.inputs
    op = node.op
    n = size(x, op.axis)
    message = (f"split: the sizes do not partition axis {op.axis} (n_splits={op.n_splits} "
               f"non-negative sizes adding up to its size)")
    entries = constant_entries(sizes)
    if entries and None not in entries:
        if min(entries) < 0:
            raise Unlowerable(message)
        x = checked(x, [eq(n, sum(entries))], message)
        bounds = [0] + np.cumsum(entries).tolist()
    else:
        sizes = checked(sizes, [eq(size(sizes, 0), op.n_splits), tm.all(tm.ge(sizes, 0)),
                                 tm.eq(tm.sum(sizes), n)], message)
        ends = tm.cumsum(sizes)
        bounds = [0] + [ends[k] for k in range(op.n_splits)]
    return [_along(x, op.axis, slice(bounds[k], bounds[k + 1])) for k in range(op.n_splits)]


@lowering(Repeat)
def lower_repeat(node):
    """repeat(x, r, axis) -> reshape(alloc(x with a new axis after ``axis``, ..., r, ...))
    for a scalar r; for a vector, x gathered along the axis at cumsum(ones scattered at
    cumsum(r) - r) (the source index of each output position). Asserts that the counts
    are not negative and that a vector has one entry or one per element of the axis."""
    x, repeats = node.inputs
    if repeats.dtype not in _INDEX_DTYPES:
        return None
    axis = node.op.axis
    if axis is None:
        x, axis = flatten(x) if x.ndim else dimshuffle(x, ["x"]), 0
    repeats = tm.cast(repeats, "int64")
    if repeats.ndim == 1 and repeats.type.shape[0] == 1:
        repeats = repeats[0]
    if repeats.ndim == 0:
        return [_repeat_each(x, repeats, axis)]
    return [_repeat_by_vector(x, repeats, axis)]


def _repeat_each(x, r, axis):
    """repeat(x, r, axis) for a scalar count ``r``."""
    r = checked(r, [_nonnegative(r)], "repeat: negative repeat counts")
    dims = sizes(x)
    wide = dimshuffle(x, list(range(axis + 1)) + ["x"] + list(range(axis + 1, x.ndim)))
    tiled = alloc(wide, *dims[:axis + 1], r, *dims[axis + 1:])
    return reshape(tiled, dims[:axis] + [product(dims[axis], r)] + dims[axis + 1:])


def _repeat_by_vector(x, repeats, axis):
    """repeat(x, repeats, axis) for a vector of counts (int64)."""
    n, m = size(x, axis), size(repeats, 0)
    repeats = checked(repeats, [tm.all(tm.ge(repeats, np.int64(0)))], "repeat: negative repeat counts")
    if static(n, m) and n == m:
        counts = repeats
    else:
        message = "repeat: the repeat counts must be one count or one per element of the axis"
        counts = alloc(checked(repeats, [tm.or_(tm.eq(m, n), tm.eq(m, 1))], message), n)
    ends = tm.cumsum(counts)
    total = tm.sum(counts)
    starts = tm.sub(ends, counts)
    marks = inc_subtensor(zeros((tm.add(total, np.int64(1)),), dtype="int64")[starts[1:]], np.int64(1))
    return _along(x, axis, tm.cumsum(marks[:total]))


# --- mixed advanced indexing -------------------------------------------------------------------


def _lowerable_index(op, x, index_inputs) -> bool:
    """Whether a mixed advanced index (no masks) of ``x`` is lowered: integer arrays of native
    index dtypes, all vectors or a single one, and not already leading vectors followed by
    full slices (the form the native gather and scatter take)."""
    if not op.is_advanced or any(e[0] == "b" for e in op.idx_list) or x.dtype not in _NATIVE_DTYPES:
        return False
    arrays = _index_parts(op.idx_list, index_inputs)[2]
    if any(a.dtype not in _INDEX_DTYPES or a.ndim == 0 for a in arrays):
        return False
    if len(arrays) > 1 and any(a.ndim != 1 for a in arrays):
        return False
    k = len(index_inputs)
    leading = (all(e == ("a",) for e in op.idx_list[:k]) and all(e == _FULL for e in op.idx_list[k:])
               and all(a.ndim == 1 for a in arrays))
    return not leading


def _index_parts(idx_list, index_inputs):
    """An advanced index without masks split into a basic index applied first and the
    integer arrays.

    Returns (basic, basic_inputs, arrays, axes, before): ``basic`` is ``idx_list`` with each
    array entry a full slice and no Ellipsis; ``axes`` are the axes of ``x[basic]`` that the
    arrays index; ``before`` is how many of that view's other axes come before the arrays'
    dimensions in NumPy's result: those of the slices and new axes ahead of the advanced
    entries (integers included) when these are adjacent, none otherwise.
    """
    values = iter(index_inputs)
    basic, basic_inputs, arrays, axes, positions = [], [], [], [], []
    for pos, entry in enumerate(idx_list):
        kind = entry[0]
        if kind == "a":
            arrays.append(next(values))
            axes.append(sum(e[0] in ("s", "n") for e in basic))
            positions.append(pos)
            basic.append(_FULL)
        elif kind == "i":
            basic_inputs.append(next(values))
            positions.append(pos)
            basic.append(entry)
        elif kind == "s":
            basic_inputs.extend(next(values) for present in entry[1:] if present)
            basic.append(entry)
        elif kind == "n":
            basic.append(entry)
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    before = sum(e[0] in ("s", "n") for e in idx_list[:positions[0]]) if adjacent else 0
    return tuple(basic), basic_inputs, arrays, axes, before


def _basic_view(x, basic, basic_inputs):
    """x[basic], or x itself when every entry is a full slice."""
    return x if all(e == _FULL for e in basic) else Subtensor(basic)(x, *basic_inputs)


def _front(v, axes):
    """``v`` with ``axes`` moved to the front, and the permutation used."""
    order = list(axes) + [d for d in range(v.ndim) if d not in axes]
    return dimshuffle(v, order), order


def _vectors(arrays):
    """Index vectors for the gather: the arrays themselves when they are vectors, else the
    one array flattened (its sizes are then returned too, else None)."""
    if all(a.ndim == 1 for a in arrays):
        return arrays, None
    (a,) = arrays
    return [flatten(a)], sizes(a)


def _move(ndim, start, count, to):
    """The DimShuffle order moving the ``count`` axes at ``start`` of an ``ndim`` tensor to
    position ``to`` of the others."""
    moved = list(range(start, start + count))
    others = [d for d in range(ndim) if d not in moved]
    return others[:to] + moved + others[to:]


@lowering(Subtensor)
def lower_advanced_subtensor(node):
    """x[mixed index] -> gather(x[basic part] with the indexed axes in front, index vectors),
    with the arrays' dimensions then moved where NumPy puts them"""
    x, *index_inputs = node.inputs
    op = node.op
    if not _lowerable_index(op, x, index_inputs):
        return None
    basic, basic_inputs, arrays, axes, before = _index_parts(op.idx_list, index_inputs)
    front, _ = _front(_basic_view(x, basic, basic_inputs), axes)
    vectors, array_sizes = _vectors(arrays)
    out = Subtensor((("a",),) * len(vectors))(front, *vectors)
    nb = 1
    if array_sizes is not None:
        out = reshape(out, array_sizes + sizes(out)[1:])
        nb = len(array_sizes)
    return [dimshuffle(out, _move(out.ndim, 0, nb, before))]


@lowering(IncSubtensor)
def lower_advanced_inc_subtensor(node):
    """inc/set(x[mixed index], y) -> the same scatter into x[basic part] with the indexed
    axes in front (y's axes moved alike), its axes moved back, and set into x"""
    x, y, *index_inputs = node.inputs
    op = node.op
    if not _lowerable_index(op, x, index_inputs):
        return None
    basic, basic_inputs, arrays, axes, before = _index_parts(op.idx_list, index_inputs)
    region = _basic_view(x, basic, basic_inputs)
    front, order = _front(region, axes)
    vectors, array_sizes = _vectors(arrays)
    nb = 1 if array_sizes is None else len(array_sizes)
    ndim = nb + region.ndim - len(axes)  # of the indexed region, in NumPy's layout
    y = dimshuffle(y, ["x"] * (ndim - y.ndim) + list(range(y.ndim)))
    y = dimshuffle(y, _inverse(_move(ndim, 0, nb, before)))
    if array_sizes is not None:
        rest = sizes(y)[nb:]
        y = reshape(alloc(y, *array_sizes, *rest), [product(*array_sizes)] + rest)
    written = IncSubtensor((("a",),) * len(vectors), op.set_instead_of_inc)(front, y, *vectors)
    back = dimshuffle(written, _inverse(order))
    if region is x:
        return [back]
    return [IncSubtensor(basic, True)(x, back, *basic_inputs)]


def _inverse(order):
    """The DimShuffle order undoing the permutation ``order``."""
    return [order.index(d) for d in range(len(order))]


# --- boolean masks ------------------------------------------------------------------------------


class IndexAssert(Assert):
    """An Assert whose failure raises IndexError, as NumPy does for a bad index."""

    def perform(self, node, inputs, output_storage):
        x, *conditions = inputs
        if not all(bool(c) for c in conditions):
            raise IndexError(self.message)
        output_storage[0][0] = x


def _masks_as_vectors(op, x, index_inputs):
    """(idx_list, inputs) of ``op``'s index with each mask spanning k dimensions replaced by
    the k integer vectors of nonzero(mask), checked (IndexAssert, one per axis) for a mask
    with the sizes of the dimensions of ``x`` it spans. The check follows nonzero, so that
    ops indexing with one mask (x[mask] and its gradient) share its nonzero."""
    values = iter(index_inputs)
    idx_list, inputs, dim = [], [], 0
    for entry in op.idx_list:
        kind = entry[0]
        if kind != "b":
            idx_list.append(entry)
            inputs += [next(values) for _ in range(sum(entry[1:]) if kind == "s" else kind in ("i", "a"))]
            dim += kind in ("s", "i", "a")
            continue
        mask = next(values)
        rows = Nonzero()(mask)
        for k in range(mask.ndim):
            same = eq(size(x, dim + k), size(mask, k))
            if same is not True:  # False cannot be: make_node checks static sizes
                rows = IndexAssert(_mask_message(dim + k))(rows, same)
        idx_list += [("a",)] * mask.ndim
        inputs += [rows[k] for k in range(mask.ndim)]
        dim += mask.ndim
    return tuple(idx_list), inputs


def _mask_message(axis) -> str:
    """The error of a mask whose size differs from that of the ``axis`` it spans: one for
    every op indexing with it, so that the checks of one mask merge."""
    return (f"Subtensor: boolean index did not match indexed array along axis {axis} (the mask's "
            "size differs from the axis')")


def _has_mask(op, x) -> bool:
    """Whether ``op`` indexes ``x`` (of a dtype native steps hold) with a boolean mask."""
    return any(e[0] == "b" for e in op.idx_list) and x.dtype in _NATIVE_DTYPES


@lowering(Subtensor, tags=(CPU_ONLY,))
def lower_mask_subtensor(node):
    """x[..., mask, ...] -> x[..., *nonzero(mask), ...] (one integer vector per dimension
    the mask spans), the nonzero checked (IndexError) to be of a mask of those dimensions'
    sizes"""
    x, *index_inputs = node.inputs
    if not _has_mask(node.op, x):
        return None
    idx_list, inputs = _masks_as_vectors(node.op, x, index_inputs)
    return [Subtensor(idx_list)(x, *inputs)]


@lowering(IncSubtensor, tags=(CPU_ONLY,))
def lower_mask_inc_subtensor(node):
    """set/inc(x[..., mask, ...], y) -> set/inc(x[..., *nonzero(mask), ...], y), the nonzero
    checked (IndexError) to be of a mask of the sizes of the dimensions it spans"""
    x, y, *index_inputs = node.inputs
    if not _has_mask(node.op, x):
        return None
    idx_list, inputs = _masks_as_vectors(node.op, x, index_inputs)
    return [IncSubtensor(idx_list, node.op.set_instead_of_inc)(x, y, *inputs)]


class OverflowAssert(Assert):
    """An Assert whose failure raises OverflowError, as NumPy does for an integer index too
    large for its index type."""

    def perform(self, node, inputs, output_storage):
        x, *conditions = inputs
        if not all(bool(c) for c in conditions):
            raise OverflowError(self.message)
        output_storage[0][0] = x


_INT64_MAX = np.uint64(2 ** 63 - 1)


def _uint64_entries(op, index_inputs) -> list:
    """(position in ``index_inputs``, entry kind) of the index inputs of dtype uint64."""
    values, found = iter(range(len(index_inputs))), []
    for entry in op.idx_list:
        kind = entry[0]
        for k in [next(values) for _ in range(sum(entry[1:]) if kind == "s" else kind in ("i", "a", "b"))]:
            if kind in ("a", "i", "s") and index_inputs[k].dtype == "uint64":
                found.append((k, kind))
    return found


def _as_int64_indices(op, index_inputs):
    """``index_inputs`` with each uint64 index as NumPy takes it, as int64: an index array
    cast (wrapping: 2**64 - 1 indexes the last element, 2**63 is out of bounds); an integer
    of 2**63 or more an OverflowError; a slice bound clamped to 2**63 - 1 (slices clamp)."""
    inputs = list(index_inputs)
    for k, kind in _uint64_entries(op, inputs):
        value = inputs[k]
        if kind == "i":
            value = OverflowAssert("index: an integer of dtype uint64 of 2**63 or more is too large "
                                   "for NumPy's index type")(value, tm.le(value, _INT64_MAX))
        elif kind == "s":
            value = tm.minimum(value, _INT64_MAX)
        inputs[k] = tm.cast(value, "int64")
    return inputs


@lowering(Subtensor)
def lower_uint64_subtensor(node):
    """x[uint64 index] -> x[int64 index] (as NumPy takes it)"""
    x, *index_inputs = node.inputs
    if x.dtype not in _NATIVE_DTYPES or not _uint64_entries(node.op, index_inputs):
        return None
    return [Subtensor(node.op.idx_list)(x, *_as_int64_indices(node.op, index_inputs))]


@lowering(IncSubtensor)
def lower_uint64_inc_subtensor(node):
    """set/inc(x[uint64 index], y) -> set/inc(x[int64 index], y) (as NumPy takes it)"""
    x, y, *index_inputs = node.inputs
    if x.dtype not in _NATIVE_DTYPES or not _uint64_entries(node.op, index_inputs):
        return None
    return [IncSubtensor(node.op.idx_list, node.op.set_instead_of_inc)(
        x, y, *_as_int64_indices(node.op, index_inputs))]


# --- products -----------------------------------------------------------------------------


def _aligned(a, b, opname):
    """``a`` checked (Assert, ValueError) to have as many columns as ``b`` has rows."""
    message = f"{opname}: shapes are not aligned (the inner sizes differ)"
    return checked(a, [eq(size(a, a.ndim - 1), size(b, max(b.ndim - 2, 0)))], message)


def _summed_products(a, b, dtype):
    """sum_k a[..., k] * b[..., k, :] (b[k] for a vector b): numpy.dot of ranks <= 2 and
    numpy.matmul of batches (broadcast), as one elementwise product and a sum in ``dtype``,
    which fusion makes one kernel."""
    if b.ndim == 1:
        return tm.sum(tm.mul(a, b), axis=a.ndim - 1, dtype=dtype)
    if a.ndim >= 2:  # a (..., M, K, 1) against b (..., 1, K, N)
        b = dimshuffle(b, list(range(b.ndim - 2)) + ["x", b.ndim - 2, b.ndim - 1])
    terms = tm.mul(dimshuffle(a, list(range(a.ndim)) + ["x"]), b)
    return tm.sum(terms, axis=terms.ndim - 2, dtype=dtype)


@lowering(Dot)
def lower_dot(node):
    """dot(a, b) on dtypes BLAS does not take: a * b for a scalar operand; mixed floats
    cast to the result dtype (as NumPy does); integers summed products in the result dtype"""
    a, b = node.inputs
    dtype = node.outputs[0].dtype
    if {a.dtype, b.dtype} == {dtype} and dtype in ("float32", "float64") and a.ndim and b.ndim:
        return None  # BLAS
    if dtype not in _NATIVE_DTYPES or dtype == "bool":
        return None
    a, b = tm.cast(a, dtype), tm.cast(b, dtype)
    if a.ndim == 0 or b.ndim == 0:
        return [tm.mul(a, b)]
    if dtype in ("float32", "float64"):
        return [Dot()(a, b)]
    return [_summed_products(_aligned(a, b, "dot"), b, dtype)]


@lowering(MatMul)
def lower_matmul(node):
    """matmul(a, b) -> one BLAS product when an operand has no batch dimensions (a's batch
    folded into the rows, or b's into the columns); a fused product and sum for integers and
    for a static size-1 row or column count (batched vector-matrix or matrix-vector)"""
    a, b = node.inputs
    dtype = node.outputs[0].dtype
    if dtype not in _NATIVE_DTYPES or dtype == "bool":
        return None
    a, b = tm.cast(a, dtype), tm.cast(b, dtype)
    floats = dtype in ("float32", "float64")
    if floats and all(s == 1 for s in b.type.shape[:-2]):
        out = _rows_product(a, dimshuffle(b, [b.ndim - 2, b.ndim - 1]))
    elif floats and all(s == 1 for s in a.type.shape[:-2]):
        out = _columns_product(dimshuffle(a, [a.ndim - 2, a.ndim - 1]), b)
    elif floats and b.type.shape[-1] == 1:  # the sum runs along a's contiguous rows
        column = dimshuffle(b, list(range(b.ndim - 2)) + ["x", b.ndim - 2])
        out = tm.sum(tm.mul(_aligned(a, b, "matmul"), column), axis=max(a.ndim, b.ndim) - 1, dtype=dtype)
        out = dimshuffle(out, list(range(out.ndim)) + ["x"])
    elif not floats or a.type.shape[-2] == 1:
        out = _summed_products(_aligned(a, b, "matmul"), b, dtype)
    else:
        return None
    ndim = node.outputs[0].ndim
    return [dimshuffle(out, ["x"] * (ndim - out.ndim) + list(range(out.ndim)))]


def _rows_product(a, b):
    """a @ b for a batch ``a`` (..., M, K) and a matrix b: one (batch * M, K) @ (K, N)."""
    dims = sizes(a)
    rows = reshape(a, [product(*dims[:-1]), dims[-1]])
    return reshape(Dot()(rows, b), dims[:-1] + [size(b, 1)])


def _columns_product(a, b):
    """a @ b for a matrix a and a batch ``b`` (..., K, N): one (M, K) @ (K, batch * N)."""
    dims = sizes(b)
    batch = list(range(b.ndim - 2))
    columns = reshape(dimshuffle(b, [b.ndim - 2] + batch + [b.ndim - 1]),
                      [dims[-2], product(*dims[:-2], dims[-1])])
    out = reshape(Dot()(a, columns), [size(a, 0)] + dims[:-2] + [dims[-1]])
    return dimshuffle(out, [d + 1 for d in batch] + [0, b.ndim - 1])
