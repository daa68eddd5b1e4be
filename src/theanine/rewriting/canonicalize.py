"""Canonicalize: exact algebraic identities that remove work without changing results.

Every rewrite here gives the same numbers as the graph it replaces. The one
IEEE nuance is stated where it applies: ``x + 0 -> x`` keeps a ``-0.0`` that
the addition would have made ``+0.0`` (the two compare equal). The helpers at
the top are shared with the stabilize and specialize passes.
"""

from __future__ import annotations

import numpy as np

from theanine import scalar as ts
from theanine.rewriting.engine import PHASES, register_rewrite
from theanine.tensor.basic import Alloc, NotScalarConstantError, get_scalar_constant_value
from theanine.tensor.elemwise import DimShuffle, Elemwise, SumTo, dimshuffle
from theanine.tensor.math import cast
from theanine.tensor.shape import Reshape, Shape, SpecifyShape
from theanine.tensor.subtensor import IncSubtensor, Subtensor
from theanine.tensor.variable import TensorConstant, constant

# --- helpers ------------------------------------------------------------------------------


def elemwise_inputs(var, scalar_op):
    """The inputs of the Elemwise node computing ``var`` when it applies ``scalar_op``, else None."""
    node = var.owner
    if node is not None and isinstance(node.op, Elemwise) and node.op.scalar_op == scalar_op:
        return node.inputs
    return None


def constant_data(var):
    """The value of ``var`` when it is a constant (seen through DimShuffles), else None."""
    while var.owner is not None and isinstance(var.owner.op, DimShuffle):
        var = var.owner.inputs[0]
    return var.data if isinstance(var, TensorConstant) else None


def is_constant_value(var, value) -> bool:
    """Whether ``var`` is a non-empty constant whose every entry equals ``value``."""
    data = constant_data(var)
    return data is not None and data.size > 0 and bool(np.all(data == value))


def replacement(node, new):
    """``[new]`` as the replacement of ``node``'s output: cast to its dtype; None when the
    static shapes differ (a constant operand broadcast the other one to a bigger shape)."""
    out = node.outputs[0]
    if new.type.shape != out.type.shape:
        return None
    return [cast(new, out.dtype)]


def operand_besides(node, value):
    """For a binary elementwise ``node`` = op(a, b): the operand other than a constant ``value``
    (b, or a too when op is commutative), else None."""
    a, b = node.inputs
    if is_constant_value(b, value):
        return a
    if node.op.scalar_op.commutative and is_constant_value(a, value):
        return b
    return None


def is_shape_i(var, x, i) -> bool:
    """Whether ``var`` is ``shape(x)[i]``."""
    node = var.owner
    if node is None or not isinstance(node.op, Subtensor) or node.op.idx_list != (("i",),):
        return False
    vec = node.inputs[0]
    if vec.owner is None or not isinstance(vec.owner.op, Shape) or vec.owner.inputs[0] is not x:
        return False
    try:
        return get_scalar_constant_value(node.inputs[1]) in (i, i - x.ndim)
    except NotScalarConstantError:
        return False


def _is_cast(op) -> bool:
    return isinstance(op, Elemwise) and isinstance(op.scalar_op, ts.Cast)


def _is_lossless_cast(src, dst) -> bool:
    """Whether every value of dtype ``src`` is exactly representable in ``dst``."""
    s, d = np.dtype(src), np.dtype(dst)
    if not np.can_cast(s, d, casting="safe"):
        return False
    if s.kind in "iu" and d.kind in "fc":  # NumPy calls int64 -> float64 safe; it rounds
        return np.iinfo(s).bits - (s.kind == "i") <= np.finfo(d).nmant + 1
    return True


# --- arithmetic identities ----------------------------------------------------------------


@register_rewrite("canonicalize", tracks=(Elemwise(ts.mul),))
def mul_by_one(fgraph, node):
    """x * 1 -> x and 1 * x -> x"""
    x = operand_besides(node, 1)
    return None if x is None else replacement(node, x)


@register_rewrite("canonicalize", tracks=(Elemwise(ts.add),))
def add_zero(fgraph, node):
    """x + 0 -> x and 0 + x -> x (a -0.0 input gives -0.0 instead of +0.0: equal values)"""
    x = operand_besides(node, 0)
    return None if x is None else replacement(node, x)


@register_rewrite("canonicalize", tracks=(Elemwise(ts.sub),))
def sub_zero(fgraph, node):
    """x - 0 -> x"""
    x = operand_besides(node, 0)
    return None if x is None else replacement(node, x)


@register_rewrite("canonicalize", tracks=(Elemwise(ts.true_div),))
def div_by_one(fgraph, node):
    """x / 1 -> x"""
    x = operand_besides(node, 1)
    return None if x is None else replacement(node, x)


@register_rewrite("canonicalize", tracks=(Elemwise(ts.pow_),))
def pow_one(fgraph, node):
    """x ** 1 -> x"""
    x = operand_besides(node, 1)
    return None if x is None else replacement(node, x)


@register_rewrite("canonicalize", tracks=(Elemwise(ts.neg),))
def neg_neg(fgraph, node):
    """-(-x) -> x"""
    inner = elemwise_inputs(node.inputs[0], ts.neg)
    return None if inner is None else replacement(node, inner[0])


@register_rewrite("canonicalize", tracks=(Elemwise(ts.identity),))
def remove_tensor_copy(fgraph, node):
    """tensor_copy(x) -> x (graphs are functional: a copy is never needed for correctness)"""
    return [node.inputs[0]]


# --- casts ---------------------------------------------------------------------------------


@register_rewrite("canonicalize", tracks=(_is_cast,))
def remove_same_dtype_cast(fgraph, node):
    """cast(x, dtype) -> x when x already has that dtype"""
    x = node.inputs[0]
    return [x] if x.dtype == node.op.scalar_op.dtype else None


@register_rewrite("canonicalize", tracks=(_is_cast,))
def merge_lossless_casts(fgraph, node):
    """cast(cast(x, d1), d2) -> cast(x, d2) when every value of x's dtype is exact in d1"""
    inner = node.inputs[0]
    if inner.owner is None or not _is_cast(inner.owner.op):
        return None
    x = inner.owner.inputs[0]
    if not _is_lossless_cast(x.dtype, inner.dtype):
        return None
    return [cast(x, node.op.scalar_op.dtype)]


# --- shapes --------------------------------------------------------------------------------


@register_rewrite(*PHASES, tracks=(DimShuffle,))  # later phases leave some behind
def merge_dimshuffles(fgraph, node):
    """dimshuffle(dimshuffle(x, p), q) -> dimshuffle(x, [p[d] for d in q]) (x when that is the identity)"""
    inner = node.inputs[0]
    if inner.owner is None or not isinstance(inner.owner.op, DimShuffle):
        return None
    p = inner.owner.op.new_order
    return [dimshuffle(inner.owner.inputs[0], ["x" if d == "x" else p[d] for d in node.op.new_order])]


@register_rewrite(*PHASES, tracks=(DimShuffle,))  # later phases leave some behind
def remove_identity_dimshuffle(fgraph, node):
    """dimshuffle(x, p) -> x when p keeps x's type and its dimensions' order: (0, 1, ..., n-1),
    or (0, 'x') on an (n, 1) x (a size-1 dimension dropped and put back)"""
    x = node.inputs[0]
    if node.outputs[0].type != x.type or list(node.op.perm) != sorted(node.op.perm):
        return None
    return [x]


@register_rewrite("canonicalize", tracks=(Reshape,))
def merge_reshapes(fgraph, node):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2)"""
    inner = node.inputs[0]
    if inner.owner is None or not isinstance(inner.owner.op, Reshape):
        return None
    new = node.op(inner.owner.inputs[0], node.inputs[1])
    old = node.outputs[0]
    # Both types describe the same value; only how much of its shape is static may differ.
    if not (old.type.is_super(new.type) or new.type.is_super(old.type)):
        return None
    return [new]


@register_rewrite("canonicalize", tracks=(Reshape,))
def remove_noop_reshape(fgraph, node):
    """reshape(x, shape(x)) -> x, and reshape(x, s) -> x when x's static shape already is s"""
    x, shp = node.inputs
    if node.outputs[0].type == x.type and None not in x.type.shape:
        return [x]
    if shp.owner is not None and isinstance(shp.owner.op, Shape) and shp.owner.inputs[0] is x:
        return [x]
    return None


@register_rewrite("canonicalize", tracks=(SpecifyShape,))
def remove_noop_specify_shape(fgraph, node):
    """specify_shape(x, s) -> x when x's static shape already says s"""
    x = node.inputs[0]
    return [x] if node.outputs[0].type == x.type else None


@register_rewrite("canonicalize", tracks=(SumTo,))
def remove_noop_sum_to(fgraph, node):
    """sum_to(g, x) -> g when g and x have the same, fully static, shape"""
    g, x = node.inputs
    return [g] if None not in g.type.shape and g.type.shape == x.type.shape else None


@register_rewrite("canonicalize", tracks=(Shape,))
def static_shape(fgraph, node):
    """shape(x) -> constant when x's static shape is fully known"""
    shp = node.inputs[0].type.shape
    if None in shp:
        return None
    return [constant(np.asarray(shp, dtype="int64").reshape(len(shp)))]


@register_rewrite("canonicalize", tracks=(Subtensor,))
def static_shape_i(fgraph, node):
    """shape(x)[i] -> constant when dimension i of x is static"""
    vec = node.inputs[0]
    if node.op.idx_list != (("i",),) or vec.owner is None or not isinstance(vec.owner.op, Shape):
        return None
    x = vec.owner.inputs[0]
    try:
        i = get_scalar_constant_value(node.inputs[1])
    except NotScalarConstantError:
        return None
    if not -x.ndim <= i < x.ndim or x.type.shape[i] is None:
        return None
    return [constant(np.int64(x.type.shape[i]))]


@register_rewrite("canonicalize", tracks=(Alloc,))
def remove_noop_alloc(fgraph, node):
    """alloc(v, *shape) -> v when v already has that shape"""
    value, *dims = node.inputs
    out = node.outputs[0]
    if value.type != out.type:
        return None
    if all(s is not None or is_shape_i(d, value, i) for i, (s, d) in enumerate(zip(out.type.shape, dims))):
        return [value]
    return None


# --- increments of zeros ----------------------------------------------------------------------


def _increments_of(var):
    """(base, [(op, value, index inputs), ...]) when ``var`` is a chain of increments
    (IncSubtensor, not set) of a base, the first increment first; else (var, [])."""
    steps = []
    while var.owner is not None and isinstance(var.owner.op, IncSubtensor) \
            and not var.owner.op.set_instead_of_inc:
        node = var.owner
        steps.append((node.op, node.inputs[1], node.inputs[2:]))
        var = node.inputs[0]
    return var, steps[::-1]


def _is_zeros(var) -> bool:
    if var.owner is None or not isinstance(var.owner.op, Alloc):
        return False
    try:
        return get_scalar_constant_value(var.owner.inputs[0]) == 0
    except NotScalarConstantError:
        return False


@register_rewrite("canonicalize", tracks=(Elemwise(ts.add),))
def increments_of_one_zeros(fgraph, node):
    """inc(zeros, a, i) + inc(zeros, b, j) -> inc(inc(zeros, a, i), b, j) (the gradient of
    several slices of one value: one buffer takes every increment in turn)"""
    chains = [_increments_of(x) for x in node.inputs]
    base = chains[0][0]
    if len(chains) < 2 or not _is_zeros(base) or base.type != node.outputs[0].type \
            or any(b is not base or not steps for b, steps in chains):
        return None
    out = node.inputs[0]
    for _, steps in chains[1:]:
        for op, value, index in steps:
            out = op(out, value, *index)
    return [out]
