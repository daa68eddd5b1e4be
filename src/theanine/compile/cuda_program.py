"""mode="cuda": a compiled function's nodes run on an NVIDIA GPU.

Given the function's ``interface``, a CudaProgram also builds ``entry``
(compile/cuda_entry.py): the whole schedule as one native call, which calling the
function tries first; a graph with a step that entry cannot run where its data is, and a
call it hands over, run node by node as described here.

``CudaProgram(fgraph)`` mirrors NativeProgram: ``kernels`` (the elementwise and
reduction kernels, each with the ops fused into it, those of scan steps included),
``fallbacks`` (the nodes that run on the host through ``perform``), ``module`` (one CUDA
C++ module, built by nvcc and cached on disk), ``source`` (that module, followed by the
modules of the scan steps) and ``thunks`` (``thunk(input_values, output_storage)`` for every node,
as compile.executor.GraphRunner calls them).

Where each node runs:

- on the device: the elementwise and reduction kernels of ``plan_kernels``; ``Dot`` of
  float32 or float64 vectors and matrices (cuBLAS GEMM; a generated tiled kernel when
  cuBLAS cannot be loaded); ``DimShuffle`` and ``Reshape`` of device values (views: no
  copy, except that a non-contiguous input of Reshape is copied first), and of host
  values when one of their clients runs on the device (the input is copied in first);
  ``Alloc`` when one of its clients runs on the device (a broadcasting copy kernel);
  ``SumTo`` of a device value (nothing when the shapes agree, else a sum kernel over
  the axes the shapes call for); indexing (compile/cuda_indexing.py works out, on the
  host, where the elements are): ``Subtensor`` of a device value is a view for slices
  and integers and a gather kernel through a table of offsets for integer arrays and
  masks; ``Set/IncSubtensor`` a copy of x and an elementwise or scatter kernel into the
  region (atomic additions; a set writes each repeated position once, the last value);
  ``Join`` one converting copy per input into its part. So convolution and pooling,
  which the native phase rewrites into such views, joins, increments and products, run
  on the device too. Indexing and joins of values computed on the host for the host
  (shape arithmetic) stay there. ``Scan`` (its step compiled for mode 'cuda'): the
  loop of scan_module/loop.py over device buffers (``DeviceMemory``), the step's own
  CudaProgram reading rows in place and leaving its results on the device; the loop,
  one step call per step, runs in Python. ``CumOp``, ``ArgReduce`` and ``ArgSort``: a
  line kernel, one thread per line along the axis (moved last by a view);
- wherever their input is, through ``perform``: ``Shape``, ``SpecifyShape``, ``Assert``
  and ``IfElse`` (their conditions are read on the host) and the gradient-only identities (they read only
  the shape, or pass the value on; listed in
  ``fallbacks``, but they copy nothing); and NumPy's views for ``DimShuffle`` and
  ``Reshape`` of host values whose clients all run on the host;
- on the host, through ``perform``: everything else (listed in ``fallbacks``), such as
  ``ARange`` and the shape arithmetic.

Values stay where they are produced: a device thunk's outputs are DeviceArrays and
its consumers on the device read them in place. A host value a device thunk needs is
copied to the device once per call (once per program for the graph's constants); a
device value a host node needs is copied to the host once per call. The graph's
outputs are copied to the host as read-only NumPy arrays.

Shared variables: a host array this module makes from a device value (an output, so
also every updated shared value) is remembered, while it lives, together with the
device array it came from. When such an array comes back as an input (the shared
variable's next value, read by the next call), its device copy is used and nothing is
copied in: a training loop copies each updated parameter to the host once per step
and never back. Only arrays made here are trusted this way, and only while they are
read-only; any other input array is copied to the device at every call.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import itertools
import math
import weakref

import numpy as np

from theanine.codegen import cuda as cuda_render
from theanine.codegen import cudart, lower, nvcc
from theanine.codegen.c import comment_text
from theanine.codegen.ir import ElementwiseKernel, Instr, ReduceKernel, ScalarProgram
from theanine.codegen.sorting import SCRATCH_WORDS
from theanine.compile.cuda_indexing import Placement, last_writes, layout_rank, place
from theanine.compile.native import plan_kernels
from theanine.scan_module.loop import Memory, run_loop
from theanine.scan_module.op import resolve_mode
from theanine.tensor.subtensor import _result_type_shape
from theanine.cuda import DeviceArray, allocate, c_strides, empty, is_available, to_device

_Ptr = ctypes.c_void_p
#: in ``source``, what precedes the whole-function entry: its C unit, then the CUDA module it
#: launches (the text before it is CUDA C++ alone: the node-by-node module and its steps')
ENTRY_MARKER = "\n/* ---- the whole function as one call ---- */\n"


# --- residency: where values are, and their copies ------------------------------------------

_mirrors: dict = {}   # id(host array) -> (weak reference to it, the DeviceArray it was copied from)


def remember_mirror(host: np.ndarray, device: DeviceArray) -> None:
    """Record that the read-only ``host`` holds ``device``'s values (while ``host`` lives)."""
    key = id(host)

    def forget(ref, key=key):
        entry = _mirrors.get(key)
        if entry is not None and entry[0] is ref:
            del _mirrors[key]

    _mirrors[key] = (weakref.ref(host, forget), device)


def mirror_of(host) -> DeviceArray | None:
    """The device array ``host`` was copied from, if this module made ``host`` and it is
    still read-only; None otherwise."""
    entry = _mirrors.get(id(host))
    if entry is None or entry[0]() is not host or host.flags.writeable:
        return None
    return entry[1]


class Residency:
    """Moves values between host and device for one program, copying each value at most
    once per call (constants once per program).

    Calls are told apart by the positions (in the program's node order) of the thunks that
    run: within a call they increase, so a thunk at a position not after the last one run
    starts a new call, and the copies of the previous call are forgotten (its input arrays
    may since have been changed in place). A runner that skips nodes (lazy evaluation)
    still runs them in increasing order within a call.
    """

    def __init__(self, constants=()):
        self.constants = {id(c): c for c in constants}   # keeps them alive: ids stay unique
        self.constant_copies: dict = {}
        self.uploads: dict = {}     # id(host value) -> (host value, DeviceArray), this call
        self.downloads: dict = {}   # id(DeviceArray) -> (DeviceArray, host array), this call
        self.position = -1          # of the last thunk run

    def enter(self, position: int) -> None:
        """A thunk at ``position`` is about to run."""
        if position <= self.position:
            self.uploads.clear()
            self.downloads.clear()
        self.position = position

    def device(self, value) -> DeviceArray:
        """``value`` on the device."""
        if isinstance(value, DeviceArray):
            return value
        key = id(value)
        hit = self.uploads.get(key) or self.constant_copies.get(key)
        if hit is not None:
            return hit[1]
        copy = mirror_of(value) if isinstance(value, np.ndarray) else None
        if copy is None:
            copy = to_device(value)
        (self.constant_copies if key in self.constants else self.uploads)[key] = (value, copy)
        return copy

    def host(self, value):
        """``value`` on the host."""
        if not isinstance(value, DeviceArray):
            return value
        hit = self.downloads.get(id(value))
        if hit is not None:
            return hit[1]
        array = value.get()
        self.downloads[id(value)] = (value, array)
        self.uploads[id(array)] = (array, value)
        return array

    def output(self, value):
        """A graph output: device values become read-only host arrays that remember their
        device copy."""
        if not isinstance(value, DeviceArray):
            return value
        hit = self.downloads.get(id(value))
        array = value.get() if hit is None else hit[1].copy()
        array.flags.writeable = False
        remember_mirror(array, value)
        return array


class Thunk:
    """``thunk(inputs, storage)`` for GraphRunner: puts each input where ``run`` wants it
    (``placement``: 'device', 'host' or 'any' per input), calls ``run(args) -> outputs``
    and copies the graph's outputs to the host. ``position``: the node's place in the
    program's order."""

    def __init__(self, residency, run, placement, is_output, position):
        self.residency, self.run, self.placement = residency, run, tuple(placement)
        self.is_output, self.position = tuple(is_output), position
        self.all_device = all(p == "device" for p in self.placement)
        self.any_output = any(self.is_output)

    def __call__(self, inputs, storage):
        res = self.residency
        if self.position <= res.position:   # Residency.enter, inlined: this runs per node
            res.enter(self.position)
        res.position = self.position
        if self.all_device:
            args = [v if type(v) is DeviceArray else res.device(v) for v in inputs]
        else:
            args = [res.device(v) if p == "device" else res.host(v) if p == "host" else v
                    for v, p in zip(inputs, self.placement)]
        results = self.run(args)
        if self.any_output:
            results = [res.output(v) if out else v for v, out in zip(results, self.is_output)]
        for cell, value in zip(storage, results):
            cell[0] = value


# --- launching kernels --------------------------------------------------------------------

def _check(code, what):
    if code:
        cudart.check(code, f"the kernel of {what}")


def coalesce(shape, rows):
    """Merge neighbouring dimensions that every buffer (``rows``: byte strides per buffer)
    walks as one; (shape, rows) with fewer dimensions."""
    shape, rows = list(shape), [list(r) for r in rows]
    d = len(shape) - 2
    while d >= 0:
        if all(r[d] == r[d + 1] * shape[d + 1] for r in rows):
            shape[d + 1] *= shape[d]
            del shape[d]
            for r in rows:
                del r[d]
        d -= 1
    return shape, rows


def broadcast_rows(shape, layouts):
    """Each buffer's byte strides over ``shape`` (``layouts``: (shape, strides) pairs,
    right-aligned; 0 where a buffer is broadcast)."""
    rows = []
    for a_shape, a_strides in layouts:
        pad = len(shape) - len(a_shape)
        rows.append([0] * pad + [0 if n == 1 else s for n, s in zip(a_shape, a_strides)])
    return rows


class LaunchPlan:
    """The host arrays of one launch: ``dims`` (int64, one per kernel dimension) and
    ``strides`` (int64, buffers x dimensions), and their addresses."""

    def __init__(self, dims, strides):
        self.dims = np.ascontiguousarray(dims, dtype=np.int64)
        self.strides = np.ascontiguousarray(strides, dtype=np.int64)
        self.dims_ptr, self.strides_ptr = self.dims.ctypes.data, self.strides.ctypes.data


def elementwise_plan(shape, nd, layouts) -> LaunchPlan:
    """The launch of a rank-``nd`` elementwise kernel over ``shape``: the inputs (broadcast
    to ``shape``) and outputs (``layouts``: (shape, strides) pairs), dimensions coalesced
    where every buffer allows, padded in front to ``nd``."""
    dims, rows = coalesce(list(shape) or [1], [r or [0] for r in broadcast_rows(shape, layouts)])
    pad = nd - len(dims)
    strides = np.array([[0] * pad + r for r in rows], dtype=np.int64).reshape(len(rows), nd)
    return LaunchPlan([1] * pad + dims, strides)


def _broadcast_shape(node, shapes):
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{node.op}: shapes {', '.join(map(str, shapes))} cannot be broadcast "
                         "together") from None


#: launch plans kept per kernel (one per distinct set of input layouts)
_PLANS_PER_KERNEL = 64


def _remember(cache, key, value):
    if len(cache) < _PLANS_PER_KERNEL:
        cache[key] = value
    return value


class ElementwiseLauncher:
    """Calls one elementwise kernel; ``what`` names it in errors."""

    def __init__(self, fn, ndim, what):
        self.fn, self.nd, self.what = fn, max(ndim, 1), what
        self.plans = {}

    def call(self, plan, arrays):
        """Launch over ``arrays`` (inputs, then outputs) as ``plan`` says."""
        data = (_Ptr * len(arrays))(*[a.ptr for a in arrays])
        _check(self.fn(plan.dims_ptr, data, plan.strides_ptr, None), self.what)

    def launch(self, inputs, outputs, shape):
        """Launch over ``shape`` (planned once per set of layouts)."""
        arrays = [*inputs, *outputs]
        key = (shape, tuple([(a.shape, a.strides) for a in arrays]))
        plan = self.plans.get(key) or _remember(
            self.plans, key, elementwise_plan(shape, self.nd, [(a.shape, a.strides) for a in arrays]))
        self.call(plan, arrays)


class ElementwiseRun:
    """An elementwise kernel node: C-contiguous outputs of the inputs' broadcast shape."""

    def __init__(self, node, launcher):
        self.node, self.launcher = node, launcher
        self.dtypes = [o.type.numpy_dtype for o in node.outputs]
        self.plans = {}   # input layouts -> (shape, output layouts, LaunchPlan or None)

    def __call__(self, args):
        key = tuple([(a.shape, a.strides) for a in args])
        entry = self.plans.get(key) or _remember(self.plans, key, self._plan(args))
        shape, layouts, plan = entry
        outs = [allocate(shape, dt, strides, nbytes) for dt, strides, nbytes in layouts]
        if plan is not None:
            self.launcher.call(plan, [*args, *outs])
        return outs

    def _plan(self, args):
        shape = _broadcast_shape(self.node, [a.shape for a in args])
        size = math.prod(shape)
        layouts = [(dt, c_strides(shape, dt.itemsize), size * dt.itemsize) for dt in self.dtypes]
        if not size:
            return shape, layouts, None
        buffers = [(a.shape, a.strides) for a in args] + [(shape, s) for _, s, _ in layouts]
        return shape, layouts, elementwise_plan(shape, self.launcher.nd, buffers)


class ReduceRun:
    """A reduction kernel node (or a SumTo's sum): the output drops the reduced axes, or
    keeps them with size 1 (``keepdims``)."""

    def __init__(self, node, fn, workspace_fn, kind, axes, dtype, keepdims=False):
        self.node, self.fn, self.workspace_fn = node, fn, workspace_fn
        self.kind, self.axes, self.dtype, self.keepdims = kind, tuple(axes), np.dtype(dtype), keepdims
        self.plans = {}   # input layouts -> (output shape, strides, bytes, LaunchPlan, workspace bytes)

    def __call__(self, args):
        key = tuple([(a.shape, a.strides) for a in args])
        entry = self.plans.get(key) or _remember(self.plans, key, self._plan(args))
        shape, strides, nbytes, plan, need = entry
        out = allocate(shape, self.dtype, strides, nbytes)
        if plan is None:
            return [out]
        data = (_Ptr * (len(args) + 1))(*[a.ptr for a in args], out.ptr)
        workspace = allocate((need,), _BYTE, (1,), need) if need else None
        _check(self.fn(plan.dims_ptr, data, plan.strides_ptr,
                       workspace.ptr if workspace is not None else None, None), self.node.op)
        return [out]

    def _plan(self, args):
        shape = _broadcast_shape(self.node, [a.shape for a in args])
        if self.kind in ("max", "min") and any(shape[a] == 0 for a in self.axes):
            raise ValueError(f"{self.node.op}: cannot take the {self.kind} over an empty dimension "
                             f"(input shape {shape})")
        if self.keepdims:
            out_shape = tuple(1 if d in self.axes else n for d, n in enumerate(shape))
        else:
            out_shape = tuple(n for d, n in enumerate(shape) if d not in self.axes)
        out_strides = c_strides(out_shape, self.dtype.itemsize)
        nbytes = math.prod(out_shape) * self.dtype.itemsize
        if not nbytes:
            return out_shape, out_strides, nbytes, None, 0
        if self.keepdims:
            out_row = [0 if d in self.axes else s for d, s in enumerate(out_strides)]
        else:
            kept = iter(out_strides)
            out_row = [0 if d in self.axes else next(kept) for d in range(len(shape))]
        rows = broadcast_rows(shape, [(a.shape, a.strides) for a in args]) + [out_row]
        nd = max(len(shape), 1)
        plan = LaunchPlan(list(shape) or [1], np.array([r or [0] for r in rows]).reshape(len(rows), nd))
        return out_shape, out_strides, nbytes, plan, self.workspace_fn(plan.dims_ptr)


_BYTE = np.dtype(np.uint8)


# --- other ops on the device ----------------------------------------------------------------

def blas_layout(rows, cols, row_stride, col_stride):
    """How cuBLAS reads a (rows x cols) matrix with these element strides: ('row', ld) when
    it is row-major with leading dimension ld, ('col', ld) when column-major, None when
    neither (a copy is needed)."""
    if (col_stride == 1 or cols == 1) and (rows == 1 or row_stride >= max(1, cols)):
        return "row", (row_stride if rows > 1 else max(1, cols))
    if (row_stride == 1 or rows == 1) and (cols == 1 or col_stride >= max(1, rows)):
        return "col", (col_stride if cols > 1 else max(1, rows))
    return None


def as_matrix(x, first):
    """(rows, cols, row stride, col stride) in elements of a dot operand: a vector is a row
    (first operand) or a column (second operand); None when a stride is not a whole
    number of elements."""
    item = x.itemsize
    if any(s % item for s in x.strides):
        return None
    st = [s // item for s in x.strides]
    if x.ndim == 2:
        return x.shape[0], x.shape[1], st[0], st[1]
    return (1, x.shape[0], 0, st[0]) if first else (x.shape[0], 1, st[0], 0)


class DotRun:
    """Dot of float32/float64 vectors and matrices: cuBLAS, or the generated GEMM kernel."""

    def __init__(self, node, gemm_fn, copy):
        self.node, self.gemm_fn, self.copy = node, gemm_fn, copy
        self.dtype = node.outputs[0].type.numpy_dtype

    def __call__(self, args):
        a, b = args
        if a.shape[-1] != b.shape[0]:
            raise ValueError(f"dot: shapes {a.shape} and {b.shape} are not aligned")
        out = empty(a.shape[:-1] + b.shape[1:], self.dtype)
        m, k = (a.shape[0] if a.ndim == 2 else 1), a.shape[-1]
        n = b.shape[1] if b.ndim == 2 else 1
        if out.size == 0:
            return [out]
        if k == 0:
            cudart.memset(out.ptr, 0, out.nbytes)
            return [out]
        if cudart.cublas_available() and max(m, n, k) <= cudart.CUBLAS_MAX:
            self._cublas(a, b, out, m, n, k)
        else:
            a, b = (x if as_matrix(x, first) else self.copy(x) for x, first in ((a, True), (b, False)))
            _, _, sa0, sa1 = as_matrix(a, True)
            _, _, sb0, sb1 = as_matrix(b, False)
            _check(self.gemm_fn(m, n, k, a.ptr, sa0, sa1, b.ptr, sb0, sb1, out.ptr, None), self.node.op)
        return [out]

    def _operand(self, x, first):
        """(layout, ld, array) of an operand cuBLAS can read, copying it when it cannot."""
        mat = as_matrix(x, first)
        layout = blas_layout(*mat) if mat else None
        if layout is None or layout[1] > cudart.CUBLAS_MAX:
            x = self.copy(x)
            layout = blas_layout(*as_matrix(x, first))
        return layout[0], layout[1], x

    def _cublas(self, a, b, out, m, n, k):
        # row-major C = A @ B is column-major C^T = B^T @ A^T: a row-major operand is
        # its own transpose in column-major terms (no op), a column-major one needs op T
        la, lda, a = self._operand(a, True)
        lb, ldb, b = self._operand(b, False)
        op = {"row": cudart.OP_N, "col": cudart.OP_T}
        cudart.gemm(self.dtype.name, op[lb], op[la], n, m, k, b.ptr, ldb, a.ptr, lda, out.ptr, n)


class Copier:
    """Copies device arrays into new C-contiguous ones with the copy kernels of a module
    (one per dtype and rank); with ``shape``, broadcasts the source to it."""

    def __init__(self, launchers):
        self.launchers = launchers   # (dtype name, rank) -> ElementwiseLauncher

    def __call__(self, x, shape=None):
        shape = x.shape if shape is None else tuple(shape)
        out = empty(shape, x.dtype)
        if out.size:
            self.launchers[(x.dtype.name, max(len(shape), 1))].launch([x], [out], shape)
        return out


def dimshuffle(op, x):
    """DimShuffle of a device array: a view."""
    for d in op.drop:
        if x.shape[d] != 1:
            raise ValueError(f"{op}: dimension {d} has size {x.shape[d]}; only size-1 "
                             "dimensions can be dropped")
    shape = tuple(1 if d == "x" else x.shape[d] for d in op.new_order)
    strides = tuple(0 if d == "x" else x.strides[d] for d in op.new_order)
    return x.view(shape, strides)


def reshape_shape(size, requested):
    """The shape ``requested`` (one entry may be -1) resolves to for ``size`` elements,
    as numpy.reshape; ValueError when it cannot."""
    shape = [int(s) for s in requested]
    free = [i for i, s in enumerate(shape) if s == -1]
    known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
    if len(free) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"cannot reshape into {tuple(shape)}")
    if free:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape an array of size {size} into {tuple(shape)}")
        shape[free[0]] = size // known
    elif known != size:
        raise ValueError(f"cannot reshape an array of size {size} into {tuple(shape)}")
    return tuple(shape)


class ViewRun:
    """DimShuffle / Reshape: a view of a device input (Reshape copies a non-contiguous
    one first), NumPy's ``perform`` for a host one."""

    def __init__(self, node, copy):
        self.node, self.copy = node, copy

    def __call__(self, args):
        x = args[0]
        if not isinstance(x, DeviceArray):
            return _perform(self.node, args)
        op = self.node.op
        if type(op).__name__ == "DimShuffle":
            return [dimshuffle(op, x)]
        shp = args[1]
        if len(shp) != op.ndim:
            raise ValueError(f"Reshape: shape vector has {len(shp)} entries, expected {op.ndim}")
        try:
            shape = reshape_shape(x.size, shp)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} (size {x.size}) "
                             f"into {tuple(int(s) for s in shp)}") from None
        if not x.is_c_contiguous():
            x = self.copy(x)
        return [x.view(shape, c_strides(shape, x.itemsize))]


class AllocRun:
    """Alloc on the device: the value broadcast into a new array by a copy kernel."""

    def __init__(self, node, copy):
        self.node, self.copy = node, copy

    def __call__(self, args):
        value, *dims = args
        shape = tuple(int(d) for d in dims)
        if any(d < 0 for d in shape):
            raise ValueError(f"alloc: negative dimension in shape {shape}")
        vshape = value.shape
        if len(vshape) > len(shape) or any(v not in (1, s) for v, s in zip(vshape[::-1], shape[::-1])):
            raise ValueError(f"alloc: cannot broadcast value of shape {vshape} to {shape}")
        return [self.copy(value, shape)]


class SumToRun:
    """SumTo of a device value: the value itself when the shapes agree, else a sum kernel
    over the axes along which ``x`` has size 1 (host ``perform`` when no kernel was
    built for that set of axes)."""

    def __init__(self, node, reducers):
        self.node, self.reducers = node, reducers   # axes -> ReduceRun (keepdims)

    def __call__(self, args):
        g, x = args
        if not isinstance(g, DeviceArray):
            return _perform(self.node, args)
        axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, x.shape)) if b == 1 and a != 1)
        if not axes:
            if g.shape != tuple(x.shape):
                raise ValueError(f"SumTo: cannot reduce shape {g.shape} to {tuple(x.shape)}")
            return [g]
        run = self.reducers.get(axes)
        if run is None:
            return _perform(self.node, [g.get(), x])
        out = run([g])[0]
        if out.shape != tuple(x.shape):
            raise ValueError(f"SumTo: cannot reduce shape {g.shape} to {tuple(x.shape)}")
        return [out]


def _index_error(op, x, error):
    return IndexError(f"{op}: {error} (input shape {x.shape})")


def _table(placement) -> DeviceArray:
    """The placement's table on the device, viewed over its layout (walked along the
    gathered dimension only)."""
    table = to_device(placement.table)
    layout = placement.layout_shape
    return table.view(layout, tuple(8 if d == placement.axis else 0 for d in range(len(layout))))


class _Placer:
    """``place`` for one node's index, remembered per (shape, strides, index values) when
    the index has no arrays (the common case, a view: worked out once, not at every call)."""

    def __init__(self, op):
        self.op, self.idx_list = op, op.idx_list
        self.basic = not op.is_advanced
        self.known = {}

    def __call__(self, x, values):
        if self.basic:
            key = (x.shape, x.strides, tuple([int(v) for v in values]))
            hit = self.known.get(key)
            if hit is not None:
                return hit
        try:
            p = place(x.shape, x.strides, self.idx_list, values)
        except IndexError as e:
            raise _index_error(self.op, x, e) from None
        return _remember(self.known, key, p) if self.basic else p


def _fits(value_shape, region_shape) -> bool:
    """Whether a value of ``value_shape`` broadcasts to ``region_shape`` (NumPy's rule for
    assignment: the value may have fewer dimensions, or size 1 where the region does not)."""
    if len(value_shape) > len(region_shape):
        return all(n == 1 for n in value_shape[:len(value_shape) - len(region_shape)]) and \
            _fits(value_shape[len(value_shape) - len(region_shape):], region_shape)
    return all(v in (1, r) for v, r in zip(value_shape[::-1], region_shape[::-1]))


def _trailing(y, ndim):
    """``y`` without its leading dimensions beyond the last ``ndim`` (of size 1: ``_fits``)."""
    return y.view(y.shape[y.ndim - ndim:], y.strides[y.ndim - ndim:]) if y.ndim > ndim else y


class SubtensorRun:
    """Subtensor of a device value: a view for slices and integers, a gather kernel (a
    table of offsets computed on the host, cuda_indexing) when the index has arrays;
    ``perform`` for a host value."""

    def __init__(self, node, gather):
        self.node, self.gather = node, gather   # ElementwiseLauncher of the gather, or None
        self.place = _Placer(node.op)

    def __call__(self, args):
        x, *values = args
        if not isinstance(x, DeviceArray):
            return _perform(self.node, args)
        p = self.place(x, values)
        if p.table is None:
            return [x.view(p.shape, p.strides, p.offset)]
        out = empty(p.shape, x.dtype)
        if out.size:
            layout = p.layout_shape
            self.gather.launch([x.view(layout, p.strides, p.offset), _table(p)],
                               [out.view(layout, c_strides(layout, x.itemsize))], layout)
        return [out]


class IncSubtensorRun:
    """Set/IncSubtensor on the device: a copy of x, then the value written (or added) into
    the indexed region: an elementwise kernel over the region's view for slices and
    integers, a scatter kernel (atomic additions for 'inc'; for 'set', only the last of
    repeated positions is written, as in NumPy) when the index has arrays."""

    def __init__(self, node, copy, assign, add, scatter, gather):
        self.node, self.copy = node, copy
        # elementwise kernels over the region: the value converted to x's dtype (assign),
        # the region plus the value (add; None for SetSubtensor)
        self.assign, self.add = assign, add
        self.scatter, self.gather = scatter, gather   # indexed kernels (None without arrays)
        self.place = _Placer(node.op)

    def __call__(self, args):
        x, y, *values = args
        op = self.node.op
        out = self.copy(x)
        p = self.place(out, values)
        if not _fits(y.shape, p.shape):
            raise ValueError(f"{op}: could not broadcast a value of shape {y.shape} into the indexed "
                             f"region of shape {p.shape} (input shape {x.shape})")
        if p.table is None:
            region = out.view(p.shape, p.strides, p.offset)
            if region.size:
                value = _trailing(y, region.ndim)
                if op.set_instead_of_inc:
                    self.assign.launch([value], [region], region.shape)
                else:
                    self.add.launch([region, value], [region], region.shape)
            return [out]
        if not math.prod(p.shape):
            return [out]
        layout, table = p.layout_shape, p.table
        value = y
        if y.shape != p.shape or y.dtype != out.dtype or not y.is_c_contiguous():
            value = empty(p.shape, out.dtype)
            self.assign.launch([_trailing(y, len(p.shape))], [value], p.shape)
        value = value.view(layout, c_strides(layout, out.itemsize))
        if op.set_instead_of_inc:
            keep = last_writes(table)
            if keep is not None:     # the last write of each repeated position only
                p, value = self._last_writes(p, value, keep)
                layout = p.layout_shape
        self.scatter.launch([value, _table(p)], [out.view(layout, p.strides, p.offset)], layout)
        return [out]

    def _last_writes(self, p, value, keep):
        """The placement and value restricted to the positions ``keep`` of the table."""
        axis = p.axis
        step = value.strides[axis]
        rows = Placement(0, tuple((len(keep), 0) if d == axis else (n, s) for d, (n, s)
                                  in enumerate(zip(value.shape, value.strides))),
                         axis, keep.astype(np.int64) * step, None)
        layout = rows.layout_shape
        kept = empty(layout, value.dtype)
        self.gather.launch([value.view(layout, rows.strides), _table(rows)], [kept], layout)
        dims = tuple((len(keep), 0) if d == axis else dim for d, dim in enumerate(p.dims))
        return dataclasses.replace(p, dims=dims, table=p.table[keep]), kept


class JoinRun:
    """Join on the device: each input copied (converted to the output's dtype) into its
    part of a new array."""

    def __init__(self, node, assign):
        self.node, self.assign = node, assign   # {input dtype: ElementwiseLauncher}

    def __call__(self, args):
        axis = self.node.op.axis
        first = args[0].shape
        if any(len(a.shape) != len(first) or any(n != m for d, (n, m) in enumerate(zip(a.shape, first))
                                                  if d != axis) for a in args):
            raise ValueError(f"join along axis {axis}: shapes {[a.shape for a in args]} do not match")
        shape = list(first)
        shape[axis] = sum(a.shape[axis] for a in args)
        out = empty(tuple(shape), self.node.outputs[0].type.numpy_dtype)
        start = 0
        for a in args:
            if a.size:
                part = out.view(a.shape, out.strides, start * out.strides[axis])
                self.assign[a.dtype.name].launch([a], [part], a.shape)
            start += a.shape[axis]
        return [out]


def _line_key(node):
    """The helper key ('line', dtype, output dtype, rank, kind) of the line kernel of a
    CumOp, ArgReduce or ArgSort ``node`` (rank 1 when it flattens)."""
    name, x = _op_name(node), node.inputs[0]
    kind = "argsort" if name == "ArgSort" else node.op.kind if name == "ArgReduce" else \
        "cumsum" if node.op.mode == "add" else "cumprod"
    rank = 1 if getattr(node.op, "axis", -1) is None else max(x.ndim, 1)
    return "line", x.dtype, node.outputs[0].dtype, rank, kind


class LineLauncher(ElementwiseLauncher):
    """Launches a line kernel: the leading dimensions coalesced where both buffers allow,
    the last (the lines) kept as it is."""

    def launch(self, inputs, outputs, shape):
        arrays = [*inputs, *outputs]
        key = (shape, tuple([(a.shape, a.strides) for a in arrays]))
        plan = self.plans.get(key)
        if plan is None:
            rows = [list(a.strides) for a in arrays]
            dims, lead = coalesce(list(shape[:-1]), [r[:-1] for r in rows]) if self.nd > 1 \
                else ([], [[] for _ in rows])
            pad = self.nd - 1 - len(dims)
            strides = [[0] * pad + r + [row[-1]] for r, row in zip(lead, rows)]
            plan = _remember(self.plans, key, LaunchPlan([1] * pad + dims + [shape[-1]], strides))
        self.call(plan, arrays)


class LineRun:
    """CumOp, ArgReduce and ArgSort on the device: the axis moved last (a view; a
    flattening copy when the axis is None and the input is not contiguous), one thread
    per line (ArgSort: along the last axis, with scratch memory for each line)."""

    def __init__(self, node, launcher, copy):
        self.node, self.launcher, self.copy = node, launcher, copy
        self.out_dtype = node.outputs[0].type.numpy_dtype

    def __call__(self, args):
        (x,) = args
        op = self.node.op
        if _op_name(self.node) == "ArgSort":
            return [self._argsort(x)]
        axis = op.axis
        if axis is None:
            if not x.is_c_contiguous():
                x = self.copy(x)
            x = x.view((x.size,), (x.itemsize,))
            axis = 0
        cumulative = _op_name(self.node) == "CumOp"
        if not cumulative and x.shape[axis] == 0:
            raise ValueError(f"{op}: attempt to get {op.kind} of an empty sequence (shape {args[0].shape})")
        out_shape = x.shape if cumulative else x.shape[:axis] + x.shape[axis + 1:]
        out = empty(out_shape, self.out_dtype)
        if not x.size:
            return [out]
        order = [d for d in range(x.ndim) if d != axis] + [axis]
        lines = x.view(tuple(x.shape[d] for d in order), tuple(x.strides[d] for d in order))
        if cumulative:
            target = out.view(lines.shape, tuple(out.strides[d] for d in order))
        else:
            target = out.view(lines.shape, out.strides + (0,))
        self.launcher.launch([lines], [target], lines.shape)
        return [out]

    def _argsort(self, x):
        out = empty(x.shape, self.out_dtype)
        if x.size:
            n = x.shape[-1]
            scratch = empty(x.shape[:-1] + (SCRATCH_WORDS * n,), np.uint64)
            lines = scratch.view(x.shape, scratch.strides[:-1] + (0,))
            self.launcher.launch([x], [out, lines], x.shape)
        return out


class DeviceMemory(Memory):
    """A scan loop's arrays on the device (scan_module/loop.py): rows are views, and
    values are stored by the module's copy kernels."""

    def __init__(self, copy):
        self.copy = copy   # a Copier: its launchers, by (dtype, rank)

    def empty(self, shape, dtype):
        return empty(shape, dtype)

    def row(self, array, t):
        return array.view(array.shape[1:], array.strides[1:], t * array.strides[0])

    def head(self, array, n):
        return array.view((n,) + array.shape[1:], array.strides)

    def store(self, array, t, value):
        target = self.head(array, t.stop) if isinstance(t, slice) else self.row(array, t)
        if not isinstance(value, DeviceArray):
            value = to_device(np.asarray(value, dtype=array.dtype))
        elif value.dtype != array.dtype:   # the copy kernels do not convert
            raise TypeError(f"scan: a value of dtype {value.dtype} for a buffer of dtype {array.dtype}")
        if target.size:
            launcher = self.copy.launchers[(array.dtype.name, max(target.ndim, 1))]
            launcher.launch([value], [target], target.shape)

    def final(self, value, dtype):
        return value if isinstance(value, DeviceArray) else to_device(np.asarray(value, dtype=dtype))

    def truth(self, value) -> bool:
        return bool(value.get() if isinstance(value, DeviceArray) else value)


class ScanRun:
    """A scan whose step runs in mode 'cuda': the loop (scan_module/loop.py) over device
    buffers, the step reading its rows in place and leaving its results on the device.
    The loop itself, one step call per step, runs in Python."""

    def __init__(self, node, memory):
        self.node, self.memory = node, memory
        self.dtypes = [o.type.numpy_dtype for o in node.outputs]

    def __call__(self, args):
        op = self.node.op
        step = op.step_function("cuda", device_outputs=True)
        return run_loop(op, step, args, self.dtypes, self.memory)


def _scan_on_device(node):
    """Whether a Scan ``node`` runs its loop over device values: its step is compiled for
    mode 'cuda' and every value it reads or makes has a CUDA dtype."""
    if resolve_mode(node.op.mode or "cuda") != "cuda":
        return False
    return all(v.dtype in cuda_render.CUDA_TYPES for v in node.inputs[1:] + node.outputs)


def _perform(node, args):
    """Run ``node.op.perform`` and check what it stored against the outputs' types."""
    from theanine.compile.executor import coerce_output
    storage = [[None] for _ in node.outputs]
    node.op.perform(node, args, storage)
    outs = []
    for var, (value,) in zip(node.outputs, storage):
        dtype = getattr(var.type, "numpy_dtype", None)
        if dtype is not None and not isinstance(value, DeviceArray) and (
                getattr(value, "dtype", None) != dtype or value.ndim != var.type.ndim):
            value = coerce_output(node, var, value)
        outs.append(value)
    return outs


class HostRun:
    """A node without a device implementation: ``perform`` on host values."""

    def __init__(self, node):
        self.node = node

    def __call__(self, args):
        return _perform(self.node, args)


# --- planning ---------------------------------------------------------------------------

#: ops that only read their input's shape or pass it on: they run wherever the input is
_ANYWHERE = ("Shape", "SpecifyShape", "ScalarGradOp")
#: ops that run where their input is, or where their clients are, and those that pass their
#: input on
_MOVABLE = ("Alloc", "DimShuffle", "Reshape", "Subtensor", "SpecifyShape", "Assert", "ScalarGradOp")
#: placements whose thunks want their (first) input on the device
_ON_DEVICE = ("kernel", "dot", "alloc", "device view", "sumto", "gather", "incsubtensor", "join",
              "scan", "line")
#: SumTo gets a sum kernel for each set of axes, while there are at most this many candidates
_SUMTO_MAX_AXES = 3


def _op_name(node):
    return type(node.op).__name__


def _dot_on_device(node):
    dtypes = {v.dtype for v in node.inputs + node.outputs}
    return len(dtypes) == 1 and dtypes <= {"float32", "float64"} and all(v.ndim in (1, 2) for v in node.inputs)


class _Requests:
    """The helper kernels a module needs besides the planned ones: copies (dtype, rank),
    conversions and additions into views (destination dtype, value dtype, rank), indexed
    copies (dtype, rank, mode), line kernels (dtype, output dtype, rank, kind), sums for
    SumTo (dtype, rank, axes) and matrix products (dtype)."""

    def __init__(self):
        self.copies, self.sums, self.gemms = set(), set(), set()
        self.assigns, self.adds, self.indexed, self.lines = set(), set(), set(), set()

    def want(self, key):
        """Request the helper kernel of ``key``, as ``kernels`` names them (kind first)."""
        kinds = {"copy": self.copies, "assign": self.assigns, "add": self.adds,
                 "indexed": self.indexed, "line": self.lines}
        kinds[key[0]].add(key[1:])

    def kernels(self):
        """[(key, kernel IR or ('gemm', dtype))] in a deterministic order."""
        out = [(("copy", d, r), ElementwiseKernel("", r, lower.identity_program(d)))
               for d, r in sorted(self.copies)]
        out += [(("assign", d, v, r), ElementwiseKernel("", r, _convert_program(d, v)))
                for d, v, r in sorted(self.assigns)]
        out += [(("add", d, v, r), ElementwiseKernel("", r, _add_program(d, v)))
                for d, v, r in sorted(self.adds)]
        out += [(("indexed", d, r, m), cuda_render.IndexedKernel("", r, d, m))
                for d, r, m in sorted(self.indexed)]
        out += [(("line", d, o, r, k), cuda_render.LineKernel("", r, d, o, k))
                for d, o, r, k in sorted(self.lines)]
        out += [(("sum", d, r, axes), ReduceKernel("", r, axes, "sum", lower.identity_program(d), d))
                for d, r, axes in sorted(self.sums)]
        out += [(("gemm", d), ("gemm", d)) for d in sorted(self.gemms)]
        return out


def _convert_program(dst, src):
    """The program converting its ``src`` input to ``dst``."""
    return ScalarProgram((src,), (), (Instr("cast", (0,), dst, src),), (1,))


def _add_program(dst, src):
    """The program adding its ``src`` input (converted) to its ``dst`` input."""
    if dst == src:
        return ScalarProgram((dst, src), (), (Instr("add", (0, 1), dst, dst),), (2,))
    return ScalarProgram((dst, src), (), (Instr("cast", (1,), dst, src), Instr("add", (0, 2), dst, dst)), (3,))


def _sumto_axes(node):
    """The axes sets a SumTo may reduce at run time (where ``x`` may have size 1 and ``g``
    may not), or None when there are too many to build a kernel for each."""
    g, x = node.inputs
    candidates = [i for i, (a, b) in enumerate(zip(g.type.shape, x.type.shape))
                  if b in (None, 1) and a != 1]
    if len(candidates) > _SUMTO_MAX_AXES:
        return None
    return [axes for r in range(1, len(candidates) + 1)
            for axes in itertools.combinations(candidates, r)]


class CudaProgram:
    """The nodes of one compiled function on the GPU: source, thunks, kernels, fallbacks
    (see the module docstring). ``compile=False`` renders the source only. ``arch`` is
    the GPU architecture built for (digits, '90' for sm_90): the current device's, or
    nvcc.DEFAULT_ARCH when there is no device. ``device_outputs``: the graph's outputs
    are left on the device, as DeviceArrays, instead of copied to the host."""

    target = "cuda"

    def __init__(self, fgraph, compile=True, arch=None, device_outputs=False, interface=None):
        """``interface``: how the function calls the graph (see NativeProgram); with it, and
        ``compile``, the program also builds ``entry``, the whole function as one native
        call (compile/cuda_entry.py), when the graph schedules for it; ``why_no_entry``
        says why not otherwise."""
        self.fgraph = fgraph
        self.entry, self.why_no_entry = None, "mode 'cuda' runs this graph node by node"
        self.host_nodes, self.copied_outputs = [], []
        #: the graph's outputs stay on the device (a scan step's, for its loop on the device)
        self.device_outputs = device_outputs
        self.planned, _ = plan_kernels(fgraph)
        planned = {p.node: p for p in self.planned}
        nodes = fgraph.toposort()
        requests = _Requests()
        # node -> 'kernel', 'dot', 'view', 'device view', 'alloc', 'sumto', 'anywhere' or 'host'
        self._where = {}
        for node in nodes:
            self._where[node] = self._place(node, planned, requests)
        # Alloc and views run on the device when a client does (views of host values
        # otherwise stay on the host); clients come later in the order
        for node in reversed(nodes):
            name = _op_name(node)
            if name in ("Alloc", "DimShuffle", "Reshape") and self._feeds_device(node):
                self._where[node] = "alloc" if name == "Alloc" else "device view"
                if name == "Alloc":
                    requests.copies.add((node.outputs[0].dtype, max(node.outputs[0].ndim, 1)))
        self.fallbacks = [n for n in nodes if self._where[n] in ("host", "anywhere")]
        self._helpers = requests.kernels()
        #: the CUDA module nvcc builds for this graph's nodes
        self.module, names = self._render()
        self.kernels = []
        for p, name in zip(self.planned, names):
            p.info.name = name
            self.kernels.append(p.info)
        self._names = names
        self.source = self.module
        self._add_loop_bodies(nodes)
        self._nodes, self._thunks = nodes, (None if compile else {})
        if compile and arch is None:
            arch = "".join(map(str, cudart.compute_capability())) if is_available() else nvcc.DEFAULT_ARCH
        self._arch = arch
        if interface is not None and not device_outputs:
            self._add_entry(fgraph, interface, compile)

    @property
    def thunks(self) -> dict:
        """The node-by-node path's thunks (empty when not compiled). With an entry they are
        built when first asked for: only a call the entry hands over needs them."""
        if self._thunks is None:
            self._thunks = self._build_thunks(self._nodes, self._arch)
        return self._thunks

    def _add_entry(self, fgraph, interface, compiled):
        """Render the whole-function entry (its source follows the module's in ``source``)
        and, when ``compiled``, build it as ``entry``; or say in ``why_no_entry`` why not."""
        from theanine.compile.cuda_entry import CudaEntry, render_entry
        rendered, why = render_entry(fgraph, self.planned, interface)
        if rendered is None:
            self.why_no_entry = f"mode 'cuda' runs this graph node by node: {why}"
            return
        self.source += ENTRY_MARKER + rendered["source"]
        self.copied_outputs = rendered["copied"]
        self.why_no_entry = "not compiled"
        if compiled:
            self.entry, self.why_no_entry = CudaEntry(rendered, interface, self._arch), None

    def _add_loop_bodies(self, nodes):
        """The kernels and modules of the steps of the scans that loop on the device, added
        to ``kernels`` (marked with their scan) and ``source`` (after this module): each
        step is a module of its own (compiled by the scan's run, with the thunks); their
        CudaPrograms are ``loop_programs``."""
        self.loop_programs = []
        for node in nodes:
            if self._where[node] != "scan":
                continue
            op = node.op
            step = CudaProgram(op.step_graph("cuda"), compile=False, device_outputs=True)
            self.loop_programs.append(step)
            self.kernels += [dataclasses.replace(info, loop=str(op)) for info in step.kernels]
            self.source += f"\n/* ---- the step of {comment_text(str(op))}: a module of its own ---- */\n" + \
                step.source

    def _place(self, node, planned, requests):
        name = _op_name(node)
        if node in planned:
            return "kernel"
        if name == "Dot" and _dot_on_device(node):
            dtype = node.outputs[0].dtype
            requests.gemms.add(dtype)
            requests.copies.update({(dtype, 1), (dtype, 2)})
            return "dot"
        if name in ("DimShuffle", "Reshape"):
            if name == "Reshape":
                requests.copies.add((node.inputs[0].dtype, max(node.inputs[0].ndim, 1)))
            return "view"
        if name in ("Subtensor", "IncSubtensor", "Join"):
            placed = self._place_indexing(node, name, requests)
            if placed:
                return placed
        if name in ("CumOp", "ArgReduce", "ArgSort"):
            x, out = node.inputs[0], node.outputs[0]
            if x.dtype in cuda_render.CUDA_TYPES and out.dtype in cuda_render.CUDA_TYPES \
                    and not self._made_on_host(x):
                requests.want(_line_key(node))
                if getattr(node.op, "axis", -1) is None and x.ndim > 1:   # flattened: a contiguous copy first
                    requests.copies.add((x.dtype, x.ndim))
                return "line"
        if name in ("Assert", "IfElse"):   # conditions on the host, values passed on as they are
            return "condition"
        if name == "Scan" and _scan_on_device(node):
            for out in node.outputs:
                if out.type.ndim:
                    requests.copies.update({(out.dtype, out.ndim), (out.dtype, max(out.ndim - 1, 1))})
            return "scan"
        if name == "SumTo":
            for axes in _sumto_axes(node) or ():
                requests.sums.add((node.inputs[0].dtype, node.inputs[0].ndim, axes))
            return "sumto"
        if name in _ANYWHERE:
            return "anywhere"
        return "host"

    def _place_indexing(self, node, name, requests):
        """'subtensor view', 'gather', 'incsubtensor' or 'join' when ``node`` runs on the
        device (its kernels requested), else None. Values of dtypes CUDA lacks, and
        values made on the host for the host (shape arithmetic), stay there."""
        data = node.inputs[:2] if name == "IncSubtensor" else \
            node.inputs if name == "Join" else node.inputs[:1]
        if not all(v.dtype in cuda_render.CUDA_TYPES for v in data):
            return None
        if name == "Subtensor" and not node.op.is_advanced:
            return "subtensor view"
        if all(self._made_on_host(v) for v in data):
            return None
        if name == "Join":
            keys = _join_keys(node).values()
        elif name == "Subtensor":
            keys = [_gather_key(node)]
        else:
            x = node.inputs[0]
            if node.op.is_advanced and not node.op.set_instead_of_inc and x.dtype not in cuda_render.ATOMIC_ADD:
                return None
            keys = _inc_keys(node).values()
        for key in keys:
            requests.want(key)
        return {"Join": "join", "Subtensor": "gather", "IncSubtensor": "incsubtensor"}[name]

    def _made_on_host(self, var):
        """Whether ``var`` is computed on the host: by a node that runs there, or by a view,
        an Alloc (whose place is settled later, by their clients) or a pass-through of such
        a value."""
        node = var.owner
        if node is None:
            return False
        if _op_name(node) in _MOVABLE:
            return self._made_on_host(node.inputs[0])
        return self._where.get(node) in ("host", "anywhere")

    def _feeds_device(self, node):
        """Whether a client of ``node``'s output runs on the device."""
        return any(self._where.get(c) in _ON_DEVICE for c, _ in self.fgraph.clients[node.outputs[0]]
                   if c != "output")

    def _render(self):
        kernels = [(p.kernel, p.inner_broadcast) for p in self.planned]
        gemms = []
        for k, (key, ir) in enumerate(self._helpers, start=len(kernels)):
            placeholder = f"__KERNEL{k}__"
            if key[0] == "gemm":
                gemms.append((placeholder, key[1]))
                kernels.append(None)
            else:
                kernels.append((dataclasses.replace(ir, name=placeholder), None))
        text = cuda_render.render_module([k for k in kernels if k is not None], "theanine_module",
                                         gemms)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        names = [f"theanine_{digest}_k{k}" for k in range(len(kernels))]
        for k, name in reversed(list(enumerate(names))):
            text = text.replace(f"__KERNEL{k}__", name)
        return text.replace("theanine_module", f"theanine_{digest}"), names

    def _build_thunks(self, nodes, arch):
        lib = nvcc.load_library(self.module, arch) if self._names else None
        n_planned = len(self.planned)
        helpers = {key: self._names[k] for k, (key, _) in enumerate(self._helpers, start=n_planned)}
        copy = Copier({(key[1], key[2]): ElementwiseLauncher(_launcher(lib, name), key[2], "a device copy")
                       for key, name in helpers.items() if key[0] == "copy"})

        def helper(key):
            """The launcher of the helper kernel ``key`` (rank last but for indexed kernels)."""
            rank = key[2] if key[0] == "indexed" else key[-1]
            return ElementwiseLauncher(_launcher(lib, helpers[key]), rank, f"a device {key[0]}")
        constants = [c.data for c in _constants(self.fgraph)]
        residency = Residency(constants)
        outputs = set() if self.device_outputs else set(self.fgraph.outputs)
        thunks = {}
        planned = {p.node: (p, name) for p, name in zip(self.planned, self._names)}
        for index, node in enumerate(nodes):
            where = self._where[node]
            n_in = len(node.inputs)
            placement = ["host"] * n_in
            if where == "kernel":
                p, name = planned[node]
                if isinstance(p.kernel, ReduceKernel):
                    run = ReduceRun(node, _launcher(lib, name, True), _workspace(lib, name),
                                    p.kernel.kind, p.kernel.axes, p.kernel.out_dtype)
                else:
                    run = ElementwiseRun(node, ElementwiseLauncher(_launcher(lib, name),
                                                                   p.kernel.ndim, node.op))
                placement = ["device"] * n_in
            elif where == "dot":
                run = DotRun(node, _gemm(lib, helpers[("gemm", node.outputs[0].dtype)]), copy)
                placement = ["device"] * n_in
            elif where in ("view", "device view"):
                run = ViewRun(node, copy)
                placement[0] = "device" if where == "device view" else "any"
            elif where == "alloc":
                run = AllocRun(node, copy)
                placement[0] = "device"
            elif where == "sumto":
                dtype, ndim = node.inputs[0].dtype, node.inputs[0].ndim
                reducers = {}
                for axes in _sumto_axes(node) or ():
                    name = helpers[("sum", dtype, ndim, axes)]
                    reducers[axes] = ReduceRun(node, _launcher(lib, name, True), _workspace(lib, name),
                                               "sum", axes, dtype, keepdims=True)
                run = SumToRun(node, reducers)
                placement = ["any", "any"]
            elif where in ("subtensor view", "gather"):
                run = SubtensorRun(node, helper(_gather_key(node)) if where == "gather" else None)
                placement = ["any" if where == "subtensor view" else "device"] + ["host"] * (n_in - 1)
            elif where == "incsubtensor":
                keys = _inc_keys(node)
                run = IncSubtensorRun(node, copy, *[helper(keys[role]) if role in keys else None
                                                    for role in ("assign", "add", "scatter", "gather")])
                placement = ["device", "device"] + ["host"] * (n_in - 2)
            elif where == "join":
                run = JoinRun(node, {dtype: helper(key) for dtype, key in _join_keys(node).items()})
                placement = ["device"] * n_in
            elif where == "scan":
                run = ScanRun(node, DeviceMemory(copy))
                placement = ["host"] + ["device"] * (n_in - 1)
            elif where == "line":
                key = _line_key(node)
                run = LineRun(node, LineLauncher(_launcher(lib, helpers[key]), key[3], node.op), copy)
                placement = ["device"]
            elif where == "condition":
                run = HostRun(node)
                placement = ["any"] + ["host"] * (n_in - 1) if _op_name(node) == "Assert" else \
                    ["host"] + ["any"] * (n_in - 1)
            elif where == "anywhere":
                run = HostRun(node)
                placement = ["any"] * n_in
            else:
                run = HostRun(node)
            thunks[node] = Thunk(residency, run, placement, [o in outputs for o in node.outputs],
                                 index)
        return thunks


def _assign_key(dst, src, rank):
    """The key of the helper kernel writing ``src`` values into a ``dst`` view."""
    rank = max(rank, 1)
    return ("copy", dst, rank) if dst == src else ("assign", dst, src, rank)


# The helper kernels of a device node, by key: the same functions say what a module must
# build (``_place``) and which kernels a node's run gets (``_build_thunks``).

def _layout_rank(node):
    """The rank of the indexed kernels of a Subtensor or IncSubtensor ``node``."""
    x = node.inputs[0]
    index_inputs = node.inputs[2:] if _op_name(node) == "IncSubtensor" else node.inputs[1:]
    return layout_rank(node.op.idx_list, x.ndim, [v.ndim for v in index_inputs])


def _gather_key(node):
    return "indexed", node.inputs[0].dtype, _layout_rank(node), "gather"


def _join_keys(node) -> dict:
    """{input dtype: key of the kernel copying it into its part of the output}."""
    out = node.outputs[0]
    return {v.dtype: _assign_key(out.dtype, v.dtype, out.ndim) for v in node.inputs}


def _inc_keys(node) -> dict:
    """{role: key} of a Set/IncSubtensor ``node``'s kernels: 'copy' (of x), 'assign' (the
    value converted into the region), and 'add' (into the region) for slices and
    integers, or 'scatter' (and, for a set, 'gather', to keep the last of repeated
    positions) for array indices."""
    x, y, *index_inputs = node.inputs
    op = node.op
    region = len(_result_type_shape(x.type.shape, op.idx_list, index_inputs))
    keys = {"copy": ("copy", x.dtype, max(x.ndim, 1)), "assign": _assign_key(x.dtype, y.dtype, region)}
    if not op.is_advanced:
        if not op.set_instead_of_inc:
            keys["add"] = ("add", x.dtype, y.dtype, max(region, 1))
        return keys
    rank = _layout_rank(node)
    keys["scatter"] = ("indexed", x.dtype, rank, "set" if op.set_instead_of_inc else "inc")
    if op.set_instead_of_inc:
        keys["gather"] = ("indexed", x.dtype, rank, "gather")
    return keys


def _constants(fgraph):
    from theanine.graph.basic import Constant
    seen = {}
    for node in fgraph.toposort():
        for v in node.inputs:
            if isinstance(v, Constant):
                seen[id(v)] = v
    return list(seen.values())


def _launcher(lib, name, workspace=False):
    fn = nvcc.symbol(lib, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [_Ptr, _Ptr, _Ptr] + ([_Ptr] if workspace else []) + [_Ptr]
    return fn


def _workspace(lib, name):
    fn = nvcc.symbol(lib, f"{name}_workspace")
    fn.restype = ctypes.c_int64
    fn.argtypes = [_Ptr]
    return fn


def _gemm(lib, name):
    fn = nvcc.symbol(lib, name)
    fn.restype = ctypes.c_int
    i64 = ctypes.c_int64
    fn.argtypes = [i64, i64, i64, _Ptr, i64, i64, _Ptr, i64, i64, _Ptr, _Ptr]
    return fn
