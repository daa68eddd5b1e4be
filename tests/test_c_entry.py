"""The whole-function entry of mode 'c' (codegen/c_entry.py): one native call per function call.

Each test compiles with mode 'c', checks that the function got its entry, and compares
with mode 'py'. ``entry_only`` makes the node-by-node path raise, so a test using it
proves the entry computed the result itself; ``handed_over`` counts the calls the entry
handed to that path.
"""

import threading

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import shared


def compiled(inputs, outputs, **kwargs):
    f = theanine.function(inputs, outputs, mode="c", **kwargs)
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


def handed_over(f):
    f._runner = _Runner(f._runner, allow=True)
    return f._runner


def reference(inputs, outputs, **kwargs):
    return theanine.function(inputs, outputs, mode="py", **kwargs)


def test_elementwise_with_broadcasting_and_strides(rng):
    x, r, c = T.dmatrix("x"), T.drow("r"), T.dcol("c")
    outs = [T.exp(-x * x) * r + T.tanh(c) / (1 + abs(x)), T.maximum(x, c) - r, x * 2 + 1]
    f, ref = entry_only(compiled([x, r, c], outs)), reference([x, r, c], outs)
    for xv in (rng.normal(size=(6, 10)), rng.normal(size=(6, 20))[:, ::2], rng.normal(size=(10, 6)).T,
               np.zeros((0, 10))):
        args = (xv, rng.normal(size=(1, xv.shape[1])), rng.normal(size=(xv.shape[0], 1)))
        for got, want in zip(f(*args), ref(*args)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
            assert got.flags.c_contiguous and got.flags.owndata


def test_a_scalar_function_returns_the_array_itself(rng):
    x = T.dvector("x")
    f = entry_only(compiled([x], x + 1))
    xv = rng.normal(size=10)
    got = f(xv)
    assert type(got) is np.ndarray and got.shape == (10,)
    np.testing.assert_array_equal(got, xv + 1)
    assert f._native.entry(xv) is not NotImplemented


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min", "all", "any"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2)])
def test_reductions(rng, kind, axis):
    x = T.tensor(dtype="float64", shape=(None, None, None))
    e = getattr(T, kind)(x > 0 if kind in ("all", "any") else x * 1.5, axis=axis)
    f, ref = entry_only(compiled([x], e)), reference([x], e)
    xv = np.swapaxes(rng.normal(size=(2, 4, 3)), 0, 2)  # not contiguous
    np.testing.assert_allclose(f(xv), ref(xv), rtol=1e-12)
    empty = np.zeros((0, 4, 2))
    if kind in ("max", "min") and axis != 1:
        f._runner.allow = True
        with pytest.raises(ValueError):
            f(empty)
    else:
        np.testing.assert_array_equal(f(empty), ref(empty))


def padded(v):
    """``v`` as a view with gaps: every other element of a vector, the first columns of a
    wider matrix (a leading dimension larger than the row)."""
    if v.ndim == 1:
        return np.repeat(v, 2)[::2]
    return np.pad(v, ((0, 0), (0, 2)))[:, :v.shape[1]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ranks", [(2, 2), (2, 1), (1, 2), (1, 1)])
def test_dot_with_transposed_and_strided_operands(rng, dtype, ranks):
    m, k, n = 4, 3, 5
    a = T.tensor(dtype=dtype, shape=(None,) * ranks[0])
    b = T.tensor(dtype=dtype, shape=(None,) * ranks[1])
    f, ref = entry_only(compiled([a, b], T.dot(a, b))), reference([a, b], T.dot(a, b))
    av = rng.normal(size=(m, k)[2 - ranks[0]:]).astype(dtype)
    bv = rng.normal(size=(k, n)[:ranks[1]]).astype(dtype)
    layouts_a = [av, np.asfortranarray(av), padded(av), padded(av.T.copy()).T]
    layouts_b = [bv, np.asfortranarray(bv), padded(bv), padded(bv.T.copy()).T]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for x in layouts_a:
        for y in layouts_b:
            got = f(x, y)
            assert got.dtype == dtype and got.shape == np.dot(x, y).shape
            np.testing.assert_allclose(got, ref(x, y), rtol=tol, atol=tol)


def test_dot_layouts_blas_cannot_read_take_the_other_path(rng):
    a, b = T.dmatrix(), T.dmatrix()
    f = compiled([a, b], T.dot(a, b))
    calls = handed_over(f)
    for shapes in [((3, 0), (0, 4)), ((0, 2), (2, 4))]:
        got = f(np.ones(shapes[0]), np.ones(shapes[1]))
        np.testing.assert_array_equal(got, np.zeros((shapes[0][0], shapes[1][1])))
    assert calls.calls == 0
    av, bv = rng.normal(size=(6, 4)), rng.normal(size=(4, 6))
    np.testing.assert_allclose(f(av[::-1], bv[:, ::2]), av[::-1] @ bv[:, ::2])  # negative stride
    assert calls.calls == 1
    with pytest.raises(ValueError):
        f(np.ones((2, 3)), np.ones((2, 3)))


@pytest.mark.parametrize("index", [
    (slice(None),), (slice(1, None),), (slice(None, None, -1),), (slice(-2, None, -2),),
    (slice(10, -10, -3),), (slice(3, 1),), (1, slice(None, None, 2)), (-1, -2),
    (None, slice(2, 0, -1), 1)])
def test_basic_indexing(rng, index):
    x = T.dmatrix("x")
    f = entry_only(compiled([x], x[index] * 2))
    xv = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(f(xv), xv[index] * 2)


def test_symbolic_indices_and_out_of_range(rng):
    x, i, j = T.dmatrix("x"), T.iscalar("i"), T.lscalar("j")
    f = compiled([x, i, j], x[i, j:] + 1)
    calls = handed_over(f)
    xv = rng.normal(size=(3, 5))
    for iv, jv in [(0, 0), (2, -2), (-3, 4), (1, 9), (1, -9)]:
        np.testing.assert_array_equal(f(xv, np.array(iv, "int32"), np.array(jv)), xv[iv, jv:] + 1)
    assert calls.calls == 0
    with pytest.raises(IndexError):
        f(xv, np.array(3, "int32"), np.array(0))
    assert calls.calls == 1


def test_alloc_arange_make_vector_reshape(rng):
    v, n, m = T.dvector("v"), T.lscalar("n"), T.iscalar("m")
    outs = [T.alloc(v, n, v.shape[0]) * 1, T.arange(n, m, 2) + 0, T.arange(m, n, -3) + 0,
            T.stack([n, T.cast(m, "int64")]) + 0, T.reshape(v, (n, -1)) * 2,
            T.reshape(v[::-1], (-1, n)) + 1, T.specify_shape(v, (6,)) * 2]
    f = entry_only(compiled([v, n, m], outs))
    ref = reference([v, n, m], outs)
    args = (rng.normal(size=6), np.array(2), np.array(9, "int32"))
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_array_equal(got, want)
    f._runner.allow = True
    with pytest.raises(ValueError):
        f(args[0], np.array(-1), args[2])  # a negative size


def test_reshape_reads_a_strided_shape_vector_by_its_stride():
    x, s = T.dvector("x"), T.lvector("s")
    f = entry_only(compiled([x, s], T.reshape(x, s, ndim=2) * 1))
    shape = np.array([-1, 3, 2])[::2]  # (-1, 2): read contiguously it would be (-1, 3)
    assert f(np.arange(6.0), shape).shape == (3, 2)


def test_updates_of_a_training_step(rng):
    def build(mode):
        X, y = T.fmatrix("X"), T.fmatrix("y")
        W = shared(np.linspace(-1, 1, 15).reshape(5, 3).astype("float32"), name="W")
        b = shared(np.zeros(3, "float32"), name="b")
        p = T.nnet.sigmoid(T.dot(X, W) + b)
        cost = T.mean((p - y) ** 2)
        gW, gb = theanine.grad(cost, [W, b])
        f = theanine.function([X, y], cost, mode=mode, updates=[(W, W - 0.5 * gW), (b, b - 0.5 * gb)])
        return f, W, b

    (f, W, b), (g, Wr, br) = build("c"), build("py")
    assert f._native.entry is not None, f._native.why_no_entry
    entry_only(f)
    Xv, yv = rng.normal(size=(7, 5)).astype("float32"), rng.uniform(size=(7, 3)).astype("float32")
    for _ in range(3):
        got, want = f(Xv, yv), g(Xv, yv)
        assert got.shape == () and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5)
        np.testing.assert_allclose(W.get_value(), Wr.get_value(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b.get_value(), br.get_value(), rtol=1e-5, atol=1e-7)


def test_a_call_handed_over_applies_updates_once():
    x = T.dmatrix("x")
    c = shared(np.zeros((1, 1)), name="c")
    f = compiled([x], T.sum(x), updates=[(c, c + T.sum(x, keepdims=True))])
    calls = handed_over(f)
    f(np.ones((2, 2)))
    f(np.ones((2, 2)).astype("float32"))  # converted, then taken by the entry
    assert calls.calls == 0
    f(np.ones((600, 600)))  # too large for one core: the node-by-node path splits it
    assert calls.calls == 1
    np.testing.assert_array_equal(c.get_value(), [[360008.0]])


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


def test_long_kernels_release_the_gil_and_threads_agree(rng):
    x = T.dvector("x")
    f = entry_only(compiled([x], T.exp(-x * x) * 3 + T.sum(x)))
    data = [rng.normal(size=150_000) for _ in range(4)]
    want = [np.exp(-a * a) * 3 + a.sum() for a in data]
    errors = []

    def work(k):
        for _ in range(5):
            if not np.allclose(f(data[k]), want[k]):
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
    wrong = xv.astype("float32")  # handed over after the argument checks
    for _ in range(200):
        f(xv)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for k in range(20_000):
        f(xv if k % 100 else wrong)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 20_000  # KiB; a leak of the 16 KB intermediate would be 320 MB


def test_source_shows_the_entry():
    x = T.dvector("x")
    f = compiled([x], T.exp(x) + 1)
    text = f.source("c")
    name = f._native.entry.__name__
    assert f"void *{name}(void *self, void *const *args, int64_t nargs)" in text
    assert "Python.h" not in text and "numpy/" not in text  # no header but the C library's
    assert text == theanine.function([x], T.exp(x) + 1, mode="c").source("c")  # deterministic
