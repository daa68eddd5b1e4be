"""Symbolic shapes of a Scan node's outputs, from the shapes of its inputs."""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Constant
from theanine.graph.traversal import ancestors, toposort
from theanine.scan_module.op import FINAL, HISTORY


def scan_output_shapes(op, node, shapes):
    """One shape tuple per output of ``node`` (``Scan.infer_shape``).

    A history output has ``n_steps + n_back`` rows, a stacked one ``n_steps``; a
    while loop's length is known only once it ran (then the output's own shape is
    used). A row's shape comes from the initial state, or, for a stacked output,
    from the step graph's shape rules where every op on the way has one.
    """
    from theanine.tensor.shape import shape_i
    n = node.inputs[0]
    result = []
    for o, spec in enumerate(op.output_specs):
        out = node.outputs[o]
        if spec.kind == FINAL:
            result.append(tuple(shapes[op.init_index(o)]))
            continue
        if op.as_while:
            length = shape_i(out, 0)
        else:
            length = n + spec.n_back if spec.kind == HISTORY else n
        if spec.kind == HISTORY:
            row = tuple(shapes[op.init_index(o)][1:])
        else:
            row = _stacked_row_shape(op, node, shapes, o)
        result.append((length,) + row)
    return result


def _inner_input_shapes(op, shapes):
    """Shapes of the step's inputs, in terms of the node's input shapes."""
    inner = {}
    for i in range(1, len(shapes)):
        positions = op.outer_to_inner(i)
        outer_shape = tuple(shapes[i])
        for p in positions:
            by_row = p < op.n_seqs or any(
                spec.kind == HISTORY and p in op.state_positions(o) for o, spec in enumerate(op.output_specs))
            inner[op.inner_inputs[p]] = outer_shape[1:] if by_row else outer_shape
    return inner


def _stacked_row_shape(op, node, shapes, o):
    from theanine.tensor.shape import shape_i
    target = op.inner_outputs[o]
    out = node.outputs[o]
    known = _inner_input_shapes(op, shapes)
    fallback = tuple(shape_i(out, d + 1) for d in range(target.ndim))
    for inner_node in toposort([target], blockers=op.inner_inputs):
        in_shapes = [_shape_of(v, known) for v in inner_node.inputs]
        infer = getattr(inner_node.op, "infer_shape", None)
        if infer is None or any(s is None for s in in_shapes):
            continue
        try:
            out_shapes = infer(None, inner_node, in_shapes)
        except Exception:  # an op whose shape rule does not apply here: use the run-time shape
            continue
        for v, s in zip(inner_node.outputs, out_shapes):
            known[v] = tuple(s)
    row = _shape_of(target, known)
    if row is None:
        return fallback
    inner_vars = op.fgraph.variables
    entries = []
    for d, entry in enumerate(row):
        static = target.type.shape[d]
        if static is not None:
            entries.append(static)
        elif isinstance(entry, (int, np.integer)) or not any(v in inner_vars for v in ancestors([entry])):
            entries.append(entry)
        else:  # the size depends on values computed inside the step
            entries.append(fallback[d])
    return tuple(entries)


def _shape_of(v, known):
    if v in known:
        return known[v]
    if isinstance(v, Constant):
        return tuple(np.shape(v.data))
    if None not in v.type.shape:
        return tuple(v.type.shape)
    return None
