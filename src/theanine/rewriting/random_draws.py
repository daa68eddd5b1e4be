"""Random draws expanded into ordinary tensor ops, so that native back ends compile them.

Runs in the ``native`` phase, which only native modes (llvm, c, cuda) run, first: the
reference executor keeps each draw's ``perform``.
"""

from __future__ import annotations

from theanine.rewriting.engine import register_rewrite
from theanine.tensor.random.expand import expand_draw
from theanine.tensor.random.op import RandomDraw


@register_rewrite("native", tracks=(RandomDraw,))
def expand_random_draw(fgraph, node):
    """draw(state, size, *params) -> (new state, sample) as integer and float elementwise ops
    over an arange (Philox4x32-10 and the sampler, see tensor.random.expand): the same numbers
    as the draw's perform; uniform, normal, binomial, multinomial and choice with replacement
    (permutation and choice without replacement stay)"""
    return expand_draw(node)
