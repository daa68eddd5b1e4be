"""``T.argsort`` and ``T.sort`` (tensor/sort.py) against NumPy's stable sort in every mode:
dtypes, NaN and ties, empty and size-1 axes, every axis and None, non-contiguous inputs,
the gradient of ``sort`` by finite differences, bad arguments. In the native modes the sort
is a step of the entry (codegen/sorting.py), which ``entry_call`` checks."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

DTYPES = ["float64", "float32", "int64", "int32", "uint8", "int8", "bool"]


def values(rng, shape, dtype):
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 4, size=shape).astype(dtype)  # many ties
    v = rng.normal(size=shape).astype(dtype)
    if v.size > 3:
        flat = v.reshape(-1)
        flat[1] = flat[3] = np.nan
        flat[2] = flat[0]  # a tie
        flat[-1] = -0.0
    return v


@pytest.mark.parametrize("dtype", DTYPES)
def test_argsort_and_sort_match_numpy_stable(mode, entry_call, rng, dtype):
    x = T.tensor(dtype=dtype, shape=(None, None, None), name="x")
    outs = [T.argsort(x), T.argsort(x, axis=0), T.argsort(x, axis=1), T.argsort(x, axis=None),
            T.sort(x), T.sort(x, axis=0), T.sort(x, axis=None)]
    f = theanine.function([x], outs, mode=mode)
    for shape in [(2, 3, 7), (1, 1, 1), (3, 1, 5), (2, 0, 4), (2, 3, 0), (4, 5, 40)]:
        v = values(rng, shape, dtype)
        for data in (v, v[::-1, :, ::2], np.transpose(v, (1, 0, 2)).copy().transpose(1, 0, 2)):
            want = [np.argsort(data, axis=a, kind="stable") for a in (-1, 0, 1, None)]
            want += [np.sort(data, axis=a, kind="stable") for a in (-1, 0, None)]
            got = entry_call(f, data)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_array_equal(g, w)


def test_long_rows_and_many_rows(mode, entry_call, rng):
    x = T.dmatrix("x")
    f = theanine.function([x], [T.argsort(x), T.sort(x.T, axis=0)], mode=mode)
    v = rng.normal(size=(3, 5000))
    v[0, ::7] = 0.5  # runs of ties
    got = entry_call(f, v)
    np.testing.assert_array_equal(got[0], np.argsort(v, kind="stable"))
    np.testing.assert_array_equal(got[1], np.sort(v.T, axis=0))


def test_sort_gradient(mode, rng):
    v = rng.normal(size=(3, 6))
    verify_grad(lambda x: T.sort(x) * np.arange(6.0), [v], mode=mode)
    verify_grad(lambda x: T.sort(x, axis=0) ** 2, [v], mode=mode)
    verify_grad(lambda x: T.sort(x, axis=None)[::2], [v], mode=mode)
    x = T.dmatrix("x")
    g = theanine.function([x], theanine.grad(T.argsort(x).sum() * x.sum(), x), mode=mode)(v)
    np.testing.assert_array_equal(g, np.full(v.shape, np.argsort(v).sum()))  # argsort: no gradient


def test_bad_arguments():
    x, s = T.dmatrix("x"), T.dscalar("s")
    with pytest.raises(ValueError, match="axis"):
        T.argsort(x, axis=2)
    with pytest.raises(ValueError, match="0-d array has no axis"):
        T.sort(s)
    with pytest.raises(ValueError, match="kind must be one of"):
        T.sort(x, kind="bogo")
    with pytest.raises(ValueError, match="order"):
        T.argsort(x, order="f")
    with pytest.raises(TypeError, match="real"):
        T.argsort(T.zmatrix("z"))
    np.testing.assert_array_equal(theanine.function([s], T.sort(s, axis=None))(3.0), [3.0])
