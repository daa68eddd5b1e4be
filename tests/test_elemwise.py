"""Elementwise ops against NumPy/SciPy, their gradients against finite differences,
the Python operators on variables, and static shape errors.

Every case runs under the ``mode`` fixture, so native back ends are held to the
same table as the NumPy reference executor.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import scipy.special as sps

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

# --- helpers ---------------------------------------------------------------------------

TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def _tol(dtype):
    return TOL.get(str(dtype), dict(rtol=0, atol=0))


def sym(dtype, shape, static=False):
    """A symbolic input for values of ``shape``: static sizes, or all None (runtime)."""
    return T.tensor(dtype=dtype, shape=tuple(shape) if static else (None,) * len(shape))


def run(mode, inputs, output, values):
    return theanine.function(inputs, output, mode=mode)(*values)


def check_against(got, want, dtype_must_match=True):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if dtype_must_match:
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, equal_nan=True, **_tol(want.dtype))
    else:
        np.testing.assert_array_equal(got, want)


def noncontig(a):
    """The same values as ``a`` (2-d), but as a non-contiguous view (a ``[:, ::2]`` slice)."""
    big = np.empty((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    big[:, ::2] = a
    view = big[:, ::2]
    assert not view.flags.c_contiguous
    return view


# --- input domains ---------------------------------------------------------------------

def U(lo, hi):
    """Uniform on (lo, hi)."""
    return lambda rng, shape, dtype: rng.uniform(lo, hi, shape).astype(dtype)


def S(lo, hi):
    """Magnitude uniform on (lo, hi), random sign: keeps away from 0 (kinks, poles)."""
    def gen(rng, shape, dtype):
        return (rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)
    return gen


def OFF_INT(lo, hi):
    """Uniform on (lo, hi) but at least 0.15 away from integers and half-integers."""
    def gen(rng, shape, dtype):
        k = rng.integers(lo, hi, shape) * 0.5
        return (k + rng.uniform(0.15, 0.35, shape)).astype(dtype)
    return gen


def INTS(lo, hi):
    return lambda rng, shape, dtype: rng.integers(lo, hi, shape).astype(dtype)


def round_away_ref(x):
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(x.dtype)


@dataclass
class Case:
    name: str
    fn: Callable          # symbolic
    ref: Callable         # NumPy reference
    domains: tuple        # one generator per input
    grad: str = "smooth"  # smooth | zero (piecewise constant) | none (tested on its own)
    ints: tuple = ()      # integer dtypes the op is tested on (with int domains)
    int_domains: tuple = ()


UNARY = [
    Case("neg", T.neg, np.negative, (U(-3, 3),), ints=("int8", "int32", "int64"), int_domains=(INTS(-9, 9),)),
    Case("abs", T.abs, np.abs, (S(0.2, 3),), ints=("int8", "int64"), int_domains=(INTS(-9, 9),)),
    Case("sgn", T.sgn, np.sign, (S(0.2, 3),), grad="zero", ints=("int32",), int_domains=(INTS(-2, 3),)),
    Case("sqr", T.sqr, np.square, (U(-3, 3),), ints=("int16", "int64"), int_domains=(INTS(-9, 9),)),
    Case("sqrt", T.sqrt, np.sqrt, (U(0.2, 3),)),
    Case("reciprocal", T.reciprocal, np.reciprocal, (S(0.5, 2),)),
    Case("exp", T.exp, np.exp, (U(-3, 3),)),
    Case("exp2", T.exp2, np.exp2, (U(-3, 3),)),
    Case("expm1", T.expm1, np.expm1, (U(-3, 3),)),
    Case("log", T.log, np.log, (U(0.2, 3),)),
    Case("log2", T.log2, np.log2, (U(0.2, 3),)),
    Case("log10", T.log10, np.log10, (U(0.2, 3),)),
    Case("log1p", T.log1p, np.log1p, (U(-0.5, 3),)),
    Case("sin", T.sin, np.sin, (U(-3, 3),)),
    Case("cos", T.cos, np.cos, (U(-3, 3),)),
    Case("tan", T.tan, np.tan, (U(-1.2, 1.2),)),
    Case("arcsin", T.arcsin, np.arcsin, (U(-0.9, 0.9),)),
    Case("arccos", T.arccos, np.arccos, (U(-0.9, 0.9),)),
    Case("arctan", T.arctan, np.arctan, (U(-3, 3),)),
    Case("sinh", T.sinh, np.sinh, (U(-3, 3),)),
    Case("cosh", T.cosh, np.cosh, (U(-3, 3),)),
    Case("tanh", T.tanh, np.tanh, (U(-3, 3),)),
    Case("arcsinh", T.arcsinh, np.arcsinh, (U(-3, 3),)),
    Case("arccosh", T.arccosh, np.arccosh, (U(1.2, 4),)),
    Case("arctanh", T.arctanh, np.arctanh, (U(-0.9, 0.9),)),
    Case("floor", T.floor, np.floor, (OFF_INT(-6, 6),), grad="zero"),
    Case("ceil", T.ceil, np.ceil, (OFF_INT(-6, 6),), grad="zero"),
    Case("trunc", T.trunc, np.trunc, (OFF_INT(-6, 6),), grad="zero"),
    Case("round_half_to_even", T.round, np.round, (OFF_INT(-6, 6),), grad="zero"),
    Case("round_half_away_from_zero", lambda x: T.round(x, "half_away_from_zero"), round_away_ref,
         (OFF_INT(-6, 6),), grad="zero"),
    Case("erf", T.erf, sps.erf, (U(-2, 2),)),
    Case("erfc", T.erfc, sps.erfc, (U(-2, 2),)),
    Case("erfinv", T.erfinv, sps.erfinv, (U(-0.9, 0.9),)),
    Case("gammaln", T.gammaln, sps.gammaln, (U(0.2, 5),)),
    Case("psi", T.psi, sps.digamma, (U(0.5, 5),)),
    Case("sigmoid", T.sigmoid, sps.expit, (U(-4, 4),)),
    Case("softplus", T.softplus, lambda x: np.logaddexp(np.zeros((), x.dtype), x), (U(-4, 4),)),
    Case("relu", T.relu, lambda x: np.maximum(x, np.zeros((), x.dtype)), (S(0.2, 3),),
         ints=("int32",), int_domains=(INTS(-5, 5),)),
    Case("leaky_relu", lambda x: T.relu(x, alpha=0.1),
         lambda x: np.where(x > 0, x, x.dtype.type(0.1) * x), (S(0.2, 3),)),
    Case("tensor_copy", T.tensor_copy, np.copy, (U(-3, 3),)),
]


BINARY = [
    Case("add", T.add, np.add, (U(-3, 3), U(-3, 3)), ints=("int8", "int32", "uint8"),
         int_domains=(INTS(0, 50), INTS(0, 50))),
    Case("sub", T.sub, np.subtract, (U(-3, 3), U(-3, 3)), ints=("int16", "int64"),
         int_domains=(INTS(-50, 50), INTS(-50, 50))),
    Case("mul", T.mul, np.multiply, (U(-3, 3), U(-3, 3)), ints=("int32", "int64"),
         int_domains=(INTS(-50, 50), INTS(-50, 50))),
    Case("true_div", T.true_div, np.true_divide, (U(-3, 3), S(0.5, 2))),
    # int_div / mod: ints include zero divisors (NumPy gives 0, no error); no gradient
    # check for x // y across its jumps, but its gradient is zero everywhere.
    Case("int_div", T.int_div, np.floor_divide, (OFF_INT(-6, 6), U(1.1, 1.9)), grad="zero",
         ints=("int8", "int32", "int64"), int_domains=(INTS(-20, 20), INTS(-3, 4))),
    Case("mod", T.mod, np.mod, (OFF_INT(-6, 6), U(1.1, 1.9)), grad="none",  # test_mod_grad
         ints=("int8", "int32", "int64"), int_domains=(INTS(-20, 20), INTS(-3, 4))),
    Case("pow", T.pow, np.power, (U(0.5, 2), U(-2, 2)), ints=("int32", "int64"),
         int_domains=(INTS(-4, 5), INTS(0, 4))),
    Case("maximum", T.maximum, np.maximum, (U(-3, 3), U(-3, 3)), ints=("int8", "int64"),
         int_domains=(INTS(-5, 5), INTS(-5, 5))),
    Case("minimum", T.minimum, np.minimum, (U(-3, 3), U(-3, 3)), ints=("uint8", "int32"),
         int_domains=(INTS(0, 9), INTS(0, 9))),
    Case("arctan2", T.arctan2, np.arctan2, (S(0.3, 3), S(0.3, 3))),
]


def _cmp_dom(rng, shape, dtype):
    return rng.integers(-2, 3, shape).astype(dtype)  # many exact ties


COMPARISONS = [
    Case(n, getattr(T, n), ref, (_cmp_dom, _cmp_dom), grad="zero",
         ints=("int8", "int64", "uint8"), int_domains=(INTS(0, 3), INTS(0, 3)))
    for n, ref in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("neq", np.not_equal)]
]

# the shapes each op is evaluated on; for binary ops, pairs that broadcast
UNARY_SHAPES = [(), (0,), (1,), (3,), (2, 3), (0, 3), "noncontig"]
BINARY_SHAPES = [((), ()), ((0,), (0,)), ((1,), (1,)), ((3,), (3,)), ((2, 3), (3,)),
                 ((2, 1), (1, 3)), ((), (2, 3)), ((0, 3), (3,)), ((0, 3), (1, 1)),
                 ((2, 3), "noncontig")]


def _values(case, shapes, dtype, rng):
    domains = case.int_domains if np.dtype(dtype).kind in "iub" else case.domains
    vals = []
    for gen, shape in zip(domains, shapes):
        if shape == "noncontig":
            vals.append(noncontig(gen(rng, (2, 3), dtype)))
        else:
            vals.append(np.asarray(gen(rng, shape, dtype)))
    return vals


def _case_params(cases, float_dtypes=("float32", "float64")):
    out = []
    for c in cases:
        for dt in tuple(float_dtypes) + tuple(c.ints):
            out.append(pytest.param(c, dt, id=f"{c.name}-{dt}"))
    return out


def _eval_case(case, shapes, dtype, static, mode, rng):
    vals = _values(case, shapes, dtype, rng)
    xs = [sym(dtype, v.shape, static) for v in vals]
    got = run(mode, xs, case.fn(*xs), vals)
    with np.errstate(all="ignore"):
        want = case.ref(*vals)
    return got, np.asarray(want)


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("case,dtype", _case_params(UNARY))
def test_unary_matches_numpy(case, dtype, shape, static, mode, rng):
    got, want = _eval_case(case, [shape], dtype, static, mode, rng)
    check_against(got, want)


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("case,dtype", _case_params(BINARY + COMPARISONS))
def test_binary_matches_numpy(case, dtype, shapes, static, mode, rng):
    got, want = _eval_case(case, shapes, dtype, static, mode, rng)
    check_against(got, want)


@pytest.mark.parametrize("fn,ref", [(T.int_div, np.floor_divide), (T.mod, np.mod),
                                    (T.true_div, np.true_divide)], ids=["int_div", "mod", "true_div"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "float32", "float64"])
def test_division_by_zero_follows_numpy(fn, ref, dtype, mode):
    a = np.array([-7, -1, 0, 1, 7, 5, 1, -2], dtype="int16").astype(dtype)
    b = np.array([0, 0, 0, 0, 0, 2, 3, 3], dtype=dtype)
    x, y = T.vector(dtype=dtype), T.vector(dtype=dtype)
    got = run(mode, [x, y], fn(x, y), [a, b])
    if fn is T.true_div and dtype in ("int8", "uint8"):
        # Theano's rule: int/int true division gives float64 (floatX), NumPy gives float16
        # for 8 bits: compare with NumPy's float64 division
        assert got.dtype == "float64"
        a, b = a.astype("float64"), b.astype("float64")
    with np.errstate(all="ignore"):
        want = ref(a, b)
    check_against(got, want)


def test_integer_pow_with_negative_exponent_raises(mode):
    x, y = T.lvector(), T.lvector()
    f = theanine.function([x, y], x ** y, mode=mode)
    np.testing.assert_array_equal(f(np.array([2, 3]), np.array([3, 0])), [8, 1])
    with pytest.raises(ValueError, match="negative"):
        f(np.array([2]), np.array([-1]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_ties(dtype, mode):
    v = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.4, 0.6], dtype=dtype)
    x = T.vector(dtype=dtype)
    f = theanine.function([x], [T.round(x), T.round(x, "half_away_from_zero")], mode=mode)
    even, away = f(v)
    check_against(even, np.round(v))
    check_against(away, np.array([-4, -3, -2, -1, 1, 2, 3, 4, -0, 1], dtype=dtype))
    with pytest.raises(ValueError, match="mode"):
        T.round(x, "up")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("shapes", [((3,), (3,), (3,)), ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3)),
                                    ((0, 3), (3,), (1,))], ids=str)
def test_clip_and_switch(dtype, shapes, mode, rng):
    xv = (rng.uniform(-5, 5, shapes[0]) if dtype != "int32" else rng.integers(-5, 5, shapes[0])).astype(dtype)
    lo = np.full(shapes[1], -1, dtype)
    hi = np.full(shapes[2], 2, dtype)
    cond = rng.uniform(size=shapes[1]) > 0.5
    x, a, b = (sym(dtype, s) for s in shapes)
    c = sym("bool", shapes[1])
    f = theanine.function([x, a, b, c], [T.clip(x, a, b), T.switch(c, x, b), T.where(c, a, x)], mode=mode)
    clipped, sw, wh = f(xv, lo, hi, cond)
    check_against(clipped, np.clip(xv, lo, hi))
    check_against(sw, np.where(cond, xv, hi))
    check_against(wh, np.where(cond, lo, xv))


def test_switch_on_non_bool_condition_and_scalar_branches(mode):
    c = T.ivector()
    x = T.fvector()
    out = T.switch(c, x, 0.5)
    assert out.dtype == "float32"
    got = run(mode, [c, x], out, [np.array([0, 2, -1], "int32"), np.array([1, 2, 3], "float32")])
    check_against(got, np.array([0.5, 2, 3], "float32"))


# --- logic and bitwise --------------------------------------------------------------------

LOGIC = [(T.and_, np.bitwise_and, np.logical_and), (T.or_, np.bitwise_or, np.logical_or),
         (T.xor, np.bitwise_xor, np.logical_xor)]


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint8"])
@pytest.mark.parametrize("shapes", [((4,), (4,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((0,), (0,))], ids=str)
def test_logic_and_bitwise(dtype, shapes, mode, rng):
    hi = 2 if dtype == "bool" else 100
    a, b = (rng.integers(0, hi, s).astype(dtype) for s in shapes)
    x, y = sym(dtype, shapes[0]), sym(dtype, shapes[1])
    outs = [fn(x, y) for fn, _, _ in LOGIC] + [T.invert(x), ~x, x & y, x | y, x ^ y]
    got = run(mode, [x, y], outs, [a, b])
    want = [fn(a, b) for _, fn, _ in LOGIC] + [np.invert(a), ~a, a & b, a | b, a ^ b]
    for g, w in zip(got, want):
        check_against(g, w)


@pytest.mark.parametrize("dtype", ["bool", "int32", "float64", "float32"])
def test_logical_not(dtype, mode, rng):
    a = rng.integers(0, 3, (2, 3)).astype(dtype)
    x = sym(dtype, a.shape)
    check_against(run(mode, [x], T.logical_not(x), [a]), np.logical_not(a))
    if dtype == "bool":
        check_against(run(mode, [x], ~x, [a]), ~a)


@pytest.mark.parametrize("fn", [T.and_, T.or_, T.xor, T.invert])
def test_bitwise_on_floats_is_a_type_error(fn):
    x = T.dvector()
    with pytest.raises(TypeError, match="integer or bool"):
        fn(x, x) if fn is not T.invert else fn(x)


# --- shifts --------------------------------------------------------------------------------

INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
SHIFT_SHAPES = [((7,), (7,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((1,), (1,)), ((0, 3), (3,)),
                ((), (2, 3)), ((2, 3), ()), ((2, 3), "noncontig")]


def _shift_operands(dtype, shapes, rng):
    """Values over the whole range of ``dtype`` and counts from -2 (signed) to bits + 2, so
    that out-of-range counts and negative values are covered."""
    info, bits = np.iinfo(dtype), 8 * np.dtype(dtype).itemsize
    low = -2 if info.min < 0 else 0
    gens = [lambda s: rng.integers(info.min, info.max, s, dtype=dtype, endpoint=True),
            lambda s: rng.integers(low, bits + 3, s).astype(dtype)]
    return [noncontig(gen((2, 3))) if s == "noncontig" else np.asarray(gen(s))
            for gen, s in zip(gens, shapes)]


@pytest.mark.parametrize("shapes", SHIFT_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_shifts_match_numpy(dtype, shapes, mode, rng):
    a, n = _shift_operands(dtype, shapes, rng)
    x, y = sym(dtype, a.shape), sym(dtype, n.shape)
    got = run(mode, [x, y], [T.left_shift(x, y), T.right_shift(x, y), x << y, x >> y], [a, n])
    for g, w in zip(got, [np.left_shift(a, n), np.right_shift(a, n)] * 2):
        check_against(g, w)


def test_shift_edge_counts_and_mixed_dtypes(mode):
    a = np.array([1, -1, -128, 127, 5, -6, 64, -64], "int8")
    n = np.array([0, 7, 8, 9, -1, -100, 6, 100], "int8")
    x, y = T.bvector(), T.bvector()
    u = T.vector(dtype="uint32")
    i = T.lvector()
    w = np.array([1, 2**31 + 5, 2**32 - 1], "uint32")
    k = np.array([31, 32, -3], "int64")
    got = run(mode, [x, y, u, i], [x << y, x >> y, u >> 8, 3 << u[:1], u << i, u >> i],
              [a, n, w, k])
    want = [a << n, a >> n, w >> np.uint32(8), np.uint32(3) << w[:1], w << k, w >> k]
    for g, v in zip(got, want):
        check_against(g, v)


@pytest.mark.parametrize("dtypes", [("float64", "int32"), ("int32", "float32"), ("bool", "int8"),
                                    ("uint64", "int64")], ids=str)
def test_shift_needs_integers(dtypes):
    x, y = T.vector(dtype=dtypes[0]), T.vector(dtype=dtypes[1])
    for fn in (T.left_shift, T.right_shift):
        with pytest.raises(TypeError, match="shift"):
            fn(x, y)


def test_polygamma_iround_fill_real_imag(mode):
    a = np.array([0.7, 1.5, 2.5, -0.5, -2.5])
    x, m = T.dvector(), T.dmatrix()
    outs = [T.polygamma(0, x), T.polygamma(1, x), T.tri_gamma(x), T.iround(x),
            T.iround(x, "half_away_from_zero"), T.fill(m, x), T.second(m, 3.0), T.real(x), T.imag(x)]
    got = run(mode, [x, m], outs, [a, np.zeros((2, 5))])
    want = [sps.digamma(a), sps.polygamma(1, a), sps.polygamma(1, a), np.round(a).astype("int64"),
            np.array([1, 2, 3, -1, -3]), np.broadcast_to(a, (2, 5)), np.full((2, 5), 3.0), a, 0 * a]
    for g, w in zip(got, want):
        check_against(g, w)
    with pytest.raises(ValueError, match="polygamma"):
        T.polygamma(2, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_isnan_isinf(dtype, mode):
    a = np.array([0.0, np.nan, np.inf, -np.inf, 1.5, -0.0], dtype=dtype)
    x = T.vector(dtype=dtype)
    nan, inf = run(mode, [x], [T.isnan(x), T.isinf(x)], [a])
    check_against(nan, np.isnan(a))
    check_against(inf, np.isinf(a))


# --- casts and dtype rules ---------------------------------------------------------------

CAST_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "float32", "float64"]


@pytest.mark.parametrize("src", CAST_DTYPES)
@pytest.mark.parametrize("dst", CAST_DTYPES)
def test_cast(src, dst, mode, rng):
    if src == "bool":
        a = rng.integers(0, 2, (2, 3)).astype(bool)
    elif np.dtype(src).kind == "f":
        # fractions, and negatives only where the target is signed: float -> int truncates
        lo = -100 if np.dtype(dst).kind in "if" else 0
        a = rng.uniform(lo, 100, (2, 3)).astype(src)
        a[0, 0] = 0.0
    else:
        lo = -100 if np.dtype(src).kind == "i" and np.dtype(dst).kind in "ifb" else 0
        a = rng.integers(lo, 100, (2, 3)).astype(src)
    x = sym(src, a.shape)
    f = theanine.function([x], [T.cast(x, dst), x.astype(dst)], mode=mode)
    for got in f(a):
        check_against(got, a.astype(dst))


def test_cast_floatx_and_noop():
    x = T.ivector()
    assert T.cast(x, "floatX").dtype == theanine.config.floatX
    assert T.cast(x, "int32") is x


@pytest.mark.parametrize("make,expr,dtype", [
    (T.fvector, lambda x: x * 2.0, "float32"),      # python floats adopt the tensor's float dtype
    (T.fvector, lambda x: 2.0 * x, "float32"),
    (T.fvector, lambda x: x * 2, "float32"),
    (T.fvector, lambda x: x / 3, "float32"),
    (T.dvector, lambda x: x + 1, "float64"),
    (T.ivector, lambda x: x * 2, "int32"),          # python ints adopt the tensor's int dtype
    (T.bvector, lambda x: x + 1, "int8"),
    (T.bvector, lambda x: x + 1000, "int16"),       # ... unless they do not fit
    (T.ivector, lambda x: x * 2.5, "float64"),      # float constant with an int tensor: floatX
    (T.ivector, lambda x: x / 2, "float64"),        # int / int true division -> float64
    (T.lvector, lambda x: x // 2, "int64"),
    (T.fvector, lambda x: T.sqrt(x), "float32"),
    # Theano's rule, not NumPy's: small ints go to floatX (float64 here), where NumPy's
    # sqrt/division of int8 gives float16
    (T.bvector, lambda x: T.sqrt(x), "float64"),
    (T.bvector, lambda x: x / x, "float64"),
    (T.ivector, lambda x: T.exp(x), "float64"),
    (T.fvector, lambda x: x * np.float64(2.0), "float64"),  # NumPy scalars keep their dtype
    (T.fvector, lambda x: T.relu(x, 0.1), "float32"),
])
def test_python_scalar_dtype_rules(make, expr, dtype, mode):
    x = make()
    out = expr(x)
    assert out.dtype == dtype
    value = np.array([1, 2, 3], dtype=x.dtype)
    got = run(mode, [x], out, [value])
    assert got.dtype == dtype


FLOAT_FUNCS_ON_INTS = ["sqrt", "exp", "exp2", "log", "log2", "log1p", "sin", "cos", "arctan", "tanh",
                       "floor", "round_half_to_even", "erf", "erfc", "gammaln", "psi", "sigmoid",
                       "softplus", "reciprocal", "arcsinh"]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "bool"])
@pytest.mark.parametrize("case", [c for c in UNARY if c.name in FLOAT_FUNCS_ON_INTS], ids=lambda c: c.name)
def test_float_functions_of_integers(case, dtype, mode):
    """Integers go to floats: float64 here (Theano: floatX for 8/16-bit ints, else float64),
    where NumPy picks float16 for 8-bit and float32 for 16-bit inputs. Values: NumPy's in float64."""
    a = np.array([1, 2, 3, 1], dtype=dtype)
    x = sym(dtype, a.shape)
    got = run(mode, [x], case.fn(x), [a])
    assert got.dtype == "float64"
    check_against(got, case.ref(a.astype("float64")))


@pytest.mark.parametrize("da,db", [("int8", "int32"), ("int32", "float32"), ("float32", "float64"),
                                   ("bool", "int8"), ("uint8", "int8"), ("int64", "float32"),
                                   ("uint16", "int16"), ("bool", "float32")])
@pytest.mark.parametrize("fn,ref", [(T.add, np.add), (T.mul, np.multiply), (T.maximum, np.maximum)],
                         ids=["add", "mul", "maximum"])
def test_mixed_dtypes_upcast_like_numpy(da, db, fn, ref, mode, rng):
    a = rng.integers(0, 5, (2, 3)).astype(da)
    b = rng.integers(0, 5, (3,)).astype(db)
    x, y = sym(da, a.shape), sym(db, b.shape)
    check_against(run(mode, [x, y], fn(x, y), [a, b]), ref(a, b))


# --- gradients ---------------------------------------------------------------------------

GRAD_BINARY = [c for c in BINARY if c.grad != "none"]


@pytest.mark.parametrize("case", UNARY, ids=lambda c: c.name)
def test_unary_grad(case, mode, rng):
    x = case.domains[0](rng, (2, 3), "float64")
    verify_grad(case.fn, [x], rng=rng, mode=mode)
    verify_grad(case.fn, [np.asarray(case.domains[0](rng, (), "float64"))], rng=rng, mode=mode)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3), (3,)), ((3,), (2, 3)),
                                    ((2, 3), (1, 3)), ((2, 1), (1, 3)), ((), (2, 3))], ids=str)
@pytest.mark.parametrize("case", GRAD_BINARY, ids=lambda c: c.name)
def test_binary_grad(case, shapes, mode, rng):
    # the verify_grad inputs have no static shape: (1, 3) against (2, 3) broadcasts at run time
    vals = [np.asarray(d(rng, s, "float64")) for d, s in zip(case.domains, shapes)]
    verify_grad(case.fn, vals, rng=rng, mode=mode)


def test_mod_grad(mode, rng):
    # away from the jumps of x % y: x / y = k + f with f in (0.2, 0.8)
    y = S(0.5, 2)(rng, (2, 3), "float64")
    x = y * (rng.integers(-3, 3, (2, 3)) + rng.uniform(0.2, 0.8, (2, 3)))
    verify_grad(T.mod, [x, y], rng=rng, mode=mode)
    verify_grad(lambda a, b: a % b, [x, y[0]], rng=rng, mode=mode)


@pytest.mark.parametrize("which", ["row", "col"])
@pytest.mark.parametrize("case", [c for c in GRAD_BINARY if c.grad == "smooth"], ids=lambda c: c.name)
def test_binary_grad_static_broadcastable(case, which, mode, rng):
    # one operand statically broadcastable ((1, 3) row or (2, 1) col), the other (2, 3)
    small = (1, 3) if which == "row" else (2, 1)
    pattern = (1, None) if which == "row" else (None, 1)
    a = np.asarray(case.domains[0](rng, (2, 3), "float64"))
    b = np.asarray(case.domains[1](rng, small, "float64"))
    verify_grad(lambda x, y: case.fn(x, T.specify_shape(y, pattern)), [a, b], rng=rng, mode=mode)
    verify_grad(lambda y, x: case.fn(T.specify_shape(y, pattern), x), [b, a], rng=rng, mode=mode)

    # and with T.row / T.col inputs directly: the gradient keeps the input's static shape,
    # and equals the one computed with run-time broadcasting (checked by verify_grad above)
    x, y = T.dmatrix(), (T.drow() if which == "row" else T.dcol())
    assert y.type.shape == pattern
    w = rng.uniform(0.5, 1.5, (2, 3))
    gx, gy = T.grad(T.sum(case.fn(x, y) * w), [x, y])
    assert gy.type.broadcastable == y.type.broadcastable
    x2, y2 = T.dmatrix(), T.dmatrix()
    want = run(mode, [x2, y2], T.grad(T.sum(case.fn(x2, y2) * w), [x2, y2]), [a, b])
    got = run(mode, [x, y], [gx, gy], [a, b])
    for g, wv in zip(got, want):
        check_against(g, wv)


def test_runtime_broadcast_grad_is_summed(mode, rng):
    """A dmatrix fed (1, 3) next to a (2, 3) one: its gradient is summed over the rows."""
    x, y = T.dmatrix("x"), T.dmatrix("y")
    w = rng.uniform(size=(2, 3))
    cost = T.sum((x * y + y) * w)
    gx, gy = T.grad(cost, [x, y])
    a = rng.uniform(size=(2, 3))
    b = rng.uniform(size=(1, 3))
    got_gx, got_gy = run(mode, [x, y], [gx, gy], [a, b])
    check_against(got_gx, b * w)
    check_against(got_gy, ((a + 1) * w).sum(axis=0, keepdims=True))
    # both inputs (1, 3) at run time, broadcast against the (2, 3) constant
    got_gx, got_gy = run(mode, [x, y], [gx, gy], [a[:1], b])
    check_against(got_gx, (b * w).sum(axis=0, keepdims=True))
    check_against(got_gy, ((a[:1] + 1) * w).sum(axis=0, keepdims=True))
    # and with the same sizes everywhere: nothing to sum
    x2, y2 = T.dmatrix(), T.dmatrix()
    g2 = T.grad(T.sum(x2 * y2), y2)
    check_against(run(mode, [x2, y2], g2, [a[:1], b]), a[:1])


def test_runtime_broadcast_grad_both_ways(mode, rng):
    x, y = T.dmatrix(), T.dmatrix()
    gx, gy = T.grad(T.sum(T.sqr(x - y)), [x, y])
    a, b = rng.uniform(size=(2, 1)), rng.uniform(size=(1, 3))
    got_gx, got_gy = run(mode, [x, y], [gx, gy], [a, b])
    d = 2 * (a - b)
    check_against(got_gx, d.sum(axis=1, keepdims=True))
    check_against(got_gy, -d.sum(axis=0, keepdims=True))


# The cost reaches x only through a bool/int intermediate: the gradient is zero, as in Theano.


@pytest.mark.parametrize("fn", [*(pytest.param(f, id=f.__name__)
                                  for f in (T.floor, T.ceil, T.trunc, T.round, T.sgn)),
                                pytest.param(lambda x: T.cast(T.eq(x, x), "float64") * x.sum() * 0,
                                             id="eq"),
                                pytest.param(lambda x: T.int_div(x, 2.0), id="int_div"),
                                pytest.param(lambda x: T.cast(T.lt(x, 0.5), "float64"), id="lt"),
                                pytest.param(lambda x: T.switch(T.ge(x, 0.5), 1.0, 0.0), id="ge_switch"),
                                pytest.param(lambda x: T.cast(T.cast(x, "int32"), "float64"), id="via_int"),
                                pytest.param(lambda x: T.cast(T.cast(x, "int32") >> 1, "float64"),
                                             id="shift")])
def test_non_differentiable_ops_have_zero_gradient(fn, mode, rng):
    x = T.dvector()
    g = T.grad(T.sum(fn(x)), x)
    got = run(mode, [x], g, [rng.uniform(0, 3, 4)])
    check_against(got, np.zeros(4))


def test_comparison_grad_is_zero_for_both_inputs(mode):
    x, y = T.dvector(), T.dvector()
    for cmp in (T.lt, T.le, T.gt, T.ge, T.eq, T.neq):
        cost = T.sum(T.switch(cmp(x, y), x, y))
        gx, gy = T.grad(cost, [x, y])
        a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
        got_gx, got_gy = run(mode, [x, y], [gx, gy], [a, b])
        mask = {T.lt: a < b, T.le: a <= b, T.gt: a > b, T.ge: a >= b, T.eq: a == b, T.neq: a != b}[cmp]
        check_against(got_gx, mask.astype("float64"))
        check_against(got_gy, (~mask).astype("float64"))


def test_clip_switch_relu_grad(mode, rng):
    x = S(0.2, 3)(rng, (2, 3), "float64")
    verify_grad(lambda v: T.clip(v, -1.0, 1.5), [x], rng=rng, mode=mode)
    verify_grad(lambda v, lo, hi: T.clip(v, lo, hi), [x, np.full(3, -1.0), np.full((2, 1), 1.5)], rng=rng, mode=mode)
    verify_grad(lambda c, a, b: T.switch(T.gt(c, 0), a, b),
                [x, rng.uniform(size=(2, 3)), rng.uniform(size=(3,))], rng=rng, mode=mode)
    verify_grad(lambda v: T.relu(v, alpha=0.3), [x], rng=rng, mode=mode)


def test_float32_grad(mode, rng):
    x = U(0.5, 2)(rng, (2, 3), "float32")
    verify_grad(lambda v: T.exp(v) * T.log(v) / (1 + v * v), [x], rng=rng, mode=mode)


# --- Python operators on variables ---------------------------------------------------------

A = np.array([[1.5, -2.0, 3.0], [0.5, 4.0, -1.25]])
B = np.array([0.75, 2.5, -1.5])

FLOAT_OPS = [
    ("add", lambda x, y: x + y), ("sub", lambda x, y: x - y), ("mul", lambda x, y: x * y),
    ("truediv", lambda x, y: x / y), ("floordiv", lambda x, y: x // y), ("mod", lambda x, y: x % y),
    ("lt", lambda x, y: x < y), ("le", lambda x, y: x <= y), ("gt", lambda x, y: x > y),
    ("ge", lambda x, y: x >= y),
]


@pytest.mark.parametrize("name,op", FLOAT_OPS, ids=[n for n, _ in FLOAT_OPS])
def test_operators_with_tensors_scalars_and_arrays(name, op, mode):
    x, y = T.dmatrix(), T.dvector()
    s = np.float64(-1.75)
    outs = [op(x, y), op(y, x), op(x, 2.5), op(2.5, x), op(x, B), op(B, x), op(A, y), op(s, x),
            op(x, 3), op(3, x)]
    got = run(mode, [x, y], outs, [A, B])
    want = [op(A, B), op(B, A), op(A, 2.5), op(2.5, A), op(A, B), op(B, A), op(A, B), op(s, A),
            op(A, 3), op(3, A)]
    for g, w in zip(got, want):
        check_against(g, w)


def test_pow_operators(mode):
    x = T.dmatrix()
    a = np.abs(A)
    outs = [x ** 2, 2 ** x, x ** x, x ** np.float64(0.5), np.full(3, 2.0) ** x]
    got = run(mode, [x], outs, [a])
    for g, w in zip(got, [a ** 2, 2 ** a, a ** a, a ** 0.5, np.full(3, 2.0) ** a]):
        check_against(g, w)


def test_unary_operators(mode):
    x = T.dmatrix()
    i = T.lvector()
    got = run(mode, [x, i], [-x, abs(x), +x, ~i], [A, np.array([0, 5, -3])])
    check_against(got[0], -A)
    check_against(got[1], np.abs(A))
    check_against(got[2], A)
    check_against(got[3], ~np.array([0, 5, -3]))


def test_bitwise_operators_with_python_ints(mode):
    i = T.ivector()
    v = np.array([1, 6, 12], "int32")
    outs = [i & 5, 5 & i, i | 8, 8 | i, i ^ 3, 3 ^ i, np.int32(7) & i]
    got = run(mode, [i], outs, [v])
    for g, w in zip(got, [v & 5, 5 & v, v | 8, 8 | v, v ^ 3, 3 ^ v, 7 & v]):
        check_against(g, w)
    b = T.bvector()
    c = T.vector(dtype="bool")
    bv = np.array([True, False, True])
    got = run(mode, [c], [c & True, True | c, c ^ bv, ~c], [bv])
    for g, w in zip(got, [bv & True, True | bv, bv ^ bv, ~bv]):
        check_against(g, w)
    assert (b & 1).dtype == "int8"


def test_matmul_operator(mode):
    x, y = T.dmatrix(), T.dvector()
    m = np.arange(6.0).reshape(3, 2)
    got = run(mode, [x, y], [x @ y, y @ m, A @ y, x @ m], [A, B])
    for g, w in zip(got, [A @ B, B @ m, A @ B, A @ m]):
        check_against(g, w)


def test_comparison_operators_are_symbolic():
    x = T.dvector()
    assert (x < 1).dtype == "bool"
    assert (1 < x).dtype == "bool"  # reflected: 1 < x is x > 1
    with pytest.raises(TypeError, match="truth value"):
        bool(x < 1)


# --- static shape errors ------------------------------------------------------------------

def test_static_broadcast_error_names_shapes():
    a = T.tensor(dtype="float64", shape=(2, 3))
    b = T.tensor(dtype="float64", shape=(4,))
    with pytest.raises(ValueError) as info:
        a + b
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        T.maximum(a, b)


def test_runtime_broadcast_error(mode):
    x, y = T.dmatrix(), T.dmatrix()
    f = theanine.function([x, y], x + y, mode=mode)
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


def test_wrong_arity():
    x = T.dvector()
    with pytest.raises(TypeError):
        T.sub(x)
    assert T.add(x) is x
    assert T.add(x, x, x).owner is not None


@pytest.mark.parametrize("op", [operator.add, operator.mul, T.maximum])
def test_static_shape_is_inferred(op):
    a = T.tensor(dtype="float32", shape=(2, 1, None))
    b = T.tensor(dtype="float32", shape=(1, 5, 3))
    assert op(a, b).type.shape == (2, 5, 3)
    c = T.tensor(dtype="float32", shape=(None, 1))
    assert op(c, b).type.shape == (1, 5, 3)
