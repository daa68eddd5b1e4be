"""A whole compiled function as C: a ``schedule.Schedule`` rendered with llvm_entry's semantics.

One step renderer (``_Steps``) turns the schedule into C statements, step for step the
computation ``llvm_entry`` renders as LLVM IR (the same broadcasting, flattening, storage
and lifetimes, slices, views and bail-out conditions). A host supplies what differs
between the two forms it is rendered in:

- ``render_pyentry``: a CPython ``METH_FASTCALL`` function for mode 'c', placed after the
  kernels in their translation unit. Arguments, results and bail-outs are llvm_entry's:
  exact ``numpy.ndarray`` arguments with the canonical dtype object, aligned, of the
  buffer's rank and static sizes (shared variables' values are read from their storage
  cells); results are fresh arrays from NumPy's ``PyArray_Empty``: the outputs are
  returned and the updates stored once every step has succeeded; a call the entry does
  not handle returns ``NotImplemented`` and leaves no trace. Like llvm_entry it includes
  no CPython or NumPy header (parsing them would cost half of a small unit's compile
  time): object fields are read at ``pyentry.LAYOUT``'s offsets, and process-specific
  addresses (API functions, dtype objects, constant arrays, storage cells, BLAS
  ``sgemm``/``dgemm``) come from a table held by the builtin's ``__self__``; the source
  depends only on the schedule and this Python's object layout, and is cached on disk.
  ``pyentry.make_schedule_entry`` builds the builtin.
- ``render_export``: a freestanding C library (a header and a source file) needing no
  Python, NumPy or BLAS: buffers in, buffers out, an explicit workspace; GEMM is a loop
  nest; constants are static arrays. Where the CPython form would hand the call to the
  node-by-node path, it returns an error code (the header lists them).
"""

from __future__ import annotations

import contextlib
import operator
import re

import numpy as np

from theanine.codegen import blas, pyentry, sorting
from theanine.codegen import c as crender
from theanine.codegen.llvm import FLOATS, ITEMSIZE
from theanine.codegen.llvm_entry import GEMM_GIL_RELEASE, LARGE_CALL_ELEMENTS
from theanine.codegen.pyentry import GIL_RELEASE_SIZE
from theanine.codegen.schedule import (VIEW_STEPS, ARange, Elementwise, Fill, HostCall, Index, Loop, NonZero,
                                       Reduce, Reshape, ShapeOf, hands_large_calls_over, plan_lifetimes,
                                       read, walk, writers, written)

_INT32_MAX = 2 ** 31 - 1
_LITERAL = re.compile(r"-?\d+\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TEMP = re.compile(r"\bt\d+\b")
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
#: error codes of the exported API, by the reason a step stops a call
EXPORT_ERRORS = {
    "input": ("THEANINE_ERR_INPUT", -1, "an input has the wrong rank, a static size that differs, "
              "a negative size, or data or strides not aligned to its element size"),
    "shape": ("THEANINE_ERR_SHAPE", -2, "shapes do not broadcast together, the inner sizes of a "
              "product differ, a dimension to drop has a size other than 1, or sizes computed by "
              "the function (alloc, reshape, arange, specify_shape) are invalid"),
    "index": ("THEANINE_ERR_INDEX", -3, "an integer index is out of range, or a slice step is 0"),
    "empty": ("THEANINE_ERR_EMPTY", -4, "max or min over a dimension of size 0"),
    "unsupported": ("THEANINE_ERR_UNSUPPORTED", -5, "a case the exported code does not compute: "
                    "summing a gradient back to a broadcast input's shape (sizes that differ)"),
}


# ---- C text helpers --------------------------------------------------------------------------

class _Writer:
    """Statements of one C function body: fresh names for values, folding of literals."""

    def __init__(self, fail):
        self.fail = fail  # reason -> the C statement that stops the call
        self.lines = []
        self.pure = {}  # name -> the index of its declaration
        self.n = 0
        self.depth = 1

    def raw(self, text):
        self.lines.append("    " * self.depth + text)

    def open(self, head):
        self.raw(f"{head} {{" if head else "{")
        self.depth += 1

    def reopen(self, head):
        self.depth -= 1
        self.raw(f"}} {head} {{")
        self.depth += 1

    def close(self):
        self.depth -= 1
        self.raw("}")

    def let(self, expr, ctype="int64_t", pure=True) -> str:
        """A name holding ``expr`` (literals and names are returned as they are); ``pure``: the
        expression has no effect, so the declaration goes if the name is never used."""
        if _LITERAL.match(expr) or _NAME.match(expr):
            return expr
        self.n += 1
        name = f"t{self.n}"
        decl = f"{ctype}const {name}" if ctype.endswith("*") else f"const {ctype} {name}"
        self.raw(f"{decl} = {expr};")
        if pure:
            self.pure[name] = len(self.lines) - 1
        return name

    def pruned(self) -> list:
        """The lines without the declarations of pure values nothing reads."""
        lines, pure = list(self.lines), dict(self.pure)
        uses = {}
        for line in lines:
            for name in _TEMP.findall(line):
                uses[name] = uses.get(name, 0) + 1
        dead = [name for name in pure if uses.get(name, 0) == 1]  # used by its declaration only
        while dead:
            k = pure.pop(dead.pop())
            for other in _TEMP.findall(lines[k]):
                uses[other] -= 1
                if uses[other] == 1 and other in pure:
                    dead.append(other)
            lines[k] = None
        return [line for line in lines if line is not None]

    def cmp(self, a, op, b) -> str:
        if _LITERAL.match(a) and _LITERAL.match(b):
            return "true" if _COMPARE[op](int(a), int(b)) else "false"
        if a == b and op in ("==", "<=", ">="):
            return "true"
        return self.let(f"{a} {op} {b}", "bool")

    def eq(self, a, b) -> str:
        return self.cmp(a, "==", b)

    def mul(self, a, b) -> str:
        if a == "1":
            return b
        if b == "1":
            return a
        if _LITERAL.match(a) and _LITERAL.match(b):
            return str(int(a) * int(b))
        return self.let(f"{a} * {b}")

    def select(self, cond, a, b, ctype="int64_t") -> str:
        if cond == "true" or a == b:
            return a
        if cond == "false":
            return b
        return self.let(f"{cond} ? {a} : {b}", ctype)

    def any_of(self, conditions) -> str:
        kept = []
        for c in conditions:
            if c == "true":
                return "true"
            if c != "false" and c not in kept:
                kept.append(c)
        return self.let(" || ".join(kept), "bool") if len(kept) > 1 else (kept[0] if kept else "false")

    def all_of(self, conditions) -> str:
        kept = []
        for c in conditions:
            if c == "false":
                return "false"
            if c != "true" and c not in kept:
                kept.append(c)
        return self.let(" && ".join(kept), "bool") if len(kept) > 1 else (kept[0] if kept else "true")

    def require(self, condition, reason):
        """Continue only where ``condition`` holds; stop the call for ``reason`` otherwise."""
        if condition != "true":
            self.raw(f"if (!({condition})) {self.fail(reason)}")


def checked_size(w, expr, static) -> str:
    """An argument's size read from ``expr``: a negative one, or one other than its
    ``static`` size (when that is not None), stops the call."""
    size = w.let(expr)
    w.require(w.cmp(size, ">=", "0"), "input")
    if static is None:
        return size
    w.require(w.eq(size, str(static)), "input")
    return str(static)


def _array(values) -> str:
    return "{" + ", ".join(values or ["0"]) + "}"


def comment_text(text) -> str:
    """``text`` safe inside a C comment: letters, digits and a few punctuation marks kept,
    anything else (``*``, ``/``, newlines, ...) replaced by ``_``; at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_ .,:()\[\]=+-]", "_", str(text))[:80]


class _View:
    """A buffer as the entry sees it: a data pointer, sizes and byte strides (C expressions)."""

    def __init__(self, data, dims, strides):
        self.data, self.dims, self.strides = data, list(dims), list(strides)


def _identity(kind, dtype) -> str:
    """The C literal (of the element's memory type) a reduction's output starts from."""
    if dtype == "bool":
        return "1" if kind in ("all", "prod") else "0"
    if kind in ("sum", "any"):
        value = 0
    elif kind in ("prod", "all"):
        value = 1
    elif dtype in FLOATS:
        value = -np.inf if kind == "max" else np.inf
    else:
        info = np.iinfo(dtype)
        value = int(info.min if kind == "max" else info.max)
    return crender._literal(value, dtype)


def _describe(step) -> str:
    if isinstance(step, (Elementwise, Reduce)):
        outs = step.outputs if isinstance(step, Elementwise) else (step.output,)
        what = f"reduce {step.kind} over axes {list(step.axes)}: " if isinstance(step, Reduce) else ""
        return (f"{type(step).__name__}: {what}b{', b'.join(map(str, outs))} = "
                f"{step.kernel}(b{', b'.join(map(str, step.inputs))})")
    outs, ins = ", b".join(map(str, written(step))), ", b".join(map(str, read(step)))
    return f"{type(step).__name__}: b{outs} from b{ins}"


def _nested(life) -> list:
    """The Lifetimes of the bodies of ``life``'s loops, and of their loops', and so on."""
    out = []
    for inner in (life.loops or {}).values():
        out += [inner] + _nested(inner)
    return out


# ---- the step renderer -----------------------------------------------------------------------

class _Steps:
    """Renders a schedule's steps through ``host`` (see _PyHost and _ExportHost)."""

    def __init__(self, schedule, host):
        self.s, self.host, self.w = schedule, host, host.w
        self.views, self.contiguous = {}, {}
        self.life = plan_lifetimes(schedule)
        self.root = self.life.root
        self.owned = {}  # buffer -> "heap" | "result" | "copy" | "object": allocated by the host
        self.literals = dict(schedule.literals)
        self.k = 0
        self.row_targets = {}  # loop value -> (output, steps, step index)
        self.in_row = set()  # loop values written where their rows are
        self.loop_depth = 0  # how many loops enclose the steps being rendered
        self.helpers = []  # static functions the steps call, compiled with optimisation

    def storage(self, b) -> str:
        """'result' (returned), 'stack' (static and small) or 'heap'."""
        return self.life.storage[b]

    def render(self):
        s, host = self.s, self.host
        writer = writers(s.steps)
        states = [b for step in walk(s.steps) if isinstance(step, Loop)
                  for o in step.outputs if o.kind == "final" for _, b in o.taps]
        for b in sorted(writer) + states:
            kind = self.storage(b)
            if kind in ("heap", "result", "object") and self.root.get(b) == b and \
                    not isinstance(writer.get(b), VIEW_STEPS):
                self.owned[b] = kind
        for life in [self.life] + _nested(self.life):
            for b in (b for frees in life.copy_frees for b in frees):
                self.owned[b] = "copy"  # a Reshape's output may own a contiguous copy of its source
        host.begin(self)
        for k, b in enumerate(s.args):
            self.views[b] = host.argument(k, b, s.buffers[b])
        host.arguments_read([self.views[b] for b in s.args])
        for k, b in enumerate(s.shared):
            self.views[b] = host.shared(k, b, s.buffers[b])
        for b, key in s.constants:
            buf = s.buffers[b]
            strides, size = [], ITEMSIZE[buf.dtype]
            for n in reversed(buf.shape):
                strides.insert(0, str(size))
                size *= n
            self.views[b] = _View(host.constant(b, key, buf), [str(n) for n in buf.shape], strides)
            self.contiguous[b] = "true"
        self._run(s.steps, self.life)
        host.end([self.views[b] for b in s.results])

    def _run(self, steps, life):
        """Render ``steps``, releasing each buffer after its last reader as ``life`` says."""
        outer, self.life = self.life, life
        for k, step in enumerate(steps):
            self.k = k
            self.w.raw(f"/* step {k}. {_describe(step)} */")
            self._step(step)
            for b in life.frees[k] + life.copy_frees[k]:
                self.host.release(b)
        self.life = outer

    def _step(self, step):
        """Render one step (by its type's method)."""
        getattr(self, "_" + type(step).__name__)(step)

    @contextlib.contextmanager
    def work(self):
        """Code that reads or writes elements (not shapes): the host may skip it."""
        guard = self.host.guard(None if self.loop_depth else self.k)
        if guard is None:
            yield
            return
        self.w.open(f"if ({guard})")
        yield
        self.w.close()

    # allocation
    def _allocate(self, b, dims) -> _View:
        """A fresh C-contiguous buffer ``b`` of sizes ``dims`` (the row it goes to, when ``b``
        is a loop step's value that a loop output stacks or keeps in its history)."""
        if b in self.row_targets:
            return self._row_target(b, dims)
        w = self.w
        buf = self.s.buffers[b]
        itemsize = ITEMSIZE[buf.dtype]
        if self.storage(b) == "stack" and self._on_stack(b):
            size = int(np.prod(buf.shape, dtype=np.int64)) * itemsize
            w.raw(f"_Alignas(64) char stack{b}[{max(size, 1)}];")
            data = f"stack{b}"
        else:
            data = self.host.allocate(b, self.owned.get(b, "heap"), dims, self._byte_size(dims, itemsize))
        strides, size = [], str(itemsize)
        for n in reversed(dims):
            strides.insert(0, size)
            size = w.mul(size, n)
        view = self.views[b] = _View(data, dims, strides)
        self.contiguous[b] = "true"
        return view

    def _on_stack(self, b) -> bool:
        """Whether a small static buffer ``b`` goes on the C stack (a host may say no)."""
        return True

    def _byte_size(self, dims, itemsize) -> str:
        """The bytes of ``dims`` elements of ``itemsize``; sizes that are negative or whose
        product overflows stop the call."""
        w, total = self.w, str(itemsize)
        for n in dims:
            if not _LITERAL.match(n):
                w.require(w.all_of([w.cmp(n, ">=", "0"),
                                    w.cmp(total, "<=", f"INT64_MAX / ({n} == 0 ? 1 : {n})")]), "shape")
            total = w.mul(total, n)
        return total

    def _is_contiguous(self, b) -> str:
        """Whether buffer ``b`` is laid out in C order (size-1 dimensions may have any stride)."""
        if b not in self.contiguous:
            w, v = self.w, self.views[b]
            expected, ok = str(ITEMSIZE[self.s.buffers[b].dtype]), []
            for n, st in zip(reversed(v.dims), reversed(v.strides)):
                ok.append(w.any_of([w.eq(n, "1"), w.eq(st, expected)]))
                expected = w.mul(expected, n)
            self.contiguous[b] = w.all_of(ok)
        return self.contiguous[b]

    def zero(self, data, nbytes):
        """Set the ``nbytes`` bytes at ``data`` to zero."""
        self.w.raw(f"memset({data}, 0, (size_t){nbytes});")

    def fill(self, data, count, dtype, literal):
        """Store ``literal`` into the ``count`` elements at ``data``."""
        mem = crender.MEM_TYPES[dtype]
        self.w.raw(f"for (int64_t i = 0; i < {count}; i++) (({mem} *){data})[i] = {literal};")

    # kernel calls
    def _broadcast(self, inputs, ndim):
        """Output sizes of broadcasting ``inputs`` to ``ndim`` dims (stopping the call when they
        do not broadcast), and each input's strides along them (0 where it is broadcast)."""
        w = self.w
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
                is1 = w.eq(size, "1")
                w.require(w.any_of([is1, w.eq(o, "1"), w.eq(o, size)]), "shape")
                o = size if o == "1" else w.select(is1, o, size)
                strides[k].append(w.select(is1, "0", stride))
            dims.append(o)
        return dims, strides

    def _call(self, kernel, shape, data, strides, total):
        w = self.w
        w.open("")
        w.raw(f"const int64_t shape[{len(shape)}] = {_array(shape)};")
        w.raw(f"char *const data[{len(data)}] = {_array(data)};")
        w.raw(f"const int64_t strides[{len(strides) * len(shape)}] = "
              f"{_array([s for row in strides for s in row])};")
        self.host.call(f"{kernel}(shape, data, strides);", w.cmp(total, ">", str(GIL_RELEASE_SIZE)))
        w.close()

    def _Elementwise(self, step):
        w, s = self.w, self.s
        D = s.buffers[step.outputs[0]].ndim
        K = max(D, 1)
        dims, in_strides = self._broadcast(step.inputs, D)
        outs = [self._allocate(b, dims) for b in step.outputs]
        total = "1"
        for n in dims:
            total = w.mul(total, n)
        itemsizes = [ITEMSIZE[s.buffers[b].dtype] for b in step.inputs + step.outputs]
        # One flat loop when every buffer walks the output in C order.
        flat, single = "false", []
        if D >= 2:
            walks = []
            for k, b in enumerate(step.inputs):
                v = self.views[b]
                one = w.all_of([w.eq(n, "1") for n in v.dims])
                size = "1"
                for n in v.dims:
                    size = w.mul(size, n)
                dense = w.all_of([self._is_contiguous(b), w.eq(size, total)])
                walks.append(one if step.hoisted[k] else w.any_of([one, dense]))
                single.append(one)
            flat = w.all_of(walks)
        shape = [w.select(flat, total if d == K - 1 else "1", dims[d] if D else "1") for d in range(K)]
        rows = in_strides + [o.strides for o in outs]
        strides = []
        for k, row in enumerate(rows):
            flat_step = w.select(single[k], "0", str(itemsizes[k])) if k < len(single) else str(itemsizes[k])
            strides.append([w.select(flat, flat_step if d == K - 1 else "0", row[d] if D else "0")
                            for d in range(K)])
        data = [self.views[b].data for b in step.inputs] + [o.data for o in outs]
        with self.work():
            self._call(step.kernel, shape, data, strides, total)

    def _Reduce(self, step):
        w, s = self.w, self.s
        N = s.buffers[step.inputs[0]].ndim
        full, in_strides = self._broadcast(step.inputs, N)
        out_buf = s.buffers[step.output]
        if step.kind in ("max", "min"):
            w.require(w.all_of([w.cmp(full[a], "!=", "0") for a in step.axes]), "empty")
        kept = [full[d] for d in range(N) if d not in step.axes]
        out = self._allocate(step.output, kept)
        count = "1"
        for n in kept:
            count = w.mul(count, n)
        kept_strides = iter(out.strides)
        out_row = ["0" if d in step.axes else next(kept_strides) for d in range(N)]
        total = "1"
        for n in full:
            total = w.mul(total, n)
        data = [self.views[b].data for b in step.inputs] + [out.data]
        shape = full if N else ["1"]
        strides = [row if N else ["0"] for row in in_strides + [out_row]]
        with self.work():
            self.fill(out.data, count, out_buf.dtype, _identity(step.kind, out_buf.dtype))
            self._call(step.kernel, shape, data, strides, total)

    def _Gemm(self, step):
        w, s = self.w, self.s
        a, b = self.views[step.a], self.views[step.b]
        dtype = s.buffers[step.out].dtype
        # Both operands as matrices (rows, cols, row stride, col stride): a vector is a row of
        # a, a column of b.
        A = (a.dims[0], a.dims[1], a.strides[0], a.strides[1]) if len(a.dims) == 2 else \
            ("1", a.dims[0], "0", a.strides[0])
        B = (b.dims[0], b.dims[1], b.strides[0], b.strides[1]) if len(b.dims) == 2 else \
            (b.dims[0], "1", b.strides[0], "0")
        m, k, n = A[0], A[1], B[1]
        w.require(w.eq(k, B[0]), "shape")
        dims = ([m] if len(a.dims) == 2 else []) + ([n] if len(b.dims) == 2 else [])
        out = self._allocate(step.out, dims)
        empty = w.any_of([w.eq(m, "0"), w.eq(n, "0")])
        with self.work():
            w.open(f"if (!({empty}))")
            self.host.gemm(self, dtype, A, B, a.data, b.data, out.data, m, n, k)
            w.close()

    # views
    def _DimShuffle(self, step):
        w, v = self.w, self.views[step.src]
        kept = [d for d in step.order if d != "x"]
        w.require(w.all_of([w.eq(n, "1") for d, n in enumerate(v.dims) if d not in kept]), "shape")
        dims = ["1" if d == "x" else v.dims[d] for d in step.order]
        strides = ["0" if d == "x" else v.strides[d] for d in step.order]
        self.views[step.out] = _View(v.data, dims, strides)

    def _SumToShape(self, step):
        w = self.w
        v, like = self.views[step.src], self.views[step.like]
        w.require(w.all_of([w.eq(a, b) for a, b in zip(v.dims, like.dims)]), "unsupported")
        self.views[step.out] = _View(v.data, like.dims, v.strides)

    def _SumToDims(self, step):
        w, v = self.w, self.views[step.src]
        w.require(w.all_of([w.eq(n, self._scalar(d)) for n, d in zip(v.dims, step.dims)]), "unsupported")
        self.views[step.out] = _View(v.data, v.dims, v.strides)

    def _ShapeOf(self, step):
        v = self.views[step.src]
        self.w.raw(f"int64_t shapeof{step.out}[{max(len(v.dims), 1)}] = {_array(v.dims)};")
        self.views[step.out] = _View(f"(char *)shapeof{step.out}", [str(len(v.dims))], ["8"])
        self.contiguous[step.out] = "true"

    def _scalar(self, b) -> str:
        """The integer value of the 0-d buffer ``b`` as int64 (unsigned types zero-extended)."""
        literal = self.literals.get(b)
        if literal is not None and abs(literal) < 2 ** 62:
            return str(literal) if literal >= 0 else f"({literal})"  # never "--1"
        dtype = self.s.buffers[b].dtype
        return self.w.let(f"(int64_t)*(const {crender.MEM_TYPES[dtype]} *){self.views[b].data}")

    def _entries(self, b, n) -> list:
        """The first ``n`` entries of the integer vector ``b``, as int64 expressions."""
        w, v = self.w, self.views[b]
        mem = crender.MEM_TYPES[self.s.buffers[b].dtype]
        return [w.let(f"(int64_t)*(const {mem} *)({v.data} + {w.mul(str(k), v.strides[0])})")
                for k in range(n)]

    def _Index(self, step):
        self.views[step.out] = self._index_view(self.views[step.src], step.items)

    def _index_view(self, v, items) -> _View:
        """The view ``v[items]`` (see schedule.Index); out-of-range integers stop the call."""
        w = self.w
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
                i = w.select(w.cmp(i, "<", "0"), w.let(f"{i} + {n}"), i)
                w.require(w.all_of([w.cmp(i, ">=", "0"), w.cmp(i, "<", n)]), "index")
                data = w.let(f"{data} + {w.mul(i, st)}", "char *")
                continue
            start, length, step_ = self._slice(n, *[None if p is None else self._scalar(p) for p in item[1:]])
            data = w.let(f"{data} + {w.mul(start, st)}", "char *")
            dims.append(length)
            strides.append(w.mul(st, step_))
        dims += v.dims[d:]
        strides += v.strides[d:]
        return _View(data, dims, strides)

    def _slice(self, n, start, stop, step):
        """(first index, length, step) of ``slice(start, stop, step)`` over ``n`` elements,
        as Python computes them; a zero step stops the call."""
        w = self.w
        step = step or "1"
        w.require(w.cmp(step, "!=", "0"), "index")
        neg = w.cmp(step, "<", "0")
        n1 = w.let(f"{n} - 1")

        def adjust(value, default_pos, default_neg):
            if value is None:
                return w.select(neg, default_neg, default_pos)
            shifted = w.select(w.cmp(value, "<", "0"), w.let(f"{value} + {n}"), value)
            low = w.cmp(shifted, "<", "0")
            high = w.cmp(shifted, ">=", n)
            shifted = w.select(low, w.select(neg, "-1", "0"), shifted)
            return w.select(high, w.select(neg, n1, n), shifted)

        start = adjust(start, "0", n1)
        stop = adjust(stop, n, "-1")

        def count(hi, lo, stride):  # (hi - lo - 1) / stride + 1, truncating as LLVM's sdiv
            return w.let(f"({hi} - {lo} - 1) / {stride} + 1")

        up = w.select(w.cmp(start, "<", stop), count(stop, start, step), "0")
        down = w.select(w.cmp(stop, "<", start), count(start, stop, w.let(f"-{step}")), "0")
        return start, w.select(neg, down, up), step

    # small generated loops and copies
    def _copy(self, kernel, src, dims, dst):
        """Copy ``src`` (a view broadcast to ``dims``) into the C-contiguous view ``dst``."""
        w = self.w
        D = len(dims)
        rows = [[], dst.strides if D else ["0"]]
        for d in range(D):
            i = len(src.dims) - (D - d)
            rows[0].append("0" if i < 0 else w.select(w.eq(src.dims[i], "1"), "0", src.strides[i]))
        total = "1"
        for n in dims:
            total = w.mul(total, n)
        self._call(kernel, dims or ["1"], [src.data, dst.data], [rows[0] or ["0"], rows[1]], total)

    def _Join(self, step):
        w = self.w
        views = [self.views[b] for b in step.inputs]
        ndim, axis = len(views[0].dims), step.axis
        dims = list(views[0].dims)
        for v in views[1:]:
            w.require(w.all_of([w.eq(v.dims[d], dims[d]) for d in range(ndim) if d != axis]), "shape")
            dims[axis] = w.let(f"{dims[axis]} + {v.dims[axis]}")
        out = self._allocate(step.out, dims)
        offset = "0"
        for kernel, v in zip(step.kernels, views):
            part = _View(w.let(f"{out.data} + {w.mul(offset, out.strides[axis])}", "char *"),
                         dims[:axis] + [v.dims[axis]] + dims[axis + 1:], out.strides)
            with self.work():
                self._copy(kernel, v, part.dims, part)
            offset = w.let(f"{offset} + {v.dims[axis]}")

    def _IncSubtensor(self, step):
        w = self.w
        x, y = self.views[step.x], self.views[step.y]
        if self.k in self.life.in_place:  # x is dead after this step: update it where it lies
            out = self.views[step.out] = _View(x.data, x.dims, x.strides)
        else:
            out = self._allocate(step.out, x.dims)
            with self.work():
                self._copy(step.copy, x, x.dims, out)
        region = self._index_view(out, step.items)
        w.require(w.all_of([str(len(y.dims) <= len(region.dims)).lower()] + [
            w.any_of([w.eq(n, "1"), w.eq(n, region.dims[len(region.dims) - len(y.dims) + d])])
            for d, n in enumerate(y.dims)]), "shape")
        with self.work():
            if step.set:
                self._copy(step.write, y, region.dims, region)
            else:
                self._update(step.write, region, y)

    def _update(self, kernel, region, value):
        """``region += value`` in place: ``kernel`` reads (region, value), writes region."""
        w = self.w
        D = len(region.dims)
        value_row = []
        for d in range(D):
            i = len(value.dims) - (D - d)
            value_row.append("0" if i < 0 else w.select(w.eq(value.dims[i], "1"), "0", value.strides[i]))
        total = "1"
        for n in region.dims:
            total = w.mul(total, n)
        rows = [region.strides or ["0"], value_row or ["0"], region.strides or ["0"]]
        self._call(kernel, region.dims or ["1"], [region.data, value.data, region.data], rows, total)

    def _offset(self, indices, strides) -> str:
        return " + ".join(f"{i} * {st}" for i, st in zip(indices, strides)) or "0"

    def _loops(self, tag, dims) -> list:
        """Open one loop per size in ``dims``; returns the index names (close them after)."""
        names = []
        for d, n in enumerate(dims):
            name = f"{tag}_i{d}"
            self.w.open(f"for (int64_t {name} = 0; {name} < {n}; {name}++)")
            names.append(name)
        return names

    def _ArgReduce(self, step):
        w, s = self.w, self.s
        v = self.views[step.src]
        dtype = s.buffers[step.src].dtype
        mem = crender.MEM_TYPES[dtype]
        axes = list(range(len(v.dims))) if step.axis is None else [step.axis]
        kept = [d for d in range(len(v.dims)) if d not in axes]
        count = "1"
        for d in axes:
            count = w.mul(count, v.dims[d])
        w.require(w.cmp(count, ">", "0"), "empty")
        out = self._allocate(step.out, [v.dims[d] for d in kept])
        tag = f"arg{step.out}"
        with self.work():
            w.open("")
            w.raw(f"int64_t {tag}_slot = 0;")
            outer = self._loops(f"{tag}k", [v.dims[d] for d in kept])
            w.raw(f"int64_t {tag}_where = -1, {tag}_flat = 0;")
            w.raw(f"{mem} {tag}_best = 0;")
            inner = self._loops(f"{tag}a", [v.dims[d] for d in axes])
            idx = [None] * len(v.dims)
            for d, i in list(zip(kept, outer)) + list(zip(axes, inner)):
                idx[d] = i
            w.raw(f"const {mem} {tag}_v = *(const {mem} *)({v.data} + {self._offset(idx, v.strides)});")
            op = ">" if step.kind == "argmax" else "<"
            better = f"{tag}_v {op} {tag}_best"
            if dtype in FLOATS:  # the first NaN wins and stays
                better = f"({better} || (isnan({tag}_v) && !isnan({tag}_best)))"
            w.raw(f"if ({tag}_where < 0 || {better}) {{ {tag}_best = {tag}_v; {tag}_where = {tag}_flat; }}")
            w.raw(f"{tag}_flat++;")
            for _ in inner:
                w.close()
            w.raw(f"((int64_t *){out.data})[{tag}_slot++] = {tag}_where;")
            for _ in outer:
                w.close()
            w.close()

    def _CumOp(self, step):
        w, s = self.w, self.s
        v = self.views[step.src]
        src, dst = s.buffers[step.src].dtype, s.buffers[step.out].dtype
        ms, md = crender.MEM_TYPES[src], crender.MEM_TYPES[dst]
        axes = list(range(len(v.dims))) if step.axis is None else [step.axis]
        kept = [d for d in range(len(v.dims)) if d not in axes]
        if step.axis is None:
            total = "1"
            for n in v.dims:
                total = w.mul(total, n)
            out = self._allocate(step.out, [total])
        else:
            out = self._allocate(step.out, list(v.dims))
        tag = f"cum{step.out}"
        op = "+" if step.mode == "add" else "*"
        with self.work():
            w.open("")
            w.raw(f"int64_t {tag}_flat = 0;")
            outer = self._loops(f"{tag}k", [v.dims[d] for d in kept])
            w.raw(f"{md} {tag}_acc = {0 if step.mode == 'add' else 1};")
            inner = self._loops(f"{tag}a", [v.dims[d] for d in axes])
            idx = [None] * len(v.dims)
            for d, i in list(zip(kept, outer)) + list(zip(axes, inner)):
                idx[d] = i
            w.raw(f"{tag}_acc = {tag}_acc {op} ({md})*(const {ms} *)({v.data} + {self._offset(idx, v.strides)});")
            if step.axis is None:
                w.raw(f"(({md} *){out.data})[{tag}_flat++] = {tag}_acc;")
            else:
                w.raw(f"*({md} *)({out.data} + {self._offset(idx, out.strides)}) = {tag}_acc;")
            for _ in inner + outer:
                w.close()
            w.close()

    def _NonZero(self, step):
        """Count the non-zero elements of ``src`` (a sizing pass runs this too: the output's
        size depends on it), allocate the (rank, count) output, then write each one's
        indices: both passes are helper functions compiled with optimisation."""
        w = self.w
        v = self.views[step.src]
        mem = crender.MEM_TYPES[self.s.buffers[step.src].dtype]
        name = f"th_nonzero{step.out}"
        ranks = range(len(v.dims))
        params = ["const char *data"] + [f"int64_t n{d}" for d in ranks] + [f"int64_t s{d}" for d in ranks]
        inner = _View("data", [f"n{d}" for d in ranks], [f"s{d}" for d in ranks])
        self._helper(f"int64_t {name}_count({', '.join(params)})", lambda: self._count_nonzero(inner, mem))
        self._helper(f"void {name}_write({', '.join(params + ['int64_t *out', 'int64_t count'])})",
                     lambda: self._write_nonzero(inner, mem, "out", "count"))
        args = ", ".join([v.data] + v.dims + v.strides)
        n = w.let(f"{name}_count({args})", pure=False)
        out = self._allocate(step.out, [str(len(v.dims)), n])
        with self.work():
            w.raw(f"{name}_write({args}, (int64_t *){out.data}, {n});")

    def _ArgSort(self, step):
        """Each row of ``src`` along its last axis sorted by a helper (codegen/sorting.py)
        into the same row of the int64 output."""
        w = self.w
        v = self.views[step.src]
        dtype = self.s.buffers[step.src].dtype
        name = f"th_argsort_{dtype}"
        if not any(f" {name}(" in helper for helper in self.helpers):
            self.helpers.append(sorting.c_helper(name, dtype))
        out = self._allocate(step.out, list(v.dims))
        scratch = self._allocate(step.scratch, [w.mul(str(sorting.SCRATCH_WORDS), v.dims[-1])])
        with self.work():
            rows = self._loops(f"sort{step.out}", v.dims[:-1])
            src = self._offset(rows, v.strides)
            dst = self._offset(rows, out.strides)
            w.raw(f"{name}({v.data} + {src}, {v.dims[-1]}, {v.strides[-1]}, (int64_t *)({out.data} + {dst}), "
                  f"(uint64_t *){scratch.data});")
            for _ in rows:
                w.close()

    def _helper(self, head, body):
        """Define the static C function ``head`` (its signature), whose statements ``body()``
        writes through ``self.w``. Unlike the entry it is compiled with optimisation: it
        holds loops over the data."""
        outer, self.w = self.w, _Writer(self.w.fail)
        body()
        lines, self.w = self.w.pruned(), outer
        self.helpers.append(f"static {head}\n{{\n" + "\n".join(lines) + "\n}\n")

    def _count_nonzero(self, v, mem):
        """Return the number of non-zero elements of the view ``v`` (of C type ``mem``)."""
        w = self.w
        w.raw("int64_t count = 0;")
        idx = self._loops("c", v.dims)
        w.raw(f"count += *(const {mem} *)({v.data} + {self._offset(idx, v.strides)}) != 0;")
        for _ in idx:
            w.close()
        w.raw("return count;")

    def _write_nonzero(self, v, mem, out, count):
        """Write the indices of the non-zero elements of ``v`` into the rows of ``out`` (row
        length ``count``) without branching on the data: every element's indices are stored
        at the current position, which only a non-zero one moves on (the next one overwrites
        a zero one's), and the loops stop once ``count`` have been found."""
        w = self.w
        w.raw("int64_t j = 0;")
        idx = [f"w_i{d}" for d in range(len(v.dims))]
        for i, n in zip(idx, v.dims):
            w.open(f"for (int64_t {i} = 0; {i} < {n} && j < {count}; {i}++)")
        w.raw(f"const int64_t keep = *(const {mem} *)({v.data} + {self._offset(idx, v.strides)}) != 0;")
        for d, i in enumerate(idx):
            w.raw(f"{out}[{w.mul(str(d), count)} + j] = {i};")
        w.raw("j += keep;")
        for _ in idx:
            w.close()

    def _point(self, view, indices, i) -> _View:
        """``view[indices[0][i], ..., indices[k-1][i]]``; an index out of range stops the call."""
        w = self.w
        data = view.data
        for d, b in enumerate(indices):
            iv = self.views[b]
            mem = crender.MEM_TYPES[self.s.buffers[b].dtype]
            k = w.let(f"(int64_t)*(const {mem} *)({iv.data} + {i} * {iv.strides[0]})")
            n = view.dims[d]
            k = w.select(w.cmp(k, "<", "0"), w.let(f"{k} + {n}"), k)
            w.require(w.all_of([w.cmp(k, ">=", "0"), w.cmp(k, "<", n)]), "index")
            data = w.let(f"{data} + {w.mul(k, view.strides[d])}", "char *")
        k = len(indices)
        return _View(data, view.dims[k:], view.strides[k:])

    def _index_length(self, indices) -> str:
        w = self.w
        length = self.views[indices[0]].dims[0]
        w.require(w.all_of([w.eq(self.views[b].dims[0], length) for b in indices[1:]]), "index")
        return length

    def _Gather(self, step):
        w = self.w
        v = self.views[step.src]
        length = self._index_length(step.indices)
        rest = v.dims[len(step.indices):]
        out = self._allocate(step.out, [length] + rest)
        tag = f"gather{step.out}"
        with self.work():
            w.open(f"for (int64_t {tag}_i = 0; {tag}_i < {length}; {tag}_i++)")
            source = self._point(v, step.indices, f"{tag}_i")
            row = _View(w.let(f"{out.data} + {tag}_i * {out.strides[0]}", "char *"), rest, out.strides[1:])
            self._copy(step.kernel, source, rest, row)
            w.close()

    def _Scatter(self, step):
        w = self.w
        x, y = self.views[step.x], self.views[step.y]
        length = self._index_length(step.indices)
        out = self._allocate(step.out, x.dims)
        with self.work():
            self._copy(step.copy, x, x.dims, out)
        rest = len(x.dims) - len(step.indices)
        per_point = len(y.dims) == rest + 1
        if per_point:
            w.require(w.any_of([w.eq(y.dims[0], "1"), w.eq(y.dims[0], length)]), "shape")
        tag = f"scatter{step.out}"
        with self.work():
            w.open(f"for (int64_t {tag}_i = 0; {tag}_i < {length}; {tag}_i++)")
            region = self._point(out, step.indices, f"{tag}_i")
            value = y
            if per_point:
                row = w.select(w.eq(y.dims[0], "1"), "0", f"{tag}_i")
                value = _View(w.let(f"{y.data} + {w.mul(row, y.strides[0])}", "char *"),
                              y.dims[1:], y.strides[1:])
            w.require(w.all_of([w.any_of([w.eq(n, "1"), w.eq(n, region.dims[len(region.dims) - len(value.dims) + d])])
                                for d, n in enumerate(value.dims)]), "shape")
            if step.set:
                self._copy(step.write, value, region.dims, region)
            else:
                self._update(step.write, region, value)
            w.close()

    def _Fill(self, step):
        w = self.w
        dims = [self._scalar(b) for b in step.dims]
        w.require(w.all_of([w.cmp(n, ">=", "0") for n in dims]), "shape")
        value = self.views[step.value]
        for d, n in enumerate(value.dims):
            target = dims[len(dims) - len(value.dims) + d]
            w.require(w.any_of([w.eq(n, "1"), w.eq(n, target)]), "shape")
        out = self._allocate(step.out, dims)
        with self.work():
            if step.zero:
                total = "1"
                for n in dims:
                    total = w.mul(total, n)
                nbytes = w.mul(total, str(ITEMSIZE[self.s.buffers[step.out].dtype]))
                self.zero(out.data, nbytes)
            else:
                self._copy(step.kernel, value, dims, out)

    def _MakeVector(self, step):
        w = self.w
        mem = crender.MEM_TYPES[self.s.buffers[step.out].dtype]
        out = self._allocate(step.out, [str(len(step.items))])
        values = [self._scalar(b) for b in step.items]
        with self.work():
            for k, v in enumerate(values):
                w.raw(f"(({mem} *){out.data})[{k}] = ({mem}){v};")

    def _Reshape(self, step):
        w = self.w
        v = self.views[step.src]
        entries = self._entries(step.shape, self.s.buffers[step.out].ndim)
        total = "1"
        for n in v.dims:
            total = w.mul(total, n)
        free = [w.cmp(e, "==", "-1") for e in entries]
        known = "1"
        for e, is_free in zip(entries, free):
            w.require(w.cmp(e, ">=", "-1"), "shape")
            known = w.mul(known, w.select(is_free, "1", e))
        w.require(w.cmp(w.let(" + ".join(f"(int64_t){c}" for c in free) or "0"), "<=", "1"), "shape")
        # the free entry takes total / known (a zero-sized known part needs a zero total)
        rest = w.let(f"{total} / {w.select(w.eq(known, '0'), '1', known)}")
        dims = [w.select(is_free, rest, e) for e, is_free in zip(entries, free)]
        size = "1"
        for n in dims:
            size = w.mul(size, n)
        w.require(w.eq(size, total), "shape")
        itemsize = ITEMSIZE[self.s.buffers[step.src].dtype]
        base = f"reshape{step.out}"
        w.raw(f"char *{base} = {v.data};")
        w.open(f"if (!({self._is_contiguous(step.src)}))")
        strides, st = [], str(itemsize)
        for n in reversed(v.dims):
            strides.insert(0, st)
            st = w.mul(st, n)
        data = self.host.allocate(step.out, "copy", v.dims, w.mul(total, str(itemsize)))
        with self.work():
            self._copy(step.kernel, v, v.dims, _View(data, v.dims, strides))
        w.raw(f"{base} = {data};")
        w.close()
        out_strides, st = [], str(itemsize)
        for n in reversed(dims):
            out_strides.insert(0, st)
            st = w.mul(st, n)
        self.views[step.out] = _View(base, dims, out_strides)
        self.contiguous[step.out] = "true"

    # loops
    def _bind(self, b, v):
        """Make ``v`` the view of the loop body's buffer ``b``, checking ``b``'s static sizes."""
        w, dims = self.w, []
        for n, static in zip(v.dims, self.s.buffers[b].shape):
            if static is not None:
                w.require(w.eq(n, str(static)), "shape")
                n = str(static)
            dims.append(n)
        self.views[b] = _View(v.data, dims, v.strides)
        self.contiguous.pop(b, None)

    def _row(self, v, i) -> _View:
        """Row ``i`` of the view ``v``."""
        return _View(self.w.let(f"{v.data} + {self.w.mul(i, v.strides[0])}", "char *"), v.dims[1:],
                     v.strides[1:])

    def _contiguous_strides(self, dtype, dims) -> list:
        w, strides, size = self.w, [], str(ITEMSIZE[dtype])
        for n in reversed(dims):
            strides.insert(0, size)
            size = w.mul(size, n)
        return strides

    def _same_dims(self, a, b):
        self.w.require(self.w.all_of([self.w.eq(x, y) for x, y in zip(a, b)]), "shape")

    def _Loop(self, step):
        """Set up the outputs, run the body once per step over views of the current rows and
        states, then copy each step's values into their rows (a 'final' value becomes the
        state: the old state is freed, nothing is copied)."""
        w, host, life = self.w, self.host, self.life.loops[self.k]
        n = self._scalar(step.n_steps)
        w.require(w.cmp(n, ">=", "0"), "shape")
        for outer, _ in step.sequences:
            w.require(w.cmp(self.views[outer].dims[0], ">=", n), "shape")
        if any(o.kind == "stacked" for o in step.outputs):
            w.require(w.cmp(n, ">", "0"), "shape")
        for outer, b in step.bindings:
            self._bind(b, self.views[outer])
        states = {}
        for o in step.outputs:
            if o.kind == "history":
                init = self.views[o.init]
                w.require(w.eq(init.dims[0], str(o.n_back)), "shape")
                out = self._allocate(o.out, [w.let(f"{n} + {o.n_back}")] + init.dims[1:])
                self._copy(o.init_copy, init, init.dims, _View(out.data, init.dims, out.strides))
            elif o.kind == "final":
                init, state = self.views[o.init], o.taps[0][1]
                states[state] = self._allocate(state, init.dims)
                self._copy(o.copy, init, init.dims, states[state])
            else:
                w.raw(f"char *loopdata{o.out} = NULL;")
                for d in range(self.s.buffers[o.value].ndim):
                    w.raw(f"int64_t loopdim{o.out}_{d} = 0;")
        saved = dict(self.contiguous)
        w.n += 1
        t = f"i_step{w.n}"
        ran = n
        if step.stop is not None:
            ran = f"ran{w.n}"
            w.raw(f"int64_t {ran} = {n};")
        w.open(f"for (int64_t {t} = 0; {t} < {n}; {t}++)")
        for outer, b in step.sequences:
            self._bind(b, self._row(self.views[outer], t))
        for o in step.outputs:
            for tap, b in o.taps:
                if o.kind == "history":
                    self._bind(b, self._row(self.views[o.out], w.let(f"{t} + {o.n_back + tap}")))
                elif o.kind == "final":
                    self._bind(b, _View(host.address(b), states[b].dims, states[b].strides))
        outer_targets, self.row_targets = self.row_targets, {
            o.value: (o, n, t) for o in step.outputs if o.kind != "final"}
        self.loop_depth += 1
        self._run(step.body, life)
        self.row_targets = outer_targets
        for o in step.outputs:
            value = self.views[o.value]
            if o.value in self.in_row:
                continue
            if o.kind == "final":
                state = o.taps[0][1]
                self._same_dims(value.dims, states[state].dims)
                host.release(state)
                host.move(state, o.value)
                continue
            if o.kind == "history":
                row = self._row(self.views[o.out], w.let(f"{t} + {o.n_back}"))
            else:
                row = self._row(self._stacked_output(o, n, t, value), t)
            self._same_dims(value.dims, row.dims)
            self._copy(o.copy, value, row.dims, row)
            if o.value in self.owned:
                host.release(o.value)
        if step.stop is not None:  # a 'while' loop: stop after a step whose condition holds
            with self.work():  # (a sizing pass runs every step)
                w.open(f"if ({self._truth(step.stop)})")
                w.raw(f"{ran} = {t} + 1;")
                if step.stop in self.owned:
                    host.release(step.stop)
                w.raw("break;")
                w.close()
            if step.stop in self.owned:
                host.release(step.stop)
        self.loop_depth -= 1
        w.close()
        self.contiguous = saved
        for o in step.outputs:
            if o.kind == "history" and step.stop is not None:
                out = self.views[o.out]
                self.views[o.out] = _View(out.data, [w.let(f"{ran} + {o.n_back}")] + out.dims[1:],
                                          out.strides)
            if o.kind == "final":
                state = o.taps[0][1]
                v = _View(host.address(state), states[state].dims, states[state].strides)
                self._copy(o.copy, v, v.dims, self._allocate(o.out, v.dims))
                host.release(state)
            elif o.kind == "stacked":
                dims = [ran] + [f"loopdim{o.out}_{d}" for d in range(self.s.buffers[o.value].ndim)]
                self.views[o.out] = _View(f"loopdata{o.out}", dims,
                                          self._contiguous_strides(self.s.buffers[o.out].dtype, dims))
                self.contiguous[o.out] = "true"

    def _truth(self, b) -> str:
        """A C expression: whether the 0-d buffer ``b`` is nonzero (a NaN counts as true)."""
        dtype = self.s.buffers[b].dtype
        return f"(*(const {crender.MEM_TYPES[dtype]} *){self.views[b].data} != 0)"

    def _row_target(self, b, dims) -> _View:
        """The row of step ``t`` of the output that stacks or keeps loop value ``b``, as its
        buffer: sizes other than the row's stop the call (the stacked output is allocated
        at step 0, its rows shaped as ``b``)."""
        w = self.w
        o, n, t = self.row_targets[b]
        self.in_row.add(b)
        if o.kind == "history":
            row = self._row(self.views[o.out], w.let(f"{t} + {o.n_back}"))
        else:
            row = self._row(self._stacked_output(o, n, t, _View(None, dims, [])), t)
        self._same_dims(dims, row.dims)
        self.views[b] = row = _View(row.data, list(dims), row.strides)
        self.contiguous[b] = "true"
        return row

    def _stacked_output(self, o, n, t, value) -> _View:
        """The stacked output ``o``, allocated at step 0 with ``n`` rows shaped as ``value``."""
        w = self.w
        w.open(f"if ({t} == 0)")
        out = self._allocate(o.out, [n] + value.dims)
        w.raw(f"loopdata{o.out} = {out.data};")
        for d, size in enumerate(value.dims):
            w.raw(f"loopdim{o.out}_{d} = {size};")
        w.close()
        dims = [n] + [f"loopdim{o.out}_{d}" for d in range(len(value.dims))]
        return _View(f"loopdata{o.out}", dims, self._contiguous_strides(self.s.buffers[o.out].dtype, dims))

    def _HostCall(self, step):
        for b, view in zip(step.outputs, self.host.host_call(self, step)):
            self.views[b] = view

    def _Check(self, step):
        w = self.w
        with self.work():  # the conditions are data: a pass that only sizes buffers skips them
            w.require(w.all_of([w.let(self._truth(b), "bool") for b in step.conditions]), "index")
        self.views[step.out] = self.views[step.src]

    def _SpecifyShape(self, step):
        w = self.w
        v = self.views[step.src]
        w.require(w.all_of([w.eq(n, str(want)) for n, want in zip(v.dims, step.shape) if want is not None]),
                  "shape")
        self.views[step.out] = _View(v.data, [str(want) if want is not None else n
                                              for n, want in zip(v.dims, step.shape)], v.strides)

    def _ARange(self, step):
        w = self.w
        start, stop, st = (self._scalar(b) for b in (step.start, step.stop, step.step))
        w.require(w.cmp(st, "!=", "0"), "shape")
        # length = ceil((stop - start) / step), at least 0
        length = w.let(f"({stop} - {start} + {st} - ({st} > 0 ? 1 : -1)) / {st}")
        length = w.select(w.cmp(length, "<", "0"), "0", length)
        out = self._allocate(step.out, [length])
        mem = crender.MEM_TYPES[self.s.buffers[step.out].dtype]
        with self.work():
            w.raw(f"for (int64_t i = 0; i < {length}; i++) "
                  f"(({mem} *){out.data})[i] = ({mem})((uint64_t){start} + (uint64_t)i * (uint64_t){st});")


# ---- the CPython entry (mode 'c') ------------------------------------------------------------

class TableHost:
    """What the hosts of a native entry share: a body whose failures jump to ``bail``, and a
    table of addresses the entry reads (``slot``), functions among them (``api``)."""

    def __init__(self):
        self.w = _Writer(lambda reason: "goto bail;")
        self.table = []

    def slot(self, name) -> str:
        """The C expression reading the table's entry ``name`` (added on first use)."""
        if name not in self.table:
            self.table.append(name)
        return f"table[{self.table.index(name)}]"

    def api(self, name, fn_type) -> str:
        """The table's function ``name`` as a callable of type ``fn_type``."""
        return f"(({fn_type})(uintptr_t){self.slot(name)})"


class _PyHost(TableHost):
    """The CPython form, written without CPython's or NumPy's headers (so a unit compiles in
    a fraction of the time): objects are opaque pointers whose fields are read at the offsets
    this process measured (``pyentry.LAYOUT``); C API functions, NumPy's ``PyArray_Empty``,
    dtype objects, constants, storage cells and BLAS come from the entry's table. Arguments:
    exact ndarrays; results: PyArray_Empty arrays; scratch: malloc; a call it does not take
    returns NotImplemented."""

    def __init__(self):
        super().__init__()
        self.L = pyentry.LAYOUT
        self.objects = {}  # argument or shared buffer -> its array object
        self.host_views = []  # variables holding arrays made for HostCall arguments

    def field(self, ctype, obj, key) -> str:
        """The field ``key`` of LAYOUT (of C type ``ctype``) of the object ``obj``."""
        return f"TH_FIELD({ctype}, {obj}, {self.L[key]})"

    def guard(self, k):
        return None

    def begin(self, steps):
        self.s, self.owned = steps.s, steps.owned
        w = self.w
        for b in self.owned:
            w.raw(f"void *owned{b} = NULL;")
        for k, step in enumerate(self.s.steps):
            if isinstance(step, HostCall):
                for j, b in enumerate(step.inputs):
                    if steps.root[b] != b:
                        self.host_views.append(f"hostview{k}_{j}")
                        w.raw(f"void *hostview{k}_{j} = NULL;")
        w.require(f"nargs == {len(steps.s.args)}", "input")

    def argument(self, k, b, buf) -> _View:
        self.objects[b] = self.w.let(f"args[{k}]", "void *")
        return self._array(self.objects[b], buf)

    def arguments_read(self, views):
        """Calls on large arrays take the node-by-node path, which splits kernels across cores."""
        w = self.w
        if views and hands_large_calls_over(self.s):
            sizes = []
            for v in views:
                size = "1"
                for n in v.dims:
                    size = w.mul(size, n)
                sizes.append(size)
            total = w.let(" + ".join(sizes)) if len(sizes) > 1 else sizes[0]
            w.require(w.cmp(total, "<", str(LARGE_CALL_ELEMENTS)), "large")

    def shared(self, k, b, buf) -> _View:
        cell = self.slot(f"container:{k}")
        value = f"{self.api('PyList_GetItem', 'th_list_get_fn')}({cell}, 0)"
        self.objects[b] = self.w.let(value, "void *")
        return self._array(self.objects[b], buf)

    def _array(self, a, buf) -> _View:
        """Check the object ``a`` (borrowed) as the array for ``buf`` and read its fields."""
        w = self.w
        w.require(f"{self.field('void *', a, 'type')} == {self.slot('ndarray')}", "input")
        w.require(w.all_of([f"{self.field('void *', a, 'descr')} == {self.slot('descr:' + buf.dtype)}",
                            f"({self.field('int32_t', a, 'flags')} & {pyentry.NPY_ARRAY_ALIGNED}) != 0",
                            f"{self.field('int32_t', a, 'nd')} == {buf.ndim}"]), "input")
        dims, strides = [], []
        if buf.ndim:
            shape = w.let(self.field("const int64_t *", a, "dims"), "const int64_t *")
            steps = w.let(self.field("const int64_t *", a, "strides"), "const int64_t *")
        for d in range(buf.ndim):
            size = w.let(f"{shape}[{d}]")
            if buf.shape[d] is not None:
                w.require(w.eq(size, str(buf.shape[d])), "input")
                size = str(buf.shape[d])
            dims.append(size)
            strides.append(w.let(f"{steps}[{d}]"))
        return _View(w.let(self.field("char *", a, "data"), "char *"), dims, strides)

    def constant(self, b, key, buf) -> str:
        return f"(char *){self.slot(key)}"

    def allocate(self, b, kind, dims, nbytes) -> str:
        w = self.w
        if kind in ("heap", "copy"):
            w.raw(f"owned{b} = malloc((size_t){nbytes} + 1);")
            w.require(f"owned{b} != NULL", "memory")
            return w.let(f"(char *)owned{b}", "char *")
        w.open("")
        w.raw(f"int64_t shape[{max(len(dims), 1)}] = {_array(dims)};")
        w.raw(f"void *const descr = {self.slot('descr:' + self.s.buffers[b].dtype)};")
        w.raw(f"{self.api('Py_IncRef', 'th_ref_fn')}(descr);  /* PyArray_Empty steals it */")
        w.raw(f"owned{b} = {self.api('PyArray_Empty', 'th_empty_fn')}({len(dims)}, shape, descr, 0);")
        w.close()
        w.raw(f"if (owned{b} == NULL) {{ {self.api('PyErr_Clear', 'th_void_fn')}(); goto bail; }}"
              "  /* the other path raises */")
        return w.let(self.field("char *", f"owned{b}", "data"), "char *")

    def address(self, b) -> str:
        """The data of heap buffer ``b`` (a loop's state)."""
        return f"(char *)owned{b}"

    def move(self, dst, src):
        """Heap buffer ``dst`` (released) takes over the memory of ``src``."""
        self.w.raw(f"owned{dst} = owned{src};")
        self.w.raw(f"owned{src} = NULL;")

    def release(self, b):
        if self.owned[b] == "object":
            self.w.raw(f"{self.api('Py_DecRef', 'th_ref_fn')}(owned{b});")
        else:
            self.w.raw(f"free(owned{b});")
        self.w.raw(f"owned{b} = NULL;")

    def _object(self, b) -> str:
        """The array object holding root buffer ``b`` (borrowed)."""
        if b in self.owned:
            return f"owned{b}"
        if b in self.objects:
            return self.objects[b]
        return self.slot("object:" + dict(self.s.constants)[b])

    def _fail_if(self, failed):
        """Bail when ``failed``, clearing the Python error it set (the other path raises)."""
        self.w.raw(f"if ({failed}) {{ {self.api('PyErr_Clear', 'th_void_fn')}(); goto bail; }}")

    def host_call(self, steps, step) -> list:
        """Pass the inputs as arrays (a view's array is made here, based on its root's),
        call, hold the returned arrays and check them as the outputs; their views."""
        w, k = self.w, steps.k
        objects = []
        for j, b in enumerate(step.inputs):
            root = steps.root[b]
            if root == b:
                objects.append(self._object(b))
                continue
            v, buf, obj = steps.views[b], self.s.buffers[b], f"hostview{k}_{j}"
            w.open("")
            w.raw(f"const int64_t dims[{max(buf.ndim, 1)}] = {_array(v.dims)};")
            w.raw(f"const int64_t strides[{max(buf.ndim, 1)}] = {_array(v.strides)};")
            w.raw(f"void *const descr = {self.slot('descr:' + buf.dtype)};")
            w.raw(f"{self.api('Py_IncRef', 'th_ref_fn')}(descr);  /* the constructor steals it */")
            w.raw(f"{obj} = {self.api('PyArray_NewFromDescr', 'th_new_fn')}({self.slot('ndarray')}, descr, "
                  f"{buf.ndim}, dims, strides, {v.data}, 0, NULL);")
            w.close()
            self._fail_if(f"{obj} == NULL")
            base = self._object(root)
            w.raw(f"{self.api('Py_IncRef', 'th_ref_fn')}({base});  /* SetBaseObject steals it */")
            self._fail_if(f"{self.api('PyArray_SetBaseObject', 'th_base_fn')}({obj}, {base}) < 0")
            objects.append(obj)
        result = f"hostresult{k}"
        w.raw(f"void *{result};")
        w.open("")
        w.raw(f"void *const args[{max(len(objects), 1)}] = {_array(objects)};")
        w.raw(f"{result} = {self.api('PyObject_Vectorcall', 'th_call_fn')}({self.slot(step.callable)}, "
              f"args, {len(objects)}, NULL);")
        w.close()
        self._fail_if(f"{result} == NULL")
        for obj in objects:
            if obj.startswith("hostview"):
                w.raw(f"{self.api('Py_DecRef', 'th_ref_fn')}({obj});")
                w.raw(f"{obj} = NULL;")
        for j, b in enumerate(step.outputs):  # the callable returns a list of the outputs
            w.raw(f"owned{b} = {self.api('PyList_GetItem', 'th_list_get_fn')}({result}, {j});")
            w.raw(f"{self.api('Py_IncRef', 'th_ref_fn')}(owned{b});")
        w.raw(f"{self.api('Py_DecRef', 'th_ref_fn')}({result});")
        return [self._array(f"owned{b}", self.s.buffers[b]) for b in step.outputs]

    def call(self, text, long_):
        w = self.w
        w.open(f"if ({long_})")
        w.raw(f"void *const thread = {self.api('PyEval_SaveThread', 'th_save_fn')}();")
        w.raw(text)
        w.raw(f"{self.api('PyEval_RestoreThread', 'th_restore_fn')}(thread);")
        w.reopen("else")
        w.raw(text)
        w.close()

    def gemm(self, steps, dtype, A, B, a_data, b_data, c_data, m, n, k):
        """``c = a @ b`` through the BLAS gemm, with the matrices seen in Fortran order
        (``c^T = b^T a^T``); layouts BLAS cannot read stop the call."""
        w, e = self.w, str(ITEMSIZE[dtype])
        w.open(f"if ({w.eq(k, '0')})")
        steps.fill(c_data, w.mul(m, n), dtype, crender._literal(0, dtype))
        w.reopen("else")
        a_row, a_ld_row, a_col, a_ld_col = blas_layouts(w, A, e)
        b_row, b_ld_row, b_col, b_ld_col = blas_layouts(w, B, e)
        w.require(w.all_of([w.any_of([a_row, a_col]), w.any_of([b_row, b_col])]), "layout")
        lda = w.select(a_row, a_ld_row, a_ld_col)
        ldb = w.select(b_row, b_ld_row, b_ld_col)
        if _blas_int() == "int":
            for v in (m, n, k, lda, ldb):
                w.require(w.cmp(v, "<=", str(_INT32_MAX)), "layout")
        ctype, bi = crender.C_TYPES[dtype], _blas_int()
        w.raw(f"const char ta = {a_row} ? 'N' : 'T', tb = {b_row} ? 'N' : 'T';")
        w.raw(f"const {bi} bm = {m}, bn = {n}, bk = {k}, blda = {lda}, bldb = {ldb}, "
              f"bldc = {n} == 0 ? 1 : {n};")
        w.raw(f"const {ctype} alpha = 1, beta = 0;")
        name = "sgemm" if dtype == "float32" else "dgemm"
        w.raw(f"th_{name}_fn const {name} = (th_{name}_fn)(uintptr_t){self.slot(name)};")
        call = (f"{name}(&tb, &ta, &bn, &bm, &bk, &alpha, ({ctype} *){b_data}, &bldb, "
                f"({ctype} *){a_data}, &blda, &beta, ({ctype} *){c_data}, &bldc);")
        self.call(call, w.cmp(w.mul(w.mul(m, n), k), ">", str(GEMM_GIL_RELEASE)))
        w.close()

    def end(self, results):
        """Build the returned value (the one output, or a list), then store the updates:
        nothing can fail after that."""
        w, s = self.w, self.s
        outputs = [f"owned{b}" for b in s.results[:s.n_outputs]]
        if s.single:
            w.raw(f"void *const value = {outputs[0]};")
        else:
            w.raw(f"void *const value = {self.api('PyList_New', 'th_list_new_fn')}({len(outputs)});")
            w.raw(f"if (value == NULL) {{ {self.api('PyErr_Clear', 'th_void_fn')}(); goto bail; }}")
            for k, obj in enumerate(outputs):
                w.raw(f"{self.api('PyList_SetItem', 'th_list_set_fn')}(value, {k}, {obj});"
                      "  /* steals the reference */")
        for j, b in enumerate(s.results[s.n_outputs:]):
            cell = self.slot(f"container:{len(s.shared) + j}")
            w.raw(f"{self.api('PyList_SetItem', 'th_list_set_fn')}({cell}, 0, owned{b});"
                  "  /* steals it, drops the old value */")
        w.raw("return value;")
        w.depth -= 1
        w.raw("bail:")
        w.depth += 1
        for b, kind in self.owned.items():
            w.raw(f"{self.api('Py_DecRef', 'th_ref_fn')}(owned{b});" if kind in ("result", "object")
                  else f"free(owned{b});")  # Py_DecRef ignores NULL
        for obj in self.host_views:
            w.raw(f"{self.api('Py_DecRef', 'th_ref_fn')}({obj});")
        w.raw(f"{self.api('Py_IncRef', 'th_ref_fn')}({self.slot('NotImplemented')});")
        w.raw(f"return {self.slot('NotImplemented')};")


def blas_layouts(w, M, e):
    """(row-major?, its leading dimension, column-major?, its leading dimension) of the
    matrix M = (rows, cols, row stride, col stride) in elements of ``e`` bytes."""
    r, c, s0, s1 = M

    def lead(stride, other):
        ok = w.all_of([w.let(f"{stride} % {e} == 0", "bool"), w.cmp(stride, ">=", w.mul(other, e))])
        return ok, w.let(f"{stride} / {e}")

    row_ok, row_ld = lead(s0, c)
    row = w.all_of([w.any_of([w.eq(c, "1"), w.eq(s1, e)]), w.any_of([w.eq(r, "1"), row_ok])])
    row_ld = w.select(w.eq(r, "1"), w.select(w.eq(c, "0"), "1", c), row_ld)
    col_ok, col_ld = lead(s1, r)
    col = w.all_of([w.any_of([w.eq(r, "1"), w.eq(s0, e)]), w.any_of([w.eq(c, "1"), col_ok])])
    col_ld = w.select(w.eq(c, "1"), w.select(w.eq(r, "0"), "1", r), col_ld)
    return row, row_ld, col, col_ld


#: ``TH_GLUE``, the attribute of an entry function: an entry is straight-line glue around
#: the kernels, so optimising it gains nothing measurable per call but would take most of
#: its unit's compile time (as in the LLVM entry)
GLUE = """#if defined(__clang__)
#define TH_GLUE __attribute__((optnone))
#elif defined(__GNUC__)
#define TH_GLUE __attribute__((optimize("O0")))
#else
#define TH_GLUE
#endif"""

#: the C API functions' types, as the table holds them
_API_TYPES = """typedef void (*th_ref_fn)(void *);
typedef void (*th_void_fn)(void);
typedef void *(*th_list_get_fn)(void *, int64_t);
typedef int (*th_list_set_fn)(void *, int64_t, void *);
typedef void *(*th_list_new_fn)(int64_t);
typedef void *(*th_save_fn)(void);
typedef void (*th_restore_fn)(void *);
typedef void *(*th_empty_fn)(int, const int64_t *, void *, int);
typedef void *(*th_new_fn)(void *, void *, int, const int64_t *, const int64_t *, void *, int, void *);
typedef int (*th_base_fn)(void *, void *);
typedef void *(*th_call_fn)(void *, void *const *, size_t, void *);
#define TH_FIELD(type, obj, offset) (*(type *)((char *)(obj) + (offset)))"""


def render_pyentry(schedule, name) -> tuple[str, list]:
    """(C text, table slot names) of ``schedule`` as the CPython ``METH_FASTCALL`` entry
    ``name``, which ``pyentry.make_schedule_entry`` turns into a builtin. The text goes after
    the kernels it calls and needs no header but the C library's. The entry returns what the
    schedule says (the one output, or a list of them) after storing the updates into the
    shared variables' cells, or NotImplemented."""
    if pyentry.LAYOUT is None:
        raise RuntimeError(f"native entries are unavailable here: {pyentry.PROBE_ERROR}")
    host = _PyHost()
    steps = _Steps(schedule, host)
    steps.render()
    head = []
    if host.table:
        head.append(f"    void *const *const table = (void *const *)(TH_FIELD(char *, self, {host.L['b_ptr']})"
                    f" + {pyentry._TABLE_OFFSET});  /* after the PyMethodDef */")
    i = _blas_int()
    gemm_types = "\n".join(
        f"typedef void (*th_{p}gemm_fn)(const char *, const char *, const {i} *, const {i} *, const {i} *, "
        f"const {t} *, const {t} *, const {i} *, const {t} *, const {i} *, const {t} *, {t} *, const {i} *);"
        for p, t in (("s", "float"), ("d", "double")))
    text = f"""
/* {name}: the whole function as one CPython METH_FASTCALL entry (see theanine.codegen.c_entry).
 * Python objects are opaque here: fields are read at this process's measured offsets, and
 * the table (the builtin's __self__) holds: {', '.join(host.table) or 'nothing'}. */
#include <stdlib.h>
{_API_TYPES}
/* BLAS gemm, Fortran convention (every argument by pointer; see theanine.codegen.blas) */
{gemm_types}

{GLUE}

{"".join(steps.helpers)}
TH_GLUE void *{name}(void *self, void *const *args, int64_t nargs)
{{
{chr(10).join(head + host.w.pruned())}
}}
"""
    return text, host.table


def _blas_int() -> str:
    """The C type of BLAS integer arguments in this process (fixed, part of the source)."""
    return "int64_t" if blas.int_bits() == 64 else "int"


# ---- the exported library --------------------------------------------------------------------

class _ExportHost:
    """The freestanding form: theanine_buffer arguments, a workspace, error codes."""

    def __init__(self, name, constants):
        self.name = name
        self.arrays = constants
        self.w = _Writer(lambda reason: f"return {EXPORT_ERRORS[reason][0]};")
        self.statics = []
        self.gemms = set()

    def begin(self, steps):
        s = steps.s
        self.slot = {b: j for j, b in enumerate(steps.owned)}
        self.measured = _size_dependencies(steps)
        header = 0
        self.header_at = []
        self.n_args = len(s.args)
        for b in s.results:
            self.header_at.append(header)
            header += 2 * s.buffers[b].ndim
        self.start = (8 * header + 63) // 64 * 64
        n = max(len(self.slot), 1)
        w = self.w
        w.raw(f"char *const base = measure ? {self.name}_nowhere : workspace;")
        w.raw(f"int64_t ws_off[{n}], ws_len[{n}], ws_peak = {self.start};")
        w.raw(f"bool ws_live[{n}] = {{false}};")

    def guard(self, k):
        """No guard for the top-level steps the sizing pass runs (``k``; None inside loops)."""
        return None if k is not None and k in self.measured else "!measure"

    def argument(self, k, b, buf) -> _View:
        w = self.w
        p = w.let(f"&inputs[{k}]", "const theanine_buffer *")
        w.require(f"{p}->ndim == {buf.ndim}", "input")
        itemsize = ITEMSIZE[buf.dtype]
        dims = []
        for d in range(buf.ndim):
            dims.append(checked_size(w, f"{p}->shape[{d}]", buf.shape[d]))
        dense, step = [], str(itemsize)
        for n in reversed(dims):
            dense.insert(0, step)
            step = w.mul(step, n)
        strides = [w.let(f"{p}->strides ? {p}->strides[{d}] : {dense[d]}") for d in range(buf.ndim)]
        data = w.let(f"(char *){p}->data", "char *")
        if itemsize > 1:
            parts = [f"(uintptr_t){data} % {itemsize} == 0"]
            parts += [f"({n} <= 1 || {s} % {itemsize} == 0)" for n, s in zip(dims, strides)]
            w.require(w.any_of([w.eq(n, "0") for n in dims] + [w.all_of(parts)]), "input")
        return _View(data, dims, strides)

    def arguments_read(self, views):
        """No limit on sizes here: the exported code computes every call itself."""

    def shared(self, k, b, buf) -> _View:
        return self.argument(self.n_args + k, b, buf)

    def constant(self, b, key, buf) -> str:
        array = np.ascontiguousarray(self.arrays[key], dtype=buf.dtype)
        bits = {1: "uint8_t", 2: "uint16_t", 4: "uint32_t", 8: "uint64_t"}[array.itemsize]
        words = array.reshape(-1).view(f"u{array.itemsize}")
        digits = 2 * array.itemsize
        values = [f"0x{int(v):0{digits}x}" for v in words] or ["0"]
        rows = [", ".join(values[i:i + 8]) for i in range(0, len(values), 8)]
        ident = f"{self.name}_const{len(self.statics)}"
        self.statics.append(
            f"/* constant b{b}: {buf.dtype}, shape {tuple(buf.shape)}, as bit patterns */\n"
            f"static const {bits} {ident}[{len(values)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n")
        return f"(char *){ident}"

    def allocate(self, b, kind, dims, nbytes) -> str:
        off = self.w.let(f"th_ws_alloc(ws_off, ws_len, ws_live, {len(self.slot)}, {self.slot[b]}, "
                         f"{nbytes}, {self.start}, &ws_peak)", pure=False)
        return self.w.let(f"base + {off}", "char *")

    def release(self, b):
        self.w.raw(f"ws_live[{self.slot[b]}] = false;")

    def address(self, b) -> str:
        """The data of workspace buffer ``b`` (a loop's state)."""
        return f"(base + ws_off[{self.slot[b]}])"

    def move(self, dst, src):
        """Workspace buffer ``dst`` (released) takes over the block of ``src``."""
        d, s = self.slot[dst], self.slot[src]
        self.w.raw(f"ws_off[{d}] = ws_off[{s}]; ws_len[{d}] = ws_len[{s}]; ws_live[{d}] = true; "
                   f"ws_live[{s}] = false;")

    def call(self, text, long_):
        self.w.raw(text)

    def gemm(self, steps, dtype, A, B, a_data, b_data, c_data, m, n, k):
        suffix = "f32" if dtype == "float32" else "f64"
        self.gemms.add(dtype)
        self.w.raw(f"th_gemm_{suffix}({m}, {n}, {k}, {a_data}, {A[2]}, {A[3]}, {b_data}, {B[2]}, {B[3]}, "
                   f"({crender.C_TYPES[dtype]} *){c_data});")

    def end(self, results):
        w = self.w
        w.open("if (!measure)")
        w.raw("int64_t *const header = (int64_t *)workspace;")
        for k, view in enumerate(results):
            at, nd = self.header_at[k], len(view.dims)
            for d in range(nd):
                w.raw(f"header[{at + d}] = {view.dims[d]};")
                w.raw(f"header[{at + nd + d}] = {view.strides[d]};")
            w.raw(f"outputs[{k}].data = {view.data};")
            w.raw(f"outputs[{k}].ndim = {nd};")
            w.raw(f"outputs[{k}].shape = header + {at};")
            w.raw(f"outputs[{k}].strides = header + {at + nd};")
        w.close()
        w.raw("*size = ws_peak;")
        w.raw("return THEANINE_OK;")


def _sized_by(step) -> list:
    """The buffers holding integers that ``step``'s sizes depend on (indices, alloc and
    reshape sizes, arange bounds, a mask's elements, a loop's count)."""
    if isinstance(step, Index):
        return [p for item in step.items for p in item[1:] if p is not None]
    if isinstance(step, Fill):
        return list(step.dims)
    if isinstance(step, Reshape):
        return [step.shape]
    if isinstance(step, ARange):
        return [step.start, step.stop, step.step]
    if isinstance(step, NonZero):
        return [step.src]
    if isinstance(step, Loop):
        return [step.n_steps]
    return []


def _size_dependencies(steps) -> set:
    """The steps a sizing pass must run: those computing the integers that sizes depend on.
    Their buffers must live on the stack (the pass has no workspace), and no loop body may
    compute such integers; ValueError otherwise."""
    s = steps.s
    writer = s.writer()
    need = [b for step in s.steps for b in _sized_by(step)]
    for step in s.steps:
        if isinstance(step, Loop):
            _refuse_sizes_computed_in(step)
    seen, run = set(), set()
    while need:
        b = need.pop()
        if b in seen or b not in writer:
            continue
        seen.add(b)
        k = writer[b]
        step = s.steps[k]
        if isinstance(step, ShapeOf):
            continue
        if isinstance(step, VIEW_STEPS):
            need.append(step.src)
            continue
        if isinstance(step, Reshape) or steps.storage(b) != "stack":
            raise ValueError(f"step {k} ({type(step).__name__}) computes integers that sizes depend "
                             "on into an array that is not a small static intermediate; the exported "
                             "code cannot size its workspace without running it")
        run.add(k)
        need.extend(read(step))
    return run


def _refuse_sizes_computed_in(loop):
    """ValueError when a step of ``loop``'s body (or of a loop nested in it) needs integers
    computed by another body step (indices, sizes): the sizing pass does not run bodies."""
    body = list(walk(loop.body))
    written_by = {b: step for step in body for b in written(step)}
    need = [b for step in body for b in _sized_by(step)]
    seen = set()
    while need:
        b = need.pop()
        if b in seen or b not in written_by:
            continue
        seen.add(b)
        step = written_by[b]
        if isinstance(step, ShapeOf):
            continue
        if isinstance(step, VIEW_STEPS):
            need.append(step.src)
            continue
        raise ValueError(f"a loop step computes the integers that sizes or indices depend on "
                         f"({type(step).__name__}); the exported code cannot size its workspace "
                         "without running the loop")


_EXPORT_PRELUDE = """
/* First fit in the workspace: the lowest offset (a multiple of 64, from start) where bytes fit
 * between the blocks still live; the peak is the workspace size a call needs. */
static int64_t th_ws_alloc(int64_t *off, int64_t *len, bool *live, int count, int slot, int64_t bytes,
                           int64_t start, int64_t *peak)
{
    const int64_t need = (bytes + 63) / 64 * 64;
    int64_t at = start;
    for (bool moved = true; moved;) {
        moved = false;
        for (int i = 0; i < count; i++)
            if (live[i] && at < off[i] + len[i] && off[i] < at + need) {
                at = off[i] + len[i];
                moved = true;
            }
    }
    off[slot] = at;
    len[slot] = need;
    live[slot] = true;
    if (at + need > *peak)
        *peak = at + need;
    return at;
}
"""

_GEMM = """
/* c (m x n, C order) = a (m x k) @ b (k x n), strides in bytes: a loop nest, rows of b
 * streamed into rows of c. */
static void th_gemm_{sfx}(int64_t m, int64_t n, int64_t k, const char *a, int64_t as0, int64_t as1,
                        const char *b, int64_t bs0, int64_t bs1, {t} *c)
{{
    for (int64_t i = 0; i < m * n; i++)
        c[i] = 0;
    for (int64_t i = 0; i < m; i++) {{
        {t} *restrict ci = c + i * n;
        for (int64_t p = 0; p < k; p++) {{
            const {t} aip = *(const {t} *)(a + i * as0 + p * as1);
            const char *bp = b + p * bs0;
            if (bs1 == (int64_t)sizeof({t})) {{
                const {t} *restrict bd = (const {t} *)bp;
                for (int64_t j = 0; j < n; j++)
                    ci[j] += aip * bd[j];
            }} else {{
                for (int64_t j = 0; j < n; j++)
                    ci[j] += aip * *(const {t} *)(bp + j * bs1);
            }}
        }}
    }}
}}
"""


def _shape_text(shape) -> str:
    sizes = ["?" if n is None else str(n) for n in shape]
    return "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"


def render_export(schedule, kernels, constants: dict, name: str, input_labels, output_labels):
    """(``name.c``, ``name.h``) texts: ``schedule`` (its kernels ``kernels``, (kernel,
    inner_broadcast) pairs named ``__KERNEL{k}__``; its constant arrays ``constants`` by
    table key) as a freestanding C library. ``input_labels`` / ``output_labels`` describe the
    arguments and results in the header (sanitised). ValueError where the schedule cannot
    be exported (see ``_index_dependencies``)."""
    if not _NAME.match(name):
        raise ValueError(f"export: {name!r} is not a C identifier")
    host = _ExportHost(name, constants)
    steps = _Steps(schedule, host)
    steps.render()
    body = "\n".join(host.w.pruned())
    used = [(kernel, inner) for kernel, inner in kernels  # static functions: only those called
            if kernel.name in body or any(kernel.name in helper for helper in steps.helpers)]
    module = crender.render_module(used, name, static=True)
    for k in reversed(range(len(kernels))):
        module = module.replace(f"__KERNEL{k}__", f"{name}_k{k}")
    for k in reversed(range(len(kernels))):
        body = body.replace(f"__KERNEL{k}__", f"{name}_k{k}")
    gemms = "".join(_GEMM.format(sfx="f32" if d == "float32" else "f64", t=crender.C_TYPES[d])
                    for d in ("float32", "float64") if d in host.gemms)
    header = _header(schedule, name, input_labels, output_labels)
    source = f"""/* {name}.c: a function compiled by theanine, as freestanding C; its API is in {name}.h.
 * Build: cc -O2 -std=c11 -c {name}.c (or with a program: cc -O2 -std=c11 main.c {name}.c -lm). */
#include "{name}.h"

{module}{_EXPORT_PRELUDE}{gemms}
/* The workspace a sizing pass pretends to use (never read or written). */
static _Alignas(64) char {name}_nowhere[64];

{"".join(host.statics)}{"".join(steps.helpers)}
/* The schedule: checks, then each step. measure: only size the workspace (writing nothing). */
static int {name}_exec(const theanine_buffer *inputs, theanine_buffer *outputs, char *workspace,
        bool measure, int64_t *size)
{{
{body}
}}

int64_t {name}_workspace_size(const theanine_buffer *inputs)
{{
    int64_t size = 0;
    const int rc = {name}_exec(inputs, NULL, NULL, true, &size);
    return rc == THEANINE_OK ? size : rc;
}}

int {name}_run(const theanine_buffer *inputs, theanine_buffer *outputs, void *workspace)
{{
    int64_t size = 0;
    return {name}_exec(inputs, outputs, (char *)workspace, false, &size);
}}
"""
    return source, header


def _header(schedule, name, input_labels, output_labels) -> str:
    s = schedule

    inputs = s.args + s.shared

    def rows(buffers, labels):
        out = []
        for k, (b, label) in enumerate(zip(buffers, labels)):
            buf = s.buffers[b]
            out.append(f" *   {k:3d}  {buf.dtype:8s} {_shape_text(buf.shape):16s} {comment_text(label)}")
        return out or [" *   (none)"]

    errors = [f"#define {macro} ({code})  /* {text} */" for macro, code, text in EXPORT_ERRORS.values()]
    lines = [
        f"/* {name}.h: the C API of a function compiled by theanine ({name}.c holds the code; it",
        " * needs no Python, NumPy or BLAS: cc -O2 -std=c11 main.c " + f"{name}.c -lm).",
        " *",
        " * Buffers in, buffers out, an explicit workspace:",
        f" *   int64_t need = {name}_workspace_size(inputs);   bytes, or a negative error code",
        " *   void *workspace = malloc(need > 0 ? need : 1);",
        f" *   int rc = {name}_run(inputs, outputs, workspace);  THEANINE_OK (0) or an error code",
        " *",
        f" * inputs: {name}_NUM_INPUTS buffers, the function's inputs in order, then the current",
        " *   values of the shared variables it reads. Each: data, ndim, shape (ndim sizes) and",
        " *   strides (ndim byte strides; NULL for C order). Inputs are only read.",
        f" * outputs: {name}_NUM_OUTPUTS buffers that {name}_run fills: the function's outputs in",
        " *   order, then the new values of updated shared variables (in the order of the updates);",
        " *   each is C-ordered, and its data, shape and strides live in the workspace: they stay",
        " *   valid until the workspace is freed or passed to another call.",
        " * workspace: at least workspace_size(inputs) bytes for these inputs (their sizes and the",
        " *   values of index inputs), aligned to 8 bytes (malloc's memory is); reusable.",
        " * Both functions are reentrant; calls with distinct workspaces may run in parallel.",
        " *",
        " * inputs:   #   dtype    shape            name",
        *rows(inputs, input_labels),
        " * outputs:  #   dtype    shape            what",
        *rows(s.results, output_labels),
        " */",
        f"#ifndef {name.upper()}_H_INCLUDED",
        f"#define {name.upper()}_H_INCLUDED",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "#ifndef THEANINE_BUFFER_DEFINED",
        "#define THEANINE_BUFFER_DEFINED",
        "typedef struct {",
        "    void *data;",
        "    int64_t ndim;",
        "    const int64_t *shape;",
        "    const int64_t *strides;",
        "} theanine_buffer;",
        "",
        "#define THEANINE_OK 0",
        *errors,
        "#endif",
        "",
        f"#define {name}_NUM_INPUTS {len(inputs)}",
        f"#define {name}_NUM_OUTPUTS {len(s.results)}",
        "",
        f"int64_t {name}_workspace_size(const theanine_buffer *inputs);",
        f"int {name}_run(const theanine_buffer *inputs, theanine_buffer *outputs, void *workspace);",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif  /* {name.upper()}_H_INCLUDED */",
        "",
    ]
    return "\n".join(lines)
