"""From a rewritten graph and its planned kernels to a ``Schedule`` (see codegen/schedule.py).

Every node maps to a schedule step: a planned kernel (elementwise or
reduction), a BLAS product, a view (DimShuffle, SumTo of equal shapes, basic
indexing, SpecifyShape, Reshape of a contiguous array), a small generated loop
(Shape, MakeVector, ARange and Alloc of integers and sizes), ... or, for a node
no native step expresses, a ``HostCall`` that runs it through Python (its
``perform``, or the thunk of an op holding an inner graph) from inside the
entry, so the rest of the function stays native. A graph that still cannot be
scheduled (a lazy node, a value that is not an array of a native dtype) runs
node by node; ``build_schedule`` says which node stopped it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theanine.codegen import lower
from theanine.codegen import schedule as S
from theanine.codegen.ir import ReduceKernel
from theanine.graph.basic import Constant
from theanine.codegen.ir import Instr, ScalarProgram
from theanine.tensor.basic import Alloc, ARange, Assert, Join
from theanine.tensor.elemwise import DimShuffle, SumTo, SumToShape
from theanine.tensor.math import ArgReduce, CumOp, Dot
from theanine.tensor.sort import ArgSort
from theanine.tensor.shape import MakeVector, Reshape, Shape, SpecifyShape
from theanine.scan_module.op import HISTORY, Scan, resolve_mode
from theanine.tensor.subtensor import IncSubtensor, Nonzero, Subtensor

_INTS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64")

#: dtypes a schedule can hold (those the native kernels read and write)
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float32", "float64")


class NotSchedulable(Exception):
    """The graph has a node no schedule step expresses; the message names it."""


class _Builder:
    def __init__(self, planned_by_node, next_kernel, host_calls, target):
        self.buffers, self.index = [], {}
        self.host_calls = host_calls
        self.target = target  # loops are built for 'llvm' and 'c' only
        self.writer = {}  # buffer -> the step that writes it
        self.steps, self.constants, self.arrays = [], [], {}
        self.planned = planned_by_node
        self.extra_kernels = []
        self.loop_kernels = {}  # index in extra_kernels -> KernelInfo of a loop body's kernel
        self.copy_kernels = {}
        self.next_kernel = next_kernel

    def buffer(self, var) -> int:
        if var not in self.index:
            dtype = getattr(var.type, "dtype", None)
            if dtype not in DTYPES:
                raise NotSchedulable(f"{var} has dtype {dtype}, which schedules do not hold")
            shape = var.type.shape
            if isinstance(var, Constant):
                array = np.array(var.data, dtype=dtype, order="C")  # keeps 0-d arrays 0-d
                shape = array.shape
                key = f"const:{len(self.constants)}"
                self.arrays[key] = array
                self.constants.append((len(self.buffers), key))
            self.index[var] = len(self.buffers)
            self.buffers.append(S.Buffer(dtype, len(shape), tuple(shape)))
        return self.index[var]

    def new_buffer(self, like: int) -> int:
        self.buffers.append(self.buffers[like])
        return len(self.buffers) - 1

    def node(self, node):
        op = node.op
        p = self.planned.get(node)
        ins = [self.buffer(v) for v in node.inputs]
        outs = [self.buffer(v) for v in node.outputs]
        if p is not None:
            if isinstance(p.kernel, ReduceKernel):
                if node.outputs[0].ndim != node.inputs[0].ndim - len(p.kernel.axes):
                    raise NotSchedulable(f"{op} keeps reduced dimensions")
                step = S.Reduce(p.kernel.name, tuple(ins), outs[0], tuple(p.kernel.axes), p.kernel.kind)
            else:
                step = S.Elementwise(p.kernel.name, tuple(ins), tuple(outs), tuple(p.inner_broadcast))
        elif isinstance(op, Dot):
            a, b = node.inputs
            if {a.dtype, b.dtype, node.outputs[0].dtype} - {"float32"} and \
                    {a.dtype, b.dtype, node.outputs[0].dtype} - {"float64"}:
                raise NotSchedulable(f"{op} on {a.dtype} and {b.dtype} does not go through BLAS")
            if a.ndim not in (1, 2) or b.ndim not in (1, 2):
                raise NotSchedulable(f"{op} of ranks {a.ndim} and {b.ndim}")
            step = S.Gemm(ins[0], ins[1], outs[0])
        elif isinstance(op, DimShuffle):
            step = S.DimShuffle(ins[0], outs[0], tuple(op.new_order))
        elif isinstance(op, SumTo):
            step = S.SumToShape(ins[0], ins[1], outs[0])
        elif isinstance(op, SumToShape) and _integers(node.inputs[1:]):
            step = S.SumToDims(ins[0], tuple(ins[1:]), outs[0])
        elif isinstance(op, Shape):
            step = S.ShapeOf(ins[0], outs[0])
        elif isinstance(op, Subtensor) and _basic(op):
            step = S.Index(ins[0], outs[0], _items(op.idx_list, ins[1:]))
        elif isinstance(op, IncSubtensor) and _basic(op):
            x, y = node.inputs[:2]
            region = x.ndim - sum(e[0] == "i" for e in op.idx_list) + sum(e[0] == "n" for e in op.idx_list)
            write = self.kernel(_convert(y.dtype, x.dtype) if op.set_instead_of_inc
                                else _add(x.dtype, y.dtype), region)
            step = S.IncSubtensor(self.copy_kernel(self.buffers[ins[0]]), write, ins[0], ins[1],
                                  _items(op.idx_list, ins[2:]), outs[0], op.set_instead_of_inc)
        elif isinstance(op, Subtensor) and _leading_vectors(op, node.inputs[1:]):
            step = S.Gather(self.copy_kernel(S.Buffer(node.inputs[0].dtype, node.outputs[0].ndim - 1, ())),
                            ins[0], tuple(ins[1:]), outs[0])
        elif isinstance(op, IncSubtensor) and _leading_vectors(op, node.inputs[2:]):
            x, y = node.inputs[:2]
            region = x.ndim - len(node.inputs[2:])
            write = self.kernel(_convert(y.dtype, x.dtype) if op.set_instead_of_inc
                                else _add(x.dtype, y.dtype), region)
            step = S.Scatter(self.copy_kernel(self.buffers[ins[0]]), write, ins[0], ins[1],
                             tuple(ins[2:]), outs[0], op.set_instead_of_inc)
        elif isinstance(op, ArgReduce) and node.inputs[0].dtype in DTYPES:
            step = S.ArgReduce(ins[0], outs[0], op.axis, op.kind)
        elif isinstance(op, ArgSort):
            self.buffers.append(S.Buffer("uint64", 1, (None,)))
            step = S.ArgSort(ins[0], outs[0], len(self.buffers) - 1)
        elif isinstance(op, CumOp) and _widens(node.inputs[0].dtype, node.outputs[0].dtype):
            step = S.CumOp(ins[0], outs[0], op.axis, op.mode)
        elif isinstance(op, Nonzero):
            step = S.NonZero(ins[0], outs[0])
        elif isinstance(op, Join):
            out = node.outputs[0]
            kernels = tuple(self.kernel(_convert(v.dtype, out.dtype), out.ndim) for v in node.inputs)
            step = S.Join(kernels, tuple(ins), op.axis, outs[0])
        elif isinstance(op, Alloc) and _integers(node.inputs[1:]):
            step = S.Fill(self.copy_kernel(self.buffers[outs[0]]), ins[0], tuple(ins[1:]), outs[0],
                          _all_zero_bits(node.inputs[0]))
        elif isinstance(op, MakeVector) and op.dtype in _INTS and _integers(node.inputs):
            step = S.MakeVector(tuple(ins), outs[0])
        elif isinstance(op, MakeVector) and ins:
            step = self.stacked_scalars(node, ins, outs[0])
        elif isinstance(op, Reshape) and _integers(node.inputs[1:]):
            step = S.Reshape(self.copy_kernel(self.buffers[ins[0]]), ins[0], ins[1], outs[0])
        elif isinstance(op, Assert):
            step = S.Check(ins[0], tuple(ins[1:]), outs[0])
        elif isinstance(op, SpecifyShape):
            step = S.SpecifyShape(ins[0], outs[0], tuple(op.shape))
        elif isinstance(op, ARange) and op.dtype in _INTS and _integers(node.inputs):
            step = S.ARange(*ins, outs[0])
        elif isinstance(op, Scan) and self.target is not None:
            step = self.loop_or_host_call(node, ins, outs)
        else:
            step = self.host_call(node, ins, outs)
        self.append(step)

    def append(self, step):
        self.steps.append(step)
        for b in S.written(step):
            self.writer[b] = step

    def host_call(self, node, ins, outs):
        """A HostCall running ``node`` through Python, keyed ``host:k`` in ``arrays``."""
        if not self.host_calls:
            raise NotSchedulable(f"{node.op} has no schedule step")
        if getattr(node.op, "lazy", False):
            raise NotSchedulable(f"{node.op} evaluates its inputs lazily")
        key = f"host:{sum(k.startswith('host:') for k in self.arrays)}"
        self.arrays[key] = node
        return S.HostCall(key, tuple(self.host_input(b) for b in ins), tuple(outs))

    def stacked_scalars(self, node, ins, out):
        """A Join of the 0-d buffers ``ins`` viewed as vectors of one element (a MakeVector
        of floats, or converting its items)."""
        rows = []
        for b in ins:
            self.buffers.append(S.Buffer(self.buffers[b].dtype, 1, (1,)))
            rows.append(len(self.buffers) - 1)
            self.append(S.DimShuffle(b, rows[-1], ("x",)))
        kernels = tuple(self.kernel(_convert(v.dtype, node.outputs[0].dtype), 1) for v in node.inputs)
        return S.Join(kernels, tuple(rows), 0, out)

    def loop_or_host_call(self, node, ins, outs):
        """A Loop running the Scan ``node``'s step graph natively, or a HostCall when its
        step does not schedule without calls into Python (everything the attempt added
        is taken back)."""
        saved = (len(self.buffers), dict(self.index), len(self.constants), dict(self.arrays),
                 len(self.extra_kernels), dict(self.copy_kernels), dict(self.writer), self.steps)
        try:
            return self.loop(node, ins, outs)
        except NotSchedulable:
            n_buffers, index, n_constants, arrays, n_kernels, copies, writer, steps = saved
            del self.buffers[n_buffers:], self.constants[n_constants:], self.extra_kernels[n_kernels:]
            self.loop_kernels = {k: info for k, info in self.loop_kernels.items() if k < n_kernels}
            self.index, self.arrays, self.copy_kernels, self.writer = index, arrays, copies, writer
            self.steps, self.host_calls = steps, True
            return self.host_call(node, ins, outs)

    def loop(self, node, ins, outs):
        """The Loop step of the Scan ``node`` (inputs ``ins``, outputs ``outs``)."""
        from theanine.compile.native import plan_kernels
        op = node.op
        if resolve_mode(op.mode or self.target) != self.target:
            raise NotSchedulable(f"{op} runs its step in mode {op.mode!r}")
        graph = op.step_graph(self.target)
        planned, _ = plan_kernels(graph)
        for p in planned:
            name = f"__KERNEL{self.next_kernel + len(self.extra_kernels)}__"
            kernel = dataclasses.replace(p.kernel, name=name)
            self.loop_kernels[len(self.extra_kernels)] = dataclasses.replace(p.info, loop=str(op))
            self.extra_kernels.append((kernel, p.inner_broadcast))
            self.planned[p.node] = dataclasses.replace(p, kernel=kernel)
        outer_steps, self.steps, self.host_calls = self.steps, [], False
        inner = [self.buffer(v) for v in graph.inputs]
        n_seqs, first_non_seq = op.n_seqs, op.n_seqs + op.n_states
        sequences = tuple(zip(ins[1:1 + n_seqs], inner[:n_seqs]))
        bindings = tuple(zip(ins[op.non_seq_start:], inner[first_non_seq:]))
        for inner_node in graph.toposort():
            self.node(inner_node)
        outputs, values = [], set()
        for o, spec in enumerate(op.output_specs):
            value = self.buffer(graph.outputs[o])
            if not isinstance(self.writer.get(value), _ALLOCATING) or value in values:
                value = self.copy_of(value)  # a value the loop can copy or move on its own
            values.add(value)
            row = S.Buffer(self.buffers[value].dtype, self.buffers[value].ndim, ())
            taps = tuple((k, inner[p]) for p, k in zip(op.state_positions(o), spec.taps))
            init = ins[op.init_index(o)] if spec.recurrent else None
            init_copy = self.copy_kernel(self.buffers[outs[o]]) if spec.kind == HISTORY else ""
            outputs.append(S.LoopOutput(spec.kind, init, spec.n_back, taps, value, outs[o],
                                        self.copy_kernel(row), init_copy))
        stop = None
        if op.as_while:
            stop = self.buffer(graph.outputs[op.n_outs])
            if not isinstance(self.writer.get(stop), _ALLOCATING) or stop in values:
                stop = self.copy_of(stop)
        body = tuple(self.steps)
        self.steps, self.host_calls = outer_steps, True
        for v in graph.variables:  # a second node of this op gets buffers of its own
            self.index.pop(v, None)
        for p in planned:
            del self.planned[p.node]
        return S.Loop(ins[0], sequences, bindings, tuple(outputs), body, stop)

    def host_input(self, b) -> int:
        """``b``, or a copy of it when its memory is not an array the entry can hand to
        Python and keep alive as long as Python holds it: a Reshape's temporary copy, or
        the entry's own vector of a shape."""
        src = b
        while isinstance(self.writer.get(src), S.VIEW_STEPS + (S.Reshape,)):
            if isinstance(self.writer[src], S.Reshape):
                return self.copy_of(b)
            src = self.writer[src].src
        return self.copy_of(b) if isinstance(self.writer.get(src), S.ShapeOf) else b

    def kernel(self, program, ndim) -> str:
        """The name of an elementwise kernel applying ``program`` over ``ndim`` dimensions
        to inputs of any strides (one kernel per program and rank)."""
        key = (program, ndim)
        if not lower.supports_program(program):
            raise NotSchedulable(f"no native kernel for {program}")
        if key not in self.copy_kernels:
            name = f"__KERNEL{self.next_kernel + len(self.extra_kernels)}__"
            shape = (None,) * ndim
            kernel, inner = lower.elementwise_kernel(name, program, [shape] * len(program.input_dtypes), shape)
            self.extra_kernels.append((kernel, inner))
            self.copy_kernels[key] = name
        return self.copy_kernels[key]

    def copy_kernel(self, buf) -> str:
        """The name of a kernel copying elements of ``buf``'s dtype and rank."""
        return self.kernel(lower.identity_program(buf.dtype), buf.ndim)

    def copy_of(self, b: int) -> int:
        """A step copying buffer ``b`` into a fresh one, whose index is returned."""
        c = self.new_buffer(b)
        self.append(S.Elementwise(self.copy_kernel(self.buffers[b]), (b,), (c,), (False,)))
        return c


def _all_zero_bits(var) -> bool:
    """Whether ``var`` is a constant whose every bit is zero (0, 0.0, False; not -0.0)."""
    if not isinstance(var, Constant):
        return False
    data = np.ascontiguousarray(var.data).reshape(-1)
    return data.size > 0 and not data.view(np.uint8).any()


def _integers(variables) -> bool:
    """Whether every one of ``variables`` (sizes, bounds) is of an integer dtype a step reads."""
    return all(v.dtype in _INTS for v in variables)


def _basic(op) -> bool:
    return not op.is_advanced and all(e[0] in ("i", "s", "n") for e in op.idx_list)


def _widens(src, dst) -> bool:
    """Whether ``src`` converts to ``dst`` without loss of kind (same, wider, int to float)."""
    if src == dst:
        return True
    if dst.startswith("float"):
        return src in DTYPES and src != "float64"
    return src in ("bool", "int8", "int16", "int32", "uint8", "uint16", "uint32") and dst in ("int64", "uint64")


def _leading_vectors(op, index_inputs) -> bool:
    """Whether ``op`` indexes with integer vectors first and full slices after."""
    k = len(index_inputs)
    return (k >= 1 and all(e == ("a",) for e in op.idx_list[:k])
            and all(e == ("s", False, False, False) for e in op.idx_list[k:])
            and all(v.ndim == 1 and v.dtype in _INTS for v in index_inputs))


def _items(idx_list, index_buffers) -> tuple:
    """Schedule index items for a basic ``idx_list`` whose runtime parts are ``index_buffers``."""
    values = iter(index_buffers)
    items = []
    for e in idx_list:
        if e[0] == "s":
            items.append(("s",) + tuple(next(values) if present else None for present in e[1:]))
        elif e[0] == "i":
            items.append(("i", next(values)))
        else:
            items.append(("n",))
    return tuple(items)


def _convert(src, dst) -> ScalarProgram:
    """The program converting one ``src`` value to ``dst``."""
    if src == dst:
        return lower.identity_program(src)
    return ScalarProgram((src,), (), (Instr("cast", (0,), dst, src),), (1,))


def _add(dst, src) -> ScalarProgram:
    """The program ``a + b`` for ``a`` of dtype ``dst`` and ``b`` converted to it."""
    return ScalarProgram((dst, src), (), (Instr("add", (0, 1), dst, dst),), (2,))


_ALLOCATING = (S.Elementwise, S.Reduce, S.Gemm, S.Join, S.IncSubtensor, S.ArgReduce, S.Gather,
               S.Scatter, S.NonZero, S.Fill, S.MakeVector, S.ARange, S.CumOp, S.ArgSort)


def build_schedule(fgraph, planned, n_args=None, n_outputs=None, single=False, host_calls=True,
                   target=None):
    """(Schedule, table values by key, extra kernels, indices of the outputs that are copies,
    {index in the extra kernels: KernelInfo} of the kernels of loop bodies) for ``fgraph`` whose kernels are ``planned`` (named ``__KERNEL{k}__`` in
    order); raises NotSchedulable. The table values are constant arrays (``const:k``) and,
    for each HostCall, the node it runs (``host:k``; the caller turns it into a callable;
    with ``host_calls=False`` such a node raises NotSchedulable instead). The first
    ``n_args`` graph inputs are arguments
    (default: all), the others shared variables; the first ``n_outputs`` graph outputs
    are returned (default: all), the others update the shared variables. An output that
    is not freshly computed (an input, a constant, a view, a repeated output) is copied,
    so results never alias. With a ``target`` ('llvm' or 'c'), a Scan whose step schedules
    becomes a Loop over its step graph rewritten for that target."""
    n_args = len(fgraph.inputs) if n_args is None else n_args
    n_outputs = len(fgraph.outputs) if n_outputs is None else n_outputs
    b = _Builder({p.node: p for p in planned}, len(planned), host_calls, target)
    inputs = tuple(b.buffer(v) for v in fgraph.inputs)
    for node in fgraph.toposort():
        b.node(node)
    results, copied = [], []
    for k, var in enumerate(fgraph.outputs):
        r = b.buffer(var)
        if not isinstance(b.writer.get(r), _ALLOCATING) or r in results:
            r = b.copy_of(r)
            copied.append(k)
        results.append(r)
    literals = tuple((buf, int(b.arrays[key])) for buf, key in b.constants
                     if b.buffers[buf].ndim == 0 and b.buffers[buf].dtype in _INTS)
    schedule = S.Schedule(tuple(b.buffers), inputs[:n_args], inputs[n_args:], tuple(b.constants),
                          tuple(b.steps), tuple(results), n_outputs, single, literals)
    return schedule, b.arrays, b.extra_kernels, copied, b.loop_kernels
