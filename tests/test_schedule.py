"""The whole-function native entry (modes 'llvm' and 'c'): each schedule step against NumPy, the
calls it must hand to the node-by-node path, and what a call may not leave behind.

``entry_only`` makes the node-by-node path raise, so a test using it proves the
entry computed the result itself; ``bails`` counts the calls the entry handed over.
"""

import threading

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import shared


_TARGET = {"mode": "llvm"}


@pytest.fixture(autouse=True, params=["llvm", "c"])
def target(request):
    """Every test runs against the LLVM entry and the C entry."""
    _TARGET["mode"] = request.param
    return request.param


def compiled(inputs, outputs, **kwargs):
    f = theanine.function(inputs, outputs, mode=_TARGET["mode"], **kwargs)
    assert f._native.entry is not None, f._native.why_no_entry
    return f


class _Runner:
    def __init__(self, runner, allow):
        self.runner, self.allow, self.calls = runner, allow, 0

    def __call__(self, *args):
        self.calls += 1
        if not self.allow:
            raise AssertionError("the call left the native entry")
        return self.runner(*args)


def entry_only(f):
    f._runner = _Runner(f._runner, allow=False)
    return f


def bails(f):
    f._runner = _Runner(f._runner, allow=True)
    return f._runner


def test_entry_covers_a_training_step_with_updates(rng):
    X, y = T.fmatrix("X"), T.fmatrix("y")
    W = shared(rng.normal(size=(5, 3)).astype("float32"), name="W")
    b = shared(np.zeros(3, "float32"), name="b")
    p = T.nnet.sigmoid(T.dot(X, W) + b)
    cost = T.mean((p - y) ** 2)
    gW, gb = theanine.grad(cost, [W, b])
    updates = [(W, W - 0.5 * gW), (b, b - 0.5 * gb)]
    f = entry_only(compiled([X, y], cost, updates=updates))
    Xv, yv = rng.normal(size=(7, 5)).astype("float32"), rng.uniform(size=(7, 3)).astype("float32")
    Wn, bn = W.get_value(), b.get_value()
    for _ in range(3):
        pn = 1 / (1 + np.exp(-(Xv @ Wn + bn)))
        want = np.mean((pn - yv) ** 2)
        d = 2 * (pn - yv) * pn * (1 - pn) / pn.size
        Wn, bn = Wn - 0.5 * Xv.T @ d, bn - 0.5 * d.sum(0)
        got = f(Xv, yv)
        assert got.shape == () and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5)
        np.testing.assert_allclose(W.get_value(), Wn, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b.get_value(), bn, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ranks", [(2, 2), (2, 1), (1, 2), (1, 1)])
def test_gemm_every_rank_and_layout(rng, dtype, ranks):
    m, k, n = 4, 3, 5
    a = T.tensor(dtype=dtype, shape=(None,) * ranks[0])
    b = T.tensor(dtype=dtype, shape=(None,) * ranks[1])
    f = entry_only(compiled([a, b], T.dot(a, b)))
    av = rng.normal(size=(m, k)[2 - ranks[0]:]).astype(dtype)
    bv = rng.normal(size=(k, n)[:ranks[1]]).astype(dtype)
    layouts_a = [av, np.asfortranarray(av), av.T.copy().T]
    layouts_b = [bv, np.asfortranarray(bv)]
    if ranks[0] == 1:
        layouts_a.append(np.repeat(av, 2)[::2])  # a strided vector: column-major with lda = 2
    tol = 1e-5 if dtype == "float32" else 1e-12
    for x in layouts_a:
        for y in layouts_b:
            got = f(x, y)
            np.testing.assert_allclose(got, np.dot(x, y), rtol=tol, atol=tol)
            assert got.dtype == dtype


def test_gemm_empty_and_unreadable_layouts(rng):
    a, b = T.dmatrix(), T.dmatrix()
    f = compiled([a, b], T.dot(a, b))
    calls = bails(f)
    for shapes in [((3, 0), (0, 4)), ((0, 2), (2, 4)), ((3, 2), (2, 0))]:
        got = f(np.ones(shapes[0]), np.ones(shapes[1]))
        np.testing.assert_array_equal(got, np.zeros((shapes[0][0], shapes[1][1])))
    assert calls.calls == 0
    av, bv = rng.normal(size=(6, 4)), rng.normal(size=(4, 6))
    np.testing.assert_allclose(f(av[::-1], bv[:, ::2]), av[::-1] @ bv[:, ::2])  # negative stride
    assert calls.calls == 1
    with pytest.raises(ValueError, match="not aligned"):
        f(np.ones((2, 3)), np.ones((2, 3)))


@pytest.mark.parametrize("index", [
    (slice(None),), (slice(1, None),), (slice(None, -1),), (slice(None, None, -1),),
    (slice(-2, None, -2),), (slice(10, -10, -3),), (slice(-100, 100, 4),), (slice(3, 1),),
    (1, slice(None, None, 2)), (-1, -2), (slice(None), None, 0), (None, slice(2, 0, -1), 1)])
def test_basic_indexing_views(rng, index):
    x = T.dmatrix("x")
    f = entry_only(compiled([x], x[index] * 2))
    xv = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(f(xv), xv[index] * 2)


def test_symbolic_indices_and_range_errors(rng):
    x, i, j = T.dmatrix("x"), T.iscalar("i"), T.lscalar("j")
    f = compiled([x, i, j], x[i, j:] + 1)
    calls = bails(f)
    xv = rng.normal(size=(3, 5))
    for iv, jv in [(0, 0), (2, -2), (-3, 4), (1, 9), (1, -9)]:
        np.testing.assert_array_equal(f(xv, np.int32(iv), np.int64(jv)), xv[iv, jv:] + 1)
    assert calls.calls == 0  # NumPy scalars are converted to arrays for the entry
    for iv, jv in [(0, 0), (2, -2), (-3, 4), (1, 9)]:
        np.testing.assert_array_equal(f(xv, np.array(iv, "int32"), np.array(jv)), xv[iv, jv:] + 1)
    assert calls.calls == 0
    with pytest.raises(IndexError):
        f(xv, np.array(3, "int32"), np.array(0))
    assert calls.calls == 1


def test_sum_to_with_runtime_broadcasting_leaves_the_entry(rng):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    gx = theanine.grad(T.sum((x * y) ** 2), x)
    f = compiled([x, y], gx)
    calls = bails(f)
    xv, yv = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(f(xv, yv), 2 * xv * yv ** 2)
    assert calls.calls == 0
    xb = rng.normal(size=(3, 1))
    np.testing.assert_allclose(f(xb, yv), (2 * xb * yv ** 2).sum(1, keepdims=True))
    assert calls.calls == 1


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min", "all", "any"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2)])
def test_reductions(rng, kind, axis):
    x = T.tensor(dtype="float64", shape=(None, None, None))
    e = getattr(T, kind)(x > 0 if kind in ("all", "any") else x, axis=axis)
    f = entry_only(compiled([x], e))
    xv = rng.normal(size=(3, 4, 2))
    ref = getattr(np, kind)(xv > 0 if kind in ("all", "any") else xv, axis=axis)
    np.testing.assert_allclose(f(xv), ref, rtol=1e-12)
    empty = np.zeros((0, 4, 2))
    if kind in ("max", "min") and axis != 1:
        f._runner.allow = True
        with pytest.raises(ValueError):
            f(empty)
    else:
        ref = getattr(np, kind)(empty > 0 if kind in ("all", "any") else empty, axis=axis)
        np.testing.assert_array_equal(f(empty), ref)


def test_dimshuffle_drop_checks_the_size(rng):
    x = T.dmatrix("x")
    f = compiled([x], T.squeeze(x, 0) * 1)
    np.testing.assert_array_equal(f(np.ones((1, 3))), np.ones(3))
    with pytest.raises(ValueError):
        f(np.ones((2, 3)))


def test_results_are_fresh_and_distinct(rng):
    x = T.dvector("x")
    s = shared(np.arange(3.0), name="s")
    y = x * 2
    f = entry_only(compiled([x], [x, x.T, y, y, x[::-1], s, T.constant(np.arange(2.0)), x.shape]))
    xv = rng.normal(size=3)
    outs = f(xv)
    for k, out in enumerate(outs):
        assert not np.may_share_memory(out, xv) and not np.may_share_memory(out, s.get_value(borrow=True))
        for other in outs[k + 1:]:
            assert not np.may_share_memory(out, other)
    np.testing.assert_array_equal(outs[4], xv[::-1])
    np.testing.assert_array_equal(outs[6], np.arange(2.0))
    np.testing.assert_array_equal(outs[7], [3])


def test_a_call_handed_over_applies_updates_once(rng):
    x = T.dmatrix("x")
    c = shared(np.zeros((1, 1)), name="c")
    f = compiled([x], T.sum(x), updates=[(c, c + T.sum(x, keepdims=True))])
    calls = bails(f)
    f(np.ones((2, 2)))
    f(np.ones((2, 2)).astype("float32"))  # converted, then taken by the entry
    assert calls.calls == 0
    f(np.ones((600, 600)))  # too large for one core: the node-by-node path splits it
    assert calls.calls == 1
    np.testing.assert_array_equal(c.get_value(), [[360008.0]])


def test_long_kernels_release_the_gil_and_threads_agree(rng):
    x, y = T.dvector("x"), T.dvector("y")
    f = entry_only(compiled([x, y], T.exp(-x * x) * y + T.sum(x)))
    data = [(rng.normal(size=120_000), rng.normal(size=120_000)) for _ in range(4)]  # GIL released
    want = [np.exp(-a * a) * b + a.sum() for a, b in data]
    errors = []

    def work(k):
        for _ in range(5):
            if not np.allclose(f(*data[k]), want[k]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_repeated_calls_do_not_leak(rng):
    import resource
    x = T.dmatrix("x")
    W = shared(rng.normal(size=(50, 50)), name="W")
    f = compiled([x], T.sum(T.tanh(T.dot(x, W)) * 2, axis=0))
    xv = rng.normal(size=(40, 50))
    bad = xv.astype("float32")
    for _ in range(200):
        f(xv)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for k in range(20_000):
        f(xv if k % 100 else bad)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 20_000  # KiB; a leak of the 16 KB intermediate would be 320 MB


def test_source_shows_the_entry():
    x = T.dvector("x")
    f = compiled([x], T.exp(x) + 1)
    text = f.source("llvm")
    assert "_entry(ptr %self, ptr %args, i64 %nargs)" in text
    assert "@malloc" not in text or "declare ptr @malloc" in text


@pytest.mark.parametrize("layout", ["c", "transposed", "strided"])
@pytest.mark.parametrize("shape", [(6, 4), (-1,), (3, -1, 2), (24, 1), (2, 2, 6)])
def test_reshape_views_or_copies(rng, layout, shape):
    x = T.dmatrix("x")
    f = entry_only(compiled([x], T.reshape(x, shape) + 0.5))
    base = rng.normal(size=(8, 12))
    xv = {"c": base[:4, :6].copy(), "transposed": base[:6, :4].T, "strided": base[::2, ::2]}[layout]
    np.testing.assert_array_equal(f(xv), xv.reshape(shape) + 0.5)


def test_reshape_with_symbolic_sizes_and_errors(rng):
    x, n = T.dmatrix("x"), T.lscalar("n")
    f = compiled([x, n], T.reshape(x, (n, -1)) * 2)
    calls = bails(f)
    xv = rng.normal(size=(4, 6))
    for nv in (1, 2, 3, 24):
        np.testing.assert_array_equal(f(xv, np.array(nv)), xv.reshape(nv, -1) * 2)
    assert calls.calls == 0
    with pytest.raises(ValueError):
        f(xv, np.array(5))
    np.testing.assert_array_equal(f(np.zeros((0, 6)), np.array(3)), np.zeros((3, 0)))


def test_alloc_arange_make_vector_specify_shape(rng):
    v, n, m = T.dvector("v"), T.lscalar("n"), T.iscalar("m")
    outs = [T.alloc(v, n, v.shape[0]) * 1, T.arange(n, m, 2) + 0, T.arange(m, n, -3) + 0,
            T.stack([n, T.cast(m, "int64")]) + 0, T.zeros((n, 2)) + v[0],
            T.specify_shape(v, (3,)) * 2, T.arange(0, n * 2, 2) + 0]
    f = entry_only(compiled([v, n, m], outs))
    vv = rng.normal(size=3)
    got = f(vv, np.array(2), np.array(9, "int32"))
    want = [np.broadcast_to(vv, (2, 3)), np.arange(2, 9, 2), np.arange(9, 2, -3), [2, 9],
            np.zeros((2, 2)) + vv[0], vv * 2, [0, 2]]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    f._runner.allow = True
    with pytest.raises(ValueError):
        f(vv, np.array(-1), np.array(9, "int32"))  # a negative size
    with pytest.raises(ValueError):
        f(rng.normal(size=4), np.array(2), np.array(9, "int32"))  # specify_shape


def test_gemm_through_scipys_32_bit_blas(rng, monkeypatch):
    from theanine.codegen import blas
    monkeypatch.setattr(blas, "_numpy_openblas", lambda: None)
    assert blas.int_bits() == 32
    a, b = T.fmatrix(), T.fmatrix()
    f = entry_only(compiled([a, b], T.dot(a, b)))
    assert "_n = alloca i32" in f.source("llvm")
    av, bv = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(f(av, bv.T.copy().T), av @ bv, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_join_converts_and_checks_sizes(rng, axis):
    a, b, c = T.dmatrix("a"), T.fmatrix("b"), T.imatrix("c")
    f = entry_only(compiled([a, b, c], T.concatenate([a, b.T, c], axis=axis)))
    av = rng.normal(size=(3, 3))
    bv = rng.normal(size=(3, 3)).astype("float32")
    cv = rng.integers(-5, 5, size=(3, 3)).astype("int32")
    np.testing.assert_array_equal(f(av, bv, cv), np.concatenate([av, bv.T, cv], axis=axis))
    f._runner.allow = True
    with pytest.raises(ValueError):
        f(av, bv, cv[:2, :2])


@pytest.mark.parametrize("index", [(slice(1, None), 0), (slice(None, None, -2),), (-1,),
                                   (slice(None), slice(1, 3)), (None, 1), (2, 1)])
@pytest.mark.parametrize("kind", ["set", "inc"])
def test_set_and_inc_subtensor(rng, index, kind):
    """The value (float32, broadcast along the region's leading dimensions) is converted."""
    x, y = T.dmatrix("x"), T.fvector("y")
    xv = rng.normal(size=(4, 3))
    region = xv[index]
    yv = rng.normal(size=region.shape[-1:] or (1,)).astype("float32")
    value, stored = (y, yv) if region.ndim else (y[0], yv[0])
    update = T.set_subtensor if kind == "set" else T.inc_subtensor
    f = entry_only(compiled([x, y], update(x[index], value) * 1.0))
    want = xv.copy()
    if kind == "set":
        want[index] = stored
    else:
        want[index] += stored
    np.testing.assert_allclose(f(xv, yv), want, rtol=1e-6)


def _in_place_steps(f):
    from theanine.codegen.schedule import plan_lifetimes
    from theanine.compile.native import plan_kernels
    from theanine.compile.scheduler import build_schedule
    schedule = build_schedule(f.graph, plan_kernels(f.graph)[0])[0]
    return len(plan_lifetimes(schedule).in_place)


def test_updates_of_dead_intermediates_happen_in_place(rng):
    """A chain of set/inc_subtensor on an intermediate nothing else reads updates it where it
    lies; one whose input is read again afterwards works on a copy."""
    x, y = T.dmatrix("x"), T.dvector("y")
    a = T.exp(x)
    b = T.inc_subtensor(a[1:], y)
    c = T.set_subtensor(b[:, ::2], -1.0)
    d = T.inc_subtensor(c[0], c[-1])  # the value is read from the buffer it updates: a copy
    f = entry_only(compiled([x, y], T.sum(d, axis=0)))
    assert _in_place_steps(f) == 2
    xv, yv = rng.normal(size=(4, 5)), rng.normal(size=5)
    want = np.exp(xv)
    want[1:] += yv
    want[:, ::2] = -1.0
    want[0] += want[-1].copy()
    np.testing.assert_allclose(f(xv, yv), want.sum(axis=0), rtol=1e-13)
    g = entry_only(compiled([x, y], [T.sum(b, axis=0), T.sum(a, axis=0)]))  # a is read again
    assert _in_place_steps(g) == 0
    got = g(xv, yv)
    np.testing.assert_allclose(got[1], np.exp(xv).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(got[0], (np.exp(xv) + np.r_[[0], [1, 1, 1]][:, None] * yv).sum(axis=0),
                               rtol=1e-13)


def test_gradient_of_indexing_runs_natively(rng):
    x = T.dmatrix("x")
    cost = T.sum(T.exp(x[1:, 0]) ** 2) + T.sum(x[:, ::2])
    f = entry_only(compiled([x], theanine.grad(cost, x)))
    xv = rng.normal(size=(4, 5))
    want = np.zeros_like(xv)
    want[:, ::2] += 1
    want[1:, 0] += 2 * np.exp(2 * xv[1:, 0])
    np.testing.assert_allclose(f(xv), want, rtol=1e-12)


def test_reshape_reads_a_strided_shape_vector(rng):
    x, s = T.dvector("x"), T.lvector("s")
    f = entry_only(compiled([x, s], T.reshape(x, s, ndim=2) + 0))
    xv = rng.normal(size=6)
    np.testing.assert_array_equal(f(xv, np.array([-1, 3, 2])[::2]), xv.reshape(-1, 2))


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "uint8", "bool"])
def test_argmax_argmin(rng, kind, axis, dtype):
    x = T.tensor(dtype=dtype, shape=(None, None, None))
    f = entry_only(compiled([x], getattr(T, kind)(x, axis=axis)))
    xv = (rng.normal(size=(3, 4, 5)) * 3).astype(dtype)
    if dtype == "float64":
        xv[1, 2, 3] = np.nan
    for arr in (xv, xv[:, ::-1].transpose(0, 2, 1)):
        np.testing.assert_array_equal(f(arr), getattr(np, kind)(arr, axis=axis))
    f._runner.allow = True
    with pytest.raises(ValueError):
        f(np.zeros((0, 4, 5), dtype=dtype) if axis in (None, 0) else np.zeros((3, 0, 0), dtype=dtype))


def test_gather_rows_and_points(rng):
    x, i, j = T.dmatrix("x"), T.lvector("i"), T.ivector("j")
    f = entry_only(compiled([x, i, j], [x[i] * 1, x[i, j] + 0, x[i, :] * 2]))
    xv = rng.normal(size=(5, 4))[:, ::-1]
    iv, jv = np.array([4, 0, -1, 2, 2]), np.array([3, -4, 0, 1, 1], dtype="int32")
    got = f(xv, iv, jv)
    np.testing.assert_array_equal(got[0], xv[iv])
    np.testing.assert_array_equal(got[1], xv[iv, jv])
    np.testing.assert_array_equal(got[2], xv[iv] * 2)
    f._runner.allow = True
    with pytest.raises(IndexError):
        f(xv, np.array([5, 0, 0, 0, 0]), jv)
    with pytest.raises(IndexError):
        f(xv, iv, np.array([0, 0, 0, 0, -5], dtype="int32"))


@pytest.mark.parametrize("kind", ["set", "inc"])
def test_scatter_rows_and_points_accumulate(rng, kind):
    x, y, v, i, j = T.dmatrix("x"), T.dmatrix("y"), T.dvector("v"), T.lvector("i"), T.lvector("j")
    update = T.set_subtensor if kind == "set" else T.inc_subtensor
    f = entry_only(compiled([x, y, v, i, j], [update(x[i], y) * 1, update(x[i, j], v) * 1,
                                              update(x[i], v[0]) * 1]))
    xv, yv, vv = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), rng.normal(size=5)
    iv, jv = np.array([1, 3, 1, -1, 0]), np.array([2, 0, 2, 1, -3])
    got = f(xv, yv, vv, iv, jv)
    want = [xv.copy(), xv.copy(), xv.copy()]
    if kind == "set":
        want[0][iv] = yv
        want[1][iv, jv] = vv
        want[2][iv] = vv[0]
    else:
        np.add.at(want[0], iv, yv)
        np.add.at(want[1], (iv, jv), vv)
        np.add.at(want[2], iv, vv[0])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-14)


def test_embedding_gradient_runs_natively(rng):
    E, i = T.dmatrix("E"), T.lvector("i")
    cost = T.sum(T.tanh(E[i]) ** 2)
    f = entry_only(compiled([E, i], theanine.grad(cost, E)))
    Ev, iv = rng.normal(size=(6, 3)), np.array([0, 5, 0, 2])
    want = np.zeros_like(Ev)
    t = np.tanh(Ev[iv])
    np.add.at(want, iv, 2 * t * (1 - t ** 2))
    np.testing.assert_allclose(f(Ev, iv), want, rtol=1e-12)


@pytest.mark.parametrize("mode_", ["add", "mul"])
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "bool"])
def test_cumsum_cumprod(rng, mode_, axis, dtype):
    x = T.tensor(dtype=dtype, shape=(None, None))
    fn = T.cumsum if mode_ == "add" else T.cumprod
    f = entry_only(compiled([x], fn(x, axis=axis)))
    xv = (rng.normal(size=(4, 5)) * 2).astype(dtype)
    ref = (np.cumsum if mode_ == "add" else np.cumprod)
    for arr in (xv, xv.T[::-1], np.zeros((0, 3), dtype)):
        got = f(arr)
        want = ref(arr, axis=axis)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_assert_checks_in_the_entry(rng):
    x = T.dvector("x")
    checked = T.assert_op(x, T.all(T.gt(x, 0)), message="x must be positive")
    f = compiled([x], T.log(checked))
    calls = bails(f)
    np.testing.assert_allclose(f(np.array([1.0, 2.0])), np.log([1.0, 2.0]))
    assert calls.calls == 0
    with pytest.raises(ValueError, match="x must be positive"):
        f(np.array([1.0, -2.0]))


def test_unpickled_arrays_still_take_the_entry(rng):
    """Unpickled arrays carry a copy of their dtype object: the call retries with views."""
    import pickle
    x = T.dvector("x")
    s = shared(np.zeros(3), name="s")
    f = compiled([x], x * 2, updates=[(s, s + x)])
    calls = bails(f)
    xv = pickle.loads(pickle.dumps(rng.normal(size=3)))
    s.set_value(pickle.loads(pickle.dumps(np.ones(3))), borrow=True)
    assert xv.dtype is not np.dtype("float64")
    np.testing.assert_array_equal(f(xv), xv * 2)
    np.testing.assert_array_equal(s.get_value(), 1 + xv)
    assert calls.calls == 0


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5])
def test_fills_of_zero_bits_are_one_memset(value):
    n, m = T.lscalar("n"), T.lscalar("m")
    f = entry_only(compiled([n, m], T.alloc(np.float64(value), n, m)))
    for shape in [(3, 4), (0, 5), (1, 1)]:
        got = f(np.int64(shape[0]), np.int64(shape[1]))
        np.testing.assert_array_equal(got, np.full(shape, value))
        assert np.array_equal(np.signbit(got), np.signbit(np.full(shape, value)))
    steps = [s for s in f._native.rendered.source.splitlines() if "memset" in s and "call" in s or "memset(" in s]
    assert bool(steps) == (value == 0.0 and not np.signbit(value))
