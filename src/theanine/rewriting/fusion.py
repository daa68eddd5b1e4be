"""Elementwise fusion: a connected group of elementwise nodes becomes one Composite node.

A producer joins its consumer's group when every use of its output is inside
the group and the output is not a function output, so nothing is computed twice
and nothing the user asked for disappears. Size-1 constants become constants
of the scalar program. Only ops the native renderer supports are fused; the
fused node is one kernel (one loop nest) in the compiled function.
"""

from __future__ import annotations

from theanine.codegen.ir import ScalarProgram
from theanine.codegen.lower import supports_program
from theanine.scalar.composite import Composite, instruction, single_program
from theanine.tensor.elemwise import Elemwise
from theanine.tensor.variable import TensorConstant


def _fusible(node) -> bool:
    if not isinstance(node.op, Elemwise) or isinstance(node.op.scalar_op, Composite):
        return False
    program = single_program(node.op.scalar_op, [i.dtype for i in node.inputs])
    return supports_program(program)


def _group(fgraph, root, fusible, assigned):
    group = {root}
    stack = list(root.inputs)
    while stack:
        v = stack.pop()
        node = v.owner
        if node is None or node in group or node in assigned or not fusible(node):
            continue
        clients = fgraph.clients.get(v, ())
        if not clients or any(c == "output" or c not in group for c, _ in clients):
            continue
        if len(node.outputs) != 1:
            continue
        group.add(node)
        stack.extend(node.inputs)
    return group


def _is_scalar_constant(v) -> bool:
    return isinstance(v, TensorConstant) and v.data.size == 1


def _build(group, order):
    """The Composite node computing the group's root from the group's inputs."""
    nodes = [n for n in order if n in group]
    produced = {n.outputs[0] for n in nodes}
    inputs, constants = [], []
    for n in nodes:
        for v in n.inputs:
            if v not in produced and not _is_scalar_constant(v) and v not in inputs:
                inputs.append(v)
    value_id = {v: k for k, v in enumerate(inputs)}
    for n in nodes:
        for v in n.inputs:
            if _is_scalar_constant(v) and v not in value_id:
                value_id[v] = len(inputs) + len(constants)
                constants.append((v.data.reshape(()).item(), v.dtype))
    instrs, ops = [], []
    first_instr_id = len(inputs) + len(constants)
    for n in nodes:
        op = n.op.scalar_op
        instrs.append(instruction(op, [value_id[v] for v in n.inputs], [i.dtype for i in n.inputs]))
        ops.append(op)
        value_id[n.outputs[0]] = first_instr_id + len(instrs) - 1
    program = ScalarProgram(tuple(v.dtype for v in inputs), tuple(constants), tuple(instrs),
                            (value_id[nodes[-1].outputs[0]],))
    return Elemwise(Composite(program, ops))(*inputs)


def fuse_elementwise(fgraph) -> int:
    """Replace each maximal fusible group of elementwise nodes by one node (a group of one
    too, when it has constant inputs: they become constants of the kernel)."""
    fgraph.phase = "fusion"
    order = fgraph.toposort()
    cache = {}

    def fusible(node):
        if node not in cache:
            cache[node] = _fusible(node)
        return cache[node]

    assigned = set()
    fused = 0
    for root in reversed(order):
        if root in assigned or not fusible(root):
            continue
        group = _group(fgraph, root, fusible, assigned)
        assigned |= group
        if len(group) < 2 and not any(_is_scalar_constant(v) for v in root.inputs):
            # a lone node is rebuilt only to move its constants into the program
            continue
        new = _build(group, order)
        if new.type != root.outputs[0].type:
            continue
        fgraph.replace(root.outputs[0], new, reason="fuse_elementwise")
        fused += 1
    return fused


_REDUCIBLE = ("sum", "prod", "max", "min", "all", "any")


def fuse_reductions(fgraph) -> int:
    """Reduce(Elemwise(...)) -> FusedReduce, when the elementwise value has no other use."""
    from theanine.tensor.fused import FusedReduce
    from theanine.tensor.math import Reduce

    fused = 0
    for node in fgraph.toposort():
        if not isinstance(node.op, Reduce) or node.op.kind not in _REDUCIBLE:
            continue
        value = node.inputs[0]
        producer = value.owner
        if producer is None or not isinstance(producer.op, Elemwise):
            continue
        if any(c == "output" or c is not node for c, _ in fgraph.clients.get(value, ())):
            continue
        scalar_op = producer.op.scalar_op
        program = single_program(scalar_op, [i.dtype for i in producer.inputs])
        if not supports_program(program):
            continue
        if not isinstance(scalar_op, Composite):
            scalar_op = Composite(program, [scalar_op])
        op = FusedReduce(node.op.kind, node.op.axis, node.op.acc_dtype, scalar_op)
        new = op(*producer.inputs)
        if new.type != node.outputs[0].type:
            continue
        fgraph.replace(node.outputs[0], new, reason="fuse_reduction")
        fused += 1
    return fused
