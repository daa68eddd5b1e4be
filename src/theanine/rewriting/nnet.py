"""Rewrites of the neural-network ops.

Stabilize: compositions that lose everything in floating point (the log of a
softmax that underflowed, a cross-entropy of a saturated sigmoid, and the
gradients of both) are replaced by forms that stay finite and accurate.
These rewrites also see the gradient graphs, which ``grad`` builds from the
ops' own gradient ops (``SoftmaxGrad``, ``CrossentropyCategorical1HotGrad``,
``BinaryCrossentropyGrad``) so that they can be recognised here.

Specialize: every ``ExpandableOp`` left (softmax, log-softmax, the
cross-entropies and their gradients) is expanded into elementwise ops and
reductions, which native modes fuse into kernels.
"""

from __future__ import annotations

from theanine import scalar as ts
from theanine.rewriting.canonicalize import elemwise_inputs, is_constant_value
from theanine.rewriting.engine import register_rewrite
from theanine.tensor import math as tm
from theanine.tensor.elemwise import DimShuffle, Elemwise, SumTo
from theanine.tensor.nnet.expandable import ExpandableOp
from theanine.tensor.nnet.losses import (BinaryCrossentropy, BinaryCrossentropyGrad,
                                         CrossentropyCategorical1Hot, CrossentropyCategorical1HotGrad,
                                         label_mask, n_classes_of, sigmoid_binary_crossentropy,
                                         values_at_labels)
from theanine.tensor.nnet.softmax import LogSoftmax, Softmax, SoftmaxGrad


def _as_output(node, new, i=0):
    """``new`` in the dtype of ``node``'s output ``i``."""
    return tm.cast(new, node.outputs[i].dtype)


def _softmax_of(v, last_axis=False):
    """(x, axis) when ``v`` is softmax(x) (over the last axis only, with ``last_axis``), else None."""
    node = v.owner
    if node is None or not isinstance(node.op, Softmax):
        return None
    if last_axis and node.op.axis != (v.ndim - 1,):
        return None
    return node.inputs[0], node.op.axis


def _broadcast_like(g, like):
    """``g`` broadcast to the shape of an elementwise op of ``g`` and ``like``."""
    if g.type.shape == like.type.shape and None not in g.type.shape:
        return g
    return tm.second(like, g)


# --- stabilize ----------------------------------------------------------------------------


@register_rewrite("stabilize", tracks=(Elemwise(ts.log),))
def log_softmax_from_log(fgraph, node):
    """log(softmax(x, axis)) -> log_softmax(x, axis)"""
    found = _softmax_of(node.inputs[0])
    if found is None:
        return None
    x, axis = found
    return [_as_output(node, LogSoftmax(axis)(x))]


@register_rewrite("stabilize", tracks=(SoftmaxGrad,))
def log_softmax_grad(fgraph, node):
    """SoftmaxGrad(g / sm, sm) -> g - sm * sum(g, axis)  (the gradient of log(softmax(x)))

    Also through the SumTo that broadcasting puts around g / sm:
    SoftmaxGrad(sum_to(g / sm, sm), sm) -> sum_to(g, sm) - sm * sum(sum_to(g, sm), axis).
    The left side divides by sm, which underflows to 0 for very negative logits."""
    dy, sm = node.inputs
    inner, wrapped = dy, False
    if dy.owner is not None and isinstance(dy.owner.op, SumTo) and dy.owner.inputs[1] is sm:
        inner, wrapped = dy.owner.inputs[0], True
    terms = elemwise_inputs(inner, ts.true_div)
    if terms is None or terms[1] is not sm:
        return None
    g = _broadcast_like(terms[0], sm)
    if wrapped:
        g = SumTo()(g, sm)
    axis = node.op.axis
    return [_as_output(node, g - sm * tm.sum(g, axis, keepdims=True))]


@register_rewrite("stabilize", tracks=(CrossentropyCategorical1Hot,))
def crossentropy_softmax_1hot(fgraph, node):
    """crossentropy_categorical_1hot(softmax(x), y) -> -log_softmax(x)[..., y]

    (softmax over the last axis, the classes). log_softmax stays finite where the softmax
    of a label underflows to 0 and its log would be inf."""
    p, y = node.inputs
    found = _softmax_of(p, last_axis=True)
    if found is None:
        return None
    x, axis = found
    return [_as_output(node, -values_at_labels(LogSoftmax(axis)(x), y, n_classes_of(x)))]


@register_rewrite("stabilize", tracks=(SoftmaxGrad,))
def crossentropy_softmax_1hot_grad(fgraph, node):
    """SoftmaxGrad(CrossentropyCategorical1HotGrad(gz, sm, y), sm) -> gz * (sm - one_hot(y))

    for sm = softmax(x) over the last axis: the gradient of the cross-entropy in the
    logits, without the division by the label's probability."""
    dy, sm = node.inputs
    if dy.owner is None or not isinstance(dy.owner.op, CrossentropyCategorical1HotGrad):
        return None
    gz, p, y = dy.owner.inputs
    found = _softmax_of(sm, last_axis=True)
    if p is not sm or found is None:
        return None
    mask = label_mask(y, n_classes_of(found[0]))
    gz = gz.dimshuffle(*range(gz.ndim), "x")
    return [_as_output(node, gz * (sm - tm.cast(mask, sm.dtype)))]


def _sigmoid_input(v):
    """x when ``v`` is sigmoid(x), or a DimShuffle of it (the DimShuffle moved onto x)."""
    shuffle = None
    if v.owner is not None and isinstance(v.owner.op, DimShuffle):
        shuffle, v = v.owner.op, v.owner.inputs[0]
    x = elemwise_inputs(v, ts.sigmoid)
    if x is None:
        return None
    return shuffle(x[0]) if shuffle is not None else x[0]


@register_rewrite("stabilize", tracks=(BinaryCrossentropy,))
def binary_crossentropy_of_sigmoid(fgraph, node):
    """binary_crossentropy(sigmoid(x), t) -> sigmoid_binary_crossentropy(x, t)

    The left side is -(t * log(s) + (1 - t) * log(1 - s)) with s rounded to 0 or 1 for
    large |x|, which gives inf; the right side is x * (1 - t) + softplus(-x) for x > 0
    and softplus(x) - x * t elsewhere, finite for every finite x."""
    p, t = node.inputs
    x = _sigmoid_input(p)
    if x is None:
        return None
    return [_as_output(node, sigmoid_binary_crossentropy(tm.cast(x, p.dtype), t))]


#: the most factors of a product that sigmoid_binary_crossentropy_grad looks at (the
#: sigmoid's derivative makes three; the bound keeps long products linear to scan)
MAX_FACTORS = 8


def _mul_factors(v):
    """The factors of a tree of elementwise multiplications computing ``v`` (a product
    with more than MAX_FACTORS factors keeps its deeper subproducts whole)."""
    factors, stack = [], [v]
    while stack:
        u = stack.pop()
        terms = elemwise_inputs(u, ts.mul)
        if terms is None or len(factors) + len(stack) + len(terms) > MAX_FACTORS:
            factors.append(u)
        else:
            stack.extend(reversed(terms))
    return factors


def _bce_grad_of(f):
    """(gz, s, t, wrapped) when ``f`` is BinaryCrossentropyGrad(gz, s, t), possibly inside
    the SumTo(., s) that broadcasting adds, else None."""
    wrapped = f.owner is not None and isinstance(f.owner.op, SumTo)
    inner = f.owner.inputs[0] if wrapped else f
    if inner.owner is None or not isinstance(inner.owner.op, BinaryCrossentropyGrad):
        return None
    gz, s, t = inner.owner.inputs
    if wrapped and f.owner.inputs[1] is not s:
        return None
    return gz, s, t, wrapped


def _is_one_minus(f, s, x):
    """Whether ``f`` is 1 - s, or sigmoid(-x) (what 1 - sigmoid(x) is rewritten into)."""
    terms = elemwise_inputs(f, ts.sub)
    if terms is not None and terms[1] is s and is_constant_value(terms[0], 1):
        return True
    inner = elemwise_inputs(f, ts.sigmoid)
    if inner is None:
        return False
    negated = elemwise_inputs(inner[0], ts.neg)
    return negated is not None and negated[0] is x


@register_rewrite("stabilize", tracks=(Elemwise(ts.mul),))
def sigmoid_binary_crossentropy_grad(fgraph, node):
    """BinaryCrossentropyGrad(gz, s, t) * s * (1 - s) -> gz * (s - t), for s = sigmoid(x)

    The gradient of binary_crossentropy(sigmoid(x), t) in x: the first factor is
    gz * (s - t) / (s * (1 - s)), the others are the sigmoid's derivative. For large |x|
    s * (1 - s) is 0 and the product 0 * inf; the right side is exact. Also through the
    SumTo that broadcasting puts around the first factor, and with 1 - s already
    rewritten into sigmoid(-x)."""
    factors = _mul_factors(node.outputs[0])
    for k, f in enumerate(factors):
        found = _bce_grad_of(f)
        if found is None:
            continue
        gz, s, t, wrapped = found
        x = elemwise_inputs(s, ts.sigmoid)
        if x is None:
            continue
        rest = factors[:k] + factors[k + 1:]
        if s not in rest:
            continue
        rest.remove(s)
        one_minus = next((r for r in rest if _is_one_minus(r, s, x[0])), None)
        if one_minus is None:
            continue
        rest.remove(one_minus)
        core = gz * (s - tm.cast(t, s.dtype))
        if wrapped:
            core = SumTo()(core, s)
        return [_as_output(node, tm.mul(core, *rest))]
    return None


# --- specialize ---------------------------------------------------------------------------


@register_rewrite("specialize", tracks=(ExpandableOp,))
def expand_nnet_ops(fgraph, node):
    """op(inputs) -> op.expand(inputs), for the softmax, log-softmax and cross-entropy ops
    and their gradient ops: the same computation as elementwise ops and reductions."""
    outputs = node.op.expand(*node.inputs)
    return [_as_output(node, out, i) for i, out in enumerate(outputs)]
