"""Graph rewriting: the engine and the passes that run when a function is compiled.

Phases, in order: merge (CSE) and constant folding, canonicalize (exact
algebraic identities), stabilize (numerically stable forms), specialize
(cheaper forms), then merge once more.
"""

from theanine.rewriting.engine import (LocalRewrite, RewriteDB, apply_to_equilibrium,
                                       register_rewrite, rewrite_db)
from theanine.rewriting.merge import merge
from theanine.rewriting import constant_folding  # noqa: F401  (registers its rewrite)

PHASES = ("canonicalize", "stabilize", "specialize")
_FAST_COMPILE_PHASES = ("constant_folding",)


def _load_passes():
    """Import every pass module so their rewrites are registered."""
    import importlib
    for name in ("canonicalize", "stabilize", "specialize"):
        try:
            importlib.import_module(f"theanine.rewriting.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"theanine.rewriting.{name}":
                raise


def rewrite_graph(fgraph, mode="py", include=None, exclude=()):
    """Rewrite ``fgraph`` in place for ``mode``; returns it. The log is ``fgraph.rewrite_log``."""
    _load_passes()
    phases = include or (_FAST_COMPILE_PHASES if mode == "FAST_COMPILE" else PHASES)
    merge(fgraph)
    for phase in phases:
        apply_to_equilibrium(fgraph, rewrite_db.query(phase, exclude=exclude), phase)
        merge(fgraph)
    return fgraph


__all__ = ["LocalRewrite", "RewriteDB", "apply_to_equilibrium", "register_rewrite", "rewrite_db",
           "merge", "rewrite_graph", "PHASES"]
