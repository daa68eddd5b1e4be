"""The reference executor: runs a graph node by node through each op's ``perform``.

It is ``mode="py"``: exact NumPy semantics, used as the reference every native
back end is compared with.

Lazy ops (``op.lazy`` true, e.g. ``theanine.ifelse.IfElse``) evaluate some
inputs only on demand: input 0 is computed first, then
``op.choose(node, value_of_input_0)`` gives the positions of the inputs that
are needed, only the nodes those inputs require are run, and ``op.perform``
gets None for the other inputs. A graph with a lazy node gets a
``LazyGraphRunner``; every other graph runs the plain loop of ``GraphRunner``.
"""

from __future__ import annotations

import functools

from theanine.graph.basic import Constant, format_trace
from theanine.graph.traversal import toposort


def _shape_of(v):
    shape = getattr(v, "shape", None)
    return tuple(shape) if shape is not None else type(v).__name__


def explain_failure(node, inputs, exc) -> str:
    """The message added to an error raised inside a node: which op, which shapes, where."""
    shapes = ", ".join(str(_shape_of(v)) for v in inputs)
    out = node.outputs[0] if node.outputs else None
    trace = getattr(out.tag, "trace", None) if out is not None else None
    return (f"{exc}\n  while running {node.op} on inputs of shapes [{shapes}]"
            f"\n  the failing expression was created at {format_trace(trace)}")


def reraise_with_context(node, inputs, exc):
    """Raise ``exc`` again, of the same type where possible, with the node's context added."""
    message = explain_failure(node, inputs, exc)
    try:
        new = type(exc)(message)
    except Exception:  # exception types with unusual constructors keep their own message
        raise exc
    new.__cause__ = exc
    new.node = node
    raise new.with_traceback(exc.__traceback__) from exc


class GraphRunner:
    """Evaluates ``outputs`` from values of ``inputs`` by calling each node's ``perform``
    (or the native thunk given for it in ``thunks``: ``thunk(input_values, output_storage)``).

    Storage cells are allocated once; intermediate values are released as soon
    as their last consumer has run.
    """

    def __new__(cls, inputs=None, outputs=None, nodes=None, thunks=None):
        if cls is GraphRunner and outputs is not None:  # (copy and pickle pass no arguments)
            order = nodes if nodes is not None else toposort(list(outputs), blockers=list(inputs))
            if any(getattr(node.op, "lazy", False) for node in order):
                cls = LazyGraphRunner
        return super().__new__(cls)

    def __init__(self, inputs, outputs, nodes=None, thunks=None):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.nodes = nodes if nodes is not None else toposort(self.outputs, blockers=self.inputs)
        index = {}

        def cell(v):
            if v not in index:
                index[v] = len(index)
            return index[v]

        for v in self.inputs:
            cell(v)
        constants = {}
        for node in self.nodes:
            for v in node.inputs:
                if isinstance(v, Constant) and v not in index:
                    constants[cell(v)] = v.data
                cell(v)
            for v in node.outputs:
                cell(v)
        for v in self.outputs:
            if isinstance(v, Constant) and v not in index:
                constants[cell(v)] = v.data
            cell(v)
        self.n_cells = len(index)
        self.cell_of = index
        self.constants = constants
        self.input_cells = [index[v] for v in self.inputs]
        self.output_cells = [index[v] for v in self.outputs]
        keep = set(self.output_cells) | set(self.input_cells) | set(constants)
        last_use = {}
        for k, node in enumerate(self.nodes):
            for v in node.inputs:
                last_use[index[v]] = k
        frees = [[] for _ in self.nodes]
        for c, k in last_use.items():
            if c not in keep:
                frees[k].append(c)
        for k, node in enumerate(self.nodes):  # outputs nobody reads
            for v in node.outputs:
                c = index[v]
                if c not in keep and c not in last_use:
                    frees[k].append(c)
        thunks = thunks or {}
        self.program = []
        for k, node in enumerate(self.nodes):
            run = thunks.get(node) or functools.partial(node.op.perform, node)
            # what each output must be: (cell, dtype, ndim, variable); native thunks are trusted
            checks = [(index[v], getattr(v.type, "numpy_dtype", None), getattr(v.type, "ndim", None),
                       v) for v in node.outputs]
            self.program.append((node, run, [index[v] for v in node.inputs], checks,
                                 node in thunks, frees[k]))

    def __call__(self, *values):
        cells = [None] * self.n_cells
        for c, data in self.constants.items():
            cells[c] = data
        for c, v in zip(self.input_cells, values):
            cells[c] = v
        for node, run, ins, checks, trusted, frees in self.program:
            args = [cells[c] for c in ins]
            storage = [[None] for _ in checks]
            try:
                run(args, storage)
            except Exception as exc:  # add where it happened, keep the type
                reraise_with_context(node, args, exc)
            for (c, dtype, ndim, var), (value,) in zip(checks, storage):
                if not trusted and (getattr(value, "dtype", None) != dtype or value.ndim != ndim):
                    value = coerce_output(node, var, value)
                cells[c] = value
            for c in frees:
                cells[c] = None
        return [cells[c] for c in self.output_cells]


class LazyGraphRunner(GraphRunner):
    """A GraphRunner for graphs with lazy nodes.

    The nodes the outputs need whatever the conditions (the eager nodes: those
    reached from the outputs without crossing a lazy node's on-demand inputs) run
    in order, as in GraphRunner. Every other node runs only when a lazy node asks
    for it, at most once per call: each (lazy node, chosen inputs) pair has its
    steps, found once. Eager values are released after their last use (a lazy
    node counts as using every eager value its on-demand nodes may read); the
    others when the call returns. Nested lazy nodes are evaluated with an explicit
    stack, so nesting depth is not limited by Python's recursion limit.
    """

    def __init__(self, inputs, outputs, nodes=None, thunks=None):
        super().__init__(inputs, outputs, nodes, thunks)
        self.position = {node: k for k, node in enumerate(self.nodes)}
        self.is_lazy = [bool(getattr(node.op, "lazy", False)) for node in self.nodes]
        self._input_set = set(self.inputs)
        self.eager = self._eager_nodes()
        self.branch_steps = {}
        index = self.cell_of
        keep = set(self.output_cells) | set(self.input_cells) | set(self.constants)
        order = [k for k, e in enumerate(self.eager) if e]
        eager_cells = {index[v] for k in order for v in self.nodes[k].outputs}
        last_use = {}
        for k in order:
            reads = [index[v] for v in self.nodes[k].inputs]
            if self.is_lazy[k]:
                reads += self._on_demand_reads(k)
            for c in reads:
                last_use[c] = k
        frees = {k: [] for k in order}
        for c, k in last_use.items():
            if c not in keep and c in eager_cells:
                frees[k].append(c)
        for k in order:  # outputs nobody reads
            for v in self.nodes[k].outputs:
                c = index[v]
                if c not in keep and c not in last_use:
                    frees[k].append(c)
        self.eager_program = [(k, frees[k]) for k in order]

    def _owner_position(self, var):
        """The position of the node computing ``var``, or None for inputs and constants."""
        if var.owner is None or var in self._input_set:
            return None
        return self.position.get(var.owner)

    def _eager_nodes(self):
        eager = [False] * len(self.nodes)
        stack = list(self.outputs)
        while stack:
            k = self._owner_position(stack.pop())
            if k is None or eager[k]:
                continue
            eager[k] = True
            node = self.nodes[k]
            stack.extend(node.inputs[:1] if self.is_lazy[k] else node.inputs)
        return eager

    def _on_demand_reads(self, k):
        """The cells of eager values that the on-demand nodes of lazy node ``k`` may read."""
        reads, seen = [], set()
        stack = list(self.nodes[k].inputs[1:])
        while stack:
            v = stack.pop()
            j = self._owner_position(v)
            if j is None:
                continue
            if self.eager[j]:
                reads.append(self.cell_of[v])
            elif j not in seen:
                seen.add(j)
                stack.extend(self.nodes[j].inputs)
        return reads

    def _steps(self, k, positions):
        """The on-demand nodes (positions in order) that inputs ``positions`` of node ``k``
        need; nested lazy nodes are included but not their own on-demand inputs."""
        key = (k, positions)
        steps = self.branch_steps.get(key)
        if steps is None:
            found = set()
            stack = [self.nodes[k].inputs[p] for p in positions]
            while stack:
                j = self._owner_position(stack.pop())
                if j is None or self.eager[j] or j in found:
                    continue
                found.add(j)
                node = self.nodes[j]
                stack.extend(node.inputs[:1] if self.is_lazy[j] else node.inputs)
            steps = self.branch_steps[key] = sorted(found)
        return steps

    def _run(self, k, cells, args=None):
        node, run, ins, checks, trusted, _ = self.program[k]
        if args is None:
            args = [cells[c] for c in ins]
        storage = [[None] for _ in checks]
        try:
            run(args, storage)
        except Exception as exc:  # add where it happened, keep the type
            reraise_with_context(node, args, exc)
        for (c, dtype, ndim, var), (value,) in zip(checks, storage):
            if not trusted and (getattr(value, "dtype", None) != dtype or value.ndim != ndim):
                value = coerce_output(node, var, value)
            cells[c] = value

    def _frame(self, k, cells):
        """[node position, chosen input positions, their steps, next step] for lazy node ``k``."""
        node = self.nodes[k]
        condition = cells[self.program[k][2][0]]
        try:
            positions = tuple(node.op.choose(node, condition))
        except Exception as exc:
            reraise_with_context(node, [condition], exc)
        return [k, positions, self._steps(k, positions), 0]

    def _evaluate_lazy(self, k, cells, done):
        frames = [self._frame(k, cells)]
        while frames:
            frame = frames[-1]
            steps, i = frame[2], frame[3]
            while i < len(steps):
                j = steps[i]
                if not done[j]:
                    if self.is_lazy[j]:
                        break
                    self._run(j, cells)
                    done[j] = True
                i += 1
            if i < len(steps):  # a nested lazy node: evaluate it first, then come back
                frame[3] = i
                frames.append(self._frame(steps[i], cells))
                continue
            j, positions = frame[0], frame[1]
            ins = self.program[j][2]
            args = [None] * len(ins)
            args[0] = cells[ins[0]]
            for p in positions:
                args[p] = cells[ins[p]]
            self._run(j, cells, args)
            done[j] = True
            frames.pop()

    def __call__(self, *values):
        cells = [None] * self.n_cells
        for c, data in self.constants.items():
            cells[c] = data
        for c, v in zip(self.input_cells, values):
            cells[c] = v
        done = [False] * len(self.nodes)
        for k, frees in self.eager_program:
            if self.is_lazy[k]:
                self._evaluate_lazy(k, cells, done)
            else:
                self._run(k, cells)
            for c in frees:
                cells[c] = None
        return [cells[c] for c in self.output_cells]


def coerce_output(node, var, value):
    """Check a value a perform() stored against the output's declared type."""
    import numpy as np
    if value is None:
        raise RuntimeError(f"{node.op}.perform did not store output {var.index}")
    if not hasattr(var.type, "numpy_dtype"):
        return value
    arr = np.asarray(value)
    if arr.ndim != var.type.ndim:
        raise TypeError(f"{node.op}.perform stored a value with {arr.ndim} dimensions for output "
                        f"{var.index}, declared as {var.type}")
    if arr.dtype != var.type.numpy_dtype:
        if not np.can_cast(arr.dtype, var.type.numpy_dtype, casting="same_kind"):
            raise TypeError(f"{node.op}.perform stored a value of dtype {arr.dtype} for output "
                            f"{var.index}, declared as {var.type}")
        arr = arr.astype(var.type.numpy_dtype)
    return arr
