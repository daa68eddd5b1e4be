"""Loop-invariant work of a scan's step done once, before the loop.

A step that multiplies by the transpose of a non-sequence, ``dot(a, W.T)`` (the
backward step of every recurrent layer has one: the gradient of ``dot(h, W)``
with respect to ``h``), hands BLAS a transposed operand at every step. For the
small products of a recurrent step OpenBLAS is twice as slow on it: 17.5 µs
against 8.4 µs for 32x128 by 128x128 in float32, where the untransposed product
takes its small-matrix kernel. ``transposes_before_the_loop`` gives the step
``W.T`` as a C-contiguous copy made once per call, a non-sequence of its own.

This runs in the ``specialize`` phase of the CPU modes (cuBLAS reads transposed
operands at no cost), after ``canonicalize`` has removed the copies users wrote.
"""

from __future__ import annotations

from theanine.graph.traversal import clone_replace
from theanine.rewriting.engine import register_rewrite
from theanine.rewriting.lowering import CPU_ONLY
from theanine.scan_module.op import Scan
from theanine.tensor.elemwise import DimShuffle, dimshuffle
from theanine.tensor.math import Dot, tensor_copy

_TRANSPOSE = (1, 0)


@register_rewrite("specialize", CPU_ONLY, tracks=(Scan,))
def transposes_before_the_loop(fgraph, node):
    """scan(..., W) whose step computes dot(., W.T) -> scan(..., W, copy(W.T)), the step's
    product reading the contiguous copy"""
    op = node.op
    step = op.fgraph
    first = op.n_seqs + op.n_states
    transposed = {}  # inner W.T -> outer W
    for j, inner in enumerate(step.inputs[first:]):
        if inner.ndim != 2 or inner.dtype not in ("float32", "float64"):
            continue
        for client, _ in step.clients.get(inner, {}):
            if (client != "output" and isinstance(client.op, DimShuffle)
                    and tuple(client.op.new_order) == _TRANSPOSE
                    and any(c != "output" and isinstance(c.op, Dot)
                            for c, _ in step.clients.get(client.outputs[0], {}))):
                transposed[client.outputs[0]] = node.inputs[op.non_seq_start + j]
    if not transposed:
        return None
    new_inner = {t: t.type() for t in transposed}
    outputs = clone_replace(list(step.outputs), new_inner)
    moved = Scan(list(step.inputs) + list(new_inner.values()), outputs, op.n_seqs, op.output_specs,
                 op.as_while, op.name, op.mode, op.truncate_gradient)
    return moved.make_node(*node.inputs, *[_contiguous_transpose(w) for w in transposed.values()]).outputs


def _contiguous_transpose(w):
    """``w.T`` as a fresh C-contiguous matrix (``w``'s own input when ``w`` is a transpose)."""
    if w.owner is not None and isinstance(w.owner.op, DimShuffle) \
            and tuple(w.owner.op.new_order) == _TRANSPOSE:
        return w.owner.inputs[0]
    return tensor_copy(dimshuffle(w, _TRANSPOSE))
