"""Sorting: ``argsort`` and ``sort`` along one axis (Theano's names), stable.

``ArgSort`` gives, along the last axis, the indices that sort its input ascending,
equal values in the order they come and NaN after every number, as
``numpy.argsort(kind="stable")``; the native modes run it as a schedule step. Another
axis is moved last and back (views), ``axis=None`` sorts the flattened input. ``sort``
gathers the input at those indices through one flat index (row offset plus sorted
position), so its gradient sends each output gradient back to the element it came
from. Random permutations and choices without replacement are drawn through
``ArgSort`` (``tensor.random.expand``).
"""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Op
from theanine.tensor.math import _single_axis
from theanine.tensor.type import TensorType
from theanine.tensor.variable import as_tensor_variable

__all__ = ["ArgSort", "argsort", "sort"]


class ArgSort(Op):
    """int64 indices sorting ``x`` (at least 1-d) along its last axis, stable, NaN last."""

    __props__ = ()

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.ndim == 0 or x.dtype.startswith("complex"):
            raise TypeError(f"ArgSort: x must be a real array of at least one dimension, got {x.type}")
        return Apply(self, [x], [TensorType("int64", x.type.shape)()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.argsort(inputs[0], axis=-1, kind="stable").astype(np.int64)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        return [grad_undefined_for_discrete(inputs[0])]


def _check(kind, order, opname):
    if kind not in (None, "quicksort", "mergesort", "heapsort", "stable"):
        raise ValueError(f"{opname}: kind must be one of 'quicksort', 'mergesort', 'heapsort', "
                         f"'stable' or None, got {kind!r}")
    if order is not None:
        raise ValueError(f"{opname}: order (sorting structured arrays by field) is not supported")


def _last(a, axis, opname):
    """(``a`` with ``axis`` moved last, the pattern moving it back); ``axis=None``: ``a``
    flattened (pattern None)."""
    a = as_tensor_variable(a)
    if a.dtype.startswith("complex"):
        raise TypeError(f"{opname}: a must be real, got {a.type}")
    if axis is None:
        return a.flatten(), None
    normalized = _single_axis(axis, a.ndim, opname)
    if normalized is None:
        raise ValueError(f"{opname}: a 0-d array has no axis {axis}; use axis=None")
    order = [d for d in range(a.ndim) if d != normalized] + [normalized]
    back = [order.index(d) for d in range(a.ndim)]
    return a.dimshuffle(*order), back


def argsort(a, axis=-1, kind=None, order=None):
    """The int64 indices that sort ``a`` along ``axis`` (None: flattened): equal elements in
    the order they come, NaN last, whatever ``kind`` says (every kind gives that order)."""
    _check(kind, order, "argsort")
    moved, back = _last(a, axis, "argsort")
    out = ArgSort()(moved)
    return out if back is None else out.dimshuffle(*back)


def sort(a, axis=-1, kind=None, order=None):
    """``a`` sorted along ``axis`` (None: flattened), NaN last; differentiable (the gradient
    of each output element goes to the input element it came from)."""
    from theanine.tensor.basic import arange, concatenate
    from theanine.tensor.math import prod
    from theanine.tensor.shape import reshape, shape
    _check(kind, order, "sort")
    moved, back = _last(a, axis, "sort")
    sizes = shape(moved)
    n = sizes[-1]
    leading = sizes[:-1]
    rows = reshape(arange(prod(leading, dtype="int64"), dtype="int64") * n,
                   concatenate([leading, [1]]), ndim=moved.ndim)
    out = moved.flatten()[rows + ArgSort()(moved)]
    return out if back is None else out.dimshuffle(*back)
