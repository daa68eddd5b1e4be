"""dot, matmul, outer, tensordot and batched_dot against NumPy, their gradients against
finite differences, and their shape errors."""

from __future__ import annotations

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

# products sum several terms: a little looser than the elementwise tolerances
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def check_against(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, **TOL.get(str(want.dtype), dict(rtol=0, atol=0)))


def sym(dtype, shape, static=False):
    return T.tensor(dtype=dtype, shape=tuple(shape) if static else (None,) * len(shape))


def rand(rng, shape, dtype="float64"):
    return np.asarray(rng.uniform(-1, 1, shape)).astype(dtype)


def noncontig(a):
    """The values of ``a`` as a non-contiguous view (every other element of the last axis)."""
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert a.size <= 1 or not view.flags.c_contiguous
    return view


def evaluate(mode, fn, arrays, static=False):
    xs = [sym(str(a.dtype), a.shape, static) for a in arrays]
    out = fn(*xs)
    return out, theanine.function(xs, out, mode=mode)(*arrays)


# --- dot -------------------------------------------------------------------------------------

DOT_SHAPES = [
    ((), ()), ((), (3,)), ((), (3, 4)), ((3,), ()), ((2, 3), ()),
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
    ((1, 3), (3, 1)), ((3, 1), (1, 4)),
    # N-d: sum over the last axis of a and the second-to-last of b
    ((2, 3, 4), (4, 5)), ((2, 3, 4), (5, 4, 6)), ((2, 3), (4, 3, 5)), ((3,), (2, 3, 4)),
    ((2, 3, 4), (4,)), ((2, 1, 3), (1, 3, 2)),
    # size-0 inner dimension: zeros
    ((0,), (0,)), ((2, 0), (0, 3)), ((0,), (0, 3)), ((2, 0), (0,)), ((2, 3, 0), (0, 4)),
    # size-0 outer dimensions
    ((0, 3), (3, 4)), ((2, 3), (3, 0)),
]


@pytest.mark.parametrize("layout", ["contiguous", "noncontig"])
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=str)
def test_dot_matches_numpy(sa, sb, dtype, static, layout, mode, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    if layout == "noncontig":
        a, b = noncontig(a), noncontig(b)
    out, got = evaluate(mode, T.dot, [a, b], static)
    want = np.dot(a, b)
    check_against(got, want)
    if static:
        assert out.type.shape == np.shape(want)
    assert out.ndim == np.ndim(want)


@pytest.mark.parametrize("da,db", [("float32", "float64"), ("float64", "float32"),
                                   ("int32", "float64"), ("int64", "int64")])
def test_dot_mixed_dtypes(da, db, mode, rng):
    a = (rng.uniform(-3, 3, (2, 3))).astype(da)
    b = (rng.uniform(-3, 3, (3, 4))).astype(db)
    for fn, ref in [(T.dot, np.dot), (T.matmul, np.matmul)]:
        check_against(evaluate(mode, fn, [a, b])[1], ref(a, b))


def test_dot_with_transposed_inputs(mode, rng):
    """A.T and B.T as input values (Fortran-ordered views), and symbolic transposes."""
    a, b = rand(rng, (3, 2)), rand(rng, (4, 3))
    x, y = T.dmatrix(), T.dmatrix()
    f = theanine.function([x, y], [T.dot(x, y), T.dot(y.T, x.T), T.dot(x.T, x)], mode=mode)
    got = f(a.T, b.T)
    for g, w in zip(got, [a.T @ b.T, b @ a, a @ a.T]):
        check_against(g, w)


def test_dot_of_booleans_is_a_type_error():
    with pytest.raises(TypeError, match="boolean"):
        T.dot(T.vector(dtype="bool"), T.dvector())


# --- matmul ----------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)),
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
    ((5, 1, 2, 3), (4, 3, 2)), ((1, 2, 3), (5, 3, 4)), ((5, 2, 3), (1, 3, 4)),
    ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (1, 4, 3, 2)),
    ((5, 2, 0), (5, 0, 4)), ((0, 2, 3), (3, 4)), ((2, 0), (0, 3)),
]


@pytest.mark.parametrize("layout", ["contiguous", "noncontig"])
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_matches_numpy(sa, sb, dtype, static, layout, mode, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    if layout == "noncontig":
        a, b = noncontig(a), noncontig(b)
    out, got = evaluate(mode, T.matmul, [a, b], static)
    want = np.matmul(a, b)
    check_against(got, want)
    if static:
        assert out.type.shape == want.shape
    _, got_op = evaluate(mode, lambda x, y: x @ y, [a, b], static)
    check_against(got_op, want)


def _static_ones(v, shape):
    """``v`` declared to have the size-1 dimensions of ``shape`` (others stay free)."""
    return T.specify_shape(v, tuple(1 if n == 1 else None for n in shape))


#: products native modes run without Python (rewriting.lower_ops): an operand without batch
#: dimensions (one BLAS product), a static single row or column (a fused product and sum)
LOWERED_MATMUL = [
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (1, 3, 4)), ((1, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (3, 2)), ((5, 2, 3), (5, 3, 1)), ((5, 1, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 1)),
    ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((0, 2, 3), (3, 4)), ((2, 0), (5, 0, 3)), ((5, 2, 0), (0, 4)),
    ((5, 0, 3), (5, 3, 1)), ((5, 1, 0), (5, 0, 2)),
]


@pytest.mark.parametrize("layout", ["contiguous", "noncontig"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", LOWERED_MATMUL, ids=str)
def test_matmul_runs_natively(sa, sb, dtype, layout, mode, entry_call, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    if layout == "noncontig":
        a, b = noncontig(a), noncontig(b)
    x, y = sym(dtype, sa), sym(dtype, sb)
    f = theanine.function([x, y], T.matmul(_static_ones(x, sa), _static_ones(y, sb)), mode=mode)
    # BLAS takes operands with one unit stride: the entry hands other layouts over
    check_against(entry_call(f, a, b) if layout == "contiguous" else f(a, b), np.matmul(a, b))
    assert mode == "py" or f.fallbacks == []


@pytest.mark.parametrize("da,db", [("int64", "int64"), ("int32", "int8"), ("int8", "int8"), ("uint16", "uint8")])
@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)),
                                   ((5, 2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((2, 0), (0, 3))], ids=str)
def test_integer_products_run_natively_and_wrap_as_numpy(sa, sb, da, db, mode, entry_call, rng):
    a = rng.integers(0, 100, sa).astype(da)  # large enough for 8- and 16-bit sums to wrap
    b = rng.integers(0, 100, sb).astype(db)
    fn, ref = (T.dot, np.dot) if len(sa) < 3 and len(sb) < 3 else (T.matmul, np.matmul)
    x, y = sym(da, sa), sym(db, sb)
    f = theanine.function([x, y], fn(x, y), mode=mode)
    check_against(entry_call(f, a, b), ref(a, b))


@pytest.mark.parametrize("da,db", [("float32", "float64"), ("int32", "float64"), ("float64", "int8")])
def test_mixed_dtype_dot_runs_natively(da, db, mode, entry_call, rng):
    a, b = rng.uniform(-3, 3, (2, 3)).astype(da), rng.uniform(-3, 3, (3, 4)).astype(db)
    x, y = sym(da, (2, 3)), sym(db, (3, 4))
    f = theanine.function([x, y], [T.dot(x, y), T.dot(x[0], y), T.dot(x, y[:, 0])], mode=mode)
    for got, want in zip(entry_call(f, a, b), [np.dot(a, b), np.dot(a[0], b), np.dot(a, b[:, 0])]):
        check_against(got, want)


def test_general_batched_float_matmul_is_a_loop_of_blas_products(mode):
    """Both operands batched, several rows and columns: one BLAS product per matrix, in a
    native loop (a fused product and sum is slower once the inner sizes pass a handful)."""
    x, y = T.dtensor3(), T.dtensor3()
    f = theanine.function([x, y], T.matmul(x, y), mode=mode)
    if mode != "py":
        assert f.fallbacks == []
        assert any(type(n.op).__name__ == "Scan" for n in f.graph.toposort())


def test_lowered_products_check_the_inner_size(mode):
    a, b = T.lmatrix(), T.lmatrix()
    f = theanine.function([a, b], T.dot(a, b), mode=mode)
    with pytest.raises(ValueError, match="aligned"):
        f(np.zeros((2, 3), "int64"), np.zeros((1, 4), "int64"))
    x, y, z = T.dtensor3(), T.dmatrix(), T.tensor(dtype="float64", shape=(None, None, 1))
    g = theanine.function([x, y, z], [T.matmul(x, y), T.matmul(x, z)], mode=mode)
    with pytest.raises(ValueError, match="aligned"):
        g(np.zeros((2, 3, 4)), np.zeros((3, 4)), np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="aligned"):
        g(np.zeros((2, 3, 4)), np.zeros((4, 4)), np.zeros((2, 1, 1)))


def test_matmul_rejects_scalars():
    with pytest.raises(ValueError, match="scalar"):
        T.matmul(T.dscalar(), T.dmatrix())


# --- outer, tensordot, batched_dot ------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((1,), (4,)), ((0,), (3,)), ((2, 3), (4,)),
                                   ((3,), (2, 2))], ids=str)
def test_outer(sa, sb, dtype, mode, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    check_against(evaluate(mode, T.outer, [a, b])[1], np.outer(a, b))
    check_against(evaluate(mode, T.outer, [noncontig(a), noncontig(b)])[1], np.outer(a, b))


TENSORDOT = [
    ((2, 3, 4), (3, 4, 5), 2), ((2, 3, 4), (4, 5), 1), ((2, 3), (4, 5), 0), ((3,), (3,), 1),
    ((2, 3, 4), (2, 3, 4), 3), ((2, 3, 4), (5, 3, 2), [[1, 0], [1, 2]]),
    ((2, 3, 4), (4, 3), [[1, 2], [1, 0]]), ((2, 3, 4), (4, 5), [[-1], [0]]),
    ((2, 3, 4), (4, 5), [2, 0]), ((2, 3), (3, 2), [[0, 1], [1, 0]]),
    ((2, 0), (0, 3), 1), ((0, 3), (3, 2), [[1], [0]]),
]


@pytest.mark.parametrize("layout", ["contiguous", "noncontig"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb,axes", TENSORDOT, ids=str)
def test_tensordot(sa, sb, axes, dtype, layout, mode, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    if layout == "noncontig":
        a, b = noncontig(a), noncontig(b)
    want = np.tensordot(a, b, axes)
    for static in (False, True):
        out, got = evaluate(mode, lambda x, y: T.tensordot(x, y, axes), [a, b], static)
        check_against(got, want)
        assert out.ndim == want.ndim


BATCHED = [((5, 2, 3), (5, 3, 4)), ((5, 3), (5, 3)), ((5, 3), (5, 3, 4)), ((5, 2, 3), (5, 3)),
           ((1, 2, 3), (1, 3, 2)), ((0, 2, 3), (0, 3, 4)), ((5, 2, 0), (5, 0, 4))]


def _np_batched_dot(a, b):
    return np.array([np.dot(x, y) for x, y in zip(a, b)]).reshape(
        (a.shape[0],) + a.shape[1:-1] + b.shape[2:]).astype(np.result_type(a, b))


@pytest.mark.parametrize("layout", ["contiguous", "noncontig"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", BATCHED, ids=str)
def test_batched_dot(sa, sb, dtype, layout, mode, rng):
    a, b = rand(rng, sa, dtype), rand(rng, sb, dtype)
    if layout == "noncontig":
        a, b = noncontig(a), noncontig(b)
    check_against(evaluate(mode, T.batched_dot, [a, b])[1], _np_batched_dot(a, b))


@pytest.mark.parametrize("sa,sb,axes", [((4, 2, 3), (4, 3, 5), 1), ((4, 2, 3), (4, 3, 5), [[2], [1]]),
                                        ((4, 2, 3), (4, 5, 3, 2), [[1, 2], [3, 2]]),
                                        ((4, 2, 3), (4, 2, 3), 2)], ids=str)
def test_batched_tensordot(sa, sb, axes, mode, rng):
    a, b = rand(rng, sa), rand(rng, sb)
    ax = [list(range(a.ndim - axes, a.ndim)), list(range(1, 1 + axes))] if isinstance(axes, int) else axes
    want = np.array([np.tensordot(a[i], b[i], [[k - 1 for k in ax[0]], [k - 1 for k in ax[1]]])
                     for i in range(a.shape[0])])
    check_against(evaluate(mode, lambda x, y: T.batched_tensordot(x, y, axes), [a, b])[1], want)
    verify_grad(lambda x, y: T.batched_tensordot(x, y, axes), [a, b], rng=rng, mode=mode)


def test_batched_dot_needs_a_batch_dimension():
    with pytest.raises(TypeError, match="batch"):
        T.batched_dot(T.dvector(), T.dmatrix())


# --- gradients -------------------------------------------------------------------------------

GRAD_DOT = [s for s in DOT_SHAPES if 0 not in s[0] + s[1]]


@pytest.mark.parametrize("sa,sb", GRAD_DOT, ids=str)
def test_dot_grad(sa, sb, mode, rng):
    verify_grad(T.dot, [rand(rng, sa), rand(rng, sb)], rng=rng, mode=mode)


@pytest.mark.parametrize("sa,sb", [s for s in MATMUL_SHAPES if 0 not in s[0] + s[1]], ids=str)
def test_matmul_grad(sa, sb, mode, rng):
    # verify_grad's inputs have no static shape: size-1 batch dims broadcast at run time
    verify_grad(T.matmul, [rand(rng, sa), rand(rng, sb)], rng=rng, mode=mode)


@pytest.mark.parametrize("sa,sb", [((1, 2, 3), (5, 3, 4)), ((5, 2, 3), (1, 3, 4)),
                                   ((5, 1, 2, 3), (4, 3, 2))], ids=str)
def test_matmul_grad_static_broadcast(sa, sb, mode, rng):
    a, b = rand(rng, sa), rand(rng, sb)
    verify_grad(lambda x, y: T.matmul(T.specify_shape(x, sa), T.specify_shape(y, sb)), [a, b],
                rng=rng, mode=mode)


@pytest.mark.parametrize("sa,sb,axes", [t for t in TENSORDOT if 0 not in t[0] + t[1]], ids=str)
def test_tensordot_grad(sa, sb, axes, mode, rng):
    verify_grad(lambda x, y: T.tensordot(x, y, axes), [rand(rng, sa), rand(rng, sb)], rng=rng, mode=mode)


@pytest.mark.parametrize("sa,sb", [s for s in BATCHED if 0 not in s[0] + s[1]], ids=str)
def test_batched_dot_grad(sa, sb, mode, rng):
    verify_grad(T.batched_dot, [rand(rng, sa), rand(rng, sb)], rng=rng, mode=mode)


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 2), (3,))], ids=str)
def test_outer_grad(sa, sb, mode, rng):
    verify_grad(T.outer, [rand(rng, sa), rand(rng, sb)], rng=rng, mode=mode)


def test_dot_grad_float32(mode, rng):
    verify_grad(T.dot, [rand(rng, (2, 3), "float32"), rand(rng, (3, 4), "float32")], rng=rng, mode=mode)


def test_dot_grad_with_empty_inner_dimension(mode):
    x, y = T.dmatrix(), T.dmatrix()
    gx, gy = T.grad(T.sum(T.dot(x, y)), [x, y])
    got_gx, got_gy = theanine.function([x, y], [gx, gy], mode=mode)(np.zeros((2, 0)), np.zeros((0, 3)))
    check_against(got_gx, np.zeros((2, 0)))
    check_against(got_gy, np.zeros((0, 3)))


# --- shape errors ----------------------------------------------------------------------------

def test_static_shape_mismatch_raises_at_build_time():
    a = T.tensor(dtype="float64", shape=(2, 3))
    b = T.tensor(dtype="float64", shape=(4, 2))
    for build in (lambda: T.dot(a, b), lambda: T.matmul(a, b), lambda: a @ b):
        with pytest.raises(ValueError) as info:
            build()
        assert "(2, 3)" in str(info.value) and "(4, 2)" in str(info.value), str(info.value)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        T.tensordot(a, b, 1)
    c = T.tensor(dtype="float64", shape=(5, 2, 3))
    d = T.tensor(dtype="float64", shape=(4, 3, 2))
    with pytest.raises(ValueError, match="matmul"):
        T.matmul(c, d)  # batch sizes 5 and 4
    v = T.tensor(dtype="float64", shape=(4,))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        T.dot(a, v)


@pytest.mark.parametrize("fn", [T.dot, T.matmul, lambda x, y: T.tensordot(x, y, 1)],
                         ids=["dot", "matmul", "tensordot"])
def test_runtime_shape_mismatch_raises(fn, mode):
    x, y = T.dmatrix(), T.dmatrix()
    f = theanine.function([x, y], fn(x, y), mode=mode)
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros((4, 2)))
