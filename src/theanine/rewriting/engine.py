"""The rewrite engine: local rewrites applied to equilibrium, in named phases.

A local rewrite is a function ``rewrite(fgraph, node)`` returning None (no
change) or a list of replacement variables, one per output of ``node``
(or a dict {old output: new variable}). Rewrites are registered with tags
(the phases they belong to) and the op types they look at (``tracks``), so
the engine calls each rewrite only on the nodes it can change.

Every application is logged in ``fgraph.rewrite_log``. The engine always
terminates: the number of applications per phase is bounded, relative to the
graph's size.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from theanine.graph.basic import Op

#: the rewriting phases, in the order they run
PHASES = ("canonicalize", "stabilize", "specialize")


@dataclass
class LocalRewrite:
    """A named local rewrite with the phases (tags) it runs in and the ops it tracks."""

    name: str
    fn: Callable
    tags: tuple
    tracks: tuple = ()
    doc: str = ""

    def __call__(self, fgraph, node):
        return self.fn(fgraph, node)

    def applies_to(self, node) -> bool:
        return self.tracks_op(node.op)

    def tracks_op(self, op) -> bool:
        """Whether this rewrite looks at nodes of ``op`` (it depends on the op alone)."""
        if not self.tracks:
            return True
        for t in self.tracks:
            if isinstance(t, type):
                if isinstance(op, t):
                    return True
            elif isinstance(t, Op):  # an op instance (ops are callable: test it before callable)
                if op == t:
                    return True
            elif callable(t):
                if t(op):
                    return True
            elif op == t:
                return True
        return False


@dataclass
class RewriteDB:
    """All registered local rewrites, queried by tag."""

    rewrites: list = field(default_factory=list)

    def register(self, rewrite: LocalRewrite):
        if any(r.name == rewrite.name for r in self.rewrites):
            raise ValueError(f"a rewrite named {rewrite.name!r} is already registered")
        self.rewrites.append(rewrite)

    def query(self, *tags, exclude=()) -> list:
        return [r for r in self.rewrites
                if any(t in r.tags for t in tags) and not any(e in r.tags for e in exclude)
                and r.name not in exclude]

    def get(self, name):
        for r in self.rewrites:
            if r.name == name:
                return r
        raise KeyError(name)


rewrite_db = RewriteDB()


def register_rewrite(*tags, tracks=(), name=None):
    """Decorator: register ``fn(fgraph, node)`` as a local rewrite under ``tags``."""

    def deco(fn):
        rw = LocalRewrite(name or fn.__name__, fn, tuple(tags), tuple(tracks), (fn.__doc__ or "").strip())
        rewrite_db.register(rw)
        fn.rewrite = rw
        return fn

    return deco


class ApplyBudgetExceeded(RuntimeWarning):
    """A phase hit its bound on rewrite applications and stopped early."""


def apply_to_equilibrium(fgraph, rewrites, phase="", max_factor=20):
    """Apply ``rewrites`` until none changes the graph (or the application budget runs out)."""
    if not rewrites:
        return 0
    fgraph.phase = phase
    queue = deque(fgraph.toposort())
    queued = set(queue)

    def listener(event, node):
        if event in ("import", "change") and node not in queued:
            queue.append(node)
            queued.add(node)

    by_op = {}

    def rewrites_for(op):
        """The rewrites tracking ``op``, computed once per distinct op."""
        try:
            found = by_op.get(op)
        except TypeError:  # an op with unhashable parameters
            return [rw for rw in rewrites if rw.tracks_op(op)]
        if found is None:
            found = by_op[op] = [rw for rw in rewrites if rw.tracks_op(op)]
        return found

    fgraph.add_listener(listener)
    budget = max_factor * (len(fgraph.apply_nodes) + 10)
    applied = 0
    try:
        while queue:
            node = queue.popleft()
            queued.discard(node)
            for rw in rewrites_for(node.op):
                if node not in fgraph.apply_nodes:
                    break
                result = rw(fgraph, node)
                if result is None or result is False:
                    continue
                pairs = list(result.items()) if isinstance(result, dict) else list(zip(node.outputs, result))
                pairs = [(old, new) for old, new in pairs if new is not None and new is not old]
                if not pairs:
                    continue
                for old, new in pairs:
                    if old in fgraph.variables:
                        for client, _ in list(fgraph.clients.get(old, ())):
                            if client != "output" and client not in queued:
                                queue.append(client)
                                queued.add(client)
                        fgraph.replace(old, new, reason=rw.name)
                applied += 1
                if applied >= budget:
                    warnings.warn(f"rewriting phase {phase!r} stopped after {applied} applications "
                                  f"(graph of {len(fgraph.apply_nodes)} nodes)", ApplyBudgetExceeded)
                    return applied
                break
    finally:
        fgraph.remove_listener(listener)
    return applied
