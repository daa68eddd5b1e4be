"""Values read only for their shape are not computed.

Gradients reduce an incoming gradient to the shape of each input an elementwise op
broadcast (``SumTo(g, x)``), reading nothing of ``x`` but its sizes. When nothing
else needs ``x`` (in a scan's backward step, ``x`` is often a forward product
recomputed only for this), ``SumTo(g, x)`` becomes ``SumToShape(g, *sizes of x)``
with the sizes derived from the shapes of what ``x`` is computed from, and the
computation of ``x`` goes. The derivation is exact, empty dimensions included:
elementwise broadcasting, DimShuffle, matrix products, SumTo; other ops stop it.

These rewrites run in the ``native`` phase of the CPU modes (the GPU program runs
``SumTo`` on the device, ``SumToShape`` would run on the host).
"""

from __future__ import annotations

from theanine.rewriting.engine import register_rewrite
from theanine.rewriting.lowering import CPU_ONLY
from theanine.rewriting.lowering import PHASE
from theanine.tensor.elemwise import DimShuffle, Elemwise, SumTo, SumToShape
from theanine.tensor.math import Dot

@register_rewrite(PHASE, CPU_ONLY, tracks=(SumTo,))
def sum_to_sizes(fgraph, node):
    """sum_to(g, x) -> sum_to_shape(g, *sizes of x) when x is computed for nothing else"""
    g, x = node.inputs
    if x.owner is None or any(client != (node, 1) for client in _clients(fgraph, x)):
        return None
    sizes = derived_shape(x.owner.outputs.index(x), x.owner, {})
    if sizes is None:
        return None
    return [SumToShape()(g, *sizes)]


def _clients(fgraph, var) -> list:
    """(node, input index) for each use of ``var``; ("output", i) for a graph output."""
    return list(fgraph.clients.get(var, {}))


def derived_shape(k, node, memo):
    """The sizes of output ``k`` of ``node`` as integer scalars (or ints) computed from the
    shapes of the graph's inputs and of values no exact rule covers, never from the
    values this output depends on through the rules; None when no rule covers ``node``."""
    op = node.op
    if isinstance(op, Elemwise):
        shapes = [_shape_of(v, memo) for v in node.inputs]
        return [_broadcast(dims) for dims in zip(*shapes)]
    if isinstance(op, DimShuffle):
        xs = _shape_of(node.inputs[0], memo)
        return [1 if d == "x" else xs[d] for d in op.new_order]
    if isinstance(op, Dot) and all(v.ndim in (1, 2) for v in node.inputs):
        sa, sb = (_shape_of(v, memo) for v in node.inputs)
        return sa[:-1] + sb[1:]
    if isinstance(op, SumTo):
        return _shape_of(node.inputs[1], memo)
    if isinstance(op, SumToShape):
        return list(node.inputs[1:])
    return None


def _shape_of(var, memo) -> list:
    """The sizes of ``var``: static ones as ints, then by ``derived_shape``, else read."""
    if var not in memo:
        from theanine.tensor.shape import shape_i
        sizes = derived_shape(var.owner.outputs.index(var), var.owner, memo) if var.owner else None
        if sizes is None:
            sizes = [shape_i(var, d) for d in range(var.ndim)]
        memo[var] = [n if s is None else s for n, s in zip(sizes, var.type.shape)]
    return memo[var]


def _broadcast(dims):
    """The size NumPy broadcasting gives sizes ``dims``: the first that is not 1, or 1."""
    from theanine.tensor.math import eq, switch
    dims = [d for d in dims if not (isinstance(d, int) and d == 1)]
    if not dims:
        return 1
    out = dims[-1]
    for d in reversed(dims[:-1]):
        out = d if isinstance(d, int) else switch(eq(d, 1), out, d)
    return out
