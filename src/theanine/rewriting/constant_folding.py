"""Constant folding: nodes whose inputs are all constants are computed at compile time."""

from __future__ import annotations

from theanine.graph.basic import Constant
from theanine.rewriting.engine import PHASES, register_rewrite

#: results larger than this many elements stay symbolic (a big constant bloats the graph)
MAX_FOLDED_SIZE = 10_000


@register_rewrite("constant_folding", *PHASES)  # every phase: later ones build new constant subgraphs
def constant_folding(fgraph, node):
    """op(c1, c2, ...) -> the constant value, when every input is a constant."""
    if not node.inputs or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    if getattr(node.op, "no_constant_folding", False):
        return None
    from theanine.tensor.variable import TensorConstant
    storage = [[None] for _ in node.outputs]
    try:
        node.op.perform(node, [i.data for i in node.inputs], storage)
    except Exception:  # leave it to run time, where the error gets its full context
        return None
    out = []
    for var, (value,) in zip(node.outputs, storage):
        if not hasattr(var.type, "filter") or getattr(value, "size", 0) > MAX_FOLDED_SIZE:
            return None
        try:
            data = var.type.filter(value, allow_downcast=True)
        except (TypeError, ValueError):
            return None
        out.append(TensorConstant(var.type, data.copy()))
    return out
