"""FunctionGraph: a graph being compiled, with client lists and replacement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from theanine.graph.basic import Apply, Constant, Variable, user_frame
from theanine.graph.traversal import toposort as _toposort


@dataclass
class RewriteRecord:
    """One replacement made while rewriting: which rewrite, what, by what."""

    rewrite: str
    old: str
    new: str
    phase: str = ""

    def __str__(self):
        return f"[{self.phase}] {self.rewrite}: {self.old} -> {self.new}"


class FunctionGraph:
    """The subgraph from ``inputs`` to ``outputs``, owned for rewriting.

    It keeps, for every variable, its clients (the (node, input index) pairs
    that use it), so a rewrite can replace a variable everywhere at once.
    Output ``i`` is recorded as client ``("output", i)``. Each variable's clients
    are an insertion-ordered dict used as a set (iterate it for the pairs), so
    dropping one client costs O(1) even for a variable with very many.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable]):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.clients: dict[Variable, dict] = {}
        self.apply_nodes: set[Apply] = set()
        self.variables: set[Variable] = set()
        self.rewrite_log: list[RewriteRecord] = []
        self.phase = ""
        self._listeners = []
        # where the graph is compiled: nodes a rewrite creates get this trace, and take the
        # trace of the expression they replace instead (errors point at the user's line)
        self._trace = user_frame()
        for inp in self.inputs:
            if inp.owner is not None:
                raise ValueError(f"FunctionGraph: input {inp} is computed by {inp.owner.op}; "
                                 "inputs must be free variables")
            self._add_variable(inp)
        for node in _toposort(self.outputs, blockers=self.inputs):
            self._import_node(node)
        for i, out in enumerate(self.outputs):
            self._add_variable(out)
            self.clients[out][("output", i)] = None
        self._check_inputs_complete()

    def _check_inputs_complete(self):
        inputs = set(self.inputs)
        for node in self.apply_nodes:
            for v in node.inputs:
                if v.owner is None and v not in inputs and not isinstance(v, Constant):
                    raise ValueError(
                        f"FunctionGraph: the graph needs the input {v!s} ({v.type}), which was "
                        "not given in the inputs list (pass it, or a value for it via givens)")

    def _add_variable(self, v: Variable):
        if v not in self.variables:
            self.variables.add(v)
            self.clients.setdefault(v, {})

    def _import_node(self, node: Apply):
        if node in self.apply_nodes:
            return
        self.apply_nodes.add(node)
        for i, inp in enumerate(node.inputs):
            self._add_variable(inp)
            self.clients[inp][(node, i)] = None
        for out in node.outputs:
            self._add_variable(out)

    def _import_graph(self, var: Variable, trace=None):
        # Walk up only as far as the variables already in the graph, so a replacement
        # costs the size of the new subgraph, not of the whole graph. New nodes made while
        # compiling (their trace is the compile call's) inherit ``trace``.
        if var in self.variables:
            return
        known, seen, stack = [], set(), [var]
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if v in self.variables:
                known.append(v)
            elif v.owner is not None:
                stack.extend(v.owner.inputs)
        for node in _toposort([var], blockers=known):
            if node not in self.apply_nodes:
                if trace is not None and self._trace is not None:
                    for item in [node] + node.outputs:
                        if getattr(item.tag, "trace", None) in (None, self._trace):
                            item.tag.trace = trace
                self._import_node(node)
                for listener in self._listeners:
                    listener("import", node)

    def _prune(self, var: Variable):
        """Remove nodes no longer used by anything, starting from ``var``."""
        stack = [var]
        while stack:
            v = stack.pop()
            if self.clients.get(v) or v in self.inputs or v.owner is None:
                continue
            node = v.owner
            if node not in self.apply_nodes or any(self.clients.get(o) for o in node.outputs):
                continue
            self.apply_nodes.discard(node)
            for listener in self._listeners:
                listener("prune", node)
            for o in node.outputs:
                self.variables.discard(o)
                self.clients.pop(o, None)
            for i, inp in enumerate(node.inputs):
                cl = self.clients.get(inp)
                if cl is not None:
                    cl.pop((node, i), None)
                    stack.append(inp)

    def add_listener(self, fn):
        """Call ``fn(event, node)`` on 'import', 'prune' and 'change' events."""
        self._listeners.append(fn)

    def remove_listener(self, fn):
        self._listeners.remove(fn)

    def replace(self, old: Variable, new: Variable, reason: str = "", validate=True):
        """Make every client of ``old`` use ``new`` instead."""
        if old is new:
            return
        if validate and old.type != new.type:
            converted = getattr(old.type, "convert_variable", lambda v: None)(new)
            if converted is None:
                raise TypeError(f"replace ({reason}): {old} has type {old.type}, "
                                f"replacement {new} has type {new.type}")
            new = converted
        self._import_graph(new, getattr(old.tag, "trace", None))
        self._add_variable(new)
        for client, i in list(self.clients.get(old, {})):
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new
                for listener in self._listeners:
                    listener("change", client)
            self.clients[new][(client, i)] = None
        self.clients[old] = {}
        if reason:
            self.rewrite_log.append(RewriteRecord(reason, _describe(old), _describe(new), self.phase))
        self._prune(old)

    def replace_all(self, pairs, reason=""):
        for old, new in pairs:
            self.replace(old, new, reason)

    def toposort(self) -> list[Apply]:
        """The nodes in an order where each comes after the nodes it depends on."""
        return _toposort(self.outputs, blockers=self.inputs)

    def __str__(self):
        return f"FunctionGraph({', '.join(map(str, self.outputs))})"


def _describe(v: Variable) -> str:
    if v.owner is None:
        return str(v)
    node = v.owner
    args = ", ".join(str(i) if i.owner is None else str(i.owner.op) for i in node.inputs)
    return f"{node.op}({args})"
