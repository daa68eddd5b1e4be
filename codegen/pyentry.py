"""Fast CPython entry points for native elementwise kernels.

``make_entry`` wraps a kernel with the native signature
``void kernel(const int64 *shape, char **data, const int64 *strides)`` (see
``llvm.render_elementwise``) in a builtin function whose C body is generated
here as LLVM IR and compiled with ``jit.compile_ir``: a ``METH_FASTCALL``
function turned into a ``builtin_function_or_method`` by ``PyCFunction_NewEx``.
One call checks its arguments, broadcasts their shapes, allocates the output
with NumPy's ``PyArray_Empty``, calls the kernel and returns the output; no
Python code and no ctypes run on that path (well under 0.1 µs in all).

The fast path takes exactly ``numpy.ndarray`` objects (no subclasses) whose
dtype object is NumPy's canonical one for the expected dtype (the one
``np.dtype(name)`` returns; arrays of that dtype made by NumPy have it, unpickled
ones do not), that are aligned, have at most ``ndim`` dimensions (exactly the
number in ``in_shapes`` when given) and match its static sizes. Anything else
is not an error of the entry: it returns ``NotImplemented`` (a new reference)
or, when ``fallback`` is given, returns ``fallback(*args)``, so that a slower
Python path can convert, check and raise the user-facing error. The entry
itself raises only ``TypeError`` for a wrong number of arguments and
``ValueError`` for shapes that cannot be broadcast.

Argument ``k`` is broadcast against the output NumPy-style: missing leading
dimensions have size 1, size-1 dimensions get stride 0. The output has exactly
``ndim`` dimensions, is C-contiguous, fresh and writeable. When every buffer
walks the output in C order (contiguous and unbroadcast, or a single element),
the kernel sees one flat dimension. The GIL is released around the kernel for
outputs of more than ``GIL_RELEASE_SIZE`` elements.

The generated code reads ``PyArrayObject`` fields (data, nd, dimensions,
strides, descr, flags), ``ob_type`` and the buffer pointer of a ctypes object
at offsets probed once at import (``LAYOUT``; see ``_probe_layout``). If the
probe fails, ``LAYOUT`` is None and ``make_entry`` raises RuntimeError: callers
keep their Python path. Process-specific addresses (the kernel, type and dtype
objects, C API functions) are not in the IR: they live in a table inside the
function's ``__self__`` (a ctypes structure that also holds the ``PyMethodDef``,
so both live exactly as long as the function). The IR thus depends only on
the signature, is cached on disk by ``compile_ir`` and is shared by all
entries with the same signature.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import sys

import numpy as np

__all__ = ["make_entry", "make_schedule_entry", "LAYOUT", "GIL_RELEASE_SIZE"]

#: outputs with more elements than this are computed with the GIL released
GIL_RELEASE_SIZE = 100_000

METH_FASTCALL = 0x0080
NPY_ARRAY_C_CONTIGUOUS = 0x0001
NPY_ARRAY_F_CONTIGUOUS = 0x0002
NPY_ARRAY_OWNDATA = 0x0004
NPY_ARRAY_ALIGNED = 0x0100
NPY_ARRAY_WRITEABLE = 0x0400
_PUBLIC_FLAGS = (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_F_CONTIGUOUS | NPY_ARRAY_OWNDATA
                 | NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE)
#: slots of NumPy's C API table (numpy/__multiarray_api.h, the same in NumPy 1.x and 2.x)
NUMPY_API_SLOTS = {"PyArray_NewFromDescr": 94, "PyArray_Empty": 184, "PyArray_SetBaseObject": 282}

_ITEMSIZE = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
             "int64": 8, "uint64": 8, "float32": 4, "float64": 8}

_api = ctypes.pythonapi


def _address(name: str) -> int:
    return ctypes.cast(getattr(_api, name), ctypes.c_void_p).value


class _PyMethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


# ---- import-time probes -------------------------------------------------------------------

def _word(address: int) -> int:
    return ctypes.c_uint64.from_address(address).value


def _unique(candidates: set, what: str) -> int:
    if len(candidates) != 1:
        raise RuntimeError(f"pyentry probe: {what} offset is ambiguous or missing: {sorted(candidates)}")
    return candidates.pop()


def _probe_arrays():
    """Arrays whose data pointer, ndim, shape, strides, dtype and flags all differ."""
    base = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7)
    ro = np.arange(11, dtype=np.int32)
    ro.flags.writeable = False
    return [base, base[1, ::-1, 1::2], base.T, np.zeros((13,), np.float32), ro,
            np.empty((3, 0, 4), np.int64), np.asfortranarray(np.ones((3, 4), np.int16)),
            base[0, 0, :, 3]]


def _probe_layout() -> dict:
    """Offsets of the fields the entry reads, found by searching objects' memory for known values.

    Only words inside an object's ``__basicsize__`` are read; a word is
    dereferenced only if it is an aligned value above 64 KiB, and every offset
    must be the single candidate that matches on every probe array.
    """
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise RuntimeError("pyentry probe: only 64-bit platforms are supported")
    objects = [1.5, "s", (), np.float64(2), np.ones(2)]
    type_off = _unique({off for off in range(0, 32, 8)
                        if all(_word(id(o) + off) == id(type(o)) for o in objects)}, "ob_type")

    size = np.ndarray.__basicsize__
    words = range(0, size - 7, 8)
    ints = range(0, size - 3, 4)
    cand = {k: None for k in ("data", "nd", "dims", "strides", "descr", "flags")}

    def narrow(key, found):
        cand[key] = found if cand[key] is None else cand[key] & found

    for a in _probe_arrays():
        p = id(a)
        flags = ((NPY_ARRAY_C_CONTIGUOUS * a.flags.c_contiguous)
                 | (NPY_ARRAY_F_CONTIGUOUS * a.flags.f_contiguous)
                 | (NPY_ARRAY_OWNDATA * a.flags.owndata) | (NPY_ARRAY_ALIGNED * a.flags.aligned)
                 | (NPY_ARRAY_WRITEABLE * a.flags.writeable))
        narrow("data", {o for o in words if _word(p + o) == a.__array_interface__["data"][0]})
        narrow("descr", {o for o in words if _word(p + o) == id(a.dtype)})
        narrow("nd", {o for o in ints if ctypes.c_int32.from_address(p + o).value == a.ndim})
        narrow("flags", {o for o in ints
                         if ctypes.c_int32.from_address(p + o).value & _PUBLIC_FLAGS == flags})
        for key, want in (("dims", a.shape), ("strides", a.strides)):
            found = set()
            for o in words:
                v = _word(p + o)
                if v > 65536 and v % 8 == 0 and \
                        tuple((ctypes.c_int64 * a.ndim).from_address(v)) == want:
                    found.add(o)
            narrow(key, found)
    layout = {key: _unique(found, key) for key, found in cand.items()}
    layout["type"] = type_off

    probe = (ctypes.c_int64 * 3)(1, 2, 3)
    layout["b_ptr"] = _unique({o for o in range(0, type(probe).__basicsize__ - 7, 8)
                               if _word(id(probe) + o) == ctypes.addressof(probe)}, "ctypes b_ptr")
    return layout


def _numpy_api_addresses() -> dict:
    """Addresses of the NumPy C API functions the entries call (``PyArray_Empty``,
    ``PyArray_NewFromDescr``, ``PyArray_SetBaseObject``), each checked by calling it
    through ctypes."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    capsule = multiarray._ARRAY_API
    get_name = _api.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = _api.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    table = (ctypes.c_void_p * (max(NUMPY_API_SLOTS.values()) + 1)).from_address(
        get_pointer(capsule, get_name(capsule)))
    if table[2] != id(np.ndarray):
        raise RuntimeError("pyentry probe: NumPy's C API table does not start as expected")
    found = {name: table[slot] for name, slot in NUMPY_API_SLOTS.items()}
    i64p = ctypes.POINTER(ctypes.c_int64)

    def wrong(name):
        return RuntimeError(f"pyentry probe: slot {NUMPY_API_SLOTS[name]} is not {name}")

    empty = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_int, i64p, ctypes.c_void_p,
                              ctypes.c_int)(found["PyArray_Empty"])
    descr = np.dtype(np.float32)
    _api.Py_IncRef(ctypes.py_object(descr))  # PyArray_Empty steals a reference to the descr
    out = empty(2, (ctypes.c_int64 * 2)(3, 5), id(descr), 0)
    if not (type(out) is np.ndarray and out.shape == (3, 5) and out.dtype == descr
            and out.flags.c_contiguous and out.flags.writeable and out.flags.owndata):
        raise wrong("PyArray_Empty")

    new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, i64p,
                            i64p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)(found["PyArray_NewFromDescr"])
    base = np.arange(12.0).reshape(3, 4).copy()  # owns its data (bases collapse to the owner)
    descr = np.dtype(np.float64)
    _api.Py_IncRef(ctypes.py_object(descr))
    view = new(id(np.ndarray), id(descr), 2, (ctypes.c_int64 * 2)(2, 2), (ctypes.c_int64 * 2)(32, 8),
               base.ctypes.data + 8, 0, None)
    if not (type(view) is np.ndarray and view.tolist() == [[1.0, 2.0], [5.0, 6.0]]
            and not view.flags.writeable and view.base is None):
        raise wrong("PyArray_NewFromDescr")
    set_base = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.py_object)(
        found["PyArray_SetBaseObject"])
    _api.Py_IncRef(ctypes.py_object(base))  # PyArray_SetBaseObject steals a reference to the base
    if set_base(view, base) != 0 or view.base is not base:
        raise wrong("PyArray_SetBaseObject")
    return found


def _probe() -> dict | None:
    try:
        layout = _probe_layout()
        layout.update(_numpy_api_addresses())
        return layout
    except Exception as exc:  # noqa: BLE001 - any failure means: use the Python path
        global PROBE_ERROR
        PROBE_ERROR = exc
        return None


PROBE_ERROR = None
#: field offsets used by the generated code, or None when the probe failed (see PROBE_ERROR)
LAYOUT = _probe()


# ---- the per-entry table (the function's __self__) ----------------------------------------

_SLOTS = ("kernel", "ndarray", "out_descr", "NotImplemented", "fallback", "broadcast_error",
          "TypeError", "PyErr_Format", "PyArray_Empty", "Py_IncRef", "PyObject_Vectorcall",
          "PyEval_SaveThread", "PyEval_RestoreThread")  # then the expected descr of each input
_TABLE_OFFSET = ctypes.sizeof(_PyMethodDef)


@functools.cache
def _entry_struct(n_inputs: int):
    return type(f"EntryData{n_inputs}", (ctypes.Structure,), {
        "_fields_": [("method", _PyMethodDef),
                     ("table", ctypes.c_void_p * (len(_SLOTS) + n_inputs))],
        "__repr__": lambda self: f"<pyentry data of {self.method.ml_name.decode()}>"})


def _shape_str(shape) -> str:
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _broadcast_error(*arrays):
    """Called by the entry (through PyObject_Vectorcall) when shapes do not broadcast."""
    shapes = " ".join(_shape_str(a.shape) for a in arrays)
    raise ValueError(f"operands could not be broadcast together with shapes {shapes}")


# ---- IR generation ----------------------------------------------------------------------------

class _Fn:
    """Lines of one LLVM function, with fresh SSA names and table loads."""

    def __init__(self):
        self.lines, self.allocas, self.n = [], [], 0

    def __call__(self, text: str) -> str:
        self.n += 1
        name = f"%v{self.n}"
        self.lines.append(f"  {name} = {text}")
        return name

    def alloca(self, name: str, ty: str) -> str:
        self.allocas.append(f"  %{name} = alloca {ty}")
        return f"%{name}"

    def raw(self, text: str):
        self.lines.append(text if text.endswith(":") else f"  {text}")

    def field(self, ty: str, obj: str, offset: int) -> str:
        return self(f"load {ty}, ptr {self(f'getelementptr i8, ptr {obj}, i64 {offset}')}")

    def slot(self, name) -> str:
        index = _SLOTS.index(name) if isinstance(name, str) else len(_SLOTS) + name
        return self.field("ptr", "%table", _TABLE_OFFSET + 8 * index)

    def all_of(self, conditions) -> str:
        acc = "true"
        for c in conditions:
            acc = self(f"and i1 {acc}, {c}")
        return acc


def _render(in_dtypes, out_dtype, ndim, in_shapes, hoisted, L) -> tuple[str, str]:
    n, D = len(in_dtypes), ndim
    K = max(D, 1)  # the kernel's number of dimensions
    f = _Fn()
    f.raw("entry:")
    b_ptr = f(f"getelementptr i8, ptr %self, i64 {L['b_ptr']}")
    f.raw(f"%table = load ptr, ptr {b_ptr}")
    ok = f(f"icmp eq i64 %nargs, {n}")
    f.raw(f"br i1 {ok}, label %{'arg0' if n else 'shapes'}, label %bad_nargs")

    # Per argument: exact ndarray, canonical dtype object, aligned, few enough dims.
    data, dims, strides, flags, nds = [], [], [], [], []
    for k in range(n):
        f.raw(f"arg{k}:")
        a = f.field("ptr", f(f"getelementptr ptr, ptr %args, i64 {k}"), 0)
        is_array = f(f"icmp eq ptr {f.field('ptr', a, L['type'])}, {f.slot('ndarray')}")
        f.raw(f"br i1 {is_array}, label %arg{k}_fields, label %slow")
        f.raw(f"arg{k}_fields:")
        nd = f.field("i32", a, L["nd"])
        fl = f.field("i32", a, L["flags"])
        good = [f(f"icmp eq ptr {f.field('ptr', a, L['descr'])}, {f.slot(k)}"),
                f(f"icmp ne i32 {f(f'and i32 {fl}, {NPY_ARRAY_ALIGNED}')}, 0"),
                f(f"icmp eq i32 {nd}, {len(in_shapes[k])}") if in_shapes[k] is not None
                else f(f"icmp ule i32 {nd}, {D}")]
        f.raw(f"br i1 {f.all_of(good)}, label %arg{k}_ok, label %slow")
        f.raw(f"arg{k}_ok:")
        data.append(f.field("ptr", a, L["data"]))
        dims.append(f.field("ptr", a, L["dims"]))
        strides.append(f.field("ptr", a, L["strides"]))
        flags.append(fl)
        nds.append(nd)
        f.raw(f"br label %{f'arg{k + 1}' if k + 1 < n else 'shapes'}")

    # Right-align every argument to D dims; broadcast; zero the strides of size-1 dims.
    f.raw("shapes:")
    f.raw(f"store i64 1, ptr {f.alloca('one', 'i64')}")
    f.raw(f"store i64 0, ptr {f.alloca('zero', 'i64')}")
    out_dims, static_ok, mismatch = [], [], []
    in_counts, in_strides = [[] for _ in range(n)], [[] for _ in range(n)]
    for d in range(D):
        o = "1"
        for k in range(n):
            static = in_shapes[k]
            if static is not None:
                i = len(static) - (D - d)
                if i < 0:
                    in_counts[k].append("1")
                    in_strides[k].append("0")
                    continue
                size = f.field("i64", f(f"getelementptr i64, ptr {dims[k]}, i64 {i}"), 0)
                stride = f.field("i64", f(f"getelementptr i64, ptr {strides[k]}, i64 {i}"), 0)
                if static[i] is not None:
                    static_ok.append(f(f"icmp eq i64 {size}, {static[i]}"))
            else:  # runtime ndim: dims[nd - (D - d)] if that index is >= 0, else size 1, stride 0
                i = f(f"sext i32 {f(f'sub i32 {nds[k]}, {D - d}')} to i64")
                there = f(f"icmp sge i64 {i}, 0")
                pd = f(f"getelementptr i64, ptr {dims[k]}, i64 {i}")
                pt = f(f"getelementptr i64, ptr {strides[k]}, i64 {i}")
                pd = f(f"select i1 {there}, ptr {pd}, ptr %one")
                pt = f(f"select i1 {there}, ptr {pt}, ptr %zero")
                size, stride = f(f"load i64, ptr {pd}"), f(f"load i64, ptr {pt}")
            is1 = f(f"icmp eq i64 {size}, 1")
            o_is1, same = f(f"icmp eq i64 {o}, 1"), f(f"icmp eq i64 {o}, {size}")
            fits = f(f"or i1 {is1}, {f(f'or i1 {o_is1}, {same}')}")
            mismatch.append(f(f"xor i1 {fits}, true"))
            o = f(f"select i1 {is1}, i64 {o}, i64 {size}")
            in_counts[k].append(size)
            in_strides[k].append(f(f"select i1 {is1}, i64 0, i64 {stride}"))
        out_dims.append(o)
    f.raw(f"br i1 {f.all_of(static_ok)}, label %broadcast, label %slow")
    f.raw("broadcast:")
    bad = "false"
    for m in mismatch:
        bad = f(f"or i1 {bad}, {m}")
    f.raw(f"br i1 {bad}, label %bad_broadcast, label %allocate")

    # Output: PyArray_Empty(D, dims, descr, 0) steals a reference to descr.
    f.raw("allocate:")
    f.alloca("out_dims", f"[{K} x i64]")
    total = "1"
    for d, o in enumerate(out_dims):
        f.raw(f"store i64 {o}, ptr {f(f'getelementptr i64, ptr %out_dims, i64 {d}')}")
        total = f(f"mul i64 {total}, {o}")
    descr = f.slot("out_descr")
    f.raw(f"call void {f.slot('Py_IncRef')}(ptr {descr})")
    out = f(f"call ptr {f.slot('PyArray_Empty')}(i32 {D}, ptr %out_dims, ptr {descr}, i32 0)")
    f.raw(f"br i1 {f(f'icmp eq ptr {out}, null')}, label %fail, label %run")

    # The kernel's shape, data and strides, flattened to one dimension when every
    # buffer walks the output in C order.
    f.raw("run:")
    itemsizes = [_ITEMSIZE[t] for t in in_dtypes] + [_ITEMSIZE[out_dtype]]
    out_strides, s = [], str(itemsizes[-1])
    for d in reversed(range(D)):
        out_strides.insert(0, f(f"select i1 {f(f'icmp eq i64 {out_dims[d]}, 1')}, i64 0, i64 {s}"))
        s = f(f"mul i64 {s}, {out_dims[d]}")
    flat, flat_strides = "false", []
    if D >= 2:
        walks = []
        for k in range(n):
            single = f.all_of(f(f"icmp eq i64 {c}, 1") for c in in_counts[k] if c != "1")
            size = "1"
            for c in in_counts[k]:
                size = f(f"mul i64 {size}, {c}")
            c_order = f(f"icmp ne i32 {f(f'and i32 {flags[k]}, {NPY_ARRAY_C_CONTIGUOUS}')}, 0")
            contiguous = f.all_of([c_order, f(f"icmp eq i64 {size}, {total}")])
            # a hoisted argument (static last size 1) must keep stride 0 along the last dim
            walks.append(single if hoisted[k] else f(f"or i1 {single}, {contiguous}"))
            flat_strides.append(f(f"select i1 {single}, i64 0, i64 {itemsizes[k]}"))
        flat = f.all_of(walks)
    f.alloca("shape", f"[{K} x i64]")
    f.alloca("data", f"[{n + 1} x ptr]")
    f.alloca("strides", f"[{(n + 1) * K} x i64]")
    for d in range(K):
        v = out_dims[d] if D else "1"
        if D >= 2:
            v = f(f"select i1 {flat}, i64 {total if d == K - 1 else 1}, i64 {v}")
        f.raw(f"store i64 {v}, ptr {f(f'getelementptr i64, ptr %shape, i64 {d}')}")
    all_strides = in_strides + [out_strides]
    flat_strides.append(str(itemsizes[-1]))
    for k in range(n + 1):
        ptr = data[k] if k < n else f.field("ptr", out, L["data"])
        f.raw(f"store ptr {ptr}, ptr {f(f'getelementptr ptr, ptr %data, i64 {k}')}")
        for d in range(K):
            v = all_strides[k][d] if D else "0"
            if D >= 2:
                v = f(f"select i1 {flat}, i64 {flat_strides[k] if d == K - 1 else 0}, i64 {v}")
            f.raw(f"store i64 {v}, ptr {f(f'getelementptr i64, ptr %strides, i64 {k * K + d}')}")
    kernel = f.slot("kernel")
    call = f"call void {kernel}(ptr %shape, ptr %data, ptr %strides)"
    f.raw(f"br i1 {f(f'icmp sgt i64 {total}, {GIL_RELEASE_SIZE}')}, label %nogil, label %gil")
    f.raw("gil:")
    f.raw(call)
    f.raw(f"ret ptr {out}")
    f.raw("nogil:")
    state = f(f"call ptr {f.slot('PyEval_SaveThread')}()")
    f.raw(call)
    f.raw(f"call void {f.slot('PyEval_RestoreThread')}(ptr {state})")
    f.raw(f"ret ptr {out}")

    # Not for the fast path: fallback(*args) if there is one, else NotImplemented.
    f.raw("slow:")
    fallback = f.slot("fallback")
    f.raw(f"br i1 {f(f'icmp eq ptr {fallback}, null')}, label %not_implemented, label %call_fallback")
    f.raw("call_fallback:")
    vectorcall = f.slot("PyObject_Vectorcall")
    f.raw(f"ret ptr {f(f'call ptr {vectorcall}(ptr {fallback}, ptr %args, i64 %nargs, ptr null)')}")
    f.raw("not_implemented:")
    sentinel = f.slot("NotImplemented")
    f.raw(f"call void {f.slot('Py_IncRef')}(ptr {sentinel})")
    f.raw(f"ret ptr {sentinel}")

    f.raw("bad_broadcast:")  # the Python helper raises the ValueError and returns NULL
    vectorcall, raiser = f.slot("PyObject_Vectorcall"), f.slot("broadcast_error")
    f.raw(f"ret ptr {f(f'call ptr {vectorcall}(ptr {raiser}, ptr %args, i64 %nargs, ptr null)')}")
    f.raw("bad_nargs:")
    name = f.field("ptr", "%table", 0)  # ml_name, the first field of the PyMethodDef
    f.raw(f"call ptr (ptr, ptr, ...) {f.slot('PyErr_Format')}(ptr {f.slot('TypeError')}, ptr @nargs_message, "
          f"ptr {name}, i64 %nargs)")
    f.raw("br label %fail")
    f.raw("fail:")
    f.raw("ret ptr null")

    message = f"%s() takes exactly {n} argument{'' if n == 1 else 's'} (%zd given)\0".encode()
    body = "\n".join(f.lines[:1] + f.allocas + f.lines[1:])  # allocas in the entry block
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    fname = f"theanine_entry_{digest}"
    text = "\n".join([
        f"; ModuleID = '{fname}'", f'source_filename = "{fname}"', "",
        f"@nargs_message = private unnamed_addr constant [{len(message)} x i8] {_c_string(message)}", "",
        f"define ptr @{fname}(ptr %self, ptr %args, i64 %nargs) {{", body, "}", ""])
    return text, fname


def _c_string(raw: bytes) -> str:
    return 'c"' + "".join(chr(c) if 32 <= c < 127 and c not in b'"\\' else "\\%02X" % c
                          for c in raw) + '"'


def _normalize_shapes(in_shapes, n, ndim):
    if in_shapes is None:
        return [None] * n
    if len(in_shapes) != n:
        raise ValueError(f"make_entry: {len(in_shapes)} static shapes for {n} inputs")
    shapes = [None if s is None else tuple(None if c is None else int(c) for c in s) for s in in_shapes]
    for k, s in enumerate(shapes):
        if s is not None and len(s) > ndim:
            raise ValueError(f"make_entry: input {k} has {len(s)} dimensions, the output only {ndim}")
    return shapes


def make_entry(kernel_address: int, in_dtypes, out_dtype: str, ndim: int, name: str,
               in_shapes=None, fallback=None):
    """A builtin function ``name(*arrays) -> ndarray`` that runs the elementwise kernel at
    ``kernel_address`` (signature of ``llvm.render_elementwise``).

    ``in_dtypes`` are the dtypes of the kernel's inputs and of the arguments,
    ``out_dtype`` and ``ndim`` those of its output. Argument k is kernel input k
    with missing leading dimensions of size 1 (a DimShuffle that only prepends
    broadcast dimensions is fine; any other is not). ``in_shapes``, optional, gives
    each argument's static shape (ints, or None where only known at run time;
    None for an argument of any ndim up to ``ndim``): arguments with another
    ndim or size take the slow path. It is required when the kernel was lowered
    with static sizes, since the kernel then relies on them (an input with
    static last size 1 is read once per row). Calls that the fast path does not
    take return ``fallback(*args)`` if ``fallback`` is given, else
    ``NotImplemented``. Raises RuntimeError if the import-time probe failed.
    """
    if LAYOUT is None:
        raise RuntimeError(f"pyentry is unavailable here: {PROBE_ERROR}")
    in_dtypes = [np.dtype(t).name for t in in_dtypes]
    out_dtype = np.dtype(out_dtype).name
    for t in in_dtypes + [out_dtype]:
        if t not in _ITEMSIZE:
            raise ValueError(f"make_entry: dtype {t} is not supported")
    n = len(in_dtypes)
    shapes = _normalize_shapes(in_shapes, n, ndim)
    hoisted = [s is not None and ndim > 0 and (len(s) == 0 or s[-1] == 1) for s in shapes]
    text, fname = _render(in_dtypes, out_dtype, ndim, shapes, hoisted, LAYOUT)
    from theanine.codegen import jit  # here: the C back end's entries need no LLVM
    address = jit.compile_ir(text, [fname])[fname]

    data = _entry_struct(n)()
    data.method.ml_name = name.encode()
    data.method.ml_meth = address
    data.method.ml_flags = METH_FASTCALL
    sig = ", ".join(f"{t}{'' if s is None else list(s)}" for t, s in zip(in_dtypes, shapes))
    data.method.ml_doc = (f"{name}({sig}) -> {out_dtype} array with {ndim} dimensions "
                          "(native elementwise kernel)").encode()
    data.keep = (fallback, _broadcast_error)  # the table holds borrowed pointers to these
    values = {"kernel": kernel_address, "ndarray": id(np.ndarray),
              "out_descr": id(np.dtype(out_dtype)), "NotImplemented": id(NotImplemented),
              "fallback": id(fallback) if fallback is not None else None,
              "broadcast_error": id(_broadcast_error), "TypeError": id(TypeError),
              "PyArray_Empty": LAYOUT["PyArray_Empty"]}
    for k, slot in enumerate(_SLOTS):
        data.table[k] = values[slot] if slot in values else _address(slot)
    for k, t in enumerate(in_dtypes):
        data.table[len(_SLOTS) + k] = id(np.dtype(t))
    new = _api.PyCFunction_NewEx
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
    return new(ctypes.addressof(data.method), data, None)


# ---- the builtin of a whole-function entry (llvm_entry, c_entry) ---------------------------

def make_schedule_entry(address: int, table_names, bound: dict, name: str, doc: str = ""):
    """The builtin ``name(*arrays)`` running the whole-function entry compiled at ``address``
    (the ``METH_FASTCALL`` signature; its table is read through ``__self__``'s ``b_ptr``
    at ``LAYOUT['b_ptr']``): it returns the outputs (see ``schedule.Schedule``) or
    NotImplemented. ``table_names`` are the table's slots: ``descr:<dtype>``, ``const:...``
    and ``container:...`` keys of ``bound`` (constant arrays; shared variables' one-item
    lists, the cells read then the cells updated as the schedule numbers them),
    ``sgemm``/``dgemm``, ``ndarray``, ``NotImplemented``, ``PyArray_Empty``, or the name of
    a CPython API function."""
    from theanine.codegen import blas
    if LAYOUT is None:
        raise RuntimeError(f"native entries are unavailable here: {PROBE_ERROR}")
    struct = type("ScheduleEntryData", (ctypes.Structure,), {
        "_fields_": [("method", _PyMethodDef),
                     ("table", ctypes.c_void_p * max(len(table_names), 1))]})
    data = struct()
    data.method.ml_name = name.encode()
    data.method.ml_meth = address
    data.method.ml_flags = METH_FASTCALL
    data.method.ml_doc = doc.encode()
    keep = []
    for k, slot in enumerate(table_names):
        if slot.startswith("descr:"):
            descr = np.dtype(slot[6:])
            keep.append(descr)
            data.table[k] = id(descr)
        elif slot.startswith("const:"):
            array = bound[slot]
            keep.append(array)
            data.table[k] = array.ctypes.data
        elif slot.startswith("container:"):
            cell = bound[slot]
            if type(cell) is not list or len(cell) != 1:
                raise TypeError(f"make_schedule_entry: {slot} must be a one-item list, got {cell!r}")
            keep.append(cell)
            data.table[k] = id(cell)
        elif slot in ("sgemm", "dgemm"):
            data.table[k] = blas.address(slot)
        elif slot == "ndarray":
            data.table[k] = id(np.ndarray)
        elif slot == "NotImplemented":
            data.table[k] = id(NotImplemented)
        elif slot in NUMPY_API_SLOTS:
            data.table[k] = LAYOUT[slot]
        elif slot.startswith("object:"):
            array = bound[slot[len("object:"):]]
            keep.append(array)
            data.table[k] = id(array)
        elif slot.startswith("host:"):
            keep.append(bound[slot])
            data.table[k] = id(keep[-1])
        else:
            data.table[k] = _address(slot)
    data.keep = keep
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
    return new(ctypes.addressof(data.method), data, None)


if __name__ == "__main__":
    import timeit

    from theanine.codegen import jit, llvm, lower
    from theanine.codegen.ir import Instr, ScalarProgram

    # x + 1 on a float64 vector, the constant inside the kernel
    program = ScalarProgram(("float64",), ((1.0, "float64"),),
                            (Instr("add", (0, 1), "float64", "float64"),), (2,))
    module = llvm.Module("pyentry_bench")
    llvm.render_elementwise(module, *lower.elementwise_kernel("pyentry_bench_x_plus_1", program,
                                                              [(None,)], (None,)))
    kernel = jit.compile_ir(module.render(), ["pyentry_bench_x_plus_1"])["pyentry_bench_x_plus_1"]
    entry = make_entry(kernel, ["float64"], "float64", 1, "x_plus_1", in_shapes=[(None,)])
    v = np.arange(10.0)
    assert np.array_equal(entry(v), v + 1)
    print(f"Python {sys.version.split()[0]}, NumPy {np.__version__}; best of 7, 10 float64 elements")
    for label, stmt in (("entry(x)", "entry(v)"), ("numpy x + 1", "v + 1"),
                        ("numpy x + 1.0", "v + 1.0"), ("np.empty(10)", "np.empty(10)")):
        number = 500_000
        best = min(timeit.repeat(stmt, number=number, repeat=7, globals=globals())) / number
        print(f"{label:>14}: {best * 1e9:6.1f} ns per call")
