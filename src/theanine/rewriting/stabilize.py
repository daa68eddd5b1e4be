"""Stabilize: numerically dangerous forms rewritten into stable ones.

Each rewrite states an identity that holds in exact arithmetic; the rewritten
form keeps its accuracy where the original overflows, underflows or cancels.
``log(1 - sigmoid(x))`` needs no rewrite of its own: ``one_minus_sigmoid``
turns it into ``log(sigmoid(-x))``, which ``log_sigmoid`` turns into
``-softplus(x)``.
"""

from __future__ import annotations

from theanine import scalar as ts
from theanine.graph.traversal import ancestors
from theanine.rewriting.canonicalize import elemwise_inputs, is_constant_value, replacement
from theanine.rewriting.engine import register_rewrite
from theanine.tensor import math as tm
from theanine.tensor.elemwise import DimShuffle, Elemwise


def _neg(x, dtype):
    """-x in ``dtype`` (a float: negating unsigned or extreme integers wraps around),
    without stacking a second negation on a negation."""
    inner = elemwise_inputs(x, ts.neg)
    if inner is not None and x.dtype == dtype:
        return inner[0]
    return tm.neg(tm.cast(x, dtype))


@register_rewrite("stabilize", tracks=(Elemwise(ts.log),))
def log_one_plus(fgraph, node):
    """log(1 + x) -> log1p(x) and log(x + 1) -> log1p(x)"""
    arg = node.inputs[0]
    terms = elemwise_inputs(arg, ts.add)
    if terms is None:
        return None
    for x, c in (terms, terms[::-1]):
        if is_constant_value(c, 1):
            return replacement(node, tm.log1p(tm.cast(x, arg.dtype)))
    return None


@register_rewrite("stabilize", tracks=(Elemwise(ts.sub),))
def exp_minus_one(fgraph, node):
    """exp(x) - 1 -> expm1(x)"""
    e, c = node.inputs
    x = elemwise_inputs(e, ts.exp)
    if x is None or not is_constant_value(c, 1):
        return None
    return replacement(node, tm.expm1(x[0]))


@register_rewrite("stabilize", tracks=(Elemwise(ts.sub),))
def one_minus_sigmoid(fgraph, node):
    """1 - sigmoid(x) -> sigmoid(-x)"""
    c, s = node.inputs
    x = elemwise_inputs(s, ts.sigmoid)
    if x is None or not is_constant_value(c, 1):
        return None
    return replacement(node, tm.sigmoid(_neg(x[0], s.dtype)))


@register_rewrite("stabilize", tracks=(Elemwise(ts.log),))
def log_sigmoid(fgraph, node):
    """log(sigmoid(x)) -> -softplus(-x)"""
    s = node.inputs[0]
    x = elemwise_inputs(s, ts.sigmoid)
    if x is None:
        return None
    return replacement(node, tm.neg(tm.softplus(_neg(x[0], s.dtype))))


def _is_shifted_by_its_max(v) -> bool:
    """Whether ``v`` is ``x - m`` with ``m`` computed from ``max(x)`` (logsumexp's own inner sum)."""
    terms = elemwise_inputs(v, ts.sub)
    if terms is None:
        return False
    x, m = terms
    return any(a.owner is not None and isinstance(a.owner.op, tm.Reduce) and a.owner.op.kind == "max"
               and a.owner.inputs[0] is x for a in ancestors([m], blockers=[x]))


@register_rewrite("stabilize", tracks=(Elemwise(ts.log),))
def log_sum_exp(fgraph, node):
    """log(sum(exp(x), axis)) -> logsumexp(x, axis), also through a dimshuffle (keepdims)"""
    total = node.inputs[0]
    shuffle = None  # log is elementwise: log(dimshuffle(s)) = dimshuffle(log(s))
    if total.owner is not None and isinstance(total.owner.op, DimShuffle):
        shuffle, total = total.owner.op, total.owner.inputs[0]
    if total.owner is None or not isinstance(total.owner.op, tm.Reduce) or total.owner.op.kind != "sum":
        return None
    exps = total.owner.inputs[0]
    x = elemwise_inputs(exps, ts.exp)
    if x is None or _is_shifted_by_its_max(x[0]):
        return None
    out = tm.logsumexp(tm.cast(x[0], exps.dtype), total.owner.op.axis)
    return replacement(node, shuffle(out) if shuffle is not None else out)
