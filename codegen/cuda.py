"""Renders kernel IR as CUDA C++ source, one translation unit per compiled function.

``codegen.nvcc`` builds the unit into a shared library and ``compile.cuda_program``
runs it (``mode="cuda"``); ``f.source("cuda")`` shows what a function's kernels become.

For each kernel ``NAME`` of the module the source defines

- ``struct NAME_params``: the kernel's arguments, passed to the kernel *by value*
  (in the parameter space): ``shape[ND]``, ``data[NB]`` (device pointers),
  ``strides[NB][ND]`` (byte strides) and counts, where ND is the kernel's own static
  rank (``max(ndim, 1)``) and NB its number of buffers. No fixed maximum rank;
  parameters above 4 KiB need sm_70 or newer and CUDA 12.1 (the limit is then 32764
  bytes, checked here).
- ``__global__`` kernels. Each element's byte offsets are computed from its linear
  (row-major) index, the shape and every buffer's strides; offsets are 64-bit, and a
  stride of 0 broadcasts.
  Elementwise: ``NAME_kernel``, a grid-stride loop over the output's elements, a
  template over the type ``I`` in which the index is split into coordinates
  (``uint32_t`` when the element count fits, so that the divisions are 32-bit).
  Reductions (``th_reduce_splits`` chooses): ``NAME_serial``, one thread per output
  element when each reduces few elements (or there are very many output elements);
  else ``NAME_kernel``, one block of ``THEANINE_REDUCE_THREADS`` (256) threads per output
  element (each thread combines a strided subset in a register, then a tree in shared
  memory combines the threads' values); when there are few output elements over many
  elements, each output element's elements are split into chunks, one block per chunk
  writes a partial result to a workspace and ``NAME_finish`` combines the partial results
  of each output element (two passes, no atomics, so every kind and dtype is exact in
  the same way). Every output element is written once: the output needs no
  initialisation, and an output element over no elements gets the identity.
- ``extern "C" int NAME(const int64_t *shape, char *const *data, const int64_t *strides,
  void *stream)`` for an elementwise kernel, ``extern "C" int NAME(const int64_t *shape,
  char *const *data, const int64_t *strides, void *workspace, void *stream)`` for a
  reduction: the host launcher, with the CPU kernels' arguments plus a CUDA stream
  (``cudaStream_t``; null for the default stream). ``shape``, ``data`` and ``strides``
  are host arrays (``strides[k * ND + d]``: buffer k's byte stride along d; data =
  inputs then outputs), the pointers in ``data`` are *device* pointers. It computes the
  grid, launches asynchronously and returns ``cudaGetLastError()`` (0 on success);
  nothing is launched for an empty output. A reduction's ``workspace`` is device memory
  of ``NAME_workspace(shape)`` bytes (``extern "C" int64_t``; null when that is 0).
  Launchers are compiled under nvcc only (``#ifdef __CUDACC__``): with a shim for
  CUDA's built-ins a host C++ compiler builds the kernels themselves, which is how
  tests/test_cuda_source.py runs them on the CPU against the LLVM back end.
  ``THEANINE_REDUCE_THREADS`` may be predefined (a power of two) to change the
  reductions' block size.

``render_gemm`` adds a tiled matrix product for when cuBLAS is not there. Two more kinds
of kernel serve mode 'cuda' with the elementwise kernels' struct, kernel template and
launcher signature: ``IndexedKernel`` (``render_indexed``), a copy through a table of
byte offsets along one dimension (gathers, and scatters with atomic additions), and
``LineKernel`` (``render_line``), one thread per line for cumulative sums and products,
argmax/argmin and the stable argsort of codegen/sorting.py.

Semantics are llvm.py's, opcode by opcode and dtype by dtype (which are NumPy's):
integer add/sub/mul/neg wrap (computed in an unsigned type, no UB); integer ``//``
and ``%`` round toward -inf, give 0 for a zero divisor and never trap; float
``//`` and ``%`` follow NumPy's npy_divmod; max/min propagate NaN and order -0 < +0;
float to integer conversion saturates through int64 (uint64 directly), NaN to 0;
float add/sub/mul/div/sqrt use the ``__*_rn`` intrinsics (IEEE round to nearest), so
nvcc never contracts them into FMAs; compile without ``-use_fast_math`` (its
``-ftz=true`` would flush float32 subnormals to zero). Transcendental functions
are CUDA's libdevice ones, whose errors (a few ulp at most) differ from the CPU
back end's. ``inner_broadcast`` (a CPU loop-hoisting hint) is not used here.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

from theanine.codegen.c import comment_text
from theanine.codegen.sorting import c_helper
from theanine.codegen.ir import ElementwiseKernel, Instr, ReduceKernel, ScalarProgram, render_each

CUDA_TYPES = {
    "bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t",
    "uint16": "uint16_t", "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t",
    "uint64": "uint64_t", "float32": "float", "float64": "double",
}
#: how a dtype is stored in memory (bool is one byte, 0 or 1)
_STORAGE = {**CUDA_TYPES, "bool": "uint8_t"}
ITEMSIZE = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
            "int64": 8, "uint64": 8, "float32": 4, "float64": 8}
FLOATS = ("float32", "float64")
SIGNED = ("int8", "int16", "int32", "int64")
UNSIGNED = ("uint8", "uint16", "uint32", "uint64")
INTS = SIGNED + UNSIGNED

#: threads per block of the elementwise kernels and of the reductions (a power of two)
THREADS = 256
#: at most this many blocks per elementwise launch; the grid-stride loop does the rest
MAX_BLOCKS = 65536
#: the largest kernel parameter block (sm_70+, CUDA 12.1+)
MAX_PARAM_BYTES = 32764

_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_FLOAT_UNARY = {"exp": "exp", "exp2": "exp2", "expm1": "expm1", "log": "log",
                "log2": "log2", "log10": "log10", "log1p": "log1p", "sin": "sin", "cos": "cos",
                "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh",
                "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh",
                "atanh": "atanh", "floor": "floor", "ceil": "ceil", "trunc": "trunc",
                "round_even": "rint", "round_away": "round", "abs": "fabs", "erf": "erf",
                "erfc": "erfc", "lgamma": "lgamma"}


def _prelude_float(t, f, sfx):
    """Device helpers for one float type ``t`` (``f``: 'f' or 'd' for the intrinsics,
    ``sfx``: the libm suffix)."""
    return f"""
__device__ __forceinline__ {t} th_add({t} x, {t} y) {{ return __{f}add_rn(x, y); }}
__device__ __forceinline__ {t} th_sub({t} x, {t} y) {{ return __{f}sub_rn(x, y); }}
__device__ __forceinline__ {t} th_mul({t} x, {t} y) {{ return __{f}mul_rn(x, y); }}
__device__ __forceinline__ {t} th_div({t} x, {t} y) {{ return __{f}div_rn(x, y); }}
__device__ __forceinline__ {t} th_sqrt({t} x) {{ return __{f}sqrt_rn(x); }}
/* maximum/minimum: NaN if either is NaN; -0 < +0 (llvm.maximum / llvm.minimum) */
__device__ __forceinline__ {t} th_max({t} x, {t} y) {{
  if (x != x) return x;
  if (y != y) return y;
  if (x == y) return signbit(x) ? y : x;
  return x > y ? x : y;
}}
__device__ __forceinline__ {t} th_min({t} x, {t} y) {{
  if (x != x) return x;
  if (y != y) return y;
  if (x == y) return signbit(x) ? x : y;
  return x < y ? x : y;
}}
/* -1, 0 or 1; NumPy's sign(-0.0) is +0.0 (x + 0 turns -0 into +0), NaN stays NaN */
__device__ __forceinline__ {t} th_sign({t} x) {{
  return x > 0 ? ({t})1 : (x < 0 ? ({t})-1 : __{f}add_rn(x, ({t})0));
}}
/* 1 / (1 + e**-x) without overflow: e = exp(-|x|), then 1/(1+e) or e/(1+e) */
__device__ __forceinline__ {t} th_sigmoid({t} x) {{
  {t} e = exp{sfx}(-fabs{sfx}(x));
  {t} d = __{f}add_rn(({t})1, e);
  return x >= 0 ? __{f}div_rn(({t})1, d) : __{f}div_rn(e, d);
}}
/* max(x, 0) + log1p(exp(-|x|)) */
__device__ __forceinline__ {t} th_softplus({t} x) {{
  return __{f}add_rn(fmax{sfx}(x, ({t})0), log1p{sfx}(exp{sfx}(-fabs{sfx}(x))));
}}
/* NumPy's float remainder (npy_divmod): the sign of y */
__device__ __forceinline__ {t} th_mod({t} x, {t} y) {{
  {t} r = fmod{sfx}(x, y);
  if (r != 0 && ((r < 0) != (y < 0))) r = __{f}add_rn(r, y);
  return r == 0 ? copysign{sfx}(({t})0, y) : r;
}}
/* NumPy's float floor_divide (npy_divmod, with its rounding fix-up) */
__device__ __forceinline__ {t} th_floordiv({t} x, {t} y) {{
  {t} plain = __{f}div_rn(x, y);
  if (y == 0) return plain;
  {t} m = fmod{sfx}(x, y);
  {t} div = __{f}div_rn(__{f}sub_rn(x, m), y);
  if (m != 0 && ((m < 0) != (y < 0))) div = __{f}sub_rn(div, ({t})1);
  if (!(div != 0)) return copysign{sfx}(({t})0, plain);
  {t} fl = floor{sfx}(div);
  if (__{f}sub_rn(div, fl) > ({t})0.5) fl = __{f}add_rn(fl, ({t})1);
  return fl;
}}
__device__ __forceinline__ bool th_isinf({t} x) {{ return fabs{sfx}(x) == ({t})INFINITY; }}
"""


PRELUDE = """\
#include <cstdint>
#include <cmath>
#ifdef __CUDACC__
#include <cuda_runtime.h>
#endif

#ifndef THEANINE_REDUCE_THREADS
#define THEANINE_REDUCE_THREADS %(threads)d
#endif
/* launches have at most this many blocks; every kernel loops over the rest (grid-stride) */
#define THEANINE_MAX_BLOCKS %(max_blocks)d
/* a reduction runs one thread per output element when each reduces at most this many
   elements, or when there are at least this many output elements */
#define THEANINE_SERIAL_MAX 64
#define THEANINE_SERIAL_OUTPUTS 65536
/* otherwise one block per output element, split into chunks of at least this many elements
   (and a second pass) while the grid has fewer than THEANINE_SPLIT_BLOCKS blocks */
#define THEANINE_REDUCE_CHUNK (THEANINE_REDUCE_THREADS * 16)
#define THEANINE_SPLIT_BLOCKS 1024

/* host helpers of the launchers */
inline bool th_fits32(int64_t n) { return n < ((int64_t)1 << 31); }
inline int64_t th_blocks(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return blocks < THEANINE_MAX_BLOCKS ? blocks : THEANINE_MAX_BLOCKS;
}
/* how a reduction of n_out output elements over n_red elements each is launched:
   0 = one thread per output element, 1 = one block each, s > 1 = s blocks each (split) */
inline int64_t th_reduce_splits(int64_t n_out, int64_t n_red) {
  if (n_red <= THEANINE_SERIAL_MAX || n_out >= THEANINE_SERIAL_OUTPUTS) return 0;
  const int64_t want = (n_red + THEANINE_REDUCE_CHUNK - 1) / THEANINE_REDUCE_CHUNK;
  const int64_t room = THEANINE_SPLIT_BLOCKS / n_out;
  const int64_t splits = want < room ? want : room;
  return splits > 1 ? splits : 1;
}

/* helpers: inline (not static), so that unused ones draw no warnings */

/* float -> integer conversions saturate (llvm.fptosi.sat / fptoui.sat); NaN gives 0 */
__device__ __forceinline__ int64_t th_f2i(double x) {
  if (x != x) return 0;
  if (x >= 9223372036854775808.0) return INT64_MAX;
  if (x <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)x;
}
__device__ __forceinline__ uint64_t th_f2u(double x) {
  if (!(x > 0)) return 0;
  if (x >= 18446744073709551616.0) return UINT64_MAX;
  return (uint64_t)x;
}
%(floats)s
/* integer max/min (no NaN) */
template <typename T> __device__ __forceinline__ T th_imax(T x, T y) { return x > y ? x : y; }
template <typename T> __device__ __forceinline__ T th_imin(T x, T y) { return x < y ? x : y; }
/* NumPy's integer // and %%: floor rounding; x // 0 == x %% 0 == 0; x // -1 wraps; no trap.
   U is the unsigned type of T's width or wider (wrapping negation). */
template <typename T, typename U> __device__ __forceinline__ T th_sfloordiv(T x, T y) {
  if (y == 0) return 0;
  if (y == (T)-1) return (T)((U)0 - (U)x);
  T q = (T)(x / y);
  T r = (T)(x %% y);
  if (r != 0 && ((r < 0) != (y < 0))) q = (T)(q - 1);
  return q;
}
template <typename T> __device__ __forceinline__ T th_smod(T x, T y) {
  if (y == 0 || y == (T)-1) return 0;
  T r = (T)(x %% y);
  if (r != 0 && ((r < 0) != (y < 0))) r = (T)(r + y);
  return r;
}
template <typename T> __device__ __forceinline__ T th_ufloordiv(T x, T y) {
  return y == 0 ? (T)0 : (T)(x / y);
}
template <typename T> __device__ __forceinline__ T th_umod(T x, T y) {
  return y == 0 ? (T)0 : (T)(x %% y);
}
""" % {"threads": THREADS, "max_blocks": MAX_BLOCKS,
       "floats": _prelude_float("float", "f", "f") + _prelude_float("double", "d", "")}


# --- support queries: the same as llvm.py's (the IR contract is shared) ----------------------

def supports_instr(instr: Instr) -> bool:
    """Whether this renderer implements ``instr`` (exactly the instructions llvm.py does)."""
    from theanine.codegen import llvm
    return llvm.supports_instr(instr)


def supports_reduce(kind: str, out_dtype: str) -> bool:
    """Whether this renderer implements the reduction ``kind`` into ``out_dtype``."""
    from theanine.codegen import llvm
    return llvm.supports_reduce(kind, out_dtype)


# --- literals and conversions ---------------------------------------------------------------

def _literal(value, dtype) -> str:
    if dtype in FLOATS:
        v = float(value)
        if dtype == "float32":
            bits = struct.unpack("<I", struct.pack("<f", v))[0]
            if math.isfinite(v):
                return f"({struct.unpack('<f', struct.pack('<I', bits))[0].hex()}f)"
            return f"__int_as_float((int)0x{bits:08X}u)"
        if math.isfinite(v):
            return f"({v.hex()})"
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        return f"__longlong_as_double((long long)0x{bits:016X}ull)"
    if dtype == "bool":
        return "true" if value else "false"
    v = int(value)
    t = CUDA_TYPES[dtype]
    if v >= 0:
        return f"({t}){v}ull"
    if v == -(1 << 63):
        return f"({t})(-9223372036854775807ll - 1)"
    return f"({t})({v}ll)"


def _wide_unsigned(dtype) -> str:
    """An unsigned type at least as wide as ``dtype`` and as ``unsigned int`` (so that
    arithmetic on it never promotes to a signed int and overflows)."""
    return "uint64_t" if ITEMSIZE[dtype] == 8 else "uint32_t"


def _convert(expr, src, dst) -> str:
    """The expression converting ``expr`` of dtype ``src`` to ``dst`` (llvm.py's rules)."""
    if src == dst:
        return expr
    if dst == "bool":
        return f"({expr} != 0)"
    t = CUDA_TYPES[dst]
    if src in FLOATS and dst in INTS:
        if dst == "uint64":
            return f"th_f2u((double)({expr}))"
        return f"({t})th_f2i((double)({expr}))"
    # bool -> number is 0/1; int <-> int truncates or extends by the source's signedness;
    # int -> float and float <-> float round to nearest: all plain C conversions
    return f"({t})({expr})"


class _Body:
    """Lines of one device function, with fresh value names."""

    def __init__(self, indent="    "):
        self.lines = []
        self.indent = indent
        self.counter = 0
        self.lets = []

    def raw(self, text):
        self.lines.append(self.indent + text)

    def let(self, dtype, expr, hint="v"):
        name = f"{hint}{self.counter}"
        self.counter += 1
        self.raw(f"const {CUDA_TYPES[dtype]} {name} = {expr};")
        self.lets.append((len(self.lines) - 1, name))
        return name

    def drop_unused(self):
        """Remove values never read (an input only ``second`` looks at, say): no dead
        loads and no unused-variable warnings."""
        dead = set()
        for index, name in reversed(self.lets):
            word = re.compile(rf"\b{name}\b")
            if not any(word.search(line) for k, line in enumerate(self.lines[index + 1:], index + 1)
                       if k not in dead):
                dead.add(index)
        self.lines = [line for k, line in enumerate(self.lines) if k not in dead]


def _instr(instr: Instr, args) -> str:
    """The expression computing ``instr`` from ``args`` ((expression, dtype) pairs)."""
    c, op = instr.compute_dtype, instr.opcode
    if op == "cast":
        return _convert(args[0][0], c, instr.dtype)
    if op == "select":
        cond = _convert(args[0][0], args[0][1], "bool")
        x, y = (_convert(v, d, c) for v, d in args[1:])
        return f"({cond} ? {x} : {y})"
    if op in ("land", "lor", "lxor", "lnot"):
        vals = [_convert(v, d, "bool") for v, d in args]
        if op == "lnot":
            return f"(!{vals[0]})"
        return f"({vals[0]} {({'land': '&&', 'lor': '||', 'lxor': '!='})[op]} {vals[1]})"
    v = [_convert(x, d, c) for x, d in args]
    if op in ("copy", "second"):
        return v[-1]
    if op in _CMP:
        return f"({v[0]} {_CMP[op]} {v[1]})"
    if c in FLOATS:
        return _float(op, c, v)
    if c in INTS:
        return _int(op, c, v)
    return _bool(op, v)


def _float(op, dtype, v) -> str:
    t = CUDA_TYPES[dtype]
    sfx = "f" if dtype == "float32" else ""
    if op in ("add", "sub", "mul", "div"):
        return f"th_{op}({v[0]}, {v[1]})"
    if op == "sqrt":
        return f"th_sqrt({v[0]})"
    if op in _FLOAT_UNARY:
        return f"{_FLOAT_UNARY[op]}{sfx}({v[0]})"
    if op == "neg":
        return f"(-{v[0]})"
    if op == "sqr":
        return f"th_mul({v[0]}, {v[0]})"
    if op == "recip":
        return f"th_div(({t})1, {v[0]})"
    if op in ("sign", "sigmoid", "softplus", "max", "min", "mod", "floordiv", "isinf"):
        return f"th_{op}({', '.join(v)})"
    if op == "clip":
        return f"th_min(th_max({v[0]}, {v[1]}), {v[2]})"
    if op in ("pow", "atan2"):
        return f"{op}{sfx}({v[0]}, {v[1]})"
    if op == "isnan":
        return f"({v[0]} != {v[0]})"
    raise KeyError(f"cuda: no lowering of {op!r} for {dtype}")


def _int(op, dtype, v) -> str:
    t = CUDA_TYPES[dtype]
    w = _wide_unsigned(dtype)
    signed = dtype in SIGNED
    if op in ("add", "sub", "mul"):
        sym = {"add": "+", "sub": "-", "mul": "*"}[op]
        return f"({t})(({w}){v[0]} {sym} ({w}){v[1]})"
    if op in ("band", "bor", "bxor"):
        return f"({t})({v[0]} {({'band': '&', 'bor': '|', 'bxor': '^'})[op]} {v[1]})"
    if op == "neg":
        return f"({t})(({w})0 - ({w}){v[0]})"
    if op == "sqr":
        return f"({t})(({w}){v[0]} * ({w}){v[0]})"
    if op == "bnot":
        return f"({t})(~{v[0]})"
    if op == "abs":
        if not signed:
            return v[0]
        return f"({v[0]} < 0 ? ({t})(({w})0 - ({w}){v[0]}) : {v[0]})"
    if op == "sign":
        if not signed:
            return f"({t})({v[0]} > 0)"
        return f"({t})(({v[0]} > 0) - ({v[0]} < 0))"
    if op in ("max", "min"):
        return f"th_i{op}<{t}>({v[0]}, {v[1]})"
    if op == "clip":
        return f"th_imin<{t}>(th_imax<{t}>({v[0]}, {v[1]}), {v[2]})"
    if op in ("isnan", "isinf"):
        return "false"
    if op == "floordiv":
        if signed:
            return f"th_sfloordiv<{t}, {w}>({v[0]}, {v[1]})"
        return f"th_ufloordiv<{t}>({v[0]}, {v[1]})"
    if op == "mod":
        return f"th_{'s' if signed else 'u'}mod<{t}>({v[0]}, {v[1]})"
    if op in ("lshift", "rshift"):
        # NumPy's << and >>: a count outside [0, bits) (a negative one converts to a large
        # one) gives 0, or -1 for negative x >> y; << shifts the unsigned type (no UB)
        in_range = f"({w}){v[1]} < {8 * ITEMSIZE[dtype]}"
        if op == "lshift":
            return f"({in_range} ? ({t})(({w}){v[0]} << {v[1]}) : ({t})0)"
        fill = f"({t})({v[0]} < 0 ? -1 : 0)" if signed else f"({t})0"
        return f"({in_range} ? ({t})({v[0]} >> {v[1]}) : {fill})"
    raise KeyError(f"cuda: no lowering of {op!r} for {dtype}")


def _bool(op, v) -> str:
    if op in ("band", "bor", "bxor"):
        return f"({v[0]} {({'band': '&&', 'bor': '||', 'bxor': '!='})[op]} {v[1]})"
    if op == "bnot":
        return f"(!{v[0]})"
    raise KeyError(f"cuda: no lowering of {op!r} for bool")


def _program(b: _Body, prog: ScalarProgram, inputs):
    """Emit ``prog``'s instructions into ``b``; its outputs as (expression, dtype) pairs."""
    values = list(inputs)
    for value, dtype in prog.constants:
        values.append((_literal(value, dtype), dtype))
    for instr in prog.instrs:
        expr = _instr(instr, [values[a] for a in instr.args])
        values.append((b.let(instr.dtype, expr), instr.dtype))
    return [values[v] for v in prog.outputs]


def _load(buf, off, dtype) -> str:
    ref = f"*(const {_STORAGE[dtype]} *)(p.data[{buf}] + {off})"
    return f"({ref} != 0)" if dtype == "bool" else ref


def _store(b: _Body, buf, off, expr, dtype):
    cast = "(uint8_t)" if dtype == "bool" else ""
    b.raw(f"*({_STORAGE[dtype]} *)(p.data[{buf}] + {off}) = {cast}{expr};")


def _offsets(b: _Body, dims, bufs, index, names, start=None, itype="int64_t"):
    """Emit the byte offsets ``names`` (one per buffer index in ``bufs``) of the element with
    linear index ``index`` over ``dims`` (row-major, the last dimension fastest), added to
    ``start``. The index is split in ``itype`` (an elementwise kernel's template parameter
    ``I`` makes its divisions 32-bit when the launcher finds that the count fits)."""
    for k, name in enumerate(names):
        b.raw(f"int64_t {name} = {start[k] if start else 0};")
    if not dims:
        return
    rest = f"rest_{names[0]}"
    b.raw(f"{itype} {rest} = ({itype})({index});")
    for pos, d in enumerate(reversed(dims)):
        i = f"i{d}_{names[0]}"
        if pos == len(dims) - 1:
            b.raw(f"const {itype} {i} = {rest};")
        else:
            b.raw(f"const {itype} {i} = {rest} % ({itype})p.shape[{d}];")
            b.raw(f"{rest} /= ({itype})p.shape[{d}];")
        for buf, name in zip(bufs, names):
            b.raw(f"{name} += (int64_t){i} * p.strides[{buf}][{d}];")


def _check_params(name, nd, nbuf, scalars):
    size = 8 * (nd + nbuf + nbuf * nd + scalars)
    if size > MAX_PARAM_BYTES:
        raise ValueError(f"cuda: kernel {name} needs {size} bytes of parameters "
                         f"({nbuf} buffers of rank {nd}); the limit is {MAX_PARAM_BYTES}")


def _params_struct(name, nd, nbuf, fields):
    return (f"struct {name}_params {{\n  int64_t shape[{nd}];\n  char *data[{nbuf}];\n"
            f"  int64_t strides[{nbuf}][{nd}];\n  {' '.join(fields)}\n}};")


def _launcher_head(name, nd, nbuf, workspace=False):
    extra = "void *workspace, " if workspace else ""
    return [
        "#ifdef __CUDACC__",
        f'extern "C" int {name}(const int64_t *shape, char *const *data, const int64_t *strides, '
        f"{extra}void *stream) {{",
        f"  {name}_params p;",
        f"  for (int d = 0; d < {nd}; ++d) p.shape[d] = shape[d];",
        f"  for (int k = 0; k < {nbuf}; ++k) {{",
        "    p.data[k] = data[k];",
        f"    for (int d = 0; d < {nd}; ++d) p.strides[k][d] = strides[k * {nd} + d];",
        "  }",
    ]


def _launch_narrow_or_wide(kernel, blocks, threads, count):
    """Launch the index-type template ``kernel`` with 32-bit indices when ``count`` fits."""
    return [f"  if (th_fits32({count}))",
            f"    {kernel}<uint32_t><<<(unsigned){blocks}, {threads}, 0, (cudaStream_t)stream>>>(p);",
            "  else",
            f"    {kernel}<int64_t><<<(unsigned){blocks}, {threads}, 0, (cudaStream_t)stream>>>(p);"]


def render_elementwise(kernel: ElementwiseKernel, inner_broadcast=None) -> str:
    """The params struct, ``__global__`` kernel and host launcher of ``kernel``."""
    name, prog = kernel.name, kernel.program
    nd = max(kernel.ndim, 1)
    n_in = len(prog.input_dtypes)
    out_dtypes = list(prog.output_dtypes)
    nbuf = n_in + len(out_dtypes)
    _check_params(name, nd, nbuf, 1)
    b = _Body("    ")
    offs = [f"off{k}" for k in range(nbuf)]
    _offsets(b, list(range(nd)), list(range(nbuf)), "idx", offs, itype="I")
    values = [(b.let(dt, _load(k, offs[k], dt), "x"), dt) for k, dt in enumerate(prog.input_dtypes)]
    for m, (expr, dt) in enumerate(_program(b, prog, values)):
        _store(b, n_in + m, offs[n_in + m], expr, dt)
    b.drop_unused()
    label = f" ({comment_text(kernel.label)})" if kernel.label else ""
    return "\n".join([
        f"/* {name}: elementwise{label}, rank {kernel.ndim}, {n_in} input(s), "
        f"{len(out_dtypes)} output(s)",
        *["   " + line for line in str(prog).splitlines()],
        "*/",
        *_grid_stride_unit(name, nd, nbuf, b.lines),
    ])


def _grid_stride_unit(name, nd, nbuf, body) -> list:
    """The params struct, the ``__global__`` grid-stride loop running ``body`` (lines) for
    each element index ``idx``, and the host launcher, of an elementwise-style kernel."""
    return [
        _params_struct(name, nd, nbuf, ["int64_t total;"]),
        "",
        "template <typename I>",
        f"__global__ void __launch_bounds__({THREADS}) {name}_kernel(const {name}_params p) {{",
        "  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < p.total;",
        "       idx += (int64_t)gridDim.x * blockDim.x) {",
        *body,
        "  }",
        "}",
        "",
        *_launcher_head(name, nd, nbuf),
        "  int64_t total = 1;",
        f"  for (int d = 0; d < {nd}; ++d) total *= shape[d];",
        "  p.total = total;",
        "  if (total <= 0) return 0;",
        *_launch_narrow_or_wide(f"{name}_kernel", f"th_blocks(total, {THREADS})", THREADS, "total"),
        "  return (int)cudaGetLastError();",
        "}",
        "#endif",
    ]


@dataclass(frozen=True)
class IndexedKernel:
    """A copy through a table of byte offsets: ``mode`` 'gather' reads ``src`` where the
    table points (``dst[i] = src[i + table[i]]``), 'set' and 'inc' write (or add, with
    atomics, so repeated offsets accumulate) into ``dst`` there (``dst[i + table[i]]
    (+)= src[i]``). Buffers: data[0] the source, data[1] the table (int64 byte offsets),
    data[2] the destination; the strides say which dimension the table runs along (its
    own stride is 8 there and 0 elsewhere), so one kernel serves every axis. Launched as
    an elementwise kernel of rank ``ndim`` over the destination's (gather) or the
    source's (set, inc) shape. Values are ``dtype`` on both sides."""

    name: str
    ndim: int
    dtype: str
    mode: str


#: the dtypes an 'inc' IndexedKernel adds atomically (CUDA's atomicAdd; 64-bit integers
#: through unsigned long long, whose wrapping addition is the signed one's)
ATOMIC_ADD = {"float32": "float", "float64": "double", "int32": "int", "uint32": "unsigned",
              "int64": "unsigned long long", "uint64": "unsigned long long"}


def render_indexed(kernel: IndexedKernel, inner_broadcast=None) -> str:
    """The params struct, ``__global__`` kernel and host launcher of an IndexedKernel (the
    elementwise kernels' calling convention)."""
    name, nd, dtype, mode = kernel.name, max(kernel.ndim, 1), kernel.dtype, kernel.mode
    if mode not in ("gather", "set", "inc"):
        raise ValueError(f"cuda: unknown indexed copy mode {mode!r}")
    if mode == "inc" and dtype not in ATOMIC_ADD:
        raise ValueError(f"cuda: no atomic addition for {dtype}; an indexed increment of it "
                         f"cannot run on the device")
    _check_params(name, nd, 3, 1)
    b = _Body("    ")
    offs = ["off0", "off1", "off2"]
    _offsets(b, list(range(nd)), [0, 1, 2], "idx", offs, itype="I")
    b.raw("const int64_t jump = *(const int64_t *)(p.data[1] + off1);")
    t = _STORAGE[dtype]
    if mode == "gather":
        b.raw(f"*({t} *)(p.data[2] + off2) = *(const {t} *)(p.data[0] + off0 + jump);")
    elif mode == "set":
        b.raw(f"*({t} *)(p.data[2] + off2 + jump) = *(const {t} *)(p.data[0] + off0);")
    else:
        a = ATOMIC_ADD[dtype]
        b.raw(f"atomicAdd(({a} *)(p.data[2] + off2 + jump), ({a})*(const {t} *)(p.data[0] + off0));")
    return "\n".join([
        f"/* {name}: indexed {mode} of {dtype}, rank {kernel.ndim} */",
        *_grid_stride_unit(name, nd, 3, b.lines),
    ])


@dataclass(frozen=True)
class LineKernel:
    """One thread per line: the last of ``ndim`` dimensions walked in order. ``kind``
    'cumsum' and 'cumprod' write the running sum (product) of the ``in_dtype`` values,
    converted to and accumulated in ``out_dtype`` (NumPy's order, so floats round as
    NumPy's do); 'argmax' and 'argmin' write, once per line, the int64 position of the
    first maximum (minimum), or of the first NaN; 'argsort' the int64 positions sorting
    the line (stable, NaN last, as numpy.argsort(kind="stable")). Buffers: data[0] the
    input, data[1] the output (for argmax and argmin with stride 0 along the line, for
    argsort contiguous along it) and, for argsort, data[2]: ``sorting.SCRATCH_WORDS``
    words of scratch per element, contiguous along the line. The elementwise
    calling convention; the launcher's count is the number of lines, and the kernel
    never reads past them (a launch over all elements covers them too)."""

    name: str
    ndim: int
    in_dtype: str
    out_dtype: str
    kind: str


_LINE_STEP = {"cumsum": "add", "cumprod": "mul"}


def render_line(kernel: LineKernel, inner_broadcast=None) -> str:
    """The params struct, ``__global__`` kernel and host launcher of a LineKernel."""
    name, nd, src, dst, kind = kernel.name, max(kernel.ndim, 1), kernel.in_dtype, kernel.out_dtype, kernel.kind
    if kind not in ("cumsum", "cumprod", "argmax", "argmin", "argsort"):
        raise ValueError(f"cuda: unknown line kernel kind {kind!r}")
    nbuf = 3 if kind == "argsort" else 2
    _check_params(name, nd, nbuf, 1)
    last = nd - 1
    b = _Body("    ")
    b.raw("const int64_t n = p.shape[%d];" % last)
    _offsets(b, list(range(last)), list(range(nbuf)), "idx", ["off0", "off1", "off2"][:nbuf], itype="I")
    prelude = []
    if kind == "argsort":   # the back ends' own merge sort (codegen/sorting.py) as a device function
        prelude = [c_helper(f"{name}_sort", src).replace("static void", "static __device__ void", 1).strip(), ""]
        b.raw(f"{name}_sort(p.data[0] + off0, n, p.strides[0][{last}], (int64_t *)(p.data[1] + off1), "
              "(uint64_t *)(p.data[2] + off2));")
        body = b.lines
    else:
        body = _line_walk(kernel, b, last)
    return "\n".join([
        f"/* {name}: {kind} along the last of {kernel.ndim} dimension(s), {src} to {dst} */",
        *prelude,
        _params_struct(name, nd, nbuf, ["int64_t total;"]),
        "",
        "template <typename I>",
        f"__global__ void __launch_bounds__({THREADS}) {name}_kernel(const {name}_params p) {{",
        "  int64_t lines = 1;",
        f"  for (int d = 0; d < {last}; ++d) lines *= p.shape[d];",
        "  if (p.shape[%d] <= 0) return;" % last,
        "  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < lines;",
        "       idx += (int64_t)gridDim.x * blockDim.x) {",
        *body,
        "  }",
        "}",
        "",
        *_launcher_head(name, nd, nbuf),
        "  int64_t lines = 1;",
        f"  for (int d = 0; d < {last}; ++d) lines *= shape[d];",
        "  p.total = lines;",
        f"  if (lines <= 0 || shape[{last}] <= 0) return 0;",
        *_launch_narrow_or_wide(f"{name}_kernel", f"th_blocks(lines, {THREADS})", THREADS, "lines"),
        "  return (int)cudaGetLastError();",
        "}",
        "#endif",
    ])


def _line_walk(kernel, b, last) -> list:
    """The body of a cumulative or arg LineKernel's thread: ``b``'s lines (offsets of the
    line), then the walk along it."""
    src, dst, kind = kernel.in_dtype, kernel.out_dtype, kernel.kind
    inner = _Body("      ")
    at = f"off0 + k * p.strides[0][{last}]"
    if kind in _LINE_STEP:
        step = ScalarProgram((dst, src), (), (Instr("cast", (1,), dst, src), Instr(_LINE_STEP[kind], (0, 2), dst, dst)),
                             (3,))
        b.raw(f"{CUDA_TYPES[dst]} acc = {_literal(0 if kind == 'cumsum' else 1, dst)};")
        value = inner.let(src, _load(0, at, src), "x")
        (total, _), = _program(inner, step, [("acc", dst), (value, src)])
        inner.raw(f"acc = {total};")
        _store(inner, 1, f"off1 + k * p.strides[1][{last}]", "acc", dst)
        return [*b.lines, "    for (int64_t k = 0; k < n; ++k) {", *inner.lines, "    }"]
    b.raw(f"{CUDA_TYPES[src]} best = {_load(0, 'off0', src)};")
    b.raw("int64_t at = 0;")
    value = inner.let(src, _load(0, at, src), "x")
    better = f"{value} {'>' if kind == 'argmax' else '<'} best"
    if src in FLOATS:   # the first NaN wins, and nothing after it
        better = f"best == best && ({value} != {value} || {better})"
    inner.raw(f"if ({better}) {{ best = {value}; at = k; }}")
    return [*b.lines, "    for (int64_t k = 1; k < n; ++k) {", *inner.lines, "    }",
            "    *(int64_t *)(p.data[1] + off1) = at;"]


def _render_copy_kernel(kernel, inner_broadcast=None) -> str:
    if isinstance(kernel, IndexedKernel):
        return render_indexed(kernel)
    if isinstance(kernel, LineKernel):
        return render_line(kernel)
    return render_elementwise(kernel, inner_broadcast)


def _identity(kind, dtype) -> str:
    """The reduction's identity, as native.py's ``_identity`` defines it."""
    if kind in ("all", "any"):
        return "true" if kind == "all" else "false"
    if kind in ("sum", "prod"):
        return _literal(0 if kind == "sum" else 1, dtype)
    if dtype in FLOATS:
        return _literal(-math.inf if kind == "max" else math.inf, dtype)
    bits = 8 * ITEMSIZE[dtype]
    if dtype in SIGNED:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return _literal(lo if kind == "max" else hi, dtype)


def _combine(kind, dtype, acc, value) -> str:
    """``acc (op) value``; float sums and products may be reassociated."""
    if kind in ("all", "any"):
        return f"({acc} {'&&' if kind == 'all' else '||'} {value})"
    t = CUDA_TYPES[dtype]
    if dtype in FLOATS:
        if kind in ("sum", "prod"):
            return f"({acc} {'+' if kind == 'sum' else '*'} {value})"
        return f"th_{kind}({acc}, {value})"
    if kind in ("sum", "prod"):
        w = _wide_unsigned(dtype)
        return f"({t})(({w}){acc} {'+' if kind == 'sum' else '*'} ({w}){value})"
    return f"th_i{kind}<{t}>({acc}, {value})"


def _tree(kind, out):
    """Combine the block's per-thread values ``acc`` into ``sh[0]`` (a tree in shared memory)."""
    return ["    sh[tid] = acc;",
            "    __syncthreads();",
            "    for (int s = THEANINE_REDUCE_THREADS / 2; s > 0; s >>= 1) {",
            f"      if (tid < s) sh[tid] = {_combine(kind, out, 'sh[tid]', 'sh[tid + s]')};",
            "      __syncthreads();",
            "    }"]


def render_reduce(kernel: ReduceKernel, inner_broadcast=None) -> str:
    """The params struct, the three ``__global__`` kernels (``NAME_serial``: one thread per
    output element; ``NAME_kernel``: one block per output element, or per chunk of one when
    split; ``NAME_finish``: the second pass of a split reduction), the workspace query and
    the host launcher of ``kernel``. Each output element is written exactly once, so the
    output needs no initialisation; an output element over no elements gets the identity."""
    name, prog, kind, out = kernel.name, kernel.program, kernel.kind, kernel.out_dtype
    nd = max(kernel.ndim, 1)
    axes = sorted(a for a in kernel.axes if a < nd)
    kept = [d for d in range(nd) if d not in axes]
    n_in = len(prog.input_dtypes)
    nbuf = n_in + 1
    _check_params(name, nd, nbuf, 5)
    t, store = CUDA_TYPES[out], _STORAGE[out]
    to_store = "(uint8_t)" if out == "bool" else ""

    def bodies(indent):
        outer = _Body(indent)
        base = [f"base{k}" for k in range(nbuf)]
        _offsets(outer, kept, list(range(nbuf)), "o", base)
        inner = _Body(indent + "  ")
        offs = [f"off{k}" for k in range(n_in)]
        _offsets(inner, axes, list(range(n_in)), "r", offs, base)
        values = [(inner.let(dt, _load(k, offs[k], dt), "x"), dt)
                  for k, dt in enumerate(prog.input_dtypes)]
        expr, dt = _program(inner, prog, values)[0]
        inner.raw(f"acc = {_combine(kind, out, 'acc', _convert(expr, dt, out))};")
        inner.drop_unused()
        return outer.lines, inner.lines

    out_ref = f"*({store} *)(p.data[{n_in}] + base{n_in})"
    partial_ref = f"(({store} *)p.partial)"
    partial_value = f"{partial_ref}[o * p.splits + s]"
    if out == "bool":
        partial_value = f"({partial_value} != 0)"
    serial_outer, serial_inner = bodies("    ")
    tree_outer, tree_inner = bodies("    ")
    finish_outer = _Body("    ")
    _offsets(finish_outer, kept, [n_in], "o", [f"base{n_in}"])
    label = f" ({comment_text(kernel.label)})" if kernel.label else ""
    n_out = " * ".join(f"shape[{d}]" for d in kept) or "1"
    n_red = " * ".join(f"shape[{d}]" for d in axes) or "1"
    head = f"__global__ void __launch_bounds__(THEANINE_REDUCE_THREADS) {name}"
    return "\n".join([
        f"/* {name}: {kind} over axes {list(kernel.axes)}{label} into {out}, rank {kernel.ndim}, "
        f"{n_in} input(s)",
        *["   " + line for line in str(prog).splitlines()],
        "*/",
        _params_struct(name, nd, nbuf, ["int64_t n_out;", "int64_t n_red;", "int64_t splits;",
                                        "int64_t chunk;", "char *partial;"]),
        "",
        "/* one thread per output element, combining its elements in order */",
        f"{head}_serial(const {name}_params p) {{",
        "  for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < p.n_out;",
        "       o += (int64_t)gridDim.x * blockDim.x) {",
        *serial_outer,
        f"    {t} acc = {_identity(kind, out)};",
        "    for (int64_t r = 0; r < p.n_red; ++r) {",
        *serial_inner,
        "    }",
        f"    {out_ref} = {to_store}acc;",
        "  }",
        "}",
        "",
        "/* one block per output element o and chunk c of its elements (item = o * splits + c):",
        "   each thread combines a strided subset of the chunk, a tree in shared memory combines",
        "   the threads' values; the result is the output element when there is one chunk,",
        "   else the partial result `item` */",
        f"{head}_kernel(const {name}_params p) {{",
        f"  __shared__ {t} sh[THEANINE_REDUCE_THREADS];",
        "  const int tid = threadIdx.x;",
        "  for (int64_t item = blockIdx.x; item < p.n_out * p.splits; item += gridDim.x) {",
        "    const int64_t o = item / p.splits;",
        "    const int64_t lo = (item - o * p.splits) * p.chunk;",
        "    const int64_t hi = lo + p.chunk < p.n_red ? lo + p.chunk : p.n_red;",
        *tree_outer,
        f"    {t} acc = {_identity(kind, out)};",
        "    for (int64_t r = lo + tid; r < hi; r += THEANINE_REDUCE_THREADS) {",
        *tree_inner,
        "    }",
        *_tree(kind, out),
        "    if (tid == 0) {",
        f"      if (p.splits == 1) {out_ref} = {to_store}sh[0];",
        f"      else {partial_ref}[item] = {to_store}sh[0];",
        "    }",
        "    __syncthreads();  /* sh is reused by the next item */",
        "  }",
        "}",
        "",
        "/* the second pass of a split reduction: output element o combines the partial results",
        "   o * splits .. o * splits + splits - 1 */",
        f"{head}_finish(const {name}_params p) {{",
        f"  __shared__ {t} sh[THEANINE_REDUCE_THREADS];",
        "  const int tid = threadIdx.x;",
        "  for (int64_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {",
        *finish_outer.lines,
        f"    {t} acc = {_identity(kind, out)};",
        "    for (int64_t s = tid; s < p.splits; s += THEANINE_REDUCE_THREADS)",
        f"      acc = {_combine(kind, out, 'acc', partial_value)};",
        *_tree(kind, out),
        f"    if (tid == 0) {out_ref} = {to_store}sh[0];",
        "    __syncthreads();",
        "  }",
        "}",
        "",
        "/* bytes of device workspace the launcher needs for this shape (0: none) */",
        f'extern "C" int64_t {name}_workspace(const int64_t *shape) {{',
        f"  const int64_t splits = th_reduce_splits({n_out}, {n_red});",
        f"  return splits > 1 ? {n_out} * splits * (int64_t)sizeof({store}) : 0;",
        "}",
        "",
        *_launcher_head(name, nd, nbuf, workspace=True),
        f"  const int64_t n_out = {n_out};",
        f"  const int64_t n_red = {n_red};",
        "  if (n_out <= 0) return 0;",
        "  const int64_t splits = th_reduce_splits(n_out, n_red);",
        "  if (splits > 1 && workspace == nullptr) return (int)cudaErrorInvalidValue;",
        "  p.n_out = n_out;",
        "  p.n_red = n_red;",
        "  p.splits = splits > 1 ? splits : 1;",
        "  p.chunk = (n_red + p.splits - 1) / p.splits;",
        "  p.partial = (char *)workspace;",
        "  const cudaStream_t s = (cudaStream_t)stream;",
        "  if (splits == 0) {",
        f"    {name}_serial<<<(unsigned)th_blocks(n_out, THEANINE_REDUCE_THREADS), "
        "THEANINE_REDUCE_THREADS, 0, s>>>(p);",
        "  } else {",
        f"    {name}_kernel<<<(unsigned)th_blocks(n_out * p.splits, 1), THEANINE_REDUCE_THREADS, 0, s>>>(p);",
        "    if (splits > 1)",
        f"      {name}_finish<<<(unsigned)th_blocks(n_out, 1), THEANINE_REDUCE_THREADS, 0, s>>>(p);",
        "  }",
        "  return (int)cudaGetLastError();",
        "}",
        "#endif",
    ])


#: the side of the square tiles of the fallback matrix product
GEMM_TILE = 16


def render_gemm(name: str, dtype: str) -> str:
    """A tiled matrix product ``C = A @ B`` for ``dtype`` (float32 or float64), for when
    cuBLAS cannot be loaded: A (m x k) and B (k x n) are read through any element strides,
    C (m x n) is written row-major and contiguous. Its launcher is ``int NAME(int64_t m,
    int64_t n, int64_t k, const void *a, int64_t sa0, int64_t sa1, const void *b, int64_t sb0,
    int64_t sb1, void *c, void *stream)`` (k = 0 gives zeros)."""
    if dtype not in FLOATS:
        raise ValueError(f"cuda: no matrix product kernel for {dtype}")
    t, tile = CUDA_TYPES[dtype], GEMM_TILE
    return "\n".join([
        f"/* {name}: C = A @ B in {dtype}, {tile} x {tile} tiles through shared memory */",
        f"__global__ void __launch_bounds__({tile * tile}) {name}_kernel(const int64_t m, const int64_t n, "
        "const int64_t k,",
        f"    const {t} *a, const int64_t sa0, const int64_t sa1, const {t} *b, const int64_t sb0,",
        f"    const int64_t sb1, {t} *c) {{",
        f"  __shared__ {t} ta[{tile}][{tile + 1}];",
        f"  __shared__ {t} tb[{tile}][{tile + 1}];",
        f"  const int tx = threadIdx.x % {tile}, ty = threadIdx.x / {tile};",
        f"  const int64_t col = (int64_t)blockIdx.x * {tile} + tx;",
        f"  for (int64_t r0 = (int64_t)blockIdx.y * {tile}; r0 < m; r0 += (int64_t)gridDim.y * {tile}) {{",
        "    const int64_t row = r0 + ty;",
        f"    {t} acc = 0;",
        f"    for (int64_t k0 = 0; k0 < k; k0 += {tile}) {{",
        f"      ta[ty][tx] = row < m && k0 + tx < k ? a[row * sa0 + (k0 + tx) * sa1] : ({t})0;",
        f"      tb[ty][tx] = k0 + ty < k && col < n ? b[(k0 + ty) * sb0 + col * sb1] : ({t})0;",
        "      __syncthreads();",
        f"      for (int j = 0; j < {tile}; ++j) acc += ta[ty][j] * tb[j][tx];",
        "      __syncthreads();",
        "    }",
        "    if (row < m && col < n) c[row * n + col] = acc;",
        "  }",
        "}",
        "",
        "#ifdef __CUDACC__",
        f'extern "C" int {name}(int64_t m, int64_t n, int64_t k, const void *a, int64_t sa0, '
        "int64_t sa1,",
        "    const void *b, int64_t sb0, int64_t sb1, void *c, void *stream) {",
        "  if (m <= 0 || n <= 0) return 0;",
        f"  const int64_t row_tiles = (m + {tile - 1}) / {tile};",
        f"  const dim3 grid((unsigned)((n + {tile - 1}) / {tile}), "
        "(unsigned)(row_tiles < 65535 ? row_tiles : 65535));",
        f"  {name}_kernel<<<grid, {tile * tile}, 0, (cudaStream_t)stream>>>(m, n, k, (const {t} *)a, sa0, sa1,",
        f"      (const {t} *)b, sb0, sb1, ({t} *)c);",
        "  return (int)cudaGetLastError();",
        "}",
        "#endif",
    ])


#: separates the module's parts: the prelude, then one part per kernel, each of which
#: compiles on its own after the prelude (codegen.nvcc builds them in parallel)
UNIT_SEPARATOR = "/* ---- theanine: a unit of its own follows ---- */"


def render_module(kernels, name="theanine_module", gemms=()) -> str:
    """One CUDA C++ translation unit defining every kernel of ``kernels``
    ((kernel, inner_broadcast) pairs; elementwise, reduction, indexed or line kernels), each with its params struct, ``__global__`` kernels
    and host launcher ``NAME``, and a matrix product (``render_gemm``) for each
    ``(name, dtype)`` of ``gemms``. ``UNIT_SEPARATOR`` lines split it into the prelude
    and one part per kernel."""
    head = (f"/* {name}: CUDA C++ generated by theanine.codegen.cuda ({len(kernels)} kernel(s)).\n"
            "   Launchers: int NAME(const int64_t *shape, char *const *data, const int64_t *strides,\n"
            "   [void *workspace,] void *stream), returning a cudaError_t; data holds device\n"
            "   pointers (inputs, then outputs). */\n\n" + PRELUDE)
    parts = render_each(kernels, _render_copy_kernel, render_reduce)
    parts += [render_gemm(gemm_name, dtype) for gemm_name, dtype in gemms]
    return f"\n\n{UNIT_SEPARATOR}\n".join([head] + parts) + "\n"
