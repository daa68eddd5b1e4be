"""mode="cuda": a compiled function's whole schedule in one native call.

``CudaEntry(fgraph, planned, interface)`` schedules the graph (compile/scheduler.py),
renders it with codegen/cuda_entry.py and builds its two parts: the CUDA module of the
kernels it launches (nvcc, cached on disk) and the C unit of the entry itself with the
kernels of its host steps (the system compiler, cached on disk). Calling it runs the
function as mode 'llvm' and 'c' entries do: it takes the arguments, reads the shared
variables' values, runs every step, stores the updates and returns the outputs, or
returns NotImplemented, leaving no trace, for a call it does not take (arguments of
another type or rank, sizes the node-by-node path must report), which then runs node
by node.

Values: an argument or shared value of rank 1 or more is used in place when it is a
DeviceArray, or when it is a host array this mode made from a device value (an updated
shared value: see cuda_program's mirrors); any other array is copied to the device.
Outputs come back as new host arrays; each update is copied to the host once, as a
read-only array remembered with its device copy, so the next call reads it in place.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading

import numpy as np

from theanine.codegen import cudart, nvcc
from theanine.codegen import cuda as cuda_render
from theanine.codegen.cuda_entry import (ALLOC_DEVICE_RESULT, ALLOC_HOST_RESULT, BAIL_REASONS, Unsupported,
                                         render_cuda_entry)
from theanine import cuda
from theanine.cuda import DeviceArray, allocate, to_device, wrap

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
_ALLOC = ctypes.CFUNCTYPE(_ptr, _i64, ctypes.c_int)
_DROP = ctypes.CFUNCTYPE(None, _ptr)
_COPY = ctypes.CFUNCTYPE(ctypes.c_int, _ptr, _ptr, _i64, ctypes.c_int)
_ZERO = ctypes.CFUNCTYPE(ctypes.c_int, _ptr, _i64)
_GEMM = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, _i64, _i64, _i64, _ptr, _i64, _i64, _ptr, _i64, _i64,
                         _ptr)
_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr)
#: what a callback returns after raising (the call then raises the exception)
_CALLBACK_FAILED = 100000


def render_entry(fgraph, planned, interface):
    """(the rendered entry: codegen/cuda_entry.py's parts with the schedule's ``schedule``,
    ``constants`` and ``copied`` outputs, None), or (None, why there is none)."""
    from theanine.compile.scheduler import NotSchedulable, build_schedule
    try:
        schedule, constants, extra, copied, _ = build_schedule(
            fgraph, planned, interface.get("n_args"), interface.get("n_outputs"),
            interface.get("single", False), host_calls=False, target="cuda")
        pairs = [(p.kernel, p.inner_broadcast) for p in planned] + list(extra)
        rendered = render_cuda_entry(schedule, {kernel.name: (kernel, inner) for kernel, inner in pairs},
                                     "__ENTRY__")
    except (NotSchedulable, Unsupported) as exc:
        return None, str(exc)
    rendered.update(schedule=schedule, constants=constants, copied=copied)
    rendered["host"], rendered["module"], rendered["names"] = _source_names(rendered)
    rendered["source"] = rendered["host"] + "\n/* ---- the CUDA module it launches ---- */\n" + \
        rendered["module"]
    return rendered, None


def _source_names(rendered):
    """(host C text, CUDA text, {placeholder: final name}) with the names made unique."""
    gemms = [(f"__GEMM_{dtype}__", dtype) for dtype in rendered["gemms"]]
    device = cuda_render.render_module(rendered["device"], "theanine_module", gemms)
    host = rendered["host"]
    digest = hashlib.sha256((host + device).encode()).hexdigest()[:16]
    names = {kernel.name: f"theanine_{digest}_k{k}"
             for k, (kernel, _) in enumerate(rendered["device"] + rendered["host_kernels"])}
    names.update({placeholder: f"theanine_{digest}_gemm_{dtype}" for placeholder, dtype in gemms})
    names["__ENTRY__"] = f"theanine_{digest}_cuda_entry"
    names["theanine_module"] = f"theanine_{digest}"
    for placeholder in sorted(names, key=len, reverse=True):
        host = host.replace(placeholder, names[placeholder])
        device = device.replace(placeholder, names[placeholder])
    return host, device, names


class CudaEntry:
    """The whole function as one call (see the module docstring), built from
    ``render_entry``'s result. ``source``: the C unit and the CUDA module it launches;
    ``copied_outputs``: the outputs returned as copies."""

    def __init__(self, rendered, interface, arch):
        from theanine.codegen import cc
        schedule, names = rendered["schedule"], rendered["names"]
        self.schedule, self.copied_outputs = schedule, rendered["copied"]
        self.source = rendered["source"]
        self.n_args = len(schedule.args)
        self.containers = list(interface.get("containers", ()))
        self.updated = list(interface.get("updated", ()))
        self.single = schedule.single
        self.n_outputs = schedule.n_outputs
        self.result_sides = rendered["result_sides"]
        self.inputs = [schedule.buffers[b] for b in list(schedule.args) + list(schedule.shared)]
        self.input_dtypes = [np.dtype(buf.dtype) for buf in self.inputs]
        self.results = [schedule.buffers[b] for b in schedule.results]
        self.result_dtypes = [np.dtype(buf.dtype) for buf in self.results]
        self.library = nvcc.load_library(rendered["module"], arch)
        entry_name = names["__ENTRY__"]
        self._fn = _ENTRY(cc.compile_source(rendered["host"], [entry_name])[entry_name])
        self._gemm_kernels = {dtype: _gemm_launcher(self.library, names[f"__GEMM_{dtype}__"])
                              for dtype in rendered["gemms"]}
        self._lock = threading.Lock()
        self._kept = {}        # pointer -> Block of a kept slot
        self._made = {}        # pointer -> the owner of this call's result there
        self._error = None
        #: how many calls ran here, and how many it started and handed to the node-by-node path
        self.completed = self.handed_over = 0
        #: what made the entry hand over its last call that it started: 'shape' (sizes that
        #: do not match), 'index' (out of range, or a set through a repeated index),
        #: 'empty', 'unsupported', 'layout' (a copy the entry does not make) or 'memory'
        self.why_handed_over = None
        self._callbacks = [_ALLOC(self._alloc), _DROP(self._drop), _COPY(self._copy), _ZERO(self._zero),
                           _GEMM(self._gemm)]
        n_slots = max(rendered["n_slots"], 1)
        self._slot_ptrs, self._slot_sizes = (_ptr * n_slots)(), (_i64 * n_slots)()
        self._constants = []
        values = [self._table_value(slot, names, rendered["constants"]) for slot in rendered["table"]]
        self._table = (_ptr * max(len(values), 1))(*values)
        n_in = len(self.inputs)
        self._data, self._host_data = (_ptr * max(n_in, 1))(), (_ptr * max(n_in, 1))()
        self._dims = (_i64 * max(sum(b.ndim for b in self.inputs), 1))()
        self._strides = (_i64 * max(sum(b.ndim for b in self.inputs), 1))()
        n_res_dims = max(sum(b.ndim for b in self.results), 1)
        self._out_data = (_ptr * max(len(self.results), 1))()
        self._out_dims, self._out_strides = (_i64 * n_res_dims)(), (_i64 * n_res_dims)()

    def _table_value(self, slot, names, constants):
        fixed = {"slots:ptr": ctypes.addressof(self._slot_ptrs),
                 "slots:size": ctypes.addressof(self._slot_sizes)}
        callbacks = dict(zip(("alloc", "drop", "copy", "zero", "gemm"), self._callbacks))
        if slot in fixed:
            return fixed[slot]
        if slot in callbacks:
            return ctypes.cast(callbacks[slot], _ptr).value
        kind, _, key = slot.partition(":")
        if kind in ("launch", "workspace"):
            name = names[key] + ("_workspace" if kind == "workspace" else "")
            return ctypes.cast(nvcc.symbol(self.library, name), _ptr).value
        if slot.startswith("device "):
            array = to_device(np.ascontiguousarray(constants[slot[len("device "):]]))
            self._constants.append(array)
            return array.ptr
        array = np.ascontiguousarray(constants[slot])
        self._constants.append(array)
        return array.ctypes.data

    # callbacks (run inside the entry; an exception is kept and raised after it returns)
    def _guarded(self, fn, *args, failed=_CALLBACK_FAILED):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001  (re-raised by __call__)
            self._error = self._error or exc
            return failed

    def _alloc(self, nbytes, kind):
        def run():
            if kind == ALLOC_HOST_RESULT:
                owner = np.empty(max(nbytes, 1), np.uint8)
                self._made[owner.ctypes.data] = owner
                return owner.ctypes.data
            block = cuda.pool.allocate(max(nbytes, 1))
            (self._made if kind == ALLOC_DEVICE_RESULT else self._kept)[block.ptr] = block
            return block.ptr
        return self._guarded(run, failed=None)

    def _drop(self, ptr):
        self._kept.pop(ptr, None)

    def _copy(self, dst, src, nbytes, kind):
        return self._guarded(lambda: cudart.memcpy(dst, src, nbytes, kind) or 0)

    def _zero(self, ptr, nbytes):
        return self._guarded(lambda: cudart.memset(ptr, 0, nbytes) or 0)

    def _gemm(self, itemsize, m, n, k, a, sa0, sa1, b, sb0, sb1, c):
        def run():
            dtype = np.dtype(np.float32 if itemsize == 4 else np.float64)
            out = wrap((m, n), dtype, (n * itemsize, itemsize), c, None)
            if k == 0:
                cudart.memset(c, 0, m * n * itemsize)
                return 0
            A = wrap((m, k), dtype, (sa0, sa1), a, None)
            B = wrap((k, n), dtype, (sb0, sb1), b, None)
            layouts = [_blas_layout(A), _blas_layout(B)]
            if cudart.cublas_available() and None not in layouts and max(m, n, k) <= cudart.CUBLAS_MAX:
                # row-major C = A @ B is column-major C^T = B^T @ A^T
                (la, lda), (lb, ldb) = layouts
                op = {"row": cudart.OP_N, "col": cudart.OP_T}
                cudart.gemm(dtype.name, op[lb], op[la], n, m, k, B.ptr, ldb, A.ptr, lda, out.ptr, n)
                return 0
            return self._gemm_kernels[dtype.name](m, n, k, a, sa0 // itemsize, sa1 // itemsize, b,
                                                  sb0 // itemsize, sb1 // itemsize, c, None)
        return self._guarded(run)

    # the call
    def __call__(self, *args):
        if len(args) != self.n_args:
            return NotImplemented
        values = list(args) + [cell[0] for cell in self.containers]
        keep, at = [], 0
        for k, (value, buf, dtype) in enumerate(zip(values, self.inputs, self.input_dtypes)):
            if isinstance(value, DeviceArray):
                if value.dtype != dtype or value.ndim != buf.ndim:
                    return NotImplemented
                if buf.ndim == 0:
                    value = value.get()
            elif type(value) is not np.ndarray or value.dtype != dtype or value.ndim != buf.ndim:
                return NotImplemented   # the function converts it and calls again
            host = None
            if buf.ndim and not isinstance(value, DeviceArray):
                from theanine.compile.cuda_program import mirror_of
                host = value.ctypes.data if value.flags.c_contiguous else None
                value = mirror_of(value) or to_device(value)
                if not value.is_c_contiguous():
                    host = None
            self._host_data[k] = host
            keep.append(value)
            self._data[k] = value.ptr if isinstance(value, DeviceArray) else value.ctypes.data
            for n, st in zip(value.shape, value.strides):
                self._dims[at], self._strides[at] = n, st
                at += 1
        with self._lock:
            self._made, self._error = {}, None
            rc = self._fn(self._table, self._data, self._host_data, self._dims, self._strides, self._out_data,
                          self._out_dims, self._out_strides)
            made, error = self._made, self._error
            self._made = {}
        if error is not None:
            raise error
        if rc < 0:
            self.handed_over += 1
            self.why_handed_over = BAIL_REASONS[-1 - rc]
            return NotImplemented
        if rc != 0:
            raise cudart.CudaError(f"mode 'cuda': a kernel launch failed with CUDA error {rc}", rc)
        self.completed += 1
        return self._finish(made)

    def _finish(self, made):
        from theanine.compile.cuda_program import remember_mirror
        results, at = [], 0
        for k, (buf, dtype, side) in enumerate(zip(self.results, self.result_dtypes, self.result_sides)):
            shape = tuple(self._out_dims[at:at + buf.ndim])
            strides = tuple(self._out_strides[at:at + buf.ndim])
            at += buf.ndim
            ptr = self._out_data[k] or 0
            owner = made.get(ptr)
            if side == "host":
                value = np.ndarray(shape, dtype, buffer=owner, strides=strides) \
                    if owner is not None else np.zeros(shape, dtype)
            else:
                device = wrap(shape, dtype, strides, ptr, owner) if owner is not None else \
                    allocate(shape, dtype, strides, 0)
                value = device.get()
                if k >= self.n_outputs:
                    value.flags.writeable = False
                    remember_mirror(value, device)
            results.append(value)
        for cell, value in zip(self.updated, results[self.n_outputs:]):
            cell[0] = value
        outputs = results[:self.n_outputs]
        return outputs[0] if self.single else outputs


def _blas_layout(x):
    """('row' | 'col', leading dimension) of the matrix ``x`` as cuBLAS reads it, or None."""
    from theanine.compile.cuda_program import blas_layout
    return blas_layout(x.shape[0], x.shape[1], x.strides[0] // x.itemsize, x.strides[1] // x.itemsize) \
        if all(s % x.itemsize == 0 for s in x.strides) else None


def _gemm_launcher(lib, name):
    fn = nvcc.symbol(lib, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [_i64, _i64, _i64, _ptr, _i64, _i64, _ptr, _i64, _i64, _ptr, _ptr]
    return fn
