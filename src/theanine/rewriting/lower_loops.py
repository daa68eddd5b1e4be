"""Ops that repeat one computation become scans, which the native entry loops natively.

These rewrites run in the ``native`` phase of the CPU modes (see ``lowering``):

- ``MatMul`` of two batches of float matrices (NumPy's ``matmul`` with batch dimensions
  on both sides, which ``lower_ops`` leaves): one BLAS product per matrix of the
  broadcast batch, in a scan over the flattened batch index. Each step takes its two
  matrices as views, at the index of each operand's own batch (a dimension of size 1
  is broadcast by reading its one matrix), so nothing is copied to broadcast.
- ``IndexMap`` (the rows of a Jacobian of unknown length): its inner graph, run once per
  index in a scan.

A scan of zero steps with stacked rows is left to the node-by-node path by the entry,
which gives the empty result its shape.
"""

from __future__ import annotations

from theanine.gradient import IndexMap
from theanine.graph.traversal import clone_replace
from theanine.rewriting.lowering import CPU_ONLY
from theanine.rewriting.lowering import checked, eq, lowering, product, size, sizes
from theanine.tensor import math as tm
from theanine.tensor.basic import arange
from theanine.tensor.elemwise import dimshuffle
from theanine.tensor.math import MatMul
from theanine.tensor.shape import reshape


@lowering(MatMul, tags=(CPU_ONLY,))
def matmul_as_loop(node):
    """matmul(a, b) of two float batches -> scan over the broadcast batch of dot(a[i], b[j])"""
    from theanine.scan_module import scan
    a, b = node.inputs
    out = node.outputs[0]
    if out.dtype not in ("float32", "float64") or a.ndim < 3 or b.ndim < 3:
        return None
    if all(s == 1 for s in a.type.shape[:-2]) or all(s == 1 for s in b.type.shape[:-2]):
        return None  # one BLAS product (lower_ops)
    nb = out.ndim - 2
    a = dimshuffle(tm.cast(a, out.dtype), ["x"] * (out.ndim - a.ndim) + list(range(a.ndim)))
    b = dimshuffle(tm.cast(b, out.dtype), ["x"] * (out.ndim - b.ndim) + list(range(b.ndim)))
    a_batch, b_batch = sizes(a)[:nb], sizes(b)[:nb]
    m, k, n = size(a, nb), size(a, nb + 1), size(b, nb + 1)
    a = checked(a, [eq(k, size(b, nb))] + [_broadcastable(x, y) for x, y in zip(a_batch, b_batch)],
                "matmul: shapes are not aligned (inner sizes or batch sizes differ)")
    batch = [_broadcast(x, y) for x, y in zip(a_batch, b_batch)]
    a3 = reshape(a, [product(*a_batch), m, k])
    b3 = reshape(b, [product(*b_batch), size(b, nb), n])

    def step(i, a3, b3):
        ia, ib = _operand_index(i, batch, a_batch), _operand_index(i, batch, b_batch)
        return tm.dot(a3[ia], b3[ib])
    rows, _ = scan(step, sequences=arange(product(*batch), dtype="int64"), non_sequences=[a3, b3])
    return [reshape(rows, batch + [m, n])]  # also the shape of no rows, which no step gives


def _broadcastable(x, y):
    """Whether batch sizes x and y broadcast (ints: a bool; else a symbolic condition)."""
    if isinstance(x, int) and isinstance(y, int):
        return x == y or x == 1 or y == 1
    return tm.or_(tm.or_(tm.eq(x, y), tm.eq(x, 1)), tm.eq(y, 1))


def _broadcast(x, y):
    """The size batch sizes x and y broadcast to."""
    if isinstance(x, int) and x == 1:
        return y
    if isinstance(y, int) and y == 1 or isinstance(x, int):
        return x
    if isinstance(y, int):
        return y
    return tm.switch(tm.eq(x, 1), y, x)


def _operand_index(i, batch, own):
    """The flat index, in an operand of batch sizes ``own``, of the matrix that flat index
    ``i`` of the broadcast ``batch`` reads (its index along a dimension of size 1 is 0)."""
    flat, rest = 0, i
    strides = [product(*own[d + 1:]) for d in range(len(own))]
    for d in reversed(range(len(batch))):
        index = rest % batch[d] if d else rest
        rest = rest // batch[d] if d else None
        if not (isinstance(own[d], int) and own[d] == 1):
            along = index if isinstance(own[d], int) else tm.switch(tm.eq(own[d], 1), 0, index)
            flat = flat + along * strides[d]
    return flat


@lowering(IndexMap, tags=(CPU_ONLY,))
def index_map_as_loop(node):
    """index_map(n, like, *free) -> scan over arange(n) of the inner graph, rows shaped as like"""
    from theanine.scan_module import scan
    op = node.op
    n, like, *free = node.inputs

    def step(i, *values):
        mapping = {op.index_var: tm.cast(i, op.index_var.dtype)}
        mapping.update(zip(op.inner_inputs, values))
        return clone_replace([op.inner_output], mapping)[0]
    rows, _ = scan(step, sequences=arange(n, dtype="int64"), non_sequences=free)
    return [reshape(tm.cast(rows, node.outputs[0].dtype), [n] + sizes(like))]
