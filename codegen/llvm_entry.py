"""A whole compiled function as one CPython builtin: the schedule rendered as LLVM IR.

``render_entry`` turns a ``schedule.Schedule`` into an LLVM function with the
``METH_FASTCALL`` signature, meant to be appended to the module that defines
the schedule's kernels (so the optimiser sees kernels and entry together).
``pyentry.make_schedule_entry`` wraps the compiled function as a builtin; one call checks the
arguments, runs every step and returns the results as a tuple of fresh arrays,
or ``NotImplemented`` when the call must take the node-by-node path (see the
schedule module: such a call has no effect).

An argument is accepted when it is exactly a ``numpy.ndarray`` whose dtype
object is NumPy's canonical one, aligned, of the buffer's rank and static
sizes. Process-specific addresses (C API functions, dtype objects, constant
arrays, BLAS routines) are read from a table in the builtin's ``__self__``, as
in ``pyentry``, so the IR depends only on the schedule and is cached on disk.
"""

from __future__ import annotations

import numpy as np

from theanine.codegen import blas, llvm, pyentry, sorting
from theanine.codegen.schedule import (VIEW_STEPS, HostCall, Loop, Reshape, hands_large_calls_over,
                                       plan_lifetimes, walk, writers)

#: products with more multiply-adds than this release the GIL around the BLAS call
GEMM_GIL_RELEASE = 1 << 15
_INT32_MAX = 2 ** 31 - 1
#: calls whose arguments hold this many elements in all leave the entry (one core) for the
#: node-by-node path, which splits large kernels across the cores
LARGE_CALL_ELEMENTS = 1 << 18


class _Table:
    """Names of the per-entry table's slots, in order of first use."""

    def __init__(self):
        self.names = []

    def index(self, name) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)


class _Writer(pyentry._Fn):
    """pyentry's line writer with a table of named slots and block tracking."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.block = "entry"
        self.labels = 0

    def slot(self, name) -> str:
        """The table entry ``name``, loaded once at the top of the function."""
        return f"%slot{self.table.index(name)}"

    def slot_loads(self) -> list:
        lines = []
        for k in range(len(self.table.names)):
            lines.append(f"  %slot{k}_at = getelementptr i8, ptr %table, i64 {pyentry._TABLE_OFFSET + 8 * k}")
            lines.append(f"  %slot{k} = load ptr, ptr %slot{k}_at")
        return lines

    def label(self, hint) -> str:
        self.labels += 1
        return f"{hint}{self.labels}"

    def start(self, label):
        self.raw(f"{label}:")
        self.block = label

    def require(self, condition):
        """Continue only where ``condition`` holds; bail out of the call otherwise."""
        if condition == "true":
            return
        ok = self.label("ok")
        self.raw(f"br i1 {condition}, label %{ok}, label %bail")
        self.start(ok)

    def eq(self, a, b) -> str:
        if a == b:
            return "true"
        return self(f"icmp eq i64 {a}, {b}")

    def mul(self, a, b) -> str:
        if a == "1":
            return b
        if b == "1":
            return a
        return self(f"mul i64 {a}, {b}")

    def select(self, cond, a, b) -> str:
        if cond == "true" or a == b:
            return a
        if cond == "false":
            return b
        return self(f"select i1 {cond}, i64 {a}, i64 {b}")

    def any_of(self, conditions) -> str:
        acc = "false"
        for c in conditions:
            if c == "true":
                return "true"
            if c != "false":
                acc = c if acc == "false" else self(f"or i1 {acc}, {c}")
        return acc

    def all_of(self, conditions) -> str:
        acc = "true"
        for c in conditions:
            if c == "false":
                return "false"
            if c != "true":
                acc = c if acc == "true" else self(f"and i1 {acc}, {c}")
        return acc

    def store_array(self, name, ty, values) -> str:
        """An entry-block array ``name`` holding ``values``; returns its pointer."""
        ptr = self.alloca(name, f"[{max(len(values), 1)} x {ty}]")
        for k, v in enumerate(values):
            self.raw(f"store {ty} {v}, ptr {self(f'getelementptr {ty}, ptr {ptr}, i64 {k}')}")
        return ptr


class _View:
    """A buffer as the entry sees it: data pointer, sizes and byte strides (SSA values)."""

    def __init__(self, data, dims, strides):
        self.data, self.dims, self.strides = data, list(dims), list(strides)


def render_entry(schedule, name) -> tuple[str, list]:
    """(LLVM function text, table slot names) for ``schedule`` as the builtin ``name``."""
    table = _Table()
    f = _Writer(table)
    r = _Renderer(schedule, f)
    r.render(name)
    start = f.table_loaded
    body = "\n".join(f.lines[:1] + f.allocas + f.lines[1:start] + f.slot_loads() + f.lines[start:])
    # The entry is straight-line glue around the kernels: optimising it gains nothing
    # measurable per call (B7: 3.9 µs either way) but doubles the module's compile time.
    text = (f"define ptr @{name}(ptr %self, ptr %args, i64 %nargs) #9 {{\n{body}\n}}\n"
            "attributes #9 = { noinline optnone }\n") + "".join(r.helpers)
    return text, table.names


class _Renderer:
    def __init__(self, schedule, f):
        self.s = schedule
        self.f = f
        self.views = {}
        self.contiguous = {}
        self.life = plan_lifetimes(schedule)
        self.root = self.life.root
        self.owned = {}  # root buffer -> ("heap" | "result" | "object", registry alloca)
        self.objects = {}  # argument or shared buffer -> its array object
        self.literals = dict(schedule.literals)
        self.helpers = []  # functions the entry calls that the optimiser compiles
        self.row_targets = {}  # loop value -> (output, steps, step index, stacked cells)
        self.in_row = set()  # loop values written where their rows are

    # ---- the function ---------------------------------------------------------------------
    def render(self, name):
        self.name = name
        f, s, L = self.f, self.s, pyentry.LAYOUT
        f.raw("entry:")
        b_ptr = f(f"getelementptr i8, ptr %self, i64 {L['b_ptr']}")
        f.raw(f"%table = load ptr, ptr {b_ptr}")
        f.table_loaded = len(f.lines)  # where the table entries are loaded
        writer = writers(s.steps)
        states = [b for step in walk(s.steps) if isinstance(step, Loop)
                  for o in step.outputs if o.kind == "final" for _, b in o.taps]
        for b in sorted(writer) + states:
            kind = self.life.storage[b]
            if kind in ("heap", "result", "object") and self.root.get(b) == b and not isinstance(
                    writer.get(b), VIEW_STEPS):
                cell = f.alloca(f"owned{b}", "ptr")
                f.raw(f"store ptr null, ptr {cell}")
                self.owned[b] = (kind, cell)
        self.copy_cells, self.view_cells = {}, {}
        for step in walk(s.steps):
            if isinstance(step, Reshape):
                cell = self.copy_cells[step.out] = f.alloca(f"copy{step.out}", "ptr")
                f.raw(f"store ptr null, ptr {cell}")
        for k, step in enumerate(s.steps):  # loop bodies call nothing in Python
            if isinstance(step, HostCall):  # array objects made for the call's view arguments
                for j, b in enumerate(step.inputs):
                    if self.root[b] != b:
                        cell = self.view_cells[k, j] = f.alloca(f"hostview{k}_{j}", "ptr")
                        f.raw(f"store ptr null, ptr {cell}")
        f.require(f(f"icmp eq i64 %nargs, {len(s.args)}"))
        sizes = []
        for k, b in enumerate(s.args):
            self._argument(f.field("ptr", f(f"getelementptr ptr, ptr %args, i64 {k}"), 0), b)
            size = "1"
            for n in self.views[b].dims:
                size = f.mul(size, n)
            sizes.append(size)
        if sizes and hands_large_calls_over(s):  # the node path splits kernels across the cores
            total = sizes[0]
            for size in sizes[1:]:
                total = f(f"add i64 {total}, {size}")
            f.require(f(f"icmp slt i64 {total}, {LARGE_CALL_ELEMENTS}"))
        for k, b in enumerate(s.shared):
            cell = f.slot(f"container:{k}")
            self._argument(f(f"call ptr {f.slot('PyList_GetItem')}(ptr {cell}, i64 0)"), b)
        for b, key in s.constants:
            self._constant(b, key)
        self._run(s.steps, self.life)
        self._return()
        self._bail()

    def _run(self, steps, life):
        """Render ``steps``, releasing each buffer after its last reader as ``life`` says."""
        f, outer = self.f, self.life
        self.life = life
        for k, step in enumerate(steps):
            self.k = k
            getattr(self, "_" + type(step).__name__)(step)
            for b in life.frees[k]:
                self._release(b)
            for cell in [self.copy_cells[b] for b in life.copy_frees[k]]:
                f.raw(f"call void @free(ptr {f(f'load ptr, ptr {cell}')})")
                f.raw(f"store ptr null, ptr {cell}")
        self.life = outer

    def _release(self, b):
        """Free (or, for an array object, release) the memory owned by buffer ``b``."""
        f = self.f
        kind, cell = self.owned[b]
        release = "@free" if kind == "heap" else f.slot("Py_DecRef")
        f.raw(f"call void {release}(ptr {f(f'load ptr, ptr {cell}')})")
        f.raw(f"store ptr null, ptr {cell}")

    def _argument(self, a, b):
        """Check the object ``a`` (borrowed) as the array for buffer ``b`` and read its fields."""
        f, L = self.f, pyentry.LAYOUT
        buf = self.s.buffers[b]
        self.objects[b] = a
        f.require(f(f"icmp eq ptr {f.field('ptr', a, L['type'])}, {f.slot('ndarray')}"))
        flags = f.field("i32", a, L["flags"])
        f.require(f.all_of([
            f(f"icmp eq ptr {f.field('ptr', a, L['descr'])}, {f.slot('descr:' + buf.dtype)}"),
            f(f"icmp ne i32 {f(f'and i32 {flags}, {pyentry.NPY_ARRAY_ALIGNED}')}, 0"),
            f(f"icmp eq i32 {f.field('i32', a, L['nd'])}, {buf.ndim}")]))
        dims_ptr, strides_ptr = f.field("ptr", a, L["dims"]), f.field("ptr", a, L["strides"])
        dims, strides = [], []
        for d in range(buf.ndim):
            size = f.field("i64", f(f"getelementptr i64, ptr {dims_ptr}, i64 {d}"), 0)
            if buf.shape[d] is not None:
                f.require(f.eq(size, str(buf.shape[d])))
                size = str(buf.shape[d])
            dims.append(size)
            strides.append(f.field("i64", f(f"getelementptr i64, ptr {strides_ptr}, i64 {d}"), 0))
        self.views[b] = _View(f.field("ptr", a, L["data"]), dims, strides)

    def _constant(self, b, key):
        buf = self.s.buffers[b]
        strides, s = [], pyentry._ITEMSIZE[buf.dtype]
        for n in reversed(buf.shape):
            strides.insert(0, str(s))
            s *= n
        self.views[b] = _View(self.f.slot(key), [str(n) for n in buf.shape], strides)
        self.contiguous[b] = "true"

    # ---- allocation -----------------------------------------------------------------------
    def _allocate(self, b, dims) -> _View:
        """A fresh C-contiguous buffer ``b`` of sizes ``dims`` (the row it goes to, when ``b``
        is a loop step's value that a loop output stacks or keeps in its history)."""
        if b in self.row_targets:
            return self._row_target(b, dims)
        f, L = self.f, pyentry.LAYOUT
        buf = self.s.buffers[b]
        itemsize = pyentry._ITEMSIZE[buf.dtype]
        kind = self.life.storage[b]
        if kind == "stack":
            size = int(np.prod(buf.shape, dtype=np.int64)) * itemsize
            data = f.alloca(f"stack{b}", f"[{max(size, 1)} x i8], align 64")
        elif kind == "heap":
            nbytes = self._byte_size(dims, itemsize)
            data = f(f"call ptr @malloc(i64 {f(f'add i64 {nbytes}, 1')})")
            f.require(f(f"icmp ne ptr {data}, null"))
            f.raw(f"store ptr {data}, ptr {self.owned[b][1]}")
        else:
            shape = f.store_array(f"shape{b}", "i64", dims)
            descr = f.slot("descr:" + buf.dtype)
            f.raw(f"call void {f.slot('Py_IncRef')}(ptr {descr})")  # PyArray_Empty steals it
            obj = f(f"call ptr {f.slot('PyArray_Empty')}(i32 {len(dims)}, ptr {shape}, ptr {descr}, i32 0)")
            failed = f(f"icmp eq ptr {obj}, null")
            ok, clear = f.label("allocated"), f.label("nomemory")
            f.raw(f"br i1 {failed}, label %{clear}, label %{ok}")
            f.start(clear)
            f.raw(f"call void {f.slot('PyErr_Clear')}()")  # the slow path raises MemoryError itself
            f.raw("br label %bail")
            f.start(ok)
            f.raw(f"store ptr {obj}, ptr {self.owned[b][1]}")
            data = f.field("ptr", obj, L["data"])
        strides, s = [], str(itemsize)
        for n in reversed(dims):
            strides.insert(0, s)
            s = f.mul(s, n)
        view = self.views[b] = _View(data, dims, strides)
        self.contiguous[b] = "true"
        return view

    def _byte_size(self, dims, itemsize) -> str:
        """The bytes of ``dims`` elements of ``itemsize``; sizes that are negative or whose
        product overflows bail."""
        f, total = self.f, str(itemsize)
        for n in dims:
            if n.isdigit():
                total = f.mul(total, n)
                continue
            limit = f(f"sdiv i64 {2 ** 63 - 1}, {f.select(f.eq(n, '0'), '1', n)}")
            f.require(f.all_of([f(f"icmp sge i64 {n}, 0"), f(f"icmp sle i64 {total}, {limit}")]))
            total = f.mul(total, n)
        return total

    def _is_contiguous(self, b) -> str:
        """Whether buffer ``b`` is laid out in C order (size-1 dimensions may have any stride)."""
        if b not in self.contiguous:
            f, v = self.f, self.views[b]
            expected, ok = str(pyentry._ITEMSIZE[self.s.buffers[b].dtype]), []
            for n, st in zip(reversed(v.dims), reversed(v.strides)):
                ok.append(f.any_of([f.eq(n, "1"), f.eq(st, expected)]))
                expected = f.mul(expected, n)
            self.contiguous[b] = f.all_of(ok)
        return self.contiguous[b]

    def _fill(self, data, count, dtype, literal):
        """Store ``literal`` into the ``count`` elements at ``data``."""
        f = self.f
        ty = llvm.LLVM_TYPES[dtype]
        if literal in ("0", "0.0") or literal.strip("0x") == "":  # all bits zero
            nbytes = f.mul(count, str(pyentry._ITEMSIZE[dtype]))
            f.raw(f"call void @llvm.memset.p0.i64(ptr {data}, i8 0, i64 {nbytes}, i1 false)")
            return
        head, body, done = f.label("fill"), f.label("fill_body"), f.label("filled")
        before = f.block
        f.raw(f"br label %{head}")
        f.start(head)
        i = f(f"phi i64 [0, %{before}], [%{head}_next, %{body}]")
        f.raw(f"br i1 {f(f'icmp slt i64 {i}, {count}')}, label %{body}, label %{done}")
        f.start(body)
        f.raw(f"store {ty} {literal}, ptr {f(f'getelementptr {ty}, ptr {data}, i64 {i}')}")
        f.raw(f"%{head}_next = add i64 {i}, 1")
        f.raw(f"br label %{head}")
        f.start(done)

    # ---- kernel calls ---------------------------------------------------------------------
    def _broadcast(self, inputs, ndim):
        """Output sizes of broadcasting ``inputs`` to ``ndim`` dims (bailing when they do not
        broadcast), and each input's strides along them (0 where it is broadcast)."""
        f = self.f
        dims, strides = [], [[] for _ in inputs]
        for d in range(ndim):
            o = "1"
            for k, b in enumerate(inputs):
                v = self.views[b]
                i = len(v.dims) - (ndim - d)
                if i < 0:
                    strides[k].append("0")
                    continue
                size, stride = v.dims[i], v.strides[i]
                if size == "1":
                    strides[k].append("0")
                    continue
                is1 = f.eq(size, "1")
                f.require(f.any_of([is1, f.eq(o, "1"), f.eq(o, size)]))
                o = size if o == "1" else f.select(is1, o, size)
                strides[k].append(f.select(is1, "0", stride))
            dims.append(o)
        return dims, strides

    def _call(self, kernel, shape, data, strides, total):
        """Call ``kernel`` (the ElementwiseKernel signature), without the GIL when it is long."""
        f = self.f
        tag = f.label("call")
        shape_p = f.store_array(f"{tag}_shape", "i64", shape)
        data_p = f.store_array(f"{tag}_data", "ptr", data)
        strides_p = f.store_array(f"{tag}_strides", "i64", [s for row in strides for s in row])
        call = f"call void @{kernel}(ptr {shape_p}, ptr {data_p}, ptr {strides_p})"
        self._maybe_without_gil(call, f(f"icmp sgt i64 {total}, {pyentry.GIL_RELEASE_SIZE}"))

    def _maybe_without_gil(self, call, long_):
        f = self.f
        gil, nogil, done = f.label("gil"), f.label("nogil"), f.label("called")
        f.raw(f"br i1 {long_}, label %{nogil}, label %{gil}")
        f.start(gil)
        f.raw(call)
        f.raw(f"br label %{done}")
        f.start(nogil)
        state = f(f"call ptr {f.slot('PyEval_SaveThread')}()")
        f.raw(call)
        f.raw(f"call void {f.slot('PyEval_RestoreThread')}(ptr {state})")
        f.raw(f"br label %{done}")
        f.start(done)

    def _Elementwise(self, step):
        f, s = self.f, self.s
        D = s.buffers[step.outputs[0]].ndim
        K = max(D, 1)
        dims, in_strides = self._broadcast(step.inputs, D)
        outs = [self._allocate(b, dims) for b in step.outputs]
        total = "1"
        for n in dims:
            total = f.mul(total, n)
        itemsizes = [pyentry._ITEMSIZE[s.buffers[b].dtype] for b in step.inputs + step.outputs]
        # One flat loop when every buffer walks the output in C order.
        flat, single = "false", []
        if D >= 2:
            walks = []
            for k, b in enumerate(step.inputs):
                v = self.views[b]
                one = f.all_of([f.eq(n, "1") for n in v.dims])
                size = "1"
                for n in v.dims:
                    size = f.mul(size, n)
                dense = f.all_of([self._is_contiguous(b), f.eq(size, total)])
                walks.append(one if step.hoisted[k] else f.any_of([one, dense]))
                single.append(one)
            flat = f.all_of(walks)
        shape = [f.select(flat, total if d == K - 1 else "1", dims[d] if D else "1") for d in range(K)]
        rows = in_strides + [o.strides for o in outs]
        strides = []
        for k, row in enumerate(rows):
            flat_step = f.select(single[k], "0", str(itemsizes[k])) if k < len(single) else str(itemsizes[k])
            strides.append([f.select(flat, flat_step if d == K - 1 else "0", row[d] if D else "0")
                            for d in range(K)])
        data = [self.views[b].data for b in step.inputs] + [o.data for o in outs]
        self._call(step.kernel, shape, data, strides, total)

    def _Reduce(self, step):
        f, s = self.f, self.s
        N = s.buffers[step.inputs[0]].ndim
        full, in_strides = self._broadcast(step.inputs, N)
        out_buf = s.buffers[step.output]
        if step.kind in ("max", "min"):
            f.require(f.all_of([f(f"icmp ne i64 {full[a]}, 0") for a in step.axes]))
        kept = [full[d] for d in range(N) if d not in step.axes]
        out = self._allocate(step.output, kept)
        count = "1"
        for n in kept:
            count = f.mul(count, n)
        self._fill(out.data, count, out_buf.dtype, _identity_literal(step.kind, out_buf.dtype))
        kept_strides = iter(out.strides)
        out_row = ["0" if d in step.axes else next(kept_strides) for d in range(N)]
        total = "1"
        for n in full:
            total = f.mul(total, n)
        data = [self.views[b].data for b in step.inputs] + [out.data]
        shape = full if N else ["1"]
        strides = [row if N else ["0"] for row in in_strides + [out_row]]
        self._call(step.kernel, shape, data, strides, total)

    def _Gemm(self, step):
        f, s = self.f, self.s
        a, b = self.views[step.a], self.views[step.b]
        dtype = s.buffers[step.out].dtype
        e = str(pyentry._ITEMSIZE[dtype])
        # Both operands as matrices: a vector is a row of a, a column of b.
        A = (a.dims[0], a.dims[1], a.strides[0], a.strides[1]) if len(a.dims) == 2 else \
            ("1", a.dims[0], "0", a.strides[0])
        B = (b.dims[0], b.dims[1], b.strides[0], b.strides[1]) if len(b.dims) == 2 else \
            (b.dims[0], "1", b.strides[0], "0")
        m, k, n = A[0], A[1], B[1]
        f.require(f.eq(k, B[0]))
        dims = ([m] if len(a.dims) == 2 else []) + ([n] if len(b.dims) == 2 else [])
        out = self._allocate(step.out, dims)
        empty = f.any_of([f.eq(m, "0"), f.eq(n, "0")])
        tag = f.label("gemm")
        work, skip, zero, call = f"{tag}_work", f"{tag}_done", f"{tag}_zero", f"{tag}_call"
        f.raw(f"br i1 {empty}, label %{skip}, label %{work}")
        f.start(work)
        f.raw(f"br i1 {f.eq(k, '0')}, label %{zero}, label %{call}")
        f.start(zero)
        self._fill(out.data, f.mul(m, n), dtype, llvm._literal(0, dtype))
        f.raw(f"br label %{skip}")
        f.start(call)
        a_row, a_ld_row, a_col, a_ld_col = self._layouts(A, e)
        b_row, b_ld_row, b_col, b_ld_col = self._layouts(B, e)
        f.require(f.all_of([f.any_of([a_row, a_col]), f.any_of([b_row, b_col])]))
        lda = f.select(a_row, a_ld_row, a_ld_col)
        ldb = f.select(b_row, b_ld_row, b_ld_col)
        int_type = f"i{blas.int_bits()}"
        if int_type == "i32":
            for v in (m, n, k, lda, ldb):
                f.require(f(f"icmp sle i64 {v}, {_INT32_MAX}"))
        ty = llvm.LLVM_TYPES[dtype]
        args = []
        for label, value, kind in (("tb", f(f"select i1 {b_row}, i8 78, i8 84"), "i8"),  # 'N' / 'T'
                                   ("ta", f(f"select i1 {a_row}, i8 78, i8 84"), "i8"),
                                   ("n", n, int_type), ("m", m, int_type), ("k", k, int_type),
                                   ("alpha", llvm._literal(1, dtype), ty), ("b", b.data, None),
                                   ("ldb", ldb, int_type), ("a", a.data, None), ("lda", lda, int_type),
                                   ("beta", llvm._literal(0, dtype), ty), ("c", out.data, None),
                                   ("ldc", f.select(f.eq(n, "0"), "1", n), int_type)):
            if kind is None:
                args.append(value)
                continue
            cell = f.alloca(f"{tag}_{label}", kind)
            if kind == "i32" and not value.isdigit():  # sizes were checked to fit
                value = f(f"trunc i64 {value} to i32")
            f.raw(f"store {kind} {value}, ptr {cell}")
            args.append(cell)
        gemm = f.slot("sgemm" if dtype == "float32" else "dgemm")
        text = f"call void {gemm}(" + ", ".join(f"ptr {x}" for x in args) + ")"
        work_size = f.mul(f.mul(m, n), k)
        self._maybe_without_gil(text, f(f"icmp sgt i64 {work_size}, {GEMM_GIL_RELEASE}"))
        f.raw(f"br label %{skip}")
        f.start(skip)

    def _layouts(self, M, e):
        """(row-major?, its leading dimension, column-major?, its leading dimension) of the
        matrix M = (rows, cols, row stride, col stride) in elements of ``e`` bytes."""
        f = self.f
        r, c, s0, s1 = M

        def lead(stride, other, count):
            divisible = f(f"icmp eq i64 {f(f'srem i64 {stride}, {e}')}, 0")
            wide = f(f"icmp sge i64 {stride}, {f.mul(other, e)}")
            return f.all_of([divisible, wide]), f(f"sdiv i64 {stride}, {e}")

        row_ok, row_ld = lead(s0, c, r)
        row = f.all_of([f.any_of([f.eq(c, "1"), f.eq(s1, e)]), f.any_of([f.eq(r, "1"), row_ok])])
        row_ld = f.select(f.eq(r, "1"), f.select(f.eq(c, "0"), "1", c), row_ld)
        col_ok, col_ld = lead(s1, r, c)
        col = f.all_of([f.any_of([f.eq(r, "1"), f.eq(s0, e)]), f.any_of([f.eq(c, "1"), col_ok])])
        col_ld = f.select(f.eq(c, "1"), f.select(f.eq(r, "0"), "1", r), col_ld)
        return row, row_ld, col, col_ld

    # ---- views ----------------------------------------------------------------------------
    def _DimShuffle(self, step):
        f, v = self.f, self.views[step.src]
        kept = [d for d in step.order if d != "x"]
        f.require(f.all_of([f.eq(n, "1") for d, n in enumerate(v.dims) if d not in kept]))
        dims = ["1" if d == "x" else v.dims[d] for d in step.order]
        strides = ["0" if d == "x" else v.strides[d] for d in step.order]
        self.views[step.out] = _View(v.data, dims, strides)

    def _SumToShape(self, step):
        f = self.f
        v, like = self.views[step.src], self.views[step.like]
        f.require(f.all_of([f.eq(a, b) for a, b in zip(v.dims, like.dims)]))
        self.views[step.out] = _View(v.data, like.dims, v.strides)

    def _SumToDims(self, step):
        f, v = self.f, self.views[step.src]
        f.require(f.all_of([f.eq(n, self._scalar(d)) for n, d in zip(v.dims, step.dims)]))
        self.views[step.out] = _View(v.data, v.dims, v.strides)

    def _ShapeOf(self, step):
        f = self.f
        v = self.views[step.src]
        data = f.store_array(f"shapeof{step.out}", "i64", v.dims or ["0"])
        self.views[step.out] = _View(data, [str(len(v.dims))], ["8"])
        self.contiguous[step.out] = "true"

    def _scalar(self, b) -> str:
        """The integer value of the 0-d buffer ``b`` as i64."""
        f = self.f
        literal = self.literals.get(b)
        if literal is not None:
            return str(literal)
        dtype = self.s.buffers[b].dtype
        ty = llvm.LLVM_TYPES[dtype]
        value = f(f"load {ty}, ptr {self.views[b].data}")
        if ty == "i64":
            return value
        return f(f"{'zext' if dtype.startswith('uint') or dtype == 'bool' else 'sext'} {ty} {value} to i64")

    def _Index(self, step):
        self.views[step.out] = self._index_view(self.views[step.src], step.items)

    def _index_view(self, v, items) -> _View:
        """The view ``v[items]`` (see schedule.Index); out-of-range integers bail."""
        f = self.f
        data, dims, strides, d = v.data, [], [], 0
        for item in items:
            if item[0] == "n":
                dims.append("1")
                strides.append("0")
                continue
            n, st = v.dims[d], v.strides[d]
            d += 1
            if item[0] == "i":
                i = self._scalar(item[1])
                i = f.select(f(f"icmp slt i64 {i}, 0"), f(f"add i64 {i}, {n}"), i)
                f.require(f.all_of([f(f"icmp sge i64 {i}, 0"), f(f"icmp slt i64 {i}, {n}")]))
                data = f(f"getelementptr i8, ptr {data}, i64 {f.mul(i, st)}")
                continue
            start, length, step_ = self._slice(n, *[None if p is None else self._scalar(p) for p in item[1:]])
            data = f(f"getelementptr i8, ptr {data}, i64 {f.mul(start, st)}")
            dims.append(length)
            strides.append(f.mul(st, step_))
        dims += v.dims[d:]
        strides += v.strides[d:]
        return _View(data, dims, strides)

    def _slice(self, n, start, stop, step):
        """(first index, length, step) of ``slice(start, stop, step)`` over ``n`` elements,
        as Python computes them; a zero step bails."""
        f = self.f
        step = step or "1"
        f.require(f(f"icmp ne i64 {step}, 0"))
        neg = f(f"icmp slt i64 {step}, 0")
        n1 = f(f"sub i64 {n}, 1")

        def adjust(value, default_pos, default_neg):
            if value is None:
                return f.select(neg, default_neg, default_pos)
            below = f(f"icmp slt i64 {value}, 0")
            shifted = f.select(below, f(f"add i64 {value}, {n}"), value)
            low = f(f"icmp slt i64 {shifted}, 0")
            high = f(f"icmp sge i64 {shifted}, {n}")
            shifted = f.select(low, f.select(neg, "-1", "0"), shifted)
            return f.select(high, f.select(neg, n1, n), shifted)

        start = adjust(start, "0", n1)
        stop = adjust(stop, n, "-1")
        # ascending: (stop - start - 1) // step + 1 if start < stop; descending mirrored
        def count(hi, lo, stride):  # (hi - lo - 1) // stride + 1
            gap = f(f"sub i64 {f(f'sub i64 {hi}, {lo}')}, 1")
            return f(f"add i64 {f(f'sdiv i64 {gap}, {stride}')}, 1")

        up = count(stop, start, step)
        down = count(start, stop, f(f"sub i64 0, {step}"))
        up = f.select(f(f"icmp slt i64 {start}, {stop}"), up, "0")
        down = f.select(f(f"icmp slt i64 {stop}, {start}"), down, "0")
        return start, f.select(neg, down, up), step

    def _copy(self, kernel, src, dims, dst):
        """Copy ``src`` (a view broadcast to ``dims``) into the C-contiguous view ``dst``."""
        f = self.f
        D = len(dims)
        rows = [[], dst.strides if D else ["0"]]
        for d in range(D):
            i = len(src.dims) - (D - d)
            rows[0].append("0" if i < 0 else f.select(f.eq(src.dims[i], "1"), "0", src.strides[i]))
        total = "1"
        for n in dims:
            total = f.mul(total, n)
        self._call(kernel, dims or ["1"], [src.data, dst.data], [rows[0] or ["0"], rows[1]], total)

    def _Join(self, step):
        f = self.f
        views = [self.views[b] for b in step.inputs]
        ndim, axis = len(views[0].dims), step.axis
        dims = list(views[0].dims)
        for v in views[1:]:
            f.require(f.all_of([f.eq(v.dims[d], dims[d]) for d in range(ndim) if d != axis]))
            dims[axis] = f(f"add i64 {dims[axis]}, {v.dims[axis]}")
        out = self._allocate(step.out, dims)
        offset = "0"
        for kernel, v in zip(step.kernels, views):
            part = _View(f(f"getelementptr i8, ptr {out.data}, i64 {f.mul(offset, out.strides[axis])}"),
                         dims[:axis] + [v.dims[axis]] + dims[axis + 1:], out.strides)
            self._copy(kernel, v, part.dims, part)
            offset = f(f"add i64 {offset}, {v.dims[axis]}")

    def _IncSubtensor(self, step):
        f = self.f
        x, y = self.views[step.x], self.views[step.y]
        if self.k in self.life.in_place:  # x is dead after this step: update it where it lies
            out = self.views[step.out] = _View(x.data, x.dims, x.strides)
        else:
            out = self._allocate(step.out, x.dims)
            self._copy(step.copy, x, x.dims, out)
        region = self._index_view(out, step.items)
        f.require(f.all_of([f.any_of([f.eq(n, "1"), f.eq(n, region.dims[len(region.dims) - len(y.dims) + d])])
                            for d, n in enumerate(y.dims)] + [str(len(y.dims) <= len(region.dims)).lower()]))
        if step.set:
            self._copy(step.write, y, region.dims, region)
        else:
            self._update(step.write, region, y)

    def _update(self, kernel, region, value):
        """``region += value`` in place: ``kernel`` reads (region, value), writes region."""
        f = self.f
        D = len(region.dims)
        value_row = []
        for d in range(D):
            i = len(value.dims) - (D - d)
            value_row.append("0" if i < 0 else f.select(f.eq(value.dims[i], "1"), "0", value.strides[i]))
        total = "1"
        for n in region.dims:
            total = f.mul(total, n)
        rows = [region.strides or ["0"], value_row or ["0"], region.strides or ["0"]]
        self._call(kernel, region.dims or ["1"], [region.data, value.data, region.data], rows, total)

    def _loop_nest(self, dims, body):
        """Loops over ``dims`` (outermost first) around ``body(indices)``, which emits code."""
        f = self.f
        tags, indices = [], []
        for n in dims:
            tag = f.label("loop")
            before = f.block
            f.raw(f"br label %{tag}_head")
            f.start(f"{tag}_head")
            i = f(f"phi i64 [0, %{before}], [%{tag}_next, %{tag}_latch]")
            f.raw(f"br i1 {f(f'icmp slt i64 {i}, {n}')}, label %{tag}_body, label %{tag}_exit")
            f.start(f"{tag}_body")
            tags.append(tag)
            indices.append(i)
        body(indices)
        for tag, i in zip(reversed(tags), reversed(indices)):
            f.raw(f"br label %{tag}_latch")
            f.start(f"{tag}_latch")
            f.raw(f"%{tag}_next = add i64 {i}, 1")
            f.raw(f"br label %{tag}_head")
            f.start(f"{tag}_exit")

    def _at(self, data, indices, strides) -> str:
        """The address of the element at ``indices`` (SSA values)."""
        f = self.f
        offset = "0"
        for i, st in zip(indices, strides):
            offset = f(f"add i64 {offset}, {f.mul(i, st)}")
        return f(f"getelementptr i8, ptr {data}, i64 {offset}")

    def _ArgReduce(self, step):
        f, s = self.f, self.s
        v = self.views[step.src]
        dtype = s.buffers[step.src].dtype
        ty = llvm.LLVM_TYPES[dtype]
        axes = list(range(len(v.dims))) if step.axis is None else [step.axis]
        kept = [d for d in range(len(v.dims)) if d not in axes]
        count = "1"
        for d in axes:
            count = f.mul(count, v.dims[d])
        f.require(f(f"icmp sgt i64 {count}, 0"))
        out = self._allocate(step.out, [v.dims[d] for d in kept])
        tag = f.label("arg")
        best, where, flat, slot = (f.alloca(f"{tag}_{n}", t) for n, t in
                                   (("best", ty), ("where", "i64"), ("flat", "i64"), ("slot", "i64")))
        f.raw(f"store i64 0, ptr {slot}")
        floats = dtype.startswith("float")
        wins = {"argmax": ("fcmp ogt", "icmp ugt" if dtype == "bool" or dtype.startswith("u") else "icmp sgt"),
                "argmin": ("fcmp olt", "icmp ult" if dtype == "bool" or dtype.startswith("u") else "icmp slt")}
        compare = wins[step.kind][0 if floats else 1]

        def outer(kept_idx):
            f.raw(f"store i64 0, ptr {flat}")
            f.raw(f"store i64 -1, ptr {where}")

            def inner(axis_idx):
                idx = [None] * len(v.dims)
                for d, i in zip(kept, kept_idx):
                    idx[d] = i
                for d, i in zip(axes, axis_idx):
                    idx[d] = i
                value = f(f"load {ty}, ptr {self._at(v.data, idx, v.strides)}")
                k = f(f"load i64, ptr {flat}")
                first = f(f"icmp eq i64 {f(f'load i64, ptr {where}')}, -1")
                current = f(f"load {ty}, ptr {best}")
                better = f(f"{compare} {ty} {value}, {current}")
                if floats:  # the first NaN wins and stays
                    nan_now = f(f"fcmp uno {ty} {value}, {value}")
                    nan_before = f(f"fcmp uno {ty} {current}, {current}")
                    fresh_nan = f.all_of([nan_now, f(f"xor i1 {nan_before}, true")])
                    better = f.any_of([better, fresh_nan])
                take = f.any_of([first, better])
                f.raw(f"store {ty} {f(f'select i1 {take}, {ty} {value}, {ty} {current}')}, ptr {best}")
                old = f(f"load i64, ptr {where}")
                f.raw(f"store i64 {f(f'select i1 {take}, i64 {k}, i64 {old}')}, ptr {where}")
                f.raw(f"store i64 {f(f'add i64 {k}, 1')}, ptr {flat}")

            self._loop_nest([v.dims[d] for d in axes], inner)
            position = f(f"load i64, ptr {slot}")
            target = f(f"getelementptr i64, ptr {out.data}, i64 {position}")
            f.raw(f"store i64 {f(f'load i64, ptr {where}')}, ptr {target}")
            f.raw(f"store i64 {f(f'add i64 {position}, 1')}, ptr {slot}")

        self._loop_nest([v.dims[d] for d in kept], outer)

    def _convert(self, value, src, dst) -> str:
        """``value`` of dtype ``src`` as ``dst`` (the widenings a running sum needs)."""
        f = self.f
        if src == dst:
            return value
        ts, td = llvm.LLVM_TYPES[src], llvm.LLVM_TYPES[dst]
        if dst.startswith("float"):
            if src.startswith("float"):
                return f(f"fpext {ts} {value} to {td}")
            return f(f"{'uitofp' if src.startswith('u') or src == 'bool' else 'sitofp'} {ts} {value} to {td}")
        return f(f"{'zext' if src.startswith('u') or src == 'bool' else 'sext'} {ts} {value} to {td}")

    def _CumOp(self, step):
        f, s = self.f, self.s
        v = self.views[step.src]
        src, dst = s.buffers[step.src].dtype, s.buffers[step.out].dtype
        ts, td = llvm.LLVM_TYPES[src], llvm.LLVM_TYPES[dst]
        axes = list(range(len(v.dims))) if step.axis is None else [step.axis]
        kept = [d for d in range(len(v.dims)) if d not in axes]
        if step.axis is None:
            total = "1"
            for n in v.dims:
                total = f.mul(total, n)
            out = self._allocate(step.out, [total])
        else:
            out = self._allocate(step.out, list(v.dims))
        tag = f.label("cum")
        acc, flat = f.alloca(f"{tag}_acc", td), f.alloca(f"{tag}_flat", "i64")
        f.raw(f"store i64 0, ptr {flat}")
        start = llvm._literal(0 if step.mode == "add" else 1, dst)
        floats = dst.startswith("float")
        op = ("fadd" if floats else "add") if step.mode == "add" else ("fmul" if floats else "mul")

        def outer(kept_idx):
            f.raw(f"store {td} {start}, ptr {acc}")

            def inner(axis_idx):
                idx = [None] * len(v.dims)
                for d, i in list(zip(kept, kept_idx)) + list(zip(axes, axis_idx)):
                    idx[d] = i
                x = self._convert(f(f"load {ts}, ptr {self._at(v.data, idx, v.strides)}"), src, dst)
                total = f(f"{op} {td} {f(f'load {td}, ptr {acc}')}, {x}")
                f.raw(f"store {td} {total}, ptr {acc}")
                if step.axis is None:
                    k = f(f"load i64, ptr {flat}")
                    target = f(f"getelementptr {td}, ptr {out.data}, i64 {k}")
                    f.raw(f"store i64 {f(f'add i64 {k}, 1')}, ptr {flat}")
                else:
                    target = self._at(out.data, idx, out.strides)
                f.raw(f"store {td} {total}, ptr {target}")

            self._loop_nest([v.dims[d] for d in axes], inner)

        self._loop_nest([v.dims[d] for d in kept], outer)

    def _NonZero(self, step):
        """Count the non-zero elements of ``src``, allocate the (rank, count) output, then write
        each one's indices: both passes are helper functions the optimiser compiles."""
        f = self.f
        v = self.views[step.src]
        dtype = self.s.buffers[step.src].dtype
        name = f"{self.name}_nonzero{step.out}"
        ranks = range(len(v.dims))
        params = [("ptr", "%data")] + [("i64", f"%n{d}") for d in ranks] + [("i64", f"%s{d}") for d in ranks]
        inner = _View("%data", [f"%n{d}" for d in ranks], [f"%s{d}" for d in ranks])
        self._helper(f"{name}_count", "i64", params, lambda: self._count_nonzero(inner, dtype))
        self._helper(f"{name}_write", "void", params + [("ptr", "%out"), ("i64", "%count")],
                     lambda: self._write_nonzero(inner, dtype, "%out", "%count"))
        args = ", ".join([f"ptr {v.data}"] + [f"i64 {x}" for x in v.dims + v.strides])
        n = f(f"call i64 @{name}_count({args})")
        out = self._allocate(step.out, [str(len(v.dims)), n])
        f.raw(f"call void @{name}_write({args}, ptr {out.data}, i64 {n})")

    def _ArgSort(self, step):
        """Each row of ``src`` along its last axis sorted by a helper (codegen/sorting.py)
        into the same row of the int64 output."""
        f = self.f
        v = self.views[step.src]
        dtype = self.s.buffers[step.src].dtype
        name = f"{self.name}_argsort_{dtype}"
        if not any(f"@{name}(" in helper for helper in self.helpers):
            self.helpers.append(sorting.llvm_helper(name, dtype))
        out = self._allocate(step.out, list(v.dims))
        scratch = self._allocate(step.scratch, [f.mul(str(sorting.SCRATCH_WORDS), v.dims[-1])])

        def row(indices):
            src = self._at(v.data, indices, v.strides)
            dst = self._at(out.data, indices, out.strides)
            f.raw(f"call void @{name}(ptr {src}, i64 {v.dims[-1]}, i64 {v.strides[-1]}, ptr {dst}, "
                  f"ptr {scratch.data})")

        self._loop_nest(v.dims[:-1], row)

    def _helper(self, name, ret, params, body):
        """Define the internal function ``name`` of ``params`` ((type, SSA name) pairs)
        returning ``ret``, whose code ``body()`` writes through ``self.f`` and whose value it
        returns (None for void). Unlike the entry, the optimiser compiles it: it holds
        loops over the data."""
        outer = self.f
        self.f = h = _Writer(outer.table)
        h.raw("entry:")
        value = body()
        h.raw(f"ret {ret} {value}" if value is not None else "ret void")
        self.f = outer
        signature = ", ".join(f"{t} {p}" for t, p in params)
        self.helpers.append(f"define internal {ret} @{name}({signature}) {{\n"
                            + "\n".join(h.lines[:1] + h.allocas + h.lines[1:]) + "\n}\n")

    def _count_nonzero(self, v, dtype) -> str:
        """The number of non-zero elements of the view ``v`` (of ``dtype``)."""
        f = self.f
        counter = f.alloca("count", "i64")
        f.raw(f"store i64 0, ptr {counter}")

        def count(idx):
            total = f(f"add i64 {f(f'load i64, ptr {counter}')}, {self._nonzero_at(v, dtype, idx)}")
            f.raw(f"store i64 {total}, ptr {counter}")

        self._loop_nest(v.dims, count)
        return f(f"load i64, ptr {counter}")

    def _write_nonzero(self, v, dtype, out, count):
        """Write the indices of the non-zero elements of ``v`` into the rows of ``out`` (row
        length ``count``) without branching on the data: every element's indices are stored
        at the current position, which only a non-zero one moves on (the next one overwrites
        a zero one's), and the loops stop once ``count`` have been found."""
        f = self.f
        position = f.alloca("position", "i64")
        f.raw(f"store i64 0, ptr {position}")
        rows = [f(f"getelementptr i64, ptr {out}, i64 {f.mul(str(d), count)}") for d in range(len(v.dims))]
        tags, idx = [], []
        for n in v.dims:
            tag, before = f.label("loop"), f.block
            f.raw(f"br label %{tag}_head")
            f.start(f"{tag}_head")
            i = f(f"phi i64 [0, %{before}], [%{tag}_next, %{tag}_latch]")
            unfound = f(f"icmp slt i64 {f(f'load i64, ptr {position}')}, {count}")
            more = f.all_of([f(f"icmp slt i64 {i}, {n}"), unfound])
            f.raw(f"br i1 {more}, label %{tag}_body, label %{tag}_exit")
            f.start(f"{tag}_body")
            tags.append(tag)
            idx.append(i)
        nonzero = self._nonzero_at(v, dtype, idx)
        j = f(f"load i64, ptr {position}")
        for row, i in zip(rows, idx):
            f.raw(f"store i64 {i}, ptr {f(f'getelementptr i64, ptr {row}, i64 {j}')}")
        f.raw(f"store i64 {f(f'add i64 {j}, {nonzero}')}, ptr {position}")
        for tag, i in zip(reversed(tags), reversed(idx)):
            f.raw(f"br label %{tag}_latch")
            f.start(f"{tag}_latch")
            f.raw(f"%{tag}_next = add i64 {i}, 1")
            f.raw(f"br label %{tag}_head")
            f.start(f"{tag}_exit")

    def _nonzero_at(self, v, dtype, idx) -> str:
        """1 (i64) where the element of the view ``v`` (of ``dtype``) at ``idx`` is not zero
        (NaN is not), else 0."""
        f = self.f
        ty = llvm.LLVM_TYPES[dtype]
        value = f(f"load {ty}, ptr {self._at(v.data, idx, v.strides)}")
        test = f"fcmp une {ty} {value}, 0.0" if dtype.startswith("float") else f"icmp ne {ty} {value}, 0"
        return f(f"zext i1 {f(test)} to i64")

    def _point(self, view, indices, i) -> _View:
        """``view[indices[0][i], ..., indices[k-1][i]]``; an index out of range bails."""
        f = self.f
        data = view.data
        for d, b in enumerate(indices):
            iv = self.views[b]
            dtype = self.s.buffers[b].dtype
            ty = llvm.LLVM_TYPES[dtype]
            raw = f(f"load {ty}, ptr {self._at(iv.data, [i], iv.strides)}")
            k = raw if ty == "i64" else f(f"{'zext' if dtype.startswith('u') else 'sext'} {ty} {raw} to i64")
            n = view.dims[d]
            k = f.select(f(f"icmp slt i64 {k}, 0"), f(f"add i64 {k}, {n}"), k)
            f.require(f.all_of([f(f"icmp sge i64 {k}, 0"), f(f"icmp slt i64 {k}, {n}")]))
            data = f(f"getelementptr i8, ptr {data}, i64 {f.mul(k, view.strides[d])}")
        k = len(indices)
        return _View(data, view.dims[k:], view.strides[k:])

    def _index_length(self, indices) -> str:
        f = self.f
        length = self.views[indices[0]].dims[0]
        f.require(f.all_of([f.eq(self.views[b].dims[0], length) for b in indices[1:]]))
        return length

    def _Gather(self, step):
        v = self.views[step.src]
        length = self._index_length(step.indices)
        rest = v.dims[len(step.indices):]
        out = self._allocate(step.out, [length] + rest)

        def body(i):
            source = self._point(v, step.indices, i[0])
            row = _View(self.f(f"getelementptr i8, ptr {out.data}, i64 {self.f.mul(i[0], out.strides[0])}"),
                        rest, out.strides[1:])
            self._copy(step.kernel, source, rest, row)

        self._loop_nest([length], body)

    def _Scatter(self, step):
        f = self.f
        x, y = self.views[step.x], self.views[step.y]
        length = self._index_length(step.indices)
        out = self._allocate(step.out, x.dims)
        self._copy(step.copy, x, x.dims, out)
        rest = len(x.dims) - len(step.indices)
        per_point = len(y.dims) == rest + 1  # y[i] goes to point i (y's first size 1 or length)
        if per_point:
            f.require(f.any_of([f.eq(y.dims[0], "1"), f.eq(y.dims[0], length)]))
        f.require("true" if len(y.dims) <= rest + 1 else "false")

        def body(i):
            region = self._point(out, step.indices, i[0])
            value = y
            if per_point:
                row = f.select(f.eq(y.dims[0], "1"), "0", i[0])
                value = _View(f(f"getelementptr i8, ptr {y.data}, i64 {f.mul(row, y.strides[0])}"),
                              y.dims[1:], y.strides[1:])
            f.require(f.all_of([f.any_of([f.eq(n, "1"), f.eq(n, region.dims[len(region.dims) - len(value.dims) + d])])
                                for d, n in enumerate(value.dims)]))
            if step.set:
                self._copy(step.write, value, region.dims, region)
            else:
                self._update(step.write, region, value)

        self._loop_nest([length], body)

    def _Fill(self, step):
        f = self.f
        dims = [self._scalar(b) for b in step.dims]
        f.require(f.all_of([f(f"icmp sge i64 {n}, 0") for n in dims]))
        value = self.views[step.value]
        for d, n in enumerate(value.dims):
            target = dims[len(dims) - len(value.dims) + d]
            f.require(f.any_of([f.eq(n, "1"), f.eq(n, target)]))
        out = self._allocate(step.out, dims)
        if step.zero:
            total = "1"
            for n in dims:
                total = f.mul(total, n)
            self._fill(out.data, total, self.s.buffers[step.out].dtype, "0")
            return
        self._copy(step.kernel, value, dims, out)

    def _MakeVector(self, step):
        f = self.f
        ty = llvm.LLVM_TYPES[self.s.buffers[step.out].dtype]
        out = self._allocate(step.out, [str(len(step.items))])
        for k, b in enumerate(step.items):
            v = self._scalar(b)
            if ty != "i64":
                v = f(f"trunc i64 {v} to {ty}")
            f.raw(f"store {ty} {v}, ptr {f(f'getelementptr {ty}, ptr {out.data}, i64 {k}')}")

    def _Reshape(self, step):
        f = self.f
        v = self.views[step.src]
        n_out = self.s.buffers[step.out].ndim
        shape = self.views[step.shape]
        ty = llvm.LLVM_TYPES[self.s.buffers[step.shape].dtype]
        entries = []
        for k in range(n_out):
            at = f(f"getelementptr i8, ptr {shape.data}, i64 {f.mul(str(k), shape.strides[0])}")
            e = f(f"load {ty}, ptr {at}")
            entries.append(e if ty == "i64" else f(f"sext {ty} {e} to i64"))
        total = "1"
        for n in v.dims:
            total = f.mul(total, n)
        free = [f(f"icmp eq i64 {e}, -1") for e in entries]
        known = "1"
        for e, is_free in zip(entries, free):
            f.require(f(f"icmp sge i64 {e}, -1"))
            known = f.mul(known, f.select(is_free, "1", e))
        n_free = "0"
        for is_free in free:
            n_free = f(f"add i64 {n_free}, {f(f'zext i1 {is_free} to i64')}")
        f.require(f(f"icmp ule i64 {n_free}, 1"))
        # the free entry takes total / known (a zero-sized known part needs a zero total)
        safe = f.select(f.eq(known, "0"), "1", known)
        rest = f(f"sdiv i64 {total}, {safe}")
        dims = [f.select(is_free, rest, e) for e, is_free in zip(entries, free)]
        size = "1"
        for n in dims:
            size = f.mul(size, n)
        f.require(f.eq(size, total))
        contiguous = self._is_contiguous(step.src)
        tag = f.label("reshape")
        f.raw(f"br i1 {contiguous}, label %{tag}_view, label %{tag}_copy")
        f.start(f"{tag}_copy")
        itemsize = pyentry._ITEMSIZE[self.s.buffers[step.src].dtype]
        nbytes = f.mul(total, str(itemsize))
        data = f(f"call ptr @malloc(i64 {f(f'add i64 {nbytes}, 1')})")
        f.require(f(f"icmp ne ptr {data}, null"))
        f.raw(f"store ptr {data}, ptr {self.copy_cells[step.out]}")
        strides, st = [], str(itemsize)
        for n in reversed(v.dims):
            strides.insert(0, st)
            st = f.mul(st, n)
        self._copy(step.kernel, v, v.dims, _View(data, v.dims, strides))
        copied_block = f.block
        f.raw(f"br label %{tag}_done")
        f.start(f"{tag}_view")
        f.raw(f"br label %{tag}_done")
        f.start(f"{tag}_done")
        base = f(f"phi ptr [{v.data}, %{tag}_view], [{data}, %{copied_block}]")
        out_strides, st = [], str(itemsize)
        for n in reversed(dims):
            out_strides.insert(0, st)
            st = f.mul(st, n)
        self.views[step.out] = _View(base, dims, out_strides)
        self.contiguous[step.out] = "true"

    def _Check(self, step):
        f = self.f
        f.require(f.all_of([f(f"icmp ne i8 {f(f'load i8, ptr {self.views[b].data}')}, 0")
                            for b in step.conditions]))
        self.views[step.out] = self.views[step.src]

    def _SpecifyShape(self, step):
        f = self.f
        v = self.views[step.src]
        f.require(f.all_of([f.eq(n, str(want)) for n, want in zip(v.dims, step.shape) if want is not None]))
        self.views[step.out] = _View(v.data, [str(w) if w is not None else n for n, w in zip(v.dims, step.shape)],
                                     v.strides)

    def _ARange(self, step):
        f = self.f
        start, stop, st = (self._scalar(b) for b in (step.start, step.stop, step.step))
        f.require(f(f"icmp ne i64 {st}, 0"))
        # length = ceil((stop - start) / step), at least 0
        span = f(f"sub i64 {stop}, {start}")
        toward = f(f"sub i64 {st}, {f.select(f(f'icmp sgt i64 {st}, 0'), '1', '-1')}")
        length = f(f"sdiv i64 {f(f'add i64 {span}, {toward}')}, {st}")
        length = f.select(f(f"icmp slt i64 {length}, 0"), "0", length)
        out = self._allocate(step.out, [length])
        ty = llvm.LLVM_TYPES[self.s.buffers[step.out].dtype]
        head, body, done = f.label("arange"), f.label("arange_body"), f.label("aranged")
        before = f.block
        f.raw(f"br label %{head}")
        f.start(head)
        i = f(f"phi i64 [0, %{before}], [%{head}_next, %{body}]")
        f.raw(f"br i1 {f(f'icmp slt i64 {i}, {length}')}, label %{body}, label %{done}")
        f.start(body)
        value = f(f"add i64 {start}, {f(f'mul i64 {i}, {st}')}")
        if ty != "i64":
            value = f(f"trunc i64 {value} to {ty}")
        f.raw(f"store {ty} {value}, ptr {f(f'getelementptr {ty}, ptr {out.data}, i64 {i}')}")
        f.raw(f"%{head}_next = add i64 {i}, 1")
        f.raw(f"br label %{head}")
        f.start(done)

    # ---- loops -----------------------------------------------------------------------------
    def _bind(self, b, v):
        """Make ``v`` the view of the loop body's buffer ``b``, checking ``b``'s static sizes."""
        f = self.f
        dims = []
        for n, static in zip(v.dims, self.s.buffers[b].shape):
            if static is not None:
                f.require(f.eq(n, str(static)))
                n = str(static)
            dims.append(n)
        self.views[b] = _View(v.data, dims, v.strides)
        self.contiguous.pop(b, None)

    def _row(self, v, i) -> _View:
        """Row ``i`` (an i64 value) of the view ``v``."""
        f = self.f
        return _View(f(f"getelementptr i8, ptr {v.data}, i64 {f.mul(i, v.strides[0])}"), v.dims[1:],
                     v.strides[1:])

    def _contiguous_strides(self, dtype, dims) -> list:
        f, strides, size = self.f, [], str(pyentry._ITEMSIZE[dtype])
        for n in reversed(dims):
            strides.insert(0, size)
            size = f.mul(size, n)
        return strides

    def _Loop(self, step):
        """Set up the outputs, run the body once per step over views of the current rows and
        states, then copy each step's values into their rows (a 'final' value becomes the
        state: the old state is freed, nothing is copied)."""
        f, life = self.f, self.life.loops[self.k]
        n = self._scalar(step.n_steps)
        f.require(f(f"icmp sge i64 {n}, 0"))
        for outer, _ in step.sequences:
            f.require(f(f"icmp sge i64 {self.views[outer].dims[0]}, {n}"))
        if any(o.kind == "stacked" for o in step.outputs):
            f.require(f(f"icmp sgt i64 {n}, 0"))
        for outer, b in step.bindings:
            self._bind(b, self.views[outer])
        states, cells = {}, {}
        for o in step.outputs:
            if o.kind == "history":
                init = self.views[o.init]
                f.require(f.eq(init.dims[0], str(o.n_back)))
                out = self._allocate(o.out, [f(f"add i64 {n}, {o.n_back}")] + init.dims[1:])
                self._copy(o.init_copy, init, init.dims, _View(out.data, init.dims, out.strides))
            elif o.kind == "final":
                init, state = self.views[o.init], o.taps[0][1]
                states[state] = self._allocate(state, init.dims)
                self._copy(o.copy, init, init.dims, states[state])
            else:
                rank = self.s.buffers[o.value].ndim
                cells[o.out] = (f.alloca(f"loopdata{o.out}", "ptr"),
                                [f.alloca(f"loopdim{o.out}_{d}", "i64") for d in range(rank)])
        saved = dict(self.contiguous)
        tag, before = f.label("scan"), f.block
        f.raw(f"br label %{tag}_head")
        f.start(f"{tag}_head")
        t = f(f"phi i64 [0, %{before}], [%{tag}_next, %{tag}_latch]")
        f.raw(f"br i1 {f(f'icmp slt i64 {t}, {n}')}, label %{tag}_body, label %{tag}_exit")
        f.start(f"{tag}_body")
        for outer, b in step.sequences:
            self._bind(b, self._row(self.views[outer], t))
        for o in step.outputs:
            for tap, b in o.taps:
                if o.kind == "history":
                    self._bind(b, self._row(self.views[o.out], f(f"add i64 {t}, {o.n_back + tap}")))
                elif o.kind == "final":
                    data = f(f"load ptr, ptr {self.owned[b][1]}")
                    self._bind(b, _View(data, states[b].dims, states[b].strides))
        outer_targets, self.row_targets = self.row_targets, {
            o.value: (o, n, t, cells.get(o.out)) for o in step.outputs if o.kind != "final"}
        self._run(step.body, life)
        self.row_targets = outer_targets
        for o in step.outputs:
            value = self.views[o.value]
            if o.value in self.in_row:
                continue
            if o.kind == "final":
                state = o.taps[0][1]
                f.require(f.all_of([f.eq(x, y) for x, y in zip(value.dims, states[state].dims)]))
                self._release(state)
                moved = f(f"load ptr, ptr {self.owned[o.value][1]}")
                f.raw(f"store ptr {moved}, ptr {self.owned[state][1]}")
                f.raw(f"store ptr null, ptr {self.owned[o.value][1]}")
                continue
            if o.kind == "history":
                row = self._row(self.views[o.out], f(f"add i64 {t}, {o.n_back}"))
            else:
                row = self._row(self._stacked_output(o, n, t, value, cells[o.out]), t)
            f.require(f.all_of([f.eq(x, y) for x, y in zip(value.dims, row.dims)]))
            self._copy(o.copy, value, row.dims, row)
            if o.value in self.owned:
                self._release(o.value)
        ran = n
        if step.stop is not None:  # a 'while' loop: stop after a step whose condition holds
            stop = self._truth(step.stop)
            if step.stop in self.owned:
                self._release(step.stop)
            f.raw(f"br i1 {stop}, label %{tag}_stop, label %{tag}_latch")
            f.start(f"{tag}_stop")
            f.raw(f"%{tag}_ran = add i64 {t}, 1")
            f.raw(f"br label %{tag}_exit")
        else:
            f.raw(f"br label %{tag}_latch")
        f.start(f"{tag}_latch")
        f.raw(f"%{tag}_next = add i64 {t}, 1")
        f.raw(f"br label %{tag}_head")
        f.start(f"{tag}_exit")
        if step.stop is not None:
            ran = f(f"phi i64 [{n}, %{tag}_head], [%{tag}_ran, %{tag}_stop]")
        self.contiguous = saved
        for o in step.outputs:
            if o.kind == "history" and step.stop is not None:
                out = self.views[o.out]
                self.views[o.out] = _View(out.data, [f(f"add i64 {ran}, {o.n_back}")] + out.dims[1:],
                                          out.strides)
            if o.kind == "final":
                state = o.taps[0][1]
                v = _View(f(f"load ptr, ptr {self.owned[state][1]}"), states[state].dims, states[state].strides)
                self._copy(o.copy, v, v.dims, self._allocate(o.out, v.dims))
                self._release(state)
            elif o.kind == "stacked":
                data, dims = cells[o.out]
                dims = [ran] + [f(f"load i64, ptr {cell}") for cell in dims]
                self.views[o.out] = _View(f(f"load ptr, ptr {data}"), dims,
                                          self._contiguous_strides(self.s.buffers[o.out].dtype, dims))
                self.contiguous[o.out] = "true"

    def _truth(self, b) -> str:
        """Whether the 0-d buffer ``b`` is nonzero (a NaN counts as true), as an i1."""
        dtype = self.s.buffers[b].dtype
        ty = llvm.LLVM_TYPES[dtype]
        value = self.f(f"load {ty}, ptr {self.views[b].data}")
        if dtype.startswith("float"):
            return self.f(f"fcmp une {ty} {value}, 0.0")
        return self.f(f"icmp ne {ty} {value}, 0")

    def _row_target(self, b, dims) -> _View:
        """The row of step ``t`` of the output that stacks or keeps loop value ``b``, as its
        buffer: sizes other than the row's bail (the stacked output is allocated at step 0,
        its rows shaped as ``b``)."""
        f = self.f
        o, n, t, cells = self.row_targets[b]
        self.in_row.add(b)
        if o.kind == "history":
            row = self._row(self.views[o.out], f(f"add i64 {t}, {o.n_back}"))
        else:
            row = self._row(self._stacked_output(o, n, t, _View(None, dims, []), cells), t)
        f.require(f.all_of([f.eq(x, y) for x, y in zip(dims, row.dims)]))
        self.views[b] = row = _View(row.data, list(dims), row.strides)
        self.contiguous[b] = "true"
        return row

    def _stacked_output(self, o, n, t, value, cells) -> _View:
        """The stacked output ``o``, allocated at step 0 with ``n`` rows shaped as ``value``."""
        f = self.f
        first, merge = f.label("stackfirst"), f.label("stacked")
        f.raw(f"br i1 {f(f'icmp eq i64 {t}, 0')}, label %{first}, label %{merge}")
        f.start(first)
        out = self._allocate(o.out, [n] + value.dims)
        f.raw(f"store ptr {out.data}, ptr {cells[0]}")
        for size, cell in zip(value.dims, cells[1]):
            f.raw(f"store i64 {size}, ptr {cell}")
        f.raw(f"br label %{merge}")
        f.start(merge)
        dims = [n] + [f(f"load i64, ptr {cell}") for cell in cells[1]]
        return _View(f(f"load ptr, ptr {cells[0]}"), dims,
                     self._contiguous_strides(self.s.buffers[o.out].dtype, dims))

    # ---- calls back into Python ------------------------------------------------------------
    def _object(self, b) -> str:
        """The array object holding root buffer ``b`` (borrowed)."""
        if b in self.owned:
            return self.f(f"load ptr, ptr {self.owned[b][1]}")
        if b in self.objects:
            return self.objects[b]
        return self.f.slot("object:" + dict(self.s.constants)[b])

    def _HostCall(self, step):
        """Pass the inputs as arrays (a view's array is made here, based on its root's),
        call, hold the returned arrays and check them as the outputs."""
        f = self.f
        objects = []
        for j, b in enumerate(step.inputs):
            root = self.root[b]
            if root == b:
                objects.append(self._object(b))
                continue
            v, buf = self.views[b], self.s.buffers[b]
            descr = f.slot("descr:" + buf.dtype)
            f.raw(f"call void {f.slot('Py_IncRef')}(ptr {descr})")  # the constructor steals it
            dims = f.store_array(f"hostdims{self.k}_{j}", "i64", v.dims)
            strides = f.store_array(f"hoststrides{self.k}_{j}", "i64", v.strides)
            view = f(f"call ptr {f.slot('PyArray_NewFromDescr')}(ptr {f.slot('ndarray')}, ptr {descr}, "
                     f"i32 {buf.ndim}, ptr {dims}, ptr {strides}, ptr {v.data}, i32 0, ptr null)")
            self._fail_if(f(f"icmp eq ptr {view}, null"))
            f.raw(f"store ptr {view}, ptr {self.view_cells[self.k, j]}")
            base = self._object(root)
            f.raw(f"call void {f.slot('Py_IncRef')}(ptr {base})")  # SetBaseObject steals it
            status = f(f"call i32 {f.slot('PyArray_SetBaseObject')}(ptr {view}, ptr {base})")
            self._fail_if(f(f"icmp slt i32 {status}, 0"))
            objects.append(view)
        args = f.store_array(f"hostargs{self.k}", "ptr", objects)
        result = f(f"call ptr {f.slot('PyObject_Vectorcall')}(ptr {f.slot(step.callable)}, ptr {args}, "
                   f"i64 {len(objects)}, ptr null)")
        self._fail_if(f(f"icmp eq ptr {result}, null"))
        for cell in [cell for (k, _), cell in self.view_cells.items() if k == self.k]:
            f.raw(f"call void {f.slot('Py_DecRef')}(ptr {f(f'load ptr, ptr {cell}')})")
            f.raw(f"store ptr null, ptr {cell}")
        items = []
        for j, b in enumerate(step.outputs):  # the callable returns a list of the outputs
            item = f(f"call ptr {f.slot('PyList_GetItem')}(ptr {result}, i64 {j})")
            f.raw(f"call void {f.slot('Py_IncRef')}(ptr {item})")
            f.raw(f"store ptr {item}, ptr {self.owned[b][1]}")
            items.append(item)
        f.raw(f"call void {f.slot('Py_DecRef')}(ptr {result})")
        for item, b in zip(items, step.outputs):
            self._argument(item, b)
            del self.objects[b]  # held through its owned cell

    def _fail_if(self, failed):
        """Bail when ``failed``, clearing the Python error it set (the other path raises)."""
        f = self.f
        ok, clear = f.label("ok"), f.label("raised")
        f.raw(f"br i1 {failed}, label %{clear}, label %{ok}")
        f.start(clear)
        f.raw(f"call void {f.slot('PyErr_Clear')}()")
        f.raw("br label %bail")
        f.start(ok)

    # ---- the end --------------------------------------------------------------------------
    def _return(self):
        """Build the returned value, then store the updates: nothing can fail after that."""
        f, s = self.f, self.s
        outputs = [self.owned[b][1] for b in s.results[:s.n_outputs]]
        if s.single:
            value = f(f"load ptr, ptr {outputs[0]}")
        else:
            value = f(f"call ptr {f.slot('PyList_New')}(i64 {len(outputs)})")
            ok, clear = f.label("list"), f.label("nolist")
            f.raw(f"br i1 {f(f'icmp eq ptr {value}, null')}, label %{clear}, label %{ok}")
            f.start(clear)
            f.raw(f"call void {f.slot('PyErr_Clear')}()")
            f.raw("br label %bail")
            f.start(ok)
            for k, cell in enumerate(outputs):
                obj = f(f"load ptr, ptr {cell}")
                f(f"call i32 {f.slot('PyList_SetItem')}(ptr {value}, i64 {k}, ptr {obj})")  # steals obj
        for j, b in enumerate(s.results[s.n_outputs:]):
            obj = f(f"load ptr, ptr {self.owned[b][1]}")
            cell = f.slot(f"container:{len(s.shared) + j}")
            f(f"call i32 {f.slot('PyList_SetItem')}(ptr {cell}, i64 0, ptr {obj})")  # drops the old value
        f.raw(f"ret ptr {value}")

    def _bail(self):
        f = self.f
        f.start("bail")
        for b, (kind, cell) in self.owned.items():
            p = f(f"load ptr, ptr {cell}")
            if kind == "heap":
                f.raw(f"call void @free(ptr {p})")
            else:
                f.raw(f"call void {f.slot('Py_DecRef')}(ptr {p})")  # NULL-safe
        for cell in self.copy_cells.values():
            f.raw(f"call void @free(ptr {f(f'load ptr, ptr {cell}')})")
        for cell in self.view_cells.values():
            f.raw(f"call void {f.slot('Py_DecRef')}(ptr {f(f'load ptr, ptr {cell}')})")
        sentinel = f.slot("NotImplemented")
        f.raw(f"call void {f.slot('Py_IncRef')}(ptr {sentinel})")
        f.raw(f"ret ptr {sentinel}")


def _identity_literal(kind, dtype) -> str:
    if dtype == "bool":
        return "1" if kind in ("all", "prod") else "0"
    if kind in ("sum", "any"):
        value = 0
    elif kind in ("prod", "all"):
        value = 1
    elif dtype.startswith("float"):
        value = -np.inf if kind == "max" else np.inf
    else:
        info = np.iinfo(dtype)
        value = int(info.min if kind == "max" else info.max)
    return llvm._literal(value, dtype)


DECLARATIONS = ("declare ptr @malloc(i64)", "declare void @free(ptr)",
                "declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)")
