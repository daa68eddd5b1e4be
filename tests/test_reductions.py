"""Reductions (sum, prod, mean, var, std, max, min, all, any, logsumexp, argmax, argmin,
cumsum, cumprod) against NumPy, their gradients against finite differences, and
their errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special as sps

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def check_against(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, equal_nan=True, **TOL[str(want.dtype)])
    else:
        np.testing.assert_array_equal(got, want)


def sym(dtype, shape, static):
    return T.tensor(dtype=dtype, shape=tuple(shape) if static else (None,) * len(shape))


def values(rng, shape, dtype):
    if dtype == "bool":
        return rng.uniform(size=shape) > 0.4
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 4, shape).astype(dtype)
    if np.dtype(dtype).kind == "i":
        return rng.integers(-2, 4, shape).astype(dtype)  # small: int8 products must not overflow
    return rng.uniform(-2, 2, shape).astype(dtype)


def _np_var(ddof):
    return lambda x, axis, keepdims: np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _np_std(ddof):
    return lambda x, axis, keepdims: np.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _t_var(ddof):
    return lambda x, axis, keepdims: T.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _t_std(ddof):
    return lambda x, axis, keepdims: T.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _np(fn):
    return lambda x, axis, keepdims: fn(x, axis=axis, keepdims=keepdims)


def _t(fn):
    return lambda x, axis, keepdims: fn(x, axis=axis, keepdims=keepdims)


def _np_logsumexp(x, axis, keepdims):
    # the direct formula: these values are small (scipy's logsumexp mishandles 0-d inputs
    # with keepdims and empty inputs with several axes); large values are tested below
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


# name, symbolic, reference, dtypes, defined on empty slices
REDUCERS = [
    ("sum", _t(T.sum), _np(np.sum), ("float32", "float64", "int8", "int32", "uint8", "bool"), True),
    ("prod", _t(T.prod), _np(np.prod), ("float32", "float64", "int8", "int64", "uint8", "bool"), True),
    ("mean", _t(T.mean), _np(np.mean), ("float32", "float64", "int32", "bool"), True),
    ("var", _t_var(0), _np_var(0), ("float32", "float64", "int32"), True),
    ("var_ddof1", _t_var(1), _np_var(1), ("float64",), True),
    ("std", _t_std(0), _np_std(0), ("float32", "float64", "int16"), True),
    ("std_ddof1", _t_std(1), _np_std(1), ("float64",), True),
    ("max", _t(T.max), _np(np.max), ("float32", "float64", "int8", "uint8", "bool"), False),
    ("min", _t(T.min), _np(np.min), ("float32", "float64", "int64", "uint8", "bool"), False),
    ("all", _t(T.all), _np(np.all), ("bool", "float64", "int32"), True),
    ("any", _t(T.any), _np(np.any), ("bool", "float64", "int32"), True),
    ("logsumexp", _t(T.logsumexp), _np_logsumexp, ("float32", "float64"), False),
]

AXES = [
    ((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-1, 0)), ((2, 3, 4), (0, 1, 2)), ((2, 3, 4), ()), ((2, 3, 4), [1]),
    ((1, 3), None), ((1, 3), 0), ((1, 3), 1), ((3, 1), (0, 1)),
    ((), None), ((), ()), ((3,), 0), ((3,), -1),
]
EMPTY_AXES = [((0, 3), 0), ((0, 3), None), ((0, 3), (0, 1)), ((2, 0), -1), ((0,), 0)]
EMPTY_OK_AXES = [((0, 3), 1), ((2, 0), 0), ((0, 3, 2), (1, 2))]  # reduces non-empty axes only


def _params():
    out = []
    for name, tf, nf, dtypes, empty_ok in REDUCERS:
        axes = AXES + EMPTY_OK_AXES + (EMPTY_AXES if empty_ok else [])
        for dt in dtypes:
            for shape, axis in axes:
                out.append(pytest.param(tf, nf, dt, shape, axis, id=f"{name}-{dt}-{shape}-{axis}"))
    return out


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("tfn,nfn,dtype,shape,axis", _params())
def test_reduction_matches_numpy(tfn, nfn, dtype, shape, axis, static, mode, rng):
    a = values(rng, shape, dtype)
    x = sym(dtype, shape, static)
    outs = [tfn(x, axis, False), tfn(x, axis, True)]
    got = theanine.function([x], outs, mode=mode)(a)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy warns for the mean/var of empty slices (nan)
        want = [nfn(a, np_axis, False), nfn(a, np_axis, True)]
    for g, w in zip(got, want):
        check_against(g, w)
    for o, w in zip(outs, want):
        assert o.ndim == np.ndim(w)
        if static:  # the static shape agrees with NumPy's
            assert o.type.shape == np.shape(w), (o.type.shape, np.shape(w))


def test_integer_sums_accumulate_in_64_bits(mode):
    x = T.bvector()
    a = np.full(300, 100, dtype="int8")
    f = theanine.function([x], [T.sum(x), T.prod(x[:3]), x.sum(), T.sum(x, dtype="int16"),
                                T.mean(x)], mode=mode)
    s, p, s2, s16, m = f(a)
    check_against(s, np.sum(a))
    assert s.dtype == "int64" and s == 30000
    check_against(p, np.prod(a[:3]))
    check_against(s2, np.sum(a))
    check_against(s16, np.sum(a, dtype="int16"))
    check_against(m, np.mean(a))
    u = T.vector(dtype="uint8")
    assert T.sum(u).dtype == "uint64"
    assert T.sum(T.vector(dtype="bool")).dtype == "int64"
    assert T.sum(T.fvector()).dtype == "float32"
    assert T.sum(T.fvector(), dtype="float64").dtype == "float64"


def test_float32_sum_stays_float32(mode, rng):
    x = T.fmatrix()
    a = rng.uniform(size=(50, 40)).astype("float32")
    f = theanine.function([x], [x.sum(), x.mean(axis=0), x.var(), x.std(axis=1)], mode=mode)
    for g, w in zip(f(a), [a.sum(), a.mean(axis=0), a.var(), a.std(axis=1)]):
        check_against(g, w)


# --- empty inputs where NumPy raises -------------------------------------------------------

@pytest.mark.parametrize("fn,name", [(T.max, "max"), (T.min, "min")])
@pytest.mark.parametrize("shape,axis", EMPTY_AXES)
def test_max_min_of_empty_raise(fn, name, shape, axis, mode):
    # static shape: at build time
    with pytest.raises(ValueError, match=name):
        fn(T.tensor(dtype="float64", shape=shape), axis=axis)
    # run-time shape: when called
    x = T.tensor(dtype="float64", shape=(None,) * len(shape))
    f = theanine.function([x], fn(x, axis=axis), mode=mode)
    with pytest.raises(ValueError, match=name):
        f(np.zeros(shape))


@pytest.mark.parametrize("fn,name", [(T.argmax, "argmax"), (T.argmin, "argmin")])
def test_argmax_argmin_of_empty_raise(fn, name, mode):
    x = T.dmatrix()
    for axis, shape in [(None, (0, 3)), (0, (0, 3)), (1, (2, 0))]:
        f = theanine.function([x], fn(x, axis=axis), mode=mode)
        with pytest.raises(ValueError, match=name):
            f(np.zeros(shape))


# --- argmax / argmin ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "uint8", "bool"])
@pytest.mark.parametrize("shape,axis", [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1),
                                        ((2, 3, 4), -1), ((1, 3), 0), ((3,), 0), ((), None),
                                        ((0, 3), 1), ((3,), -1)])
@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_argmax_argmin(kind, dtype, shape, axis, mode, rng):
    a = values(rng, shape, dtype)
    if dtype not in ("bool",):
        a = np.asarray(a)
    x = T.tensor(dtype=dtype, shape=(None,) * len(shape))
    tf, nf = getattr(T, kind), getattr(np, kind)
    got = theanine.function([x], [tf(x, axis=axis), tf(x, axis=axis, keepdims=True)], mode=mode)(a)
    check_against(got[0], np.asarray(nf(a, axis=axis), dtype="int64"))
    check_against(got[1], np.asarray(nf(a, axis=axis, keepdims=True), dtype="int64"))


def test_max_and_argmax(mode):
    x = T.dmatrix()
    a = np.array([[1.0, 3.0, 2.0], [5.0, 4.0, 6.0]])
    mx, am = T.max_and_argmax(x, axis=1)
    got = theanine.function([x], [mx, am], mode=mode)(a)
    check_against(got[0], a.max(axis=1))
    check_against(got[1], a.argmax(axis=1))


def test_argmax_ties_pick_the_first(mode):
    x = T.dmatrix()
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    f = theanine.function([x], [T.argmax(x, axis=1), T.argmin(x, axis=0), T.argmax(x)], mode=mode)
    got = f(a)
    for g, w in zip(got, [[1, 0], [0, 1, 1], 1]):
        np.testing.assert_array_equal(g, w)


# --- cumsum / cumprod ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int32", "uint8", "bool"])
@pytest.mark.parametrize("shape,axis", [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1),
                                        ((2, 3, 4), -1), ((2, 3, 4), -3), ((1, 3), 0), ((3,), 0),
                                        ((0, 3), 0), ((0, 3), 1), ((0, 3), None), ((), None)])
@pytest.mark.parametrize("kind", ["cumsum", "cumprod"])
def test_cumsum_cumprod(kind, dtype, shape, axis, mode, rng):
    a = values(rng, shape, dtype)
    x = T.tensor(dtype=dtype, shape=(None,) * len(shape))
    xs = T.tensor(dtype=dtype, shape=shape)
    tf, nf = getattr(T, kind), getattr(np, kind)
    want = nf(a, axis=axis)
    got = theanine.function([x, xs], [tf(x, axis=axis), tf(xs, axis=axis), getattr(x, kind)(axis)],
                            mode=mode)(a, a)
    for g in got:
        check_against(g, want)
    assert tf(xs, axis=axis).type.shape == want.shape


# --- errors at build time ------------------------------------------------------------------

ALL_REDUCERS = [T.sum, T.prod, T.mean, T.var, T.std, T.max, T.min, T.all, T.any, T.logsumexp,
                T.argmax, T.argmin, T.cumsum, T.cumprod]


@pytest.mark.parametrize("fn", ALL_REDUCERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [2, -3, 7])
def test_invalid_axis_raises_at_build_time(fn, axis):
    x = T.dmatrix()
    with pytest.raises(ValueError, match=rf"axis {axis}\b"):
        fn(x, axis=axis)


@pytest.mark.parametrize("fn", [T.sum, T.prod, T.mean, T.var, T.max, T.all, T.logsumexp],
                         ids=lambda f: f.__name__)
def test_invalid_axis_in_tuple_and_repeated_axis(fn):
    x = T.dmatrix()
    with pytest.raises(ValueError, match="axis 5"):
        fn(x, axis=(0, 5))
    with pytest.raises(ValueError, match="repeated"):
        fn(x, axis=(0, -2))
    with pytest.raises(TypeError, match="axis"):
        fn(x, axis=1.5)


@pytest.mark.parametrize("axis", [0, -1, (0,), None])
@pytest.mark.parametrize("name", ["sum", "prod", "mean", "var", "max", "min", "all", "any",
                                  "logsumexp", "argmax", "argmin", "cumsum", "cumprod"])
def test_axis_of_a_0d_input_follows_numpy(name, axis, mode):
    """Axis 0 or -1 of a 0-d input means the whole (one-element) array, as for NumPy's sum,
    cumsum and argmax (NumPy's mean, var, max... raise there instead: theanine accepts it
    uniformly), so the result is the one for axis=None."""
    if name in ("argmax", "argmin", "cumsum", "cumprod") and isinstance(axis, tuple):
        axis = axis[0]
    x = T.dscalar()
    a = np.array(1.5)
    tf = getattr(T, name)
    nf = (lambda v, axis: sps.logsumexp(v, axis=axis)) if name == "logsumexp" else getattr(np, name)
    check_against(theanine.function([x], tf(x, axis=axis), mode=mode)(a), nf(a, axis=None))
    with pytest.raises(ValueError, match="axis 1"):
        tf(x, axis=1)


@pytest.mark.parametrize("fn", [T.cumsum, T.cumprod, T.argmax, T.argmin], ids=lambda f: f.__name__)
def test_single_axis_ops_reject_several_axes(fn):
    with pytest.raises(ValueError, match="single"):
        fn(T.dmatrix(), axis=(0, 1))
    assert fn(T.dmatrix(), axis=(1,)).ndim == (2 if fn in (T.cumsum, T.cumprod) else 1)


# --- gradients ------------------------------------------------------------------------------

GRAD_AXES = [None, 0, 1, -1, (0, 1), ()]
GRAD_REDUCERS = [
    ("sum", T.sum), ("prod", T.prod), ("mean", T.mean), ("max", T.max), ("min", T.min),
    ("logsumexp", T.logsumexp), ("var", T.var), ("std", T.std),
    ("var_ddof1", lambda x, axis, keepdims: T.var(x, axis, ddof=1, keepdims=keepdims)),
    ("std_ddof1", lambda x, axis, keepdims: T.std(x, axis, ddof=1, keepdims=keepdims)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name,fn,axis", [
    pytest.param(name, fn, axis, id=f"{name}-{axis}")
    for name, fn in GRAD_REDUCERS for axis in GRAD_AXES
    # over no axis: std = sqrt(0) has no derivative, and var with ddof=1 is 0/0
    if not (axis == () and name in ("std", "std_ddof1", "var_ddof1"))])
def test_reduction_grad(name, fn, axis, keepdims, mode, rng):
    a = rng.uniform(0.5, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))  # distinct, non-zero
    verify_grad(lambda x: fn(x, axis=axis, keepdims=keepdims), [a], rng=rng, mode=mode)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("n_zeros", [1, 2, 3])
def test_prod_grad_with_exact_zeros(axis, n_zeros, mode, rng):
    a = rng.uniform(0.5, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    # row 0 has one zero, row 1 has n_zeros zeros, row 2 none; column 1 gets zeros too
    a[0, 1] = 0.0
    a[1, :n_zeros] = 0.0
    verify_grad(lambda x: T.prod(x, axis=axis), [a], rng=rng, mode=mode)
    verify_grad(lambda x: T.prod(x, axis=axis, keepdims=True), [a], rng=rng, mode=mode)
    # the exact value: d prod / d x_i = product of the other entries of the slice
    x = T.dmatrix()
    g = theanine.function([x], T.grad(T.sum(T.prod(x, axis=axis)), x), mode=mode)(a)
    want = np.zeros_like(a)
    flat_axis = axis
    for idx in np.ndindex(*a.shape):
        if flat_axis is None:
            others = np.delete(a.ravel(), np.ravel_multi_index(idx, a.shape))
        else:
            line = np.take(a, idx[1 - (flat_axis % 2)], axis=1 - (flat_axis % 2))
            others = np.delete(line, idx[flat_axis % 2])
        want[idx] = np.prod(others)
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=0)


def test_prod_grad_float32_with_zero(mode, rng):
    x = T.fvector()
    a = np.array([2.0, 0.0, 3.0, -1.5], dtype="float32")
    g = theanine.function([x], T.grad(T.prod(x), x), mode=mode)(a)
    check_against(g, np.array([0.0, -9.0, 0.0, 0.0], dtype="float32"))


def test_logsumexp_of_large_values(mode):
    x = T.dmatrix()
    a = np.array([[1000.0, 1000.5, 999.0], [-1000.0, -999.0, -1001.0]])
    f = theanine.function([x], [T.logsumexp(x, axis=1), T.logsumexp(x),
                                T.grad(T.logsumexp(x[0]), x)], mode=mode)
    lse, total, g = f(a)
    assert np.all(np.isfinite(lse)) and np.isfinite(total) and np.all(np.isfinite(g))
    check_against(lse, sps.logsumexp(a, axis=1))
    check_against(total, sps.logsumexp(a))
    want_g = np.zeros_like(a)
    want_g[0] = sps.softmax(a[0])
    check_against(g, want_g)
    verify_grad(lambda v: T.logsumexp(v, axis=1), [a], mode=mode)


def test_logsumexp_with_infinities(mode):
    x = T.dvector()
    f = theanine.function([x], T.logsumexp(x), mode=mode)
    for v in ([-np.inf, -np.inf], [-np.inf, 0.0], [np.inf, 1.0]):
        v = np.array(v)
        with np.errstate(all="ignore"):
            check_against(f(v), sps.logsumexp(v))


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("fn", [T.cumsum, T.cumprod], ids=["cumsum", "cumprod"])
def test_cumulative_grad(fn, axis, mode, rng):
    a = rng.uniform(0.5, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    verify_grad(lambda x: fn(x, axis=axis), [a], rng=rng, mode=mode)
    if axis != 1:
        verify_grad(lambda x: fn(x, axis=axis), [a[0]], rng=rng, mode=mode)


def test_max_grad_goes_to_the_maximum(mode):
    x = T.dmatrix()
    a = np.array([[1.0, 5.0, 2.0], [7.0, -1.0, 3.0]])
    gmax, gmin = theanine.function([x], [T.grad(T.sum(T.max(x, axis=1)), x),
                                         T.grad(T.min(x), x)], mode=mode)(a)
    check_against(gmax, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    check_against(gmin, np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))


def test_reduction_grad_float32(mode, rng):
    a = rng.uniform(0.5, 2.0, (3, 4)).astype("float32")
    verify_grad(lambda x: T.sum(x, axis=1) * T.mean(x, axis=1) + T.var(x, axis=1), [a], rng=rng, mode=mode)


def test_reductions_of_discrete_inputs_have_zero_grad(mode):
    x = T.dvector()
    cost = T.sum(x) + T.cast(T.argmax(x), "float64") * 0 + T.cast(T.any(x), "float64") * 0
    g = theanine.function([x], T.grad(cost, x), mode=mode)(np.array([1.0, 2.0]))
    check_against(g, np.ones(2))
