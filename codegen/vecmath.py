"""Vectorisable implementations of transcendental functions, as LLVM IR.

LLVM does not vectorise calls to libm's ``exp``, ``log``, ... by itself. The
functions here are straight-line code made of arithmetic, ``llvm.fma`` /
``llvm.fabs`` / ``llvm.copysign``, integer and bit operations, compares and
selects only. They are ``internal`` and ``alwaysinline``, so a loop that calls
them is inlined into and vectorised by LLVM's loop vectoriser.

Every function keeps the special values exact: signed zeros, +-inf, nan (which
propagates), overflow to inf, underflow to 0 through correctly scaled
subnormals, log of 0 and of negatives, and saturation (tanh -> +-1,
sigmoid -> 0 or 1, expm1 -> -1) without any intermediate overflow.

Methods (polynomials are minimax fits from a Remez exchange in mpmath, with the
coefficients rounded to the working precision; "double word" means a value
carried as an unevaluated sum hi + lo to keep the bits a rounding would lose):

- exp: ``k = rint(x / ln2)`` by adding 1.5 * 2**p (a "magic number", whose
  bit pattern then holds k), ``r = x - k ln2`` by Cody-Waite with fma (the first
  step is exact, the second keeps its rounding error ``r_lo``), then
  ``expm1(r) = r + r**2/2 + r**3 Q1(r)`` on ``|r| <= ln2/2`` (Q1 of degree 9
  for float64, 4 for float32), ``1 + expm1(r)`` rounded once, and the scaling
  ``* 2**(k//2) * 2**(k - k//2)`` so that only the last product rounds, also into
  the subnormal range.
- expm1: the same reduction, then ``2 (s r + (s - 1/2) + s (r**2/2 + ...))``
  with ``s = 2**(k-1)``, summed exactly (Fast2Sum) so it rounds once and never
  cancels; ``x`` itself for tiny ``x``. exp2: ``k = rint(x)``, ``r = x - k``
  exactly, ``r ln2`` as a double word into the same polynomial.
- log, log2, log1p: ``x = 2**k m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` by
  integer arithmetic on the bits (subnormals scaled by 2**54 / 2**25 first),
  ``f = m - 1`` exactly, ``s = f / (2 + f)``, ``log(1 + f) = f - f**2/2 +
  s (f**2/2 + R(s**2))`` (fdlibm's arrangement; R of degree 7 in ``s**2`` for
  float64, 4 for float32). log1p adds ``e / (1 + x)``, where ``e`` is the exact
  rounding error of ``1 + x``, and uses ``x - x**2/2 + x**3/3`` for tiny ``x``;
  log2 multiplies by ``1/ln2`` in double-word arithmetic.
- tanh: from one reduction of ``-2|x|``: ``m = expm1(-2|x|)`` and
  ``e = exp(-2|x|)``, both as double words; ``-m / (2 + m)`` below
  ``|x| = 0.55``, ``1 - 2e / (1 + e)`` above; one division with a correction
  step; the sign restored by copysign.
- sigmoid: ``e = exp(-|x|)`` (double word), ``1 / (1 + e)`` for ``x >= 0`` and
  ``e / (1 + e)`` below, ``1 + e`` kept exactly, one division with a correction.
- softplus: ``max(x, 0) + log1p(exp(-|x|))``, the low word of the exp passed on.

Maximum error, in ulps of the result's dtype, measured against NumPy on long
double (x87, 64-bit significand) for float64 on 4 * 10**6 points spread over the
whole float line (log-uniform magnitudes of both signs, dense around 0, +-1 and
every threshold), and against float64 on every one of the 2**32 float32 inputs:

==========  =======  =======  ================================================
function    float64  float32  bound (``ULP_BOUND``, held by the tests)
==========  =======  =======  ================================================
exp         0.56     0.75     1 (float64 subnormal results 0.74, the f32 max is
                              a subnormal result; normal ones 0.56 sampled)
exp2        0.56     0.75     1 (likewise: subnormal results up to 0.75)
expm1       0.71     0.72     1
log         0.79     0.83     1
log2        0.69     0.82     1
log1p       0.80     0.83     1
tanh        0.77     0.77     1
sigmoid     0.55     0.75     1 (subnormal results up to 0.75)
softplus    1.13     1.16     1.5
==========  =======  =======  ================================================

The code relies on ``llvm.fma`` being a hardware instruction (x86-64 with FMA3,
AArch64); where it is not, LLVM calls libm's ``fma`` instead, which is correct
but slow and keeps the loop scalar.

Not provided (the renderer keeps libm there): sin, cos and the other functions,
whose argument reduction for large inputs is not straight-line code.
"""

from __future__ import annotations

import math
import struct

__all__ = ["function", "OPCODES", "ULP_BOUND"]

_SQRT_HALF_BITS = {"float64": 0x3FE6A09E667F3BCD, "float32": 0x3F3504F3}

_CONSTANTS = {
    "float64": dict(
        ln2_hi=float.fromhex("0x1.62e42fefa39efp-1"), ln2_lo=float.fromhex("0x1.abc9e3b39803fp-56"),
        log2e_hi=float.fromhex("0x1.71547652b82fep+0"), log2e_lo=float.fromhex("0x1.777d0ffda0d24p-56"),
        magic=float.fromhex("0x1.8p52"), magic_bits=0x4338000000000000,
        bias=1023, mbits=52, tiny=2.0 ** -1022, tiny_scale=54,
        # exp: below lo the result rounds to 0, above hi to inf
        exp_lo=-746.0, exp_hi=710.0, exp2_lo=-1076.0, exp2_hi=1025.0,
        # expm1 is -1 and tanh 1 (rounded) below this, and x itself (rounded) for |x| below em1_tiny
        em1_lo=-45.0, em1_tiny=2.0 ** -54, log1p_taylor=2.0 ** -20,
        # ((expm1(r) - r) / r**2 - 1/2) / r on |r| <= ln2/2, degree 9; with the coefficients
        # rounded, (expm1(r) - r) / r**2 is within 6.2e-18
        em1=["0x1.5555555555556p-3", "0x1.5555555555556p-5", "0x1.11111111109b3p-7",
             "0x1.6c16c16c15dc6p-10", "0x1.a01a01a7c4380p-13", "0x1.a01a01a93650ep-16",
             "0x1.71de0dae0a7fdp-19", "0x1.27e4d4d3a0ffap-22", "0x1.af38aa6afa8f2p-26",
             "0x1.1f7f284c212dcp-29"],
        # (2 atanh(s) - 2 s) / s**3 as a polynomial in z = s**2 <= 0.0295, degree 6;
        # R = z P(z) within 9.4e-18 with the coefficients rounded
        log=["0x1.5555555555558p-1", "0x1.9999999995223p-2", "0x1.2492492e03ecbp-2",
             "0x1.c71c62d0358cbp-3", "0x1.7462ba29ec172p-3", "0x1.39fdb9145b3dfp-3",
             "0x1.2b5fc0e0c7c43p-3"],
    ),
    "float32": dict(
        ln2_hi=float.fromhex("0x1.62e430p-1"), ln2_lo=float.fromhex("-0x1.05c610p-29"),
        log2e_hi=float.fromhex("0x1.715476p+0"), log2e_lo=float.fromhex("0x1.4ae0c0p-26"),
        magic=float.fromhex("0x1.8p23"), magic_bits=0x4B400000,
        bias=127, mbits=23, tiny=2.0 ** -126, tiny_scale=25,
        exp_lo=-104.0, exp_hi=89.0, exp2_lo=-151.0, exp2_hi=129.0,
        em1_lo=-24.0, em1_tiny=2.0 ** -25, log1p_taylor=2.0 ** -9,
        # degree 4; (expm1(r) - r) / r**2 within 4.2e-9 with the coefficients rounded
        em1=["0x1.555556p-3", "0x1.55551ap-5", "0x1.1110ccp-7", "0x1.6d110ep-10", "0x1.a15180p-13"],
        # degree 3; R within 6e-10 with the coefficients rounded
        log=["0x1.555556p-1", "0x1.9999ecp-2", "0x1.245c0cp-2", "0x1.ddd8e2p-3"],
    ),
}

for _c in _CONSTANTS.values():
    _c["em1"] = [float.fromhex(h) for h in _c["em1"]]
    _c["log"] = [float.fromhex(h) for h in _c["log"]]


class _Emitter:
    """Straight-line LLVM IR for one scalar function of one float type.

    Float operands may be SSA names or Python numbers (turned into literals);
    integer operands likewise (names or Python ints).
    """

    def __init__(self, dtype):
        self.dtype = dtype
        self.t = "double" if dtype == "float64" else "float"
        self.i = "i64" if dtype == "float64" else "i32"
        self.sfx = "f64" if dtype == "float64" else "f32"
        self.c = _CONSTANTS[dtype]
        self.lines = []
        self.n = 0

    # --- operands -----------------------------------------------------------------------

    def lit(self, value):
        """A float literal of this type (exactly representable: f32 values are rounded)."""
        v = float(value)
        if self.t == "float":
            v = struct.unpack("<f", struct.pack("<f", v))[0]
        return "0x%016X" % struct.unpack("<Q", struct.pack("<d", v))[0]

    def _f(self, v):
        return v if isinstance(v, str) else self.lit(v)

    def _i(self, v):
        if isinstance(v, int):
            # two's complement literal of this width
            width = 64 if self.i == "i64" else 32
            v &= (1 << width) - 1
            return str(v - (1 << width) if v >> (width - 1) else v)
        return v

    def emit(self, text):
        self.n += 1
        name = f"%v{self.n}"
        self.lines.append(f"  {name} = {text}")
        return name

    # --- float operations -----------------------------------------------------------------

    def _bin(self, op, a, b):
        return self.emit(f"{op} {self.t} {self._f(a)}, {self._f(b)}")

    def add(self, a, b):
        return self._bin("fadd", a, b)

    def sub(self, a, b):
        return self._bin("fsub", a, b)

    def mul(self, a, b):
        return self._bin("fmul", a, b)

    def div(self, a, b):
        return self._bin("fdiv", a, b)

    def neg(self, a):
        return self.emit(f"fneg {self.t} {self._f(a)}")

    def _intrinsic(self, name, *args):
        joined = ", ".join(f"{self.t} {self._f(a)}" for a in args)
        return self.emit(f"call {self.t} @llvm.{name}.{self.sfx}({joined})")

    def fma(self, a, b, c):
        return self._intrinsic("fma", a, b, c)

    def fabs(self, a):
        return self._intrinsic("fabs", a)

    def copysign(self, mag, sign):
        return self._intrinsic("copysign", mag, sign)

    def cmp(self, pred, a, b):
        return self.emit(f"fcmp {pred} {self.t} {self._f(a)}, {self._f(b)}")

    def select(self, cond, a, b):
        return self.emit(f"select i1 {cond}, {self.t} {self._f(a)}, {self.t} {self._f(b)}")

    def horner(self, x, coeffs):
        acc = coeffs[-1]
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, c)
        return acc

    # --- integer and bit operations ----------------------------------------------------------

    def ibin(self, op, a, b):
        return self.emit(f"{op} {self.i} {self._i(a)}, {self._i(b)}")

    def iselect(self, cond, a, b):
        return self.emit(f"select i1 {cond}, {self.i} {self._i(a)}, {self.i} {self._i(b)}")

    def bits(self, a):
        return self.emit(f"bitcast {self.t} {self._f(a)} to {self.i}")

    def from_bits(self, a):
        return self.emit(f"bitcast {self.i} {self._i(a)} to {self.t}")

    def to_float(self, a):
        return self.emit(f"sitofp {self.i} {self._i(a)} to {self.t}")

    def pow2(self, k):
        """2**k for an integer k in the normal exponent range."""
        biased = self.ibin("add", k, self.c["bias"])
        return self.from_bits(self.ibin("shl", biased, self.c["mbits"]))

    # --- shared pieces ----------------------------------------------------------------------

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi), with nan mapped to lo (the caller restores nan at the end)."""
        below_hi = self.select(self.cmp("ogt", x, hi), hi, x)
        return self.select(self.cmp("ult", below_hi, lo), lo, below_hi)

    def keep_nan(self, x, y):
        return self.select(self.cmp("uno", x, x), x, y)


# --- cores: pieces of straight-line code shared by several functions ---------------------------


def _reduce_ln2(b: _Emitter, x):
    """(k as an integer, r, r_lo): x = k ln2 + r + r_lo, |r| <= ln2/2 (x already clamped)."""
    c = b.c
    shifted = b.fma(x, c["log2e_hi"], c["magic"])     # 1.5 * 2**p + rint(x / ln2)
    k = b.ibin("sub", b.bits(shifted), c["magic_bits"])
    kf = b.sub(shifted, c["magic"])
    r1 = b.fma(kf, -c["ln2_hi"], x)                    # exact (Cody-Waite with fma)
    prod = b.mul(kf, c["ln2_lo"])
    r = b.sub(r1, prod)
    r_lo = b.sub(b.sub(r1, r), prod)                   # Fast2Sum: what r lost
    return k, r, r_lo


def _expm1_poly(b: _Emitter, r, r_lo):
    """expm1(r + r_lo) = r + h + t for |r| <= ln2/2: h = r**2/2 rounded, t the small rest."""
    half_r = b.mul(r, 0.5)                              # exact
    h = b.mul(half_r, r)
    h_err = b.fma(half_r, r, b.neg(h))                  # exact
    w = b.mul(r, b.horner(r, b.c["em1"]))               # r Q1(r) ~ r/6
    # r**2 (r Q1(r)) + the error of h + r_lo (1 + r): expm1(r + r_lo) ~ expm1(r) + r_lo e**r
    t = b.fma(b.add(h, h), w, b.fma(r_lo, r, b.add(h_err, r_lo)))
    return r, h, t


def _one_plus(b: _Emitter, r, h, t):
    """1 + r + h + t = hi + lo (|r + h + t| < 1/2): hi rounded once up to tiny errors."""
    head = b.add(r, 1.0)
    err = b.sub(r, b.sub(head, 1.0))                    # exact (Fast2Sum, |1| >= |r|)
    m = b.add(h, b.add(err, t))
    hi = b.add(head, m)
    return hi, b.sub(m, b.sub(hi, head))


def _fast_two_sum(b: _Emitter, a, c):
    """(a + c rounded, its rounding error) for |a| >= |c|."""
    total = b.add(a, c)
    return total, b.sub(c, b.sub(total, a))


def _div_dd(b: _Emitter, nh, nl, dh, dl):
    """(nh + nl) / (dh + dl), rounded about once: one division and a correction step."""
    rcp = b.div(1.0, dh)
    q = b.mul(nh, rcp)
    res = b.add(b.fma(b.neg(q), dh, nh), b.fma(b.neg(q), dl, nl))
    return b.fma(res, rcp, q)


def _exp_core(b: _Emitter, x, with_lo=False):
    """exp(x) for any non-nan x (nan gives a number: callers restore it); (hi, lo) if with_lo."""
    c = b.c
    xc = b.clamp(x, c["exp_lo"], c["exp_hi"])
    k, r, r_lo = _reduce_ln2(b, xc)
    hi, lo = _one_plus(b, *_expm1_poly(b, r, r_lo))
    # times 2**k in two steps, so that only the last multiplication rounds (into subnormals)
    half = b.ibin("ashr", k, 1)
    f1, f2 = b.pow2(half), b.pow2(b.ibin("sub", k, half))
    hi = b.mul(b.mul(hi, f1), f2)
    return (hi, b.mul(b.mul(lo, f1), f2)) if with_lo else hi


def _expm1_parts(b: _Emitter, x):
    """(r, h, t, s): expm1(x) = 2**k (1 + r + h + t) - 1, s = 2**(k-1), x clamped to [em1_lo, exp_hi]."""
    c = b.c
    xc = b.clamp(x, c["em1_lo"], c["exp_hi"])
    k, r, r_lo = _reduce_ln2(b, xc)
    r, h, t = _expm1_poly(b, r, r_lo)
    s = b.pow2(b.ibin("sub", k, 1))
    return r, h, t, s


def _expm1_halves(b: _Emitter, r, h, t, s):
    """(head, tail): expm1 / 2 = s r + (s - 1/2) + s (h + t) = head + tail, |tail| small beside |head|.

    Halved so that s = 2**(k-1) stays finite up to k = 1024.
    """
    a = b.mul(s, r)                                     # exact: s is a power of two
    u = b.sub(s, 0.5)
    u_lo = b.sub(b.sub(s, u), 0.5)                      # exact where u is not (large k)
    # |u| > |a| unless k = 0, where u = 0 and the sum is exact: Fast2Sum applies
    head, err = _fast_two_sum(b, u, a)
    return head, b.fma(s, h, b.fma(s, t, b.add(err, u_lo)))


def _log_parts(b: _Emitter, x, tiny_inputs=True):
    """(k as float, f, s, hfsq, R) with x = 2**k (1 + f) and log(1 + f) = f - hfsq + s (hfsq + R)."""
    c = b.c
    kadj = 0
    if tiny_inputs:  # subnormals: scale into the normal range first
        sub = b.cmp("olt", x, c["tiny"])
        x = b.select(sub, b.mul(x, 2.0 ** c["tiny_scale"]), x)
        kadj = b.iselect(sub, -c["tiny_scale"], 0)
    sqrt_half = _SQRT_HALF_BITS[b.dtype]
    t = b.ibin("sub", b.bits(x), sqrt_half)
    k = b.ibin("ashr", t, c["mbits"])
    if tiny_inputs:
        k = b.ibin("add", k, kadj)
    m = b.from_bits(b.ibin("add", b.ibin("and", t, (1 << c["mbits"]) - 1), sqrt_half))
    f = b.sub(m, 1.0)                                   # exact: m in [sqrt(1/2), sqrt(2))
    s = b.div(f, b.add(f, 2.0))
    z = b.mul(s, s)
    R = b.mul(z, b.horner(z, c["log"]))
    hfsq = b.mul(b.mul(f, f), 0.5)
    return b.to_float(k), f, s, hfsq, R


def _log_assemble(b: _Emitter, kf, f, s, hfsq, R, extra=None):
    """k ln2 + log(1 + f) (+ extra, a small correction), fdlibm's order of operations."""
    c = b.c
    low = b.mul(kf, c["ln2_lo"])
    if extra is not None:
        low = b.add(low, extra)
    t = b.fma(s, b.add(hfsq, R), low)
    v = b.sub(b.sub(hfsq, t), f)
    return b.fma(kf, c["ln2_hi"], b.neg(v))


def _log1p_core(b: _Emitter, x, small_input=False, x_lo=None):
    """log1p(x + x_lo) for x > -1 finite (small_input: 0 <= x <= 1)."""
    u = b.add(x, 1.0)
    # the rounding error of 1 + x, exactly (Fast2Sum, larger operand first)
    err_small = b.sub(x, b.sub(u, 1.0))
    if small_input:
        err = err_small
    else:
        err_big = b.sub(1.0, b.sub(u, x))
        err = b.select(b.cmp("ogt", x, 1.0), err_big, err_small)
    if x_lo is not None:
        err = b.add(err, x_lo)
    kf, f, s, hfsq, R = _log_parts(b, u, tiny_inputs=False)
    y = _log_assemble(b, kf, f, s, hfsq, R, extra=b.div(err, u))
    # tiny x: x - x**2/2 + x**3/3 avoids the cancellation between log(u) and err/u
    x_lo = 0.0 if x_lo is None else x_lo
    taylor = b.add(x, b.fma(b.mul(x, x), b.fma(x, 1.0 / 3.0, -0.5), x_lo))
    return b.select(b.cmp("olt", b.fabs(x), b.c["log1p_taylor"]), taylor, y)


def _log_specials(b: _Emitter, x, y, zero_at):
    """inf at inf, -inf at ``zero_at``, nan below it and at nan."""
    inf = math.inf
    y = b.select(b.cmp("oeq", x, inf), inf, y)
    y = b.select(b.cmp("oeq", x, zero_at), -inf, y)
    return b.select(b.cmp("ult", x, zero_at), math.nan, y)


# --- the functions ------------------------------------------------------------------------------


def _exp(b: _Emitter, x):
    return b.keep_nan(x, _exp_core(b, x))


def _exp2(b: _Emitter, x):
    c = b.c
    xc = b.clamp(x, c["exp2_lo"], c["exp2_hi"])
    shifted = b.add(xc, c["magic"])
    k = b.ibin("sub", b.bits(shifted), c["magic_bits"])
    r = b.sub(xc, b.sub(shifted, c["magic"]))            # exact, |r| <= 1/2
    rl = b.mul(r, c["ln2_hi"])                            # r ln2 = rl + rerr
    rerr = b.fma(r, c["ln2_lo"], b.fma(r, c["ln2_hi"], b.neg(rl)))
    p, _ = _one_plus(b, *_expm1_poly(b, rl, rerr))
    half = b.ibin("ashr", k, 1)
    y = b.mul(b.mul(p, b.pow2(half)), b.pow2(b.ibin("sub", k, half)))
    return b.keep_nan(x, y)


def _expm1(b: _Emitter, x):
    head, tail = _expm1_halves(b, *_expm1_parts(b, x))
    y = b.mul(b.add(head, tail), 2.0)
    y = b.select(b.cmp("olt", b.fabs(x), b.c["em1_tiny"]), x, y)   # tiny, subnormal, +-0
    return b.keep_nan(x, y)


def _log(b: _Emitter, x):
    y = _log_assemble(b, *_log_parts(b, x))
    return _log_specials(b, x, y, 0.0)


def _log2(b: _Emitter, x):
    c = b.c
    kf, f, s, hfsq, R = _log_parts(b, x)
    # log(1 + f) = hi + lo, then (hi + lo) / ln2 in double-word arithmetic, then + k
    hi = b.sub(f, hfsq)
    lo = b.fma(s, b.add(hfsq, R), b.sub(b.sub(f, hi), hfsq))
    p = b.mul(hi, c["log2e_hi"])
    perr = b.fma(hi, c["log2e_hi"], b.neg(p))
    small = b.fma(lo, c["log2e_hi"], b.fma(hi, c["log2e_lo"], perr))
    top, top_err = _fast_two_sum(b, kf, p)               # |k| >= |p| unless k = 0
    y = b.add(top, b.add(top_err, small))
    return _log_specials(b, x, y, 0.0)


def _log1p(b: _Emitter, x):
    y = _log1p_core(b, x)
    y = b.select(b.cmp("oeq", x, 0.0), x, y)             # keeps -0
    return _log_specials(b, x, y, -1.0)


def _tanh(b: _Emitter, x):
    a = b.fabs(x)
    r, h, t, s = _expm1_parts(b, b.mul(a, -2.0))
    # below 0.55: -m / (2 + m), m = expm1(-2|x|) = mh + ml in (-1, 0]
    head, tail = _expm1_halves(b, r, h, t, s)
    mh, ml = _fast_two_sum(b, head, tail)
    mh, ml = b.add(mh, mh), b.add(ml, ml)
    d1h, d1l = _fast_two_sum(b, 2.0, mh)
    d1l = b.add(d1l, ml)
    # above: 1 - 2e / (1 + e), e = exp(-2|x|) = eh + el, from the same reduction
    ph, pl = _one_plus(b, r, h, t)
    s2 = b.add(s, s)
    eh, el = b.mul(ph, s2), b.mul(pl, s2)
    d2h, d2l = _fast_two_sum(b, 1.0, eh)
    d2l = b.add(d2l, el)
    small = b.cmp("olt", a, 0.55)
    q = _div_dd(b, b.select(small, b.neg(mh), b.add(eh, eh)), b.select(small, b.neg(ml), b.add(el, el)),
                b.select(small, d1h, d2h), b.select(small, d1l, d2l))
    y = b.select(small, q, b.sub(1.0, q))
    return b.keep_nan(x, b.copysign(y, x))


def _sigmoid(b: _Emitter, x):
    eh, el = _exp_core(b, b.neg(b.fabs(x)), with_lo=True)   # e = exp(-|x|) in [0, 1]
    pos = b.cmp("oge", x, 0.0)
    dh, dl = _fast_two_sum(b, 1.0, eh)
    dl = b.add(dl, el)
    # 1 / (1 + e) for x >= 0, e / (1 + e) below
    y = _div_dd(b, b.select(pos, 1.0, eh), b.select(pos, 0.0, el), dh, dl)
    return b.keep_nan(x, y)


def _softplus(b: _Emitter, x):
    eh, el = _exp_core(b, b.neg(b.fabs(x)), with_lo=True)
    l1p = _log1p_core(b, eh, small_input=True, x_lo=el)
    pos = b.select(b.cmp("ogt", x, 0.0), x, 0.0)
    return b.keep_nan(x, b.add(pos, l1p))


_GENERATORS = {
    "exp": _exp, "exp2": _exp2, "expm1": _expm1,
    "log": _log, "log2": _log2, "log1p": _log1p,
    "tanh": _tanh, "sigmoid": _sigmoid, "softplus": _softplus,
}

OPCODES = tuple(_GENERATORS)

#: the documented error bound, in ulps of the result's dtype, for both dtypes
#: (tests/test_vecmath.py holds every function to it; subnormal results included)
ULP_BOUND = {op: 1.0 for op in OPCODES}
ULP_BOUND["softplus"] = 1.5
_cache: dict = {}


def function(opcode: str, dtype: str):
    """``(name, LLVM definition)`` of the vectorisable ``opcode`` for ``dtype``, or None.

    The definition is a complete ``define internal ... alwaysinline`` function of one
    argument; LLVM intrinsics it calls need no declaration (the parser adds them).
    """
    key = (opcode, str(dtype))
    if key in _cache:
        return _cache[key]
    gen = _GENERATORS.get(opcode)
    if gen is None or key[1] not in _CONSTANTS:
        return None
    b = _Emitter(key[1])
    y = gen(b, "%x")
    name = f"theanine_{opcode}_{b.sfx}"
    text = "\n".join([f"define internal {b.t} @{name}({b.t} %x) alwaysinline nounwind {{",
                      *b.lines, f"  ret {b.t} {y}", "}"])
    _cache[key] = (name, text)
    return _cache[key]
