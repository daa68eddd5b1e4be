"""Indexing (basic, advanced, boolean), set/inc_subtensor, nonzero and take vs NumPy."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

SHAPE = (4, 5, 3)


def sym(arr, static=False):
    arr = np.asarray(arr)
    return T.tensor(dtype=arr.dtype, shape=arr.shape if static else (None,) * arr.ndim)


def compare(mode, out, inputs, values, expect):
    res = theanine.function(inputs, out, mode=mode)(*values)
    expect = np.asarray(expect)
    assert res.shape == expect.shape, (res.shape, expect.shape)
    assert res.dtype == expect.dtype
    np.testing.assert_array_equal(res, expect)
    # the static shape must agree with the value wherever it is known
    assert all(s is None or s == d for s, d in zip(out.type.shape, res.shape)), out.type.shape
    assert out.ndim == res.ndim


# --- basic indexing ------------------------------------------------------------------------

BASIC = [
    np.s_[1], np.s_[-1], np.s_[1:3], np.s_[-3:-1], np.s_[::2], np.s_[::-1], np.s_[3:0:-2],
    np.s_[:, 1], np.s_[:, -2:], np.s_[1, 2, 0], np.s_[-1, :, ::-1], np.s_[None], np.s_[:, None, 1],
    np.s_[..., 1], np.s_[1, ...], np.s_[..., None], np.s_[1, ..., 0], np.s_[...], np.s_[10:],
    np.s_[-10:2], np.s_[2:1], np.s_[::-3, 4:1:-1, None, 0], np.s_[np.int64(2)], np.s_[:0],
    np.s_[None, ..., None], (),
]


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("index", BASIC, ids=repr)
def test_basic_indexing(mode, rng, index, static):
    xv = rng.normal(size=SHAPE)
    x = sym(xv, static)
    compare(mode, x[index], [x], [xv], xv[index])


@pytest.mark.parametrize("index", [np.s_[1], np.s_[1:3], np.s_[::-1], np.s_[:, None, 1],
                                   np.s_[-1, :, ::-2], np.s_[..., 1:], np.s_[3:0:-2, 2]], ids=repr)
def test_basic_indexing_grad(mode, rng, index):
    verify_grad(lambda v: v[index], [rng.normal(size=SHAPE)], mode=mode, rng=rng)


def test_scalar_and_vector_indexing(mode):
    v = T.dvector()
    vv = np.arange(5.0)
    compare(mode, v[3], [v], [vv], vv[3])
    s = T.dscalar()
    compare(mode, s[None], [s], [2.0], np.array([2.0]))
    compare(mode, s[...], [s], [2.0], np.array(2.0))


SYMBOLIC_SLICES = [  # (builder of the index from scalars i, j, k; NumPy equivalent)
    (lambda i, j, k: i, lambda i, j, k: i),
    (lambda i, j, k: np.s_[i:j], lambda i, j, k: np.s_[i:j]),
    (lambda i, j, k: np.s_[i:j:k], lambda i, j, k: np.s_[i:j:k]),
    (lambda i, j, k: np.s_[::k], lambda i, j, k: np.s_[::k]),
    (lambda i, j, k: np.s_[:, i], lambda i, j, k: np.s_[:, i]),
    (lambda i, j, k: np.s_[i, 1:j], lambda i, j, k: np.s_[i, 1:j]),
    (lambda i, j, k: np.s_[:j, ..., i], lambda i, j, k: np.s_[:j, ..., i]),
]


@pytest.mark.parametrize("build,npb", SYMBOLIC_SLICES)
@pytest.mark.parametrize("ijk", [(1, 3, 1), (-1, -4, -1), (0, 10, 2), (2, 1, -2), (-3, 5, 3)])
def test_symbolic_indices(mode, rng, build, npb, ijk):
    xv = rng.normal(size=SHAPE)
    x = sym(xv, static=True)
    i, j, k = T.lscalar("i"), T.iscalar("j"), T.bscalar("k")
    out = x[build(i, j, k)]
    f = theanine.function([x, i, j, k], out, mode=mode, on_unused_input="ignore")
    res = f(xv, *ijk)
    expect = xv[npb(*ijk)]
    assert res.shape == expect.shape
    np.testing.assert_array_equal(res, expect)


def test_static_shapes_of_slices():
    x = T.tensor(dtype="float64", shape=(5, None, 3))
    assert x[1:4].type.shape == (3, None, 3)
    assert x[::-1, :, ::2].type.shape == (5, None, 2)
    assert x[None, 0, ..., None].type.shape == (1, None, 3, 1)
    assert x[:, 7:2].type.shape == (5, None, 3)
    i = T.lscalar()
    assert x[i:].type.shape == (None, None, 3)
    assert x[::T.constant(-1)].type.shape == (5, None, 3)


# --- advanced indexing ---------------------------------------------------------------------

ADVANCED = [  # indices as NumPy values; integer arrays become symbolic inputs
    (np.array([0, 2, -1]),),
    (np.array([[0, 1], [3, 3]]),),
    (slice(None), np.array([4, 0, 0, 1])),
    (np.array([0, 1]), np.array([2, 3])),
    (np.array([0, 1]), slice(None), np.array([2, 0])),  # separated: their dims go first
    (1, slice(None), np.array([2, 0])),  # an int and an array, separated: also first
    (slice(None), 1, np.array([2, 0])),  # adjacent: stay in place
    (np.array([[0], [1]]), np.array([1, 2, 3])),  # broadcasting index arrays
    (Ellipsis, np.array([0, 2])),
    (np.array([1, 2]), None, np.array([0, 1])),
    (None, np.array([1, 2]), np.array([0, 1])),
    (slice(1, None), np.array([0, 0, 4]), slice(None, None, -1)),
    (slice(None), 0, Ellipsis, np.array([1, 2])),  # an empty ellipsis still separates them
    (np.array([1, 0]), Ellipsis, np.array([2, 2])),  # a non-empty one too
    (np.array([True, False, True, True]), np.array([0, 4, 4])),
    (np.array([], dtype="int64"),),
    (np.array([3, 3, 3]), 2),
]


def sidx_np(index):
    return index if isinstance(index, tuple) else (index,)


def _sym_index(index):
    """Symbolic inputs for the array entries of ``index``."""
    inputs, values, sym_index = [], [], []
    for item in index:
        if isinstance(item, np.ndarray):
            v = T.tensor(dtype=item.dtype, shape=(None,) * item.ndim)
            inputs.append(v)
            values.append(item)
            sym_index.append(v)
        else:
            sym_index.append(item)
    return inputs, values, tuple(sym_index)


@pytest.mark.parametrize("index", ADVANCED, ids=repr)
def test_advanced_indexing(mode, rng, index):
    xv = rng.normal(size=SHAPE)
    x = sym(xv, static=True)
    inputs, values, sidx = _sym_index(index)
    compare(mode, x[sidx], [x] + inputs, [xv] + values, xv[index])
    # constant index arrays (lists) give the same result
    cidx = tuple(i.tolist() if isinstance(i, np.ndarray) and i.size else i for i in index)
    compare(mode, x[cidx], [x], [xv], xv[index])




def _lowered(index) -> bool:
    """Whether native modes run ``index`` without Python (rewriting.lower_ops): integer
    arrays only (no masks), all vectors or a single one."""
    arrays = [e for e in index if isinstance(e, np.ndarray)]
    return all(a.dtype != bool for a in arrays) and (len(arrays) == 1 or all(a.ndim == 1 for a in arrays))


#: integer-array indices anywhere: native modes run them as a gather on leading axes of a
#: view with the indexed axes in front
MIXED = [i for i in ADVANCED if _lowered(i)] + [
    (slice(None), np.array([[0, 1], [2, -1]]), 1),  # a matrix of indices, between others
    (slice(None, None, -1), slice(None), np.array([[2], [0]])),
    (slice(None), np.array([], dtype="int32")),
    (slice(None), slice(None), np.array([2, 0], dtype="uint8")),
    (None, slice(1, 3), None, np.array([-5, 4])),
    (slice(None), np.array([0]), np.array([2, 1, 0])),  # index vectors of lengths 1 and 3
]


def strided(a):
    """The values of ``a`` as a non-contiguous view (every other element of the last axis)."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _build(x, inputs, index):
    """x indexed by ``index`` with its arrays replaced by the symbolic ``inputs``."""
    arrays = iter(inputs)
    return x[tuple(next(arrays) if isinstance(i, np.ndarray) else i for i in index)]


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("index", MIXED, ids=repr)
def test_mixed_advanced_indexing_runs_natively(mode, entry_call, rng, index, layout):
    xv = rng.normal(size=SHAPE)
    xv = strided(xv) if layout == "strided" else xv
    x = sym(xv)
    inputs, values, _ = _sym_index(index)
    f = theanine.function([x] + inputs, _build(x, inputs, index), mode=mode)
    broadcast = len({v.shape for v in values}) > 1  # the native gather takes one length
    got = f(xv, *values) if broadcast else entry_call(f, xv, *values)
    expect = xv[index]
    assert got.shape == expect.shape and got.dtype == expect.dtype
    np.testing.assert_array_equal(got, expect)
    if mode != "py":
        assert f.fallbacks == []


@pytest.mark.parametrize("index", ADVANCED[:-2] + [(np.array([3, 3, 0, 3]), 2)], ids=repr)
def test_advanced_indexing_grad(mode, rng, index):
    verify_grad(lambda v: v[index], [rng.normal(size=SHAPE)], mode=mode, rng=rng)


def test_nll_gather(mode, rng):
    p = T.dmatrix("p")
    y = T.ivector("y")
    nll = -T.log(p[T.arange(y.shape[0]), y]).mean()
    pv = rng.uniform(0.1, 1.0, size=(5, 4))
    yv = np.array([0, 3, 3, 1, 2], dtype="int32")
    f = theanine.function([p, y], [p[T.arange(y.shape[0]), y], nll, theanine.grad(nll, p)], mode=mode)
    picked, loss, g = f(pv, yv)
    np.testing.assert_array_equal(picked, pv[np.arange(5), yv])
    np.testing.assert_allclose(loss, -np.log(pv[np.arange(5), yv]).mean())
    expect = np.zeros_like(pv)
    expect[np.arange(5), yv] = -1.0 / (5 * pv[np.arange(5), yv])
    np.testing.assert_allclose(g, expect)
    verify_grad(lambda v: -T.log(v[T.arange(5), yv]).mean(), [pv], mode=mode, rng=rng)


def test_index_dtypes(mode, rng):
    xv = rng.normal(size=(6,))
    x = T.dvector()
    for dt in ("int8", "int16", "int32", "int64", "uint8", "uint32"):
        idx = np.array([5, 0, 2], dtype=dt)
        iv = T.tensor(dtype=dt, shape=(None,))
        compare(mode, x[iv], [x, iv], [xv, idx], xv[idx])


# --- boolean masks -------------------------------------------------------------------------

def test_mask_from_comparison(mode, rng):
    x = T.dmatrix()
    xv = rng.normal(size=(4, 3))
    out = x[x > 0]
    assert out.ndim == 1
    compare(mode, out, [x], [xv], xv[xv > 0])
    verify_grad(lambda v: v[v > 0] * 2, [xv], mode=mode, rng=rng)


@pytest.mark.parametrize("mask_shape,index", [
    ((4, 5, 3), lambda m: m), ((4, 5), lambda m: m), ((4,), lambda m: m),
    ((5,), lambda m: (slice(None), m)), ((3,), lambda m: (Ellipsis, m)),
    ((5, 3), lambda m: (1, m)), ((5,), lambda m: (np.array([0, 2]), m)),
])
def test_boolean_masks(mode, rng, mask_shape, index):
    xv = rng.normal(size=SHAPE)
    mv = rng.uniform(size=mask_shape) > 0.4
    x, m = sym(xv), sym(mv)
    compare(mode, x[index(m)], [x, m], [xv, mv], xv[index(mv)])
    # a constant mask gives a static result size
    const = x[index(T.constant(mv))]
    compare(mode, const, [x], [xv], xv[index(mv)])
    verify_grad(lambda v: v[index(mv)], [xv], mode=mode, rng=rng)


def test_mask_errors(mode):
    x = T.tensor(dtype="float64", shape=(4, 3))
    with pytest.raises(IndexError, match="boolean index"):
        x[np.array([True, False])]
    y = T.dmatrix()
    m = T.tensor(dtype="bool", shape=(None,))
    f = theanine.function([y, m], y[m], mode=mode)
    with pytest.raises(IndexError, match="Subtensor"):
        f(np.zeros((4, 3)), np.array([True, False]))


# --- set_subtensor / inc_subtensor -----------------------------------------------------------

SETINC = [  # (index as NumPy values; value shape)
    (np.s_[:], (5, 3)),  # x[:] and x[...] are indexed tensors too
    (np.s_[...], ()),
    (np.s_[1], (5, 3)),
    (np.s_[1], (3,)),  # broadcast value
    (np.s_[1:3, ::2], ()),
    (np.s_[::-1, 0], (4, 3)),
    (np.s_[:, None, 1], (4, 1, 1)),
    (np.s_[..., 2], (1, 5)),
    ((np.array([0, 2]),), (2, 5, 3)),
    ((np.array([0, 2, 0, 0]),), (4, 1, 3)),  # repeated indices accumulate
    ((slice(None), np.array([1, 1, 4])), (3,)),
    ((np.array([0, 1, 1]), slice(None), np.array([2, 2, 2])), (3, 5)),
    ((np.array([3, 3]), np.array([4, 4]), np.array([1, 1])), ()),
    ((np.array([[0, 0], [1, 0]]),), (2, 2, 5, 3)),
    ((slice(None), 0, Ellipsis, np.array([1, 2, 1])), (3, 4)),
    ((np.array([True, False, True, True]), np.array([0, 4, 4])), (3, 1)),
]


@pytest.mark.parametrize("index,yshape", SETINC, ids=repr)
@pytest.mark.parametrize("op", ["set", "inc"])
def test_set_inc_subtensor(mode, rng, index, yshape, op):
    xv = rng.normal(size=SHAPE)
    yv = rng.normal(size=yshape)
    x, y = sym(xv), sym(yv)
    inputs, values, sidx = _sym_index(sidx_np(index))
    fn = T.set_subtensor if op == "set" else T.inc_subtensor
    out = fn(x[sidx], y)
    expect = xv.copy()
    if op == "set":
        expect[index] = yv
    else:
        np.add.at(expect, index, yv)
    compare(mode, out, [x, y] + inputs, [xv, yv] + values, expect)
    repeated = any(isinstance(i, np.ndarray) and len(np.unique(i)) < i.size for i in sidx_np(index))
    if op == "inc" or not repeated:
        # gradients w.r.t. both x and the value
        verify_grad(lambda a, b: fn(a[index], b), [xv, yv], mode=mode, rng=rng)


def test_inc_subtensor_repeated_accumulates(mode):
    x = T.dvector()
    i = T.lvector()
    out = T.inc_subtensor(x[i], 1.0)
    res = theanine.function([x, i], out, mode=mode)(np.zeros(4), np.array([0, 2, 2, 2, -1]))
    np.testing.assert_array_equal(res, [1.0, 0.0, 3.0, 1.0])
    # the gradient of a gather with repeated indices accumulates too
    g = theanine.grad(x[i].sum(), x)
    res = theanine.function([x, i], g, mode=mode)(np.zeros(4), np.array([1, 1, 3]))
    np.testing.assert_array_equal(res, [0.0, 2.0, 0.0, 1.0])


def test_set_inc_with_masks(mode, rng):
    xv = rng.normal(size=(4, 3))
    x = T.dmatrix()
    res = theanine.function([x], [T.set_subtensor(x[x < 0], 0.0), T.inc_subtensor(x[x > 0], 10.0),
                                  T.set_subtensor(x[:, np.array([True, False, True])], -1.0)],
                            mode=mode)(xv)
    np.testing.assert_array_equal(res[0], np.maximum(xv, 0))
    np.testing.assert_array_equal(res[1], np.where(xv > 0, xv + 10, xv))
    e = xv.copy()
    e[:, [0, 2]] = -1.0
    np.testing.assert_array_equal(res[2], e)


def test_set_inc_symbolic_and_dtype(mode):
    x = T.imatrix()
    i = T.lscalar()
    y = T.bscalar()
    xv = np.arange(12, dtype="int32").reshape(3, 4)
    f = theanine.function([x, i, y], [T.set_subtensor(x[i, 1:], y), T.inc_subtensor(x[:, i], 5)],
                          mode=mode)
    a, b = f(xv, -1, 7)
    e = xv.copy()
    e[-1, 1:] = 7
    np.testing.assert_array_equal(a, e)
    e = xv.copy()
    e[:, -1] += 5
    np.testing.assert_array_equal(b, e)
    assert a.dtype == b.dtype == "int32"
    np.testing.assert_array_equal(xv, np.arange(12).reshape(3, 4))  # input untouched
    with pytest.raises(TypeError, match="dtype"):
        T.set_subtensor(x[0], T.dvector())


def test_set_inc_errors():
    x = T.tensor(dtype="float64", shape=(4, 3))
    with pytest.raises(ValueError, match="broadcast"):
        T.set_subtensor(x[0], np.zeros(4))
    with pytest.raises(ValueError, match="dimensions"):
        T.inc_subtensor(x[0], np.zeros((2, 3)))
    with pytest.raises(TypeError, match="indexed tensor"):
        T.set_subtensor(x, 1.0)


def test_set_inc_runtime_errors(mode):
    x, y = T.dmatrix(), T.dvector()
    f = theanine.function([x, y], T.set_subtensor(x[1:], y), mode=mode)
    with pytest.raises(ValueError, match="SetSubtensor"):
        f(np.zeros((3, 2)), np.zeros(3))
    i = T.lvector()
    g = theanine.function([x, i], T.inc_subtensor(x[i], 1.0), mode=mode)
    with pytest.raises(IndexError, match="IncSubtensor"):
        g(np.zeros((3, 2)), np.array([0, 3]))


@pytest.mark.parametrize("index,yshape", [c for c in SETINC if isinstance(c[0], tuple) and _lowered(c[0])] + [
    ((slice(None), np.array([[0, 1], [2, 2]])), (4, 1, 1, 3)),
    ((slice(1, 3), None, np.array([4, 0])), (2, 1, 2, 3)),
    ((slice(None), np.array([], dtype="int64")), ()),
    ((slice(None), np.array([-1, 1, -1])), (1, 3, 1)),
    ((Ellipsis, np.array([2, 0], dtype="int8")), (2,)),
], ids=repr)
@pytest.mark.parametrize("op", ["set", "inc"])
def test_set_inc_mixed_advanced_runs_natively(mode, entry_call, rng, index, yshape, op):
    xv, yv = rng.normal(size=SHAPE), rng.normal(size=yshape)
    x, y = sym(xv), sym(yv)
    inputs, values, _ = _sym_index(index)
    fn = T.set_subtensor if op == "set" else T.inc_subtensor
    f = theanine.function([x, y] + inputs, fn(_build(x, inputs, index), y), mode=mode)
    got = entry_call(f, strided(xv), yv, *values)
    expect = xv.copy()
    if op == "set":
        expect[index] = yv
    else:
        np.add.at(expect, index, yv)
    np.testing.assert_array_equal(got, expect)


def test_mixed_advanced_indexing_errors(mode):
    x, i, j = T.dmatrix(), T.lvector(), T.lvector()
    t = T.dtensor3()
    f = theanine.function([x, i], [x[:, i], T.inc_subtensor(x[:, i], 1.0)], mode=mode)
    for bad in ([0, 4], [-5]):
        with pytest.raises(IndexError, match="out of bounds"):
            f(np.zeros((3, 4)), np.array(bad))
    g = theanine.function([t, i, j], t[i, :, j], mode=mode)
    with pytest.raises(IndexError, match="broadcast"):
        g(np.zeros((3, 4, 5)), np.array([0, 1]), np.array([0, 1, 2]))
    y = T.dmatrix()
    h = theanine.function([x, i, y], T.set_subtensor(x[:, i], y), mode=mode)
    with pytest.raises(ValueError, match="broadcast"):
        h(np.zeros((3, 4)), np.array([0, 1]), np.zeros((3, 3)))


# --- nonzero / take -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2), (0, 3)])
def test_nonzero(mode, rng, shape):
    xv = (rng.uniform(size=shape) > 0.5) * rng.integers(1, 5, size=shape)
    x = sym(xv)
    res = theanine.function([x], list(T.nonzero(x)) + [T.nonzero(x, return_matrix=True),
                                                        T.flatnonzero(x)], mode=mode)(xv)
    expect = np.nonzero(xv)
    for r, e in zip(res, expect):
        np.testing.assert_array_equal(r, e)
    np.testing.assert_array_equal(res[len(shape)], np.array(expect).reshape(len(shape), -1))
    np.testing.assert_array_equal(res[-1], np.flatnonzero(xv))
    with pytest.raises(ValueError):
        T.nonzero(T.dscalar())


@pytest.mark.parametrize("indices,axis", [
    ([0, 2, 2], 0), ([[1, 0], [2, 2]], 1), ([5, -1], None), (2, 1), ([1], -1), ([[0, 3]], None),
])
def test_take(mode, rng, indices, axis):
    xv = rng.normal(size=(3, 4))
    x = T.dmatrix()
    compare(mode, T.take(x, indices, axis=axis), [x], [xv], np.take(xv, indices, axis=axis))
    iv = np.asarray(indices)
    i = sym(iv)
    compare(mode, T.take(x, i, axis=axis), [x, i], [xv, iv], np.take(xv, iv, axis=axis))
    verify_grad(lambda v: T.take(v, indices, axis=axis), [xv], mode=mode, rng=rng)


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [np.s_[4], np.s_[-5], np.s_[:, 5], np.s_[0, 0, 3], np.s_[[0, 4]],
                                   np.s_[:, [-6]]], ids=repr)
def test_constant_index_out_of_range_at_build(index):
    x = T.tensor(dtype="float64", shape=(4, 5, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        x[index]
    with pytest.raises(IndexError, match="out of bounds"):
        T.set_subtensor(x[index], 0.0)


@pytest.mark.parametrize("kind", ["int", "array", "set"])
def test_runtime_index_out_of_range(mode, kind):
    x = T.dmatrix()
    if kind == "int":
        i = T.lscalar()
        out, val = x[i], 7
    elif kind == "array":
        i = T.lvector()
        out, val = x[:, i], np.array([0, 9])
    else:
        i = T.lscalar()
        out, val = T.set_subtensor(x[i], 0.0), -4
    f = theanine.function([x, i], out, mode=mode)
    with pytest.raises(IndexError, match="Subtensor"):
        f(np.zeros((3, 2)), val)


def test_too_many_indices():
    x = T.dmatrix()
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices"):
        x[:, :, None, 0]
    with pytest.raises(IndexError, match="too many indices"):
        x[np.ones((2, 2, 2), dtype=bool)]
    with pytest.raises(IndexError, match="ellipsis"):
        x[..., 0, ...]


@pytest.mark.parametrize("index", [1.5, np.float32(1), (0, 1.0), T.dscalar(), T.dvector(),
                                   np.array([0.0, 1.0]), slice(0.5, 2), slice(0, T.dscalar()),
                                   "a"], ids=repr)
def test_bad_index_types(index):
    x = T.dmatrix()
    with pytest.raises((IndexError, TypeError), match="integer|indices|slice"):
        x[index]


def test_setitem_is_an_error():
    x = T.dvector()
    with pytest.raises(TypeError, match="set_subtensor"):
        x[0] = 1
    with pytest.raises(TypeError, match="set_subtensor"):
        x[1:] += 1


def test_zero_step():
    with pytest.raises(ValueError, match="zero"):
        T.dvector()[::0]


def test_size_zero_dims(mode):
    x = T.dmatrix()
    xv = np.zeros((0, 3))
    res = theanine.function([x], [x[:, 1], x[::-1], x[np.array([], dtype="int64")],
                                  T.inc_subtensor(x[:, 0], 1.0)], mode=mode)(xv)
    assert [r.shape for r in res] == [(0,), (0, 3), (0, 3), (0, 3)]
