"""Batched matrix products and Jacobians of unknown length run as native loops
(rewriting/lower_loops.py): no node is left to Python, results are NumPy's."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad


@pytest.mark.parametrize("sa, sb", [((4, 3, 5), (4, 5, 2)), ((2, 1, 3, 5), (1, 4, 5, 2)),
                                    ((1, 3, 5), (6, 5, 2)), ((6, 3, 5), (1, 5, 2)), ((0, 3, 5), (0, 5, 2)),
                                    ((3, 2, 3, 5), (3, 1, 5, 7)), ((5, 1, 4), (5, 4, 1)), ((2, 3, 0), (2, 0, 4)),
                                    ((2, 2, 3, 4), (4, 2))])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batched_matmul_against_numpy(mode, rng, sa, sb, dtype):
    a, b = T.tensor(dtype, (None,) * len(sa)), T.tensor(dtype, (None,) * len(sb))
    f = theanine.function([a, b], T.matmul(a, b), mode=mode)
    if mode != "py":
        assert f.fallbacks == []
    A, B = rng.normal(size=sa).astype(dtype), rng.normal(size=sb).astype(dtype)
    want = np.matmul(A, B)
    got = f(A, B)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)
    A2 = np.swapaxes(rng.normal(size=sa[:-2] + sa[:-3:-1]), -1, -2).astype(dtype)  # transposed storage
    np.testing.assert_allclose(f(A2, B), np.matmul(A2, B), rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-6)


def test_batched_matmul_errors_and_gradients(mode, rng):
    a, b = T.dtensor3("a"), T.dtensor3("b")
    f = theanine.function([a, b], T.matmul(a, b), mode=mode)
    with pytest.raises(ValueError, match="not aligned"):
        f(np.ones((2, 3, 4)), np.ones((2, 5, 2)))
    with pytest.raises(ValueError, match="not aligned"):
        f(np.ones((2, 3, 4)), np.ones((3, 4, 2)))
    verify_grad(lambda a, b: T.matmul(a, b), [rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 4, 2))],
                mode=mode)


@pytest.mark.parametrize("n", [5, 1, 0])
def test_jacobian_of_unknown_length_runs_natively(mode, rng, n):
    x = T.dvector("x")
    W = T.dmatrix("W")
    y = T.tanh(T.dot(W, x))  # length unknown statically: an IndexMap over the rows
    J = theanine.gradient.jacobian(y, [x, W])
    f = theanine.function([x, W], J, mode=mode)
    if mode != "py":
        assert f.fallbacks == []
    xv, Wv = rng.normal(size=3), rng.normal(size=(n, 3))
    d = 1 - np.tanh(Wv @ xv) ** 2
    jx, jW = f(xv, Wv)
    np.testing.assert_allclose(jx, d[:, None] * Wv, rtol=1e-12)
    want_W = np.zeros((n, n, 3))
    for i in range(n):
        want_W[i, i] = d[i] * xv
    assert jW.shape == (n, n, 3)
    np.testing.assert_allclose(jW, want_W, rtol=1e-12, atol=1e-15)
