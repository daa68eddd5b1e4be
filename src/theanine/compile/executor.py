"""The reference executor: runs a graph node by node through each op's ``perform``.

It is ``mode="py"``: exact NumPy semantics, used as the reference every native
back end is compared with.
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
                    value = _coerce(node, var, value)
                cells[c] = value
            for c in frees:
                cells[c] = None
        return [cells[c] for c in self.output_cells]


def _coerce(node, var, value):
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
