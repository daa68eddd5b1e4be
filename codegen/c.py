"""Renders kernel IR as C11, one translation unit per compiled function.

The C back end is the LLVM back end's twin: every kernel has the same native
signature (``void name(const int64_t *shape, char **data, const int64_t *strides)``),
the same loop nest (outer loops, then a dense inner loop taken when every moving
buffer steps by exactly one element, and a general strided one; inputs broadcast
along the last dimension loaded once per row; a reduction over the last axis
accumulated in a register) and, opcode by opcode and dtype by dtype, the same
results bit for bit (``llvm.py`` is the reference; the differential tests in
``tests/test_c_backend.py`` hold the two to it):

- integer add/sub/mul/neg wrap around: they are computed in an unsigned type
  (never signed overflow, which would be undefined behaviour in C);
- integer // and % round toward -inf, give 0 for a zero divisor and do not trap
  for MIN // -1; float // and % are NumPy's npy_divmod;
- float to integer conversion saturates through int64 (NaN gives 0) and then
  wraps to the width, as ``llvm.fptosi.sat`` does in the LLVM renderer;
- max/min propagate NaN and order -0 below +0 (``llvm.maximum``/``minimum``);
- the vectorisable transcendental functions of ``vecmath`` (exp, log, tanh,
  sigmoid, ...) are rendered from the same generators, operation for operation;
  other functions call the same libm.

The build flags (``cc.py``) keep this exact: no ``-ffast-math``, no FMA
contraction (``-ffp-contract=off``); only float sums and products of a
reduction may be reassociated (``#pragma omp simd reduction``), as in LLVM.
Outputs never alias inputs (the linker allocates them), so buffer pointers are
``restrict``.
"""

from __future__ import annotations

import functools

import math
import struct

from theanine.codegen import vecmath
from theanine.codegen.ir import ElementwiseKernel, Instr, ReduceKernel, ScalarProgram, render_each
from theanine.codegen.llvm import FLOATS, INTS, ITEMSIZE, SIGNED, check_identifiers

#: the C type of a value of each dtype inside a kernel (bool is C's bool there)
C_TYPES = {
    "bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
    "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t",
    "float32": "float", "float64": "double",
}
#: the C type of an element in memory (a NumPy bool is one byte, read as "non-zero")
MEM_TYPES = dict(C_TYPES, bool="uint8_t")
#: the unsigned type integer arithmetic wraps in (no promotion to int, no signed overflow)
_WRAP = {d: ("uint64_t" if ITEMSIZE[d] == 8 else "uint32_t") for d in INTS}
_SFX = {"float32": "f", "float64": ""}

_FLOAT_FN = {  # opcode -> libm function (float64 name; float32 adds "f")
    "sqrt": "sqrt", "exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2", "log10": "log10",
    "sin": "sin", "cos": "cos", "floor": "floor", "ceil": "ceil", "trunc": "trunc",
    "round_away": "round", "abs": "fabs",
    "expm1": "expm1", "log1p": "log1p", "tan": "tan", "asin": "asin", "acos": "acos",
    "atan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asinh": "asinh",
    "acosh": "acosh", "atanh": "atanh", "erf": "erf", "erfc": "erfc", "lgamma": "lgamma",
}
_CMP_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_BITS = {"band": "&", "bor": "|", "bxor": "^"}

_PRELUDE = r"""#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <math.h>

/* llvm.maximum / llvm.minimum: nan if either is nan; -0 orders below +0 */
static inline double th_max_f64(double a, double b)
{ return (a > b || a != a) ? a : (b > a || b != b) ? b : (signbit(a) ? b : a); }
static inline double th_min_f64(double a, double b)
{ return (a < b || a != a) ? a : (b < a || b != b) ? b : (signbit(a) ? a : b); }
static inline float th_max_f32(float a, float b)
{ return (a > b || a != a) ? a : (b > a || b != b) ? b : (signbit(a) ? b : a); }
static inline float th_min_f32(float a, float b)
{ return (a < b || a != a) ? a : (b < a || b != b) ? b : (signbit(a) ? a : b); }

/* llvm.fptosi.sat.i64 / llvm.fptoui.sat.i64: nan gives 0, out-of-range values clamp */
static inline int64_t th_to_i64(double x)
{ return x != x ? 0 : x <= -0x1p63 ? INT64_MIN : x >= 0x1p63 ? INT64_MAX : (int64_t)x; }
static inline uint64_t th_to_u64(double x)
{ return !(x > 0.0) ? 0 : x >= 0x1p64 ? UINT64_MAX : (uint64_t)x; }

/* round half to even */
#if defined(__has_builtin)
#if __has_builtin(__builtin_roundeven) && __has_builtin(__builtin_roundevenf)
#define TH_HAVE_ROUNDEVEN 1
#endif
#endif
#ifdef TH_HAVE_ROUNDEVEN
static inline double th_roundeven_f64(double x) { return __builtin_roundeven(x); }
static inline float th_roundeven_f32(float x) { return __builtin_roundevenf(x); }
#else
static inline double th_roundeven_f64(double x) { return nearbyint(x); }
static inline float th_roundeven_f32(float x) { return nearbyintf(x); }
#endif

/* the bits of a float and back */
static inline uint64_t th_bits_f64(double x) { union { double f; uint64_t u; } v = { x }; return v.u; }
static inline double th_from_bits_f64(uint64_t x) { union { uint64_t u; double f; } v = { x }; return v.f; }
static inline uint32_t th_bits_f32(float x) { union { float f; uint32_t u; } v = { x }; return v.u; }
static inline float th_from_bits_f32(uint32_t x) { union { uint32_t u; float f; } v = { x }; return v.f; }
"""


def supports_program(program: ScalarProgram) -> bool:
    """Whether every instruction of ``program`` can be rendered (the LLVM renderer's set)."""
    from theanine.codegen.llvm import supports_program as llvm_supports
    return llvm_supports(program)


# --- literals --------------------------------------------------------------------------------


def _float_literal(value, dtype) -> str:
    v = float(value)
    if dtype == "float32":
        v = struct.unpack("<f", struct.pack("<f", v))[0]
    if math.isnan(v):
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        if bits & ~(1 << 63) == 0x7FF8000000000000:
            return "(-NAN)" if bits >> 63 else "NAN"
        if dtype == "float32":
            fbits = struct.unpack("<I", struct.pack("<f", v))[0]
            return f"th_from_bits_f32(0x{fbits:08X}u)"
        return f"th_from_bits_f64(UINT64_C(0x{bits:016X}))"
    if math.isinf(v):
        return "(-INFINITY)" if v < 0 else "INFINITY"
    text = repr(v) + _SFX[dtype]  # round-trips exactly (float32: the float's shortest repr)
    return f"({text})" if text.startswith("-") else text


def _int_literal(value, dtype) -> str:
    width = ITEMSIZE[dtype] * 8
    v = int(value) & ((1 << width) - 1)
    if dtype in SIGNED and v >> (width - 1):
        v -= 1 << width
    if width == 64:
        if dtype in SIGNED:
            return "INT64_MIN" if v == -(1 << 63) else f"INT64_C({v})" if v >= 0 else f"(INT64_C({v}))"
        return f"UINT64_C({v})"
    if dtype in SIGNED:
        return f"(({C_TYPES[dtype]}){v})"
    return f"(({C_TYPES[dtype]}){v}u)"


def _literal(value, dtype) -> str:
    if dtype in FLOATS:
        return _float_literal(value, dtype)
    if dtype == "bool":
        return "true" if value else "false"
    return _int_literal(value, dtype)


# --- the vectorisable math functions of vecmath, rendered as C ------------------------------

_FCMP = {  # LLVM fcmp predicate -> C (the u* forms are true when either operand is nan)
    "oeq": "{0} == {1}", "ogt": "{0} > {1}", "oge": "{0} >= {1}", "olt": "{0} < {1}",
    "ole": "{0} <= {1}", "one": "({0} < {1} || {0} > {1})", "ord": "({0} == {0} && {1} == {1})",
    "ueq": "!({0} < {1} || {0} > {1})", "ugt": "!({0} <= {1})", "uge": "!({0} < {1})",
    "ult": "!({0} >= {1})", "ule": "!({0} > {1})", "une": "{0} != {1}",
    "uno": "({0} != {0} || {1} != {1})", "true": "true", "false": "false",
}

_VecBase = getattr(vecmath, "_Emitter", object)


class _VecC(_VecBase):
    """vecmath's emitter, writing C statements instead of LLVM instructions.

    Only the leaf operations are replaced; vecmath's composed helpers (horner,
    pow2, clamp, keep_nan, ...) are inherited, so the C function performs the
    same operations in the same order as the LLVM one.
    """

    def __init__(self, dtype):
        super().__init__(dtype)
        self.ft = C_TYPES[dtype]
        self.ut, self.st = ("uint64_t", "int64_t") if dtype == "float64" else ("uint32_t", "int32_t")
        self.fsfx = _SFX[dtype]
        self.bsfx = "f64" if dtype == "float64" else "f32"

    def lit(self, value):
        return _float_literal(value, self.dtype)

    def _f(self, v):
        return v if isinstance(v, str) else self.lit(v)

    def _i(self, v):
        if isinstance(v, int):
            width = 64 if self.ut == "uint64_t" else 32
            v &= (1 << width) - 1
            return f"UINT64_C({v})" if width == 64 else f"{v}u"
        return v

    def emit(self, text):
        raise NotImplementedError(f"C rendering of vecmath: no C form for {text!r}")

    def let(self, ctype, expr):
        self.n += 1
        name = f"v{self.n}"
        self.lines.append(f"    const {ctype} {name} = {expr};")
        return name

    def _bin(self, op, a, b):
        sym = {"fadd": "+", "fsub": "-", "fmul": "*", "fdiv": "/"}[op]
        return self.let(self.ft, f"{self._f(a)} {sym} {self._f(b)}")

    def neg(self, a):
        return self.let(self.ft, f"-{self._f(a)}")

    def _intrinsic(self, name, *args):
        joined = ", ".join(self._f(a) for a in args)
        if name in ("maximum", "minimum", "roundeven"):
            return self.let(self.ft, f"th_{name.replace('imum', '')}_{self.bsfx}({joined})")
        fn = {"fma": "fma", "fabs": "fabs", "copysign": "copysign", "floor": "floor", "ceil": "ceil",
              "trunc": "trunc", "rint": "rint", "nearbyint": "nearbyint", "sqrt": "sqrt",
              "maxnum": "fmax", "minnum": "fmin"}.get(name)
        if fn is None:
            raise NotImplementedError(f"C rendering of vecmath: no C form for llvm.{name}")
        return self.let(self.ft, f"{fn}{self.fsfx}({joined})")

    def cmp(self, pred, a, b):
        return self.let("bool", _FCMP[pred].format(self._f(a), self._f(b)))

    def select(self, cond, a, b):
        return self.let(self.ft, f"{cond} ? {self._f(a)} : {self._f(b)}")

    def ibin(self, op, a, b):
        a, b = self._i(a), self._i(b)
        if op == "ashr":
            return self.let(self.ut, f"({self.ut})(({self.st}){a} >> {b})")
        sym = {"add": "+", "sub": "-", "mul": "*", "and": "&", "or": "|", "xor": "^",
               "shl": "<<", "lshr": ">>"}.get(op)
        if sym is None:
            raise NotImplementedError(f"C rendering of vecmath: no C form for integer {op}")
        return self.let(self.ut, f"{a} {sym} {b}")

    def iselect(self, cond, a, b):
        return self.let(self.ut, f"{cond} ? {self._i(a)} : {self._i(b)}")

    def bits(self, a):
        return self.let(self.ut, f"th_bits_{self.bsfx}({self._f(a)})")

    def from_bits(self, a):
        return self.let(self.ft, f"th_from_bits_{self.bsfx}({self._i(a)})")

    def to_float(self, a):
        return self.let(self.ft, f"({self.ft})({self.st}){self._i(a)}")


_vec_cache: dict = {}


def vector_function(opcode: str, dtype: str):
    """``(name, C definition)`` of vecmath's ``opcode`` for ``dtype``, or None where the LLVM
    renderer calls libm (or the C form cannot be made: then libm too)."""
    key = (opcode, dtype)
    if key not in _vec_cache:
        _vec_cache[key] = None
        gen = getattr(vecmath, "_GENERATORS", {}).get(opcode)
        if vecmath.function(opcode, dtype) is not None and gen is not None:
            try:
                b = _VecC(dtype)
                y = gen(b, "x")
            except NotImplementedError:
                pass
            else:
                name = f"th_{opcode}_{b.bsfx}"
                text = "\n".join([f"/* vecmath {opcode} ({dtype}), as in the LLVM back end */",
                                  f"static inline {b.ft} {name}({b.ft} x)", "{",
                                  *b.lines, f"    return {y};", "}"])
                _vec_cache[key] = (name, text)
    return _vec_cache[key]


# --- scalar programs -------------------------------------------------------------------------


class _Body:
    """The C statements of one program body, with fresh value names."""

    def __init__(self, module):
        self.module = module
        self.lines = []
        self.n = 0

    def let(self, dtype, expr, name=None):
        """Declare ``name`` (default: a fresh temporary) = ``expr``; returns the name."""
        if name is None:
            self.n += 1
            name = f"t{self.n}"
        self.lines.append(f"const {C_TYPES[dtype]} {name} = {expr};")
        return name

    # --- conversions, exactly as llvm._Body.convert --------------------------------------

    def convert(self, value, src, dst):
        if src == dst:
            return value
        if dst == "bool":
            return f"({value} != 0)"
        if src in FLOATS and dst in INTS:
            if dst == "uint64":
                return f"th_to_u64({value})"
            if dst == "int64":
                return f"th_to_i64({value})"
            return f"({C_TYPES[dst]})th_to_i64({value})"
        return f"({C_TYPES[dst]}){value}"


def _wrap(op, dtype, *args):
    """An integer operation wrapping around in the unsigned type of its width."""
    w = _WRAP[dtype]
    if len(args) == 1:
        return f"({C_TYPES[dtype]})(({w})0 {op} ({w}){args[0]})"
    return f"({C_TYPES[dtype]})(({w}){args[0]} {op} ({w}){args[1]})"


def _int_shift(op, dtype, x, y):
    """NumPy's << and >>: a count outside [0, bits) gives 0 (or -1 for negative x >> y). The
    shift is only evaluated for a count in range; << shifts the unsigned type (no UB)."""
    t, w = C_TYPES[dtype], _WRAP[dtype]
    in_range = f"({w}){y} < {8 * ITEMSIZE[dtype]}"  # a negative count converts to a large one
    if op == "lshift":
        return f"{in_range} ? ({t})(({w}){x} << {y}) : ({t})0"
    fill = f"({t})({x} < 0 ? -1 : 0)" if dtype in SIGNED else f"({t})0"
    return f"{in_range} ? ({t})({x} >> {y}) : {fill}"


class _Scalar:
    """Renders the instructions of a scalar program into a _Body."""

    def __init__(self, body: _Body):
        self.b = body

    def instr(self, instr: Instr, args):
        b = self.b
        c, op, out = instr.compute_dtype, instr.opcode, instr.dtype
        if op == "cast":
            return b.convert(args[0][0], c, out)
        if op == "select":
            cond = b.convert(args[0][0], args[0][1], "bool")
            x, y = (b.convert(v, d, c) for v, d in args[1:])
            return f"{cond} ? {x} : {y}"
        if op in ("land", "lor", "lxor", "lnot"):
            v = [b.convert(x, d, "bool") for x, d in args]
            if op == "lnot":
                return f"!{v[0]}"
            sym = {"land": "&&", "lor": "||", "lxor": "!="}[op]
            return f"{v[0]} {sym} {v[1]}"
        v = [b.convert(x, d, c) for x, d in args]
        if op in ("copy", "second"):
            return v[-1]
        if c in FLOATS:
            return self._float(op, c, v)
        if c in INTS:
            return self._int(op, c, v)
        return self._bool(op, v)

    def _float(self, op, dtype, v):
        b, s = self.b, _SFX[dtype]
        bs = "f64" if dtype == "float64" else "f32"
        lit = lambda x: _float_literal(x, dtype)  # noqa: E731
        if op in _ARITH:
            return f"{v[0]} {_ARITH[op]} {v[1]}"
        if op in _CMP_OPS:
            return f"{v[0]} {_CMP_OPS[op]} {v[1]}"
        vec = vector_function(op, dtype)
        if vec is not None:
            name, definition = vec
            b.module.define(name, definition)
            return f"{name}({', '.join(v)})"
        if op == "round_even":
            return f"th_roundeven_{bs}({v[0]})"
        if op in _FLOAT_FN:
            return f"{_FLOAT_FN[op]}{s}({v[0]})"
        if op == "neg":
            return f"-{v[0]}"
        if op == "sqr":
            return f"{v[0]} * {v[0]}"
        if op == "recip":
            return f"{lit(1.0)} / {v[0]}"
        if op == "sign":
            # NumPy: sign(-0.0) is +0.0 (x + 0 turns -0 into +0 and keeps nan)
            return f"{v[0]} > 0 ? {lit(1.0)} : {v[0]} < 0 ? {lit(-1.0)} : {v[0]} + {lit(0.0)}"
        if op in ("max", "min"):
            return f"th_{op}_{bs}({v[0]}, {v[1]})"
        if op == "clip":
            return f"th_min_{bs}(th_max_{bs}({v[0]}, {v[1]}), {v[2]})"
        if op == "pow":
            return f"pow{s}({v[0]}, {v[1]})"
        if op == "atan2":
            return f"atan2{s}({v[0]}, {v[1]})"
        if op == "isnan":
            return f"{v[0]} != {v[0]}"
        if op == "isinf":
            return f"fabs{s}({v[0]}) == INFINITY"
        if op == "sigmoid":
            return f"{lit(1.0)} / ({lit(1.0)} + exp{s}(-{v[0]}))"
        if op == "softplus":
            return f"fmax{s}({v[0]}, {lit(0.0)}) + log1p{s}(exp{s}(-fabs{s}({v[0]})))"
        if op == "mod":
            return self._float_mod(dtype, v[0], v[1])
        if op == "floordiv":
            return self._float_floordiv(dtype, v[0], v[1])
        raise KeyError(op)

    def _float_mod(self, dtype, x, y):
        """NumPy's divmod remainder: the sign of y, exact via fmod."""
        b, s, zero = self.b, _SFX[dtype], _float_literal(0.0, dtype)
        r = b.let(dtype, f"fmod{s}({x}, {y})")
        adjust = b.let("bool", f"{r} != 0 && (({r} < 0) != ({y} < 0))")
        r2 = b.let(dtype, f"{adjust} ? {r} + {y} : {r}")
        return f"{r2} == 0 ? copysign{s}({zero}, {y}) : {r2}"

    def _float_floordiv(self, dtype, x, y):
        """NumPy's floor_divide for floats (npy_divmod), including its rounding fix-up."""
        b, s = self.b, _SFX[dtype]
        zero, one, half = (_float_literal(v, dtype) for v in (0.0, 1.0, 0.5))
        mod = b.let(dtype, f"fmod{s}({x}, {y})")
        div = b.let(dtype, f"({x} - {mod}) / {y}")
        adjust = b.let("bool", f"{mod} != 0 && (({mod} < 0) != ({y} < 0))")
        div = b.let(dtype, f"{adjust} ? {div} - {one} : {div}")
        fl = b.let(dtype, f"floor{s}({div})")
        fl = b.let(dtype, f"{div} - {fl} > {half} ? {fl} + {one} : {fl}")
        plain = b.let(dtype, f"{x} / {y}")
        result = b.let(dtype, f"{div} != 0 ? {fl} : copysign{s}({zero}, {plain})")
        return f"{y} == 0 ? {plain} : {result}"

    def _int(self, op, dtype, v):
        t = C_TYPES[dtype]
        signed = dtype in SIGNED
        if op in ("add", "sub", "mul"):
            return _wrap(_ARITH[op], dtype, v[0], v[1])
        if op in _BITS:
            return f"({t})({v[0]} {_BITS[op]} {v[1]})"
        if op in _CMP_OPS:
            return f"{v[0]} {_CMP_OPS[op]} {v[1]}"
        if op == "neg":
            return _wrap("-", dtype, v[0])
        if op == "sqr":
            return _wrap("*", dtype, v[0], v[0])
        if op == "bnot":
            return f"({t})~{v[0]}"
        if op == "abs":
            return f"{v[0]} < 0 ? {_wrap('-', dtype, v[0])} : {v[0]}" if signed else v[0]
        if op == "sign":
            return f"({t})(({v[0]} > 0) - ({v[0]} < 0))" if signed else f"({t})({v[0]} > 0)"
        if op in ("max", "min"):
            sym = ">" if op == "max" else "<"
            return f"{v[0]} {sym} {v[1]} ? {v[0]} : {v[1]}"
        if op == "clip":
            lo = self.b.let(dtype, f"{v[0]} > {v[1]} ? {v[0]} : {v[1]}")
            return f"{lo} < {v[2]} ? {lo} : {v[2]}"
        if op in ("isnan", "isinf"):
            return "false"
        if op in ("floordiv", "mod"):
            return self._int_divmod(op, dtype, v[0], v[1])
        if op in ("lshift", "rshift"):
            return _int_shift(op, dtype, v[0], v[1])
        raise KeyError(op)

    def _int_divmod(self, op, dtype, x, y):
        """NumPy's integer // and %: floor rounding; x // 0 and x % 0 are 0; no overflow trap."""
        b, t = self.b, C_TYPES[dtype]
        if dtype not in SIGNED:
            sym = "/" if op == "floordiv" else "%"
            return f"{y} == 0 ? 0 : ({t})({x} {sym} {y})"
        safe = b.let(dtype, f"({y} == 0 || {y} == -1) ? 1 : {y}")
        if op == "floordiv":
            q = b.let(dtype, f"({t})({x} / {safe})")
            adjust = f"({x} % {safe} != 0 && (({x} % {safe} < 0) != ({y} < 0)))"
            out = f"{y} == -1 ? {_wrap('-', dtype, x)} : {adjust} ? ({t})({q} - 1) : {q}"
        else:
            r = b.let(dtype, f"({t})({x} % {safe})")
            adjust = f"({r} != 0 && (({r} < 0) != ({y} < 0)))"
            out = f"{y} == -1 ? 0 : {adjust} ? ({t})({r} + {y}) : {r}"
        return f"{y} == 0 ? 0 : {out}"

    def _bool(self, op, v):
        if op in ("eq", "ne"):
            return f"{v[0]} {_CMP_OPS[op]} {v[1]}"
        if op in _BITS:
            return f"{v[0]} {_BITS[op]} {v[1]}"
        if op == "bnot":
            return f"!{v[0]}"
        raise KeyError(op)


def _program(body: _Body, prog: ScalarProgram, inputs):
    """Render ``prog`` on ``inputs`` ((C expression, dtype) pairs); its outputs likewise."""
    values = list(inputs)
    for value, dtype in prog.constants:
        values.append((_literal(value, dtype), dtype))
    scalar = _Scalar(body)
    for instr in prog.instrs:
        args = [values[a] for a in instr.args]
        expr = scalar.instr(instr, args)
        values.append((body.let(instr.dtype, expr, f"v{len(values)}"), instr.dtype))
    return [values[v] for v in prog.outputs]


# --- the module and its loop nests ------------------------------------------------------------


class Module:
    """A C translation unit under construction: helper definitions and kernels."""

    def __init__(self, name, static=False):
        self.name = name
        self.static = static
        self.definitions = {}
        self.functions = []

    def define(self, fn, text):
        """Add a helper function's definition (once), e.g. a vectorisable exp."""
        self.definitions.setdefault(fn, text)

    def render(self) -> str:
        head = ["/* " + self.name + ": kernels generated by theanine (C back end).",
                " * Each kernel: void name(const int64_t *shape, char **data, const int64_t *strides);",
                " * data holds the inputs then the output; strides[k * nd + d] is buffer k's byte",
                " * stride along dimension d. Semantics: NumPy's, as theanine.codegen.ir states them,",
                " * bit for bit the LLVM back end's. */"]
        return "\n".join(head + [_PRELUDE] + list(self.definitions.values()) + [""]
                         + self.functions) + "\n"


def comment_text(text) -> str:
    """``text`` made safe inside a /* */ comment: one line, no comment terminator."""
    return " ".join(str(text).split()).replace("*/", "* /")


def render_module(kernels, name="theanine_module", static=False) -> str:
    """One C translation unit defining every kernel of ``kernels`` ((kernel, inner_broadcast) pairs);
    ``static``: the kernels have internal linkage (for a unit that only its own code calls)."""
    check_identifiers(name, [k.name for k, _ in kernels])
    module = Module(name, static)
    render_each(kernels, functools.partial(render_elementwise, module),
                functools.partial(render_reduce, module))
    return module.render()


def render_elementwise(module: Module, kernel: ElementwiseKernel, inner_broadcast) -> None:
    """Add ``kernel`` to ``module``; ``inner_broadcast[k]``: input k has stride 0 along the
    last dimension and is loaded once per row."""
    _render_loops(module, kernel.name, kernel.program, kernel.ndim, inner_broadcast, None,
                  kernel.label)


def render_reduce(module: Module, kernel: ReduceKernel, inner_broadcast) -> None:
    """Add ``kernel`` to ``module``: combine ``program``'s value at every input element into
    the output element it reduces to (the output's strides are 0 along reduced axes and
    it holds the reduction's identity on entry)."""
    _render_loops(module, kernel.name, kernel.program, kernel.ndim, inner_broadcast, kernel,
                  kernel.label)


def _combine(kind, dtype, acc, value):
    """acc (op) value for the reduction ``kind``, as llvm._combine."""
    if kind == "all":
        return f"{acc} && {value}"
    if kind == "any":
        return f"{acc} || {value}"
    if dtype in FLOATS:
        if kind == "sum":
            return f"{acc} + {value}"
        if kind == "prod":
            return f"{acc} * {value}"
        return f"th_{kind}_{'f64' if dtype == 'float64' else 'f32'}({acc}, {value})"
    if kind in ("sum", "prod"):
        return _wrap("+" if kind == "sum" else "*", dtype, acc, value)
    sym = ">" if kind == "max" else "<"
    return f"{acc} {sym} {value} ? {acc} : {value}"


def _load(ptr_expr, dtype):
    if dtype == "bool":
        return f"{ptr_expr} != 0"
    return ptr_expr


def _store(lvalue, value, dtype):
    if dtype == "bool":
        return f"{lvalue} = (uint8_t){value};"
    return f"{lvalue} = {value};"


def _render_loops(module, name, prog, ndim, inner_broadcast, reduce, label=""):
    nd = max(ndim, 1)
    n_in = len(prog.input_dtypes)
    out_dtypes = [reduce.out_dtype] if reduce else list(prog.output_dtypes)
    dtypes = list(prog.input_dtypes) + out_dtypes
    nbuf = len(dtypes)
    last = nd - 1
    inner_acc = reduce is not None and last in reduce.axes and ndim > 0
    used = {a for i in prog.instrs for a in i.args} | set(prog.outputs)
    hoisted = [k for k in range(n_in) if inner_broadcast[k] and k in used]

    # the body, rendered once and pasted into both inner loops
    body = _Body(module)
    ins = [(f"i{k}", d) for k, d in enumerate(prog.input_dtypes)]  # the names str(prog) uses
    results = _program(body, prog, ins)

    lines = []
    what = f"reduce {reduce.kind} over axes {list(reduce.axes)} into {reduce.out_dtype}" \
        if reduce else "elementwise"
    lines.append(f"/* {name}: {what}; ndim {ndim}; buffers: "
                 + ", ".join(f"{'in' if k < n_in else 'out'}{k} {d}" for k, d in enumerate(dtypes))
                 + (f"; {comment_text(label)}" if label else ""))
    lines += [" *   " + line.replace("*/", "* /") for line in str(prog).splitlines()]
    lines[-1] += " */"
    linkage = "static " if module.static else ""
    lines.append(f"{linkage}void {name}(const int64_t *restrict shape, char *const *restrict data, "
                 "const int64_t *restrict strides)")
    lines.append("{")
    ind = "    "
    lines.append(ind + "const int64_t " + ", ".join(f"n{d} = shape[{d}]" for d in range(nd)) + ";")
    moving = [k for k in range(nbuf)
              if not ((k < n_in and (inner_broadcast[k] or k not in used)) or (k >= n_in and inner_acc))]
    for k in range(nbuf):
        const = "const " if k < n_in else ""
        row = ", ".join(f"s{k}_{d} = strides[{k * nd + d}]" for d in range(nd)
                        if d < last or k in moving)
        lines.append(f"{ind}{const}char *const b{k} = data[{k}];" + (f" const int64_t {row};" if row else ""))
    lines.append(ind + "if (" + " || ".join(f"n{d} <= 0" for d in range(nd)) + ") return;")
    dense = " && ".join(f"s{k}_{last} == {ITEMSIZE[dtypes[k]]}" for k in moving) or "true"
    lines.append(f"{ind}const bool dense = {dense};")
    for d in range(nd - 1):
        lines.append(f"{ind}for (int64_t o{d} = 0; o{d} < n{d}; o{d}++) {{")
        ind += "    "
    for k in range(nbuf):
        const = "const " if k < n_in else ""
        off = " + ".join(f"o{d} * s{k}_{d}" for d in range(nd - 1))
        lines.append(f"{ind}{const}char *const r{k} = b{k}{' + ' + off if off else ''};")
    for k in hoisted:
        d = dtypes[k]
        lines.append(f"{ind}const {C_TYPES[d]} i{k} = {_load(f'*(const {MEM_TYPES[d]} *)r{k}', d)};")
    out_k = n_in
    if inner_acc:
        od = reduce.out_dtype
        lines.append(f"{ind}{C_TYPES[od]} acc = {_load(f'*(const {MEM_TYPES[od]} *)r{out_k}', od)};")
    simd = ""
    if inner_acc and reduce.out_dtype in FLOATS and reduce.kind in ("sum", "prod"):
        simd = f"#pragma omp simd reduction({'+' if reduce.kind == 'sum' else '*'}:acc)"
    for kind in ("dense", "strided"):
        lines.append(f"{ind}{'if (dense) {' if kind == 'dense' else '} else {'}")
        inner = ind + "    "
        if kind == "dense":
            for k in moving:
                const = "const " if k < n_in else ""
                lines.append(f"{inner}{const}{MEM_TYPES[dtypes[k]]} *restrict p{k} = "
                             f"({const}{MEM_TYPES[dtypes[k]]} *)r{k};")
        if simd:
            lines.append(inner + simd)
        lines.append(f"{inner}for (int64_t j = 0; j < n{last}; j++) {{")
        loop = inner + "    "
        elem = {}
        for k in moving:
            t = MEM_TYPES[dtypes[k]]
            elem[k] = f"p{k}[j]" if kind == "dense" else f"*({'const ' if k < n_in else ''}{t} *)" \
                f"(r{k} + j * s{k}_{last})"
        for k in range(n_in):
            if k in moving:
                d = dtypes[k]
                lines.append(f"{loop}const {C_TYPES[d]} i{k} = {_load(elem[k], d)};")
        lines += [loop + ln for ln in body.lines]
        if reduce is None:
            for m, (val, dt) in enumerate(results):
                lines.append(loop + _store(elem[n_in + m], val, dt))
        else:
            val, dt = results[0]
            od = reduce.out_dtype
            val = body.convert(val, dt, od)
            if inner_acc:
                lines.append(f"{loop}acc = {_combine(reduce.kind, od, 'acc', val)};")
            else:
                current = _load(elem[out_k], od)
                lines.append(loop + _store(elem[out_k],
                                           _combine(reduce.kind, od, f"({current})", val), od))
        lines.append(f"{inner}}}")
    lines.append(f"{ind}}}")
    if inner_acc:
        od = reduce.out_dtype
        lines.append(ind + _store(f"*({MEM_TYPES[od]} *)r{out_k}", "acc", od))
    for d in reversed(range(nd - 1)):
        ind = ind[:-4]
        lines.append(f"{ind}}}")
    lines.append("}")
    module.functions.append("\n".join(lines) + "\n")
