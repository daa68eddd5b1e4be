"""Merge (common subexpression elimination): identical computations are computed once.

Two nodes merge when they apply equal ops (``__props__`` equality) to the same
inputs; two constants merge when their type and value are equal.
"""

from __future__ import annotations

from theanine.graph.basic import Constant


def merge(fgraph) -> int:
    """Merge equal constants and equal nodes of ``fgraph``; returns how many were merged."""
    fgraph.phase = "merge"
    merged = 0
    constants = {}
    for var in list(fgraph.variables):
        if isinstance(var, Constant) and var in fgraph.variables:
            try:
                key = var.signature()
                hash(key)
            except TypeError:
                continue
            other = constants.setdefault(key, var)
            if other is not var and fgraph.clients.get(var):
                fgraph.replace(var, other, reason="merge_constants")
                merged += 1
    seen = {}
    for node in fgraph.toposort():
        if node not in fgraph.apply_nodes:
            continue
        try:
            key = (node.op, tuple(id(i) for i in node.inputs))
            hash(key)
        except TypeError:
            continue
        other = seen.get(key)
        if other is None or other is node:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, other.outputs):
            if old in fgraph.variables:
                fgraph.replace(old, new, reason="merge")
        merged += 1
    return merged
