"""Graph rewriting: the engine and the passes that run when a function is compiled.

Phases, in order: merge (CSE) and constant folding, canonicalize (exact
algebraic identities), stabilize (numerically stable forms), specialize
(cheaper forms), then merge once more. Native modes start with the ``native``
phase (ops without kernels of their own, such as random draws, expanded into
ordinary tensor ops: ``rewriting.random_draws``) and end with elementwise fusion
(``rewriting.fusion``), which groups elementwise nodes into kernels.
"""

from theanine.rewriting.engine import (PHASES, LocalRewrite, RewriteDB, apply_to_equilibrium,
                                       register_rewrite, rewrite_db)
from theanine.rewriting.merge import merge
# Importing the pass modules registers their rewrites.
from theanine.rewriting import constant_folding  # noqa: F401
from theanine.rewriting import canonicalize, specialize, stabilize  # noqa: F401
from theanine.rewriting import (lower_conv, lower_loops, lower_ops, lowering, nnet, random_draws,  # noqa: F401
                                scan_invariants, scan_merge, shape_only)

_FAST_COMPILE_PHASES = ("constant_folding",)
#: modes whose graphs are fused into native kernels
NATIVE_MODES = ("llvm", "c", "cuda")
#: phases that only native modes run, before the others
NATIVE_PHASES = ("native",)


def rewrite_graph(fgraph, mode="py", include=None, exclude=()):
    """Rewrite ``fgraph`` in place for ``mode``; returns it. The log is ``fgraph.rewrite_log``."""
    if include:
        phases = include
    elif mode == "FAST_COMPILE":
        phases = _FAST_COMPILE_PHASES
    else:
        phases = (NATIVE_PHASES if mode in NATIVE_MODES else ()) + PHASES
    if mode == "cuda":
        exclude = tuple(exclude) + (lowering.CPU_ONLY,)
    merge(fgraph)
    for phase in phases:
        if apply_to_equilibrium(fgraph, rewrite_db.query(phase, exclude=exclude), phase):
            merge(fgraph)  # only a changed graph can have new duplicates
    if mode in NATIVE_MODES and "fusion" not in exclude:
        from theanine.rewriting.fusion import fuse_elementwise, fuse_reductions
        fuse_elementwise(fgraph)
        fuse_reductions(fgraph)
    return fgraph


__all__ = ["LocalRewrite", "RewriteDB", "apply_to_equilibrium", "register_rewrite", "rewrite_db",
           "merge", "rewrite_graph", "PHASES"]
