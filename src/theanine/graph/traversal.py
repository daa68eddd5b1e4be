"""Graph walks. None of them recurse, so graphs of any depth are fine."""

from __future__ import annotations

from typing import Iterable, Sequence

from theanine.graph.basic import Apply, Constant, Variable


def ancestors(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable the outputs depend on (stopping at ``blockers``), outputs first."""
    blocked = set(map(id, blockers))
    seen = set()
    order = []
    stack = list(outputs)[::-1]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        order.append(v)
        if v.owner is not None and id(v) not in blocked:
            stack.extend(reversed(v.owner.inputs))
    return order


def graph_inputs(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """The ownerless variables (inputs and constants) the outputs depend on."""
    blocked = set(map(id, blockers))
    return [v for v in ancestors(outputs, blockers) if v.owner is None or id(v) in blocked]


def toposort(outputs: Sequence[Variable], blockers: Iterable[Variable] = ()) -> list[Apply]:
    """Apply nodes computing ``outputs``, each after all nodes it depends on."""
    blocked = set(map(id, blockers))
    order: list[Apply] = []
    done: set[int] = set()
    stack: list[tuple[Apply, bool]] = []
    for out in reversed(list(outputs)):
        if out.owner is not None and id(out) not in blocked:
            stack.append((out.owner, False))
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for inp in reversed(node.inputs):
            if inp.owner is not None and id(inp) not in blocked and id(inp.owner) not in done:
                stack.append((inp.owner, False))
    return order


def clone_graph(inputs: Sequence[Variable], outputs: Sequence[Variable],
                replace: dict | None = None, copy_inputs=False):
    """Copy the subgraph between inputs and outputs.

    Returns ``(new_inputs, new_outputs, memo)``; ``replace`` maps variables to
    the variables to use in their place (applied before copying), ``memo``
    maps each old variable to its copy.
    """
    memo: dict[Variable, Variable] = {}
    for v in inputs:
        memo[v] = v.clone() if copy_inputs and not isinstance(v, Constant) else v

    def copy_nodes(roots):
        for node in toposort(roots, blockers=list(memo)):
            new_inputs = [memo.get(i, i) for i in node.inputs]
            new_node = node.clone_with_new_inputs(new_inputs)
            if new_node is node:
                new_node = Apply(node.op, new_inputs, [o.type.make_variable(o.name) for o in node.outputs])
                for new, old in zip(new_node.outputs, node.outputs):
                    new.tag = type(old.tag)(**vars(old.tag))
            for old, new in zip(node.outputs, new_node.outputs):
                memo.setdefault(old, new)

    if replace:
        # The replacements are expressed in terms of the original inputs: copy them first.
        copy_nodes(list(replace.values()))
        for old, new in replace.items():
            memo[old] = memo.get(new, new)
    copy_nodes(list(outputs))
    new_outputs = [memo.get(o, o) for o in outputs]
    return [memo[i] for i in inputs], new_outputs, memo


def clone_replace(outputs, replace: dict | None = None):
    """Copies of ``outputs`` with the variables in ``replace`` substituted."""
    single = isinstance(outputs, Variable)
    outs = [outputs] if single else list(outputs)
    replace = dict(replace or {})
    memo: dict[Variable, Variable] = dict(replace)
    for node in toposort(outs, blockers=list(replace)):
        new_inputs = [memo.get(i, i) for i in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            continue
        new_node = node.clone_with_new_inputs(new_inputs)
        for old, new in zip(node.outputs, new_node.outputs):
            memo[old] = new
    result = [memo.get(o, o) for o in outs]
    return result[0] if single else result


def is_in_ancestors(node_or_var, targets: Iterable[Variable]) -> bool:
    """Whether any of ``targets`` is among the ancestors of ``node_or_var``."""
    start = node_or_var.inputs if isinstance(node_or_var, Apply) else [node_or_var]
    wanted = set(map(id, targets))
    return any(id(v) in wanted for v in ancestors(start))
