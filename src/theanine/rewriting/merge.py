"""Merge (common subexpression elimination): identical computations are computed once.

Two nodes merge when they apply equal ops (``__props__`` equality) to the same
inputs, constants counting as the same when their type and value are equal;
then the remaining equal constants merge.
"""

from __future__ import annotations

from theanine.graph.basic import Constant


def _signature(const):
    """The constant's hashable signature, or None when it has none."""
    try:
        key = const.signature()
        hash(key)
    except TypeError:
        return None
    return key


def merge(fgraph) -> int:
    """Merge equal nodes and equal constants of ``fgraph``; returns how many were merged.

    One pass in topological order: nodes are keyed with each constant input replaced
    by one representative per value, so nodes applied to equal constants merge in
    the same pass; the equal constants still in the graph are merged last.
    """
    fgraph.phase = "merge"
    merged = 0
    by_signature = {}
    representative = {}

    def canonical(var):
        if not isinstance(var, Constant):
            return var
        rep = representative.get(var)
        if rep is None:
            sig = _signature(var)
            rep = representative[var] = var if sig is None else by_signature.setdefault(sig, var)
        return rep

    order = fgraph.toposort()
    seen = {}
    for node in order:
        if node not in fgraph.apply_nodes:
            continue
        try:
            other = seen.setdefault((node.op, tuple(id(canonical(i)) for i in node.inputs)), node)
        except TypeError:  # an op with unhashable parameters never merges
            continue
        if other is node:
            continue
        for old, new in zip(node.outputs, other.outputs):
            if old in fgraph.variables:
                fgraph.replace(old, new, reason="merge")
        merged += 1
    used = [i for node in order if node in fgraph.apply_nodes for i in node.inputs]
    for var in used + list(fgraph.outputs):
        if isinstance(var, Constant) and fgraph.clients.get(var):
            rep = canonical(var)
            if rep is not var:
                fgraph.replace(var, rep, reason="merge_constants")
                merged += 1
    return merged
