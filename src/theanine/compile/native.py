"""The native linker: elementwise and reduction nodes of a rewritten graph become kernels.

Every (fused) node whose scalar program the back ends support is lowered to one
kernel of the target-independent kernel IR (``plan_kernels``); a target renders
all kernels of a function as one module (``render``), compiled once and cached
on disk. ``render_function`` does everything up to the source (a
``RenderedProgram``, which the second-level cache stores); ``NativeProgram``
compiles and loads it. Other nodes still run through their ``perform`` and are listed in
``fallbacks``. Python calls each kernel through ctypes (which releases the GIL).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os

import numpy as np

from theanine.compile import memory
from theanine.codegen import lower
from theanine.scalar.composite import single_program
from theanine.tensor.elemwise import Elemwise
from theanine.tensor.fused import FusedReduce
from theanine.tensor.math import Reduce

_KERNEL_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


@dataclasses.dataclass
class KernelInfo:
    """What one native kernel computes: its name, the ops fused into it, its loops and body."""

    name: str
    ops: tuple
    loops: str
    program: str
    node: object
    loop: str = ""  # the Scan whose native loop runs the kernel at every step, if any

    def __str__(self):
        where = f" (in the loop of {self.loop})" if self.loop else ""
        return f"{self.name}: {' -> '.join(self.ops)}{where}\n  loops: {self.loops}\n  " + \
            self.program.replace("\n", "\n  ")


def _loops(ndim):
    dims = max(ndim, 1)
    outer = "".join(f"for i{d} < n{d}: " for d in range(dims - 1))
    return f"{outer}for i{dims - 1} < n{dims - 1} (dense or strided)"


@dataclasses.dataclass
class PlannedKernel:
    """A node lowered to kernel IR, before any target renders it."""

    node: object
    kernel: object
    inner_broadcast: list
    info: KernelInfo


def plan_kernels(fgraph):
    """The kernels (target-independent IR) for the nodes of ``fgraph`` that lower natively,
    and the nodes that do not (which run through ``perform``)."""
    planned, fallbacks = [], []
    for node in fgraph.toposort():
        name = f"__KERNEL{len(planned)}__"
        reduction = _reduction(node)
        if reduction is not None:
            kind, axes, program = reduction
            if lower.supports_program(program) and lower.supports_reduce(kind, node.outputs[0].dtype):
                ndim = node.inputs[0].ndim
                kernel, inner = lower.reduce_kernel(name, kind, axes, program, node.outputs[0].dtype,
                                                    [i.type.shape for i in node.inputs], ndim)
                ops = getattr(getattr(node.op, "scalar_op", None), "ops", ())
                info = KernelInfo(name, tuple(op.name for op in ops) + (f"{kind}{list(axes)}",),
                                  _loops(ndim) + f", reducing axes {list(axes)}", str(program), node)
                planned.append(PlannedKernel(node, kernel, inner, info))
                continue
        if isinstance(node.op, Elemwise):
            program = single_program(node.op.scalar_op, [i.dtype for i in node.inputs])
            if lower.supports_program(program):
                kernel, inner = lower.elementwise_kernel(
                    name, program, [i.type.shape for i in node.inputs], node.outputs[0].type.shape)
                ops = getattr(node.op.scalar_op, "ops", (node.op.scalar_op,))
                info = KernelInfo(name, tuple(op.name for op in ops), _loops(kernel.ndim),
                                  str(program), node)
                planned.append(PlannedKernel(node, kernel, inner, info))
                continue
        fallbacks.append(node)
    return planned, fallbacks


def _renderers():
    """target name -> render_module(kernels, name) -> source."""
    from theanine.codegen import llvm
    renderers = {"llvm": llvm.render_module}
    try:
        from theanine.codegen import c
        renderers["c"] = c.render_module
    except ImportError:
        pass
    try:
        from theanine.codegen import cuda
        renderers["cuda"] = cuda.render_module
    except ImportError:
        pass
    return renderers


def _compiler(target):
    """compile(source, symbols) -> addresses for ``target`` ('llvm' or 'c'); imports only
    that target's compiler (a warm process loading cached code renders nothing)."""
    if target == "llvm":
        from theanine.codegen import jit
        return jit.compile_ir
    if target == "c":
        from theanine.codegen import cc
        return cc.compile_source
    raise ValueError(f"NativeProgram: target {target!r} is not compiled in this process")


def render(planned, target):
    """(source, kernel names) of the planned kernels rendered for ``target``."""
    text, names, _, _ = render_program(planned, target)
    return text, names[:len(planned)]


def render_program(planned, target, extra_kernels=(), schedule=None):
    """(source, kernel names (the planned ones', then the extra ones'), entry name, entry table slots) of
    the planned kernels (and ``extra_kernels``,
    (kernel, inner_broadcast) pairs) rendered for ``target``, with the entry running
    ``schedule`` ('llvm': llvm_entry, 'c': c_entry) appended when one is given (entry name
    None otherwise)."""
    renderers = _renderers()
    if target not in renderers:
        raise ValueError(f"unknown target {target!r}; available: {', '.join(renderers)}")
    render_module = renderers[target]
    kernels = [(p.kernel, p.inner_broadcast) for p in planned] + list(extra_kernels)
    first = _first_of_each(kernels)
    text = render_module([kern for k, kern in enumerate(kernels) if first[k] == k], "theanine_module")
    table = None
    if schedule is not None and target == "llvm":
        from theanine.codegen import llvm_entry
        entry_text, table = llvm_entry.render_entry(schedule, "__ENTRY__")
        declarations = [d for d in llvm_entry.DECLARATIONS if d.split("@")[1] not in text]
        text = text + "\n".join(declarations) + "\n\n" + entry_text
    elif schedule is not None:
        from theanine.codegen import c_entry
        entry_text, table = c_entry.render_pyentry(schedule, "__ENTRY__")
        text = text + entry_text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    names = [f"theanine_{digest}_k{first[k]}" for k in range(len(kernels))]
    for k, name in reversed(list(enumerate(names))):
        text = text.replace(f"__KERNEL{k}__", name)
    entry = f"theanine_{digest}_entry" if schedule is not None else None
    if entry:
        text = text.replace("__ENTRY__", entry)
    return text.replace("theanine_module", f"theanine_{digest}"), names, entry, table


def _first_of_each(kernels) -> list:
    """For each (kernel, inner_broadcast) pair, the index of the first one that computes the
    same thing (kernels differing only in name share one function)."""
    seen, first = {}, []
    for k, (kernel, inner) in enumerate(kernels):
        key = (dataclasses.replace(kernel, name="", label=""), tuple(inner))
        first.append(seen.setdefault(key, k))
    return first


@dataclasses.dataclass
class RenderedProgram:
    """A function's graph rendered for one target, not yet compiled: everything
    ``NativeProgram`` needs besides the graph, and what the second-level compile cache
    (``graph_cache``) stores. ``kernels``: the named KernelInfo of each planned kernel;
    ``fallbacks``: the nodes without one; ``entry_name``/``table``: the whole-function
    entry and its table slots (None without an entry); ``constants``: the table's values
    known before loading (constant arrays ``const:k``, the nodes of host calls ``host:k``)."""

    target: str
    source: str
    kernels: list
    fallbacks: list
    entry_name: str | None
    table: list | None
    constants: dict
    copied_outputs: list
    host_nodes: list
    why_no_entry: str | None


def render_function(fgraph, target, interface=None) -> RenderedProgram:
    """``fgraph`` planned, scheduled (targets 'llvm' and 'c') and rendered for ``target``;
    ``interface`` as for ``NativeProgram``."""
    from theanine.compile.scheduler import NotSchedulable, build_schedule
    interface = interface or {}
    planned, fallbacks = plan_kernels(fgraph)
    why_no_entry = f"target {target!r} has no whole-function entry"
    schedule, constants, extra, copied, loop_kernels = None, {}, (), [], {}
    if target in ("llvm", "c"):
        try:
            schedule, constants, extra, copied, loop_kernels = build_schedule(
                fgraph, planned, interface.get("n_args"), interface.get("n_outputs"),
                interface.get("single", False), target=target)
            why_no_entry = None
        except NotSchedulable as exc:
            why_no_entry = str(exc)
    source, names, entry_name, table = render_program(planned, target, extra, schedule)
    kernels = []
    for p, name in zip(planned, names):
        p.info.name = name
        kernels.append(p.info)
    for k, info in sorted(loop_kernels.items()):
        info.name = names[len(planned) + k]
        kernels.append(info)
    host_nodes = [n for key, n in constants.items() if key.startswith("host:")]
    return RenderedProgram(target, source, kernels, fallbacks, entry_name, table, constants, copied,
                           host_nodes, why_no_entry)


class NativeProgram:
    """The kernels of one compiled function for ``target``: source, native thunks, fallbacks,
    and (targets 'llvm' and 'c', when every node has a schedule step) ``entry``: one builtin
    running the whole function (see codegen/schedule.py); ``why_no_entry`` says why there is
    none, ``copied_outputs`` which outputs the entry returns as copies (views, inputs, constants)."""

    def __init__(self, fgraph, target="llvm", compile=True, interface=None, rendered=None):
        """``interface`` (optional) tells the entry how it is called: ``n_args`` (the first
        graph inputs are arguments, the others shared variables whose one-item storage
        lists are ``containers``), ``n_outputs`` (the other graph outputs are the new values
        of ``updated``, a list of storage lists) and ``single`` (return the one output
        itself). By default every input is an argument and every output is returned.
        ``rendered``: ``render_function``'s result for this graph, target and interface,
        when it is known already (then nothing is rendered)."""
        interface = interface or {}
        self.rendered = rendered = rendered or render_function(fgraph, target, interface)
        self.target = target
        self.source = rendered.source
        self.kernels = list(rendered.kernels)
        self.fallbacks = list(rendered.fallbacks)
        self.host_nodes = list(rendered.host_nodes)  # nodes the entry runs by calling back into Python
        self.copied_outputs = list(rendered.copied_outputs)
        self.entry, self.why_no_entry = None, rendered.why_no_entry
        self.thunks = {}
        if compile and (self.kernels or rendered.entry_name):
            self._load(rendered, interface)

    def _load(self, rendered, interface):
        """Compile (or take from the disk cache) and load the code: kernel thunks and entry."""
        from theanine.compile.memory import keep_freed_memory
        keep_freed_memory()
        entry_name = rendered.entry_name
        symbols = [info.name for info in self.kernels] + ([entry_name] if entry_name else [])
        addresses = _compiler(self.target)(self.source, symbols)
        for info in self.kernels:
            if info.loop:  # a loop body's kernel: only the entry calls it
                continue
            fn = _KERNEL_TYPE(addresses[info.name])
            if _reduction(info.node):
                self.thunks[info.node] = ReduceThunk(info.node, fn)
            else:
                make = functools.partial(_native_entry, info, addresses[info.name]) \
                    if self.target == "llvm" else None
                self.thunks[info.node] = ElementwiseThunk(info.node, fn, make)
        if not entry_name:
            return
        from theanine.codegen import pyentry
        bound = dict(rendered.constants)
        cells = list(interface.get("containers", ())) + list(interface.get("updated", ()))
        bound.update({f"container:{k}": cell for k, cell in enumerate(cells)})
        for key in [key for key in bound if key.startswith("host:")]:
            node = bound[key]
            make_thunk = getattr(node.op, "make_thunk", None)
            if make_thunk is not None:  # ops holding inner graphs compile them for this target
                self.thunks[node] = make_thunk(node, self.target)
            bound[key] = host_callable(node, self.thunks.get(node))
        try:
            self.entry = pyentry.make_schedule_entry(addresses[entry_name], rendered.table, bound,
                                                     entry_name)
        except RuntimeError as exc:
            self.why_no_entry = str(exc)


def host_callable(node, thunk=None):
    """``call(*arrays) -> list of arrays``: ``node`` run by ``thunk(inputs, storage)`` (default:
    its op's ``perform``), each output checked and converted as the node-by-node path does
    and made an ndarray (the entry's HostCall step takes nothing else)."""
    from theanine.compile.executor import coerce_output
    run = thunk or functools.partial(node.op.perform, node)
    outputs = node.outputs

    def call(*inputs):
        storage = [[None] for _ in outputs]
        run(list(inputs), storage)
        values = []
        for var, (value,) in zip(outputs, storage):
            if type(value) is not np.ndarray or value.dtype != var.type.numpy_dtype \
                    or value.ndim != var.type.ndim:
                value = np.asarray(coerce_output(node, var, value))
            values.append(value)
        return values
    call.__name__ = call.__qualname__ = f"host_call_{type(node.op).__name__}"
    return call


def _native_entry(info, address):
    """A builtin calling the kernel with the node's input arrays directly (see pyentry),
    or None where the entry cannot be built."""
    from theanine.codegen import pyentry
    node = info.node
    try:
        return pyentry.make_entry(address, [v.dtype for v in node.inputs], node.outputs[0].dtype,
                                  node.outputs[0].ndim, info.name,
                                  in_shapes=[v.type.shape for v in node.inputs])
    except (RuntimeError, ValueError):
        return None


def _reduction(node):
    """(kind, axes, program) when ``node`` is a reduction the back end lowers, else None."""
    op = node.op
    if isinstance(op, FusedReduce):
        return op.kind, op.axis, op.scalar_op.program
    if isinstance(op, Reduce):
        return op.kind, op.axis, lower.identity_program(node.inputs[0].dtype)
    return None


def _broadcast_shape(node, arrays):
    try:
        return np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError as e:
        shapes = ", ".join(str(a.shape) for a in arrays)
        if "too many" in str(e) or "too large" in str(e):  # they broadcast, into too much
            raise ValueError(f"{node.op}: the result of broadcasting shapes {shapes} has too many "
                             "elements to index") from None
        raise ValueError(f"{node.op}: shapes {shapes} cannot be broadcast together") from None


def _coalesce(shape, strides):
    """Merge neighbouring dimensions that every buffer walks contiguously."""
    shape = list(shape)
    strides = [list(s) for s in strides]
    d = len(shape) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * shape[d + 1] for s in strides):
            shape[d + 1] *= shape[d]
            del shape[d]
            for s in strides:
                del s[d]
        d -= 1
    return shape, strides


class ElementwiseThunk:
    """Runs one native elementwise kernel: broadcasting, allocation, strides, the call."""

    def __init__(self, node, fn, make_entry=None):
        self.node = node
        self.fn = fn
        self.make_entry = make_entry  # builds the CPython entry on first use
        self.entry = None
        self.ndim = node.outputs[0].type.ndim
        self.dtype = node.outputs[0].type.numpy_dtype
        self.plans = {}

    def __call__(self, inputs, storage):
        if self.make_entry is not None:
            self.entry, self.make_entry = self.make_entry(), None
        entry = self.entry
        if entry is not None and getattr(inputs[0], "size", 0) < PARALLEL_MIN_ELEMENTS:
            try:
                out = entry(*inputs)
            except ValueError:  # a broadcast error: the path below reports it in full
                out = NotImplemented
            if out is not NotImplemented:
                storage[0][0] = out
                return
        arrays = [a if type(a) is np.ndarray else np.asarray(a) for a in inputs]
        key = tuple([(a.shape, a.strides) for a in arrays])
        plan = self.plans.get(key)
        if plan is None:
            plan = self._plan(arrays)
            if len(self.plans) < 64:
                self.plans[key] = plan
        shape, dims, strides, addresses, parallel = plan
        out = memory.empty(shape, self.dtype)
        pointers = [a.ctypes.data for a in arrays]
        pointers.append(out.ctypes.data)
        if parallel:
            run_split(self.fn, dims, pointers, strides, set())
        else:
            self.fn(addresses[0], (ctypes.c_void_p * len(pointers))(*pointers), addresses[1])
        storage[0][0] = out

    def _plan(self, arrays):
        """Shapes and strides for inputs of these shapes and strides (computed once)."""
        shape = _broadcast_shape(self.node, arrays)
        out_strides = np.empty(shape, dtype=self.dtype).strides
        nd = max(self.ndim, 1)
        rows = [[0 if n == 1 else s for n, s in zip(a.shape, a.strides)] or [0] for a in arrays]
        rows.append([0 if n == 1 else s for n, s in zip(shape, out_strides)] or [0])
        dims, rows = _coalesce(list(shape) or [1], rows)
        pad = nd - len(dims)
        dims = np.array([1] * pad + dims, dtype=np.int64)
        strides = np.array([[0] * pad + r for r in rows], dtype=np.int64)
        parallel = int(np.prod(dims)) >= PARALLEL_MIN_ELEMENTS and (os.cpu_count() or 1) > 1
        return shape, dims, strides, (dims.ctypes.data, strides.ctypes.data), parallel


#: kernels over at least this many elements are split across the cores
PARALLEL_MIN_ELEMENTS = 1 << 18
_pool = None


def _workers():
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="theanine")
    return _pool


def _call(fn, dims, pointers, strides):
    shape_arr = np.array(dims, dtype=np.int64)
    data = np.array(pointers, dtype=np.uintp)
    fn(shape_arr.ctypes.data, data.ctypes.data, strides.ctypes.data)  # ctypes releases the GIL


def run_split(fn, dims, pointers, strides, reduced_axes):
    """Call kernel ``fn``, split along its outermost splittable dimension across the cores
    when the work is large. A reduced axis is never split (chunks would race)."""
    dims = [int(n) for n in dims]
    n_workers = os.cpu_count() or 1
    total = int(np.prod(dims))
    axis = next((d for d, n in enumerate(dims) if n >= n_workers and d not in reduced_axes), None)
    if n_workers < 2 or total < PARALLEL_MIN_ELEMENTS or axis is None:
        _call(fn, dims, pointers, strides)
        return
    bounds = np.linspace(0, dims[axis], n_workers + 1).astype(np.int64)
    futures = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi <= lo:
            continue
        chunk = list(dims)
        chunk[axis] = int(hi - lo)
        moved = [p + int(lo) * int(strides[k][axis]) for k, p in enumerate(pointers)]
        futures.append(_workers().submit(_call, fn, chunk, moved, strides))
    for f in futures:
        f.result()


def _identity(kind, dtype):
    if kind in ("all", "any"):
        return kind == "all"
    if kind in ("sum", "prod"):
        return 0 if kind == "sum" else 1
    if dtype.kind == "f":
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dtype)
    return info.min if kind == "max" else info.max


class ReduceThunk:
    """Runs one native reduction kernel: the output starts at the identity, the kernel
    combines every input element into it."""

    def __init__(self, node, fn):
        self.node = node
        self.fn = fn
        self.kind, self.axes, _ = _reduction(node)
        self.dtype = node.outputs[0].type.numpy_dtype
        self.identity = _identity(self.kind, self.dtype)

    def __call__(self, inputs, storage):
        arrays = [np.asarray(a) for a in inputs]
        shape = _broadcast_shape(self.node, arrays)
        if self.kind in ("max", "min") and any(shape[a] == 0 for a in self.axes):
            raise ValueError(f"{self.node.op}: cannot take the {self.kind} over an empty dimension "
                             f"(input shape {shape})")
        kept = tuple(n for d, n in enumerate(shape) if d not in self.axes)
        out = np.full(kept, self.identity, dtype=self.dtype)
        out_strides = iter(out.strides)
        out_row = [0 if d in self.axes else next(out_strides) for d in range(len(shape))]
        rows = [[0 if n == 1 else s for n, s in zip(a.shape, a.strides)] for a in arrays]
        rows.append(out_row)
        nd = max(len(shape), 1)
        strides = np.array([r or [0] for r in rows], dtype=np.int64).reshape(len(rows), nd)
        pointers = [a.ctypes.data for a in arrays] + [out.ctypes.data]
        run_split(self.fn, list(shape) or [1], pointers, strides, set(self.axes))
        storage[0][0] = out
