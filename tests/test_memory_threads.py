"""Long runs, output ownership and threads.

- 100,000 calls of a compiled training step (with updates) leave resident memory flat
  (growth under 30 MB, read from /proc/self/statm), through the native entry and, now
  and then, through the node-by-node path.
- A call's outputs are the caller's: they never share memory with the arguments, shared
  variables, constants, each other, or what a later call returns, unless ``Out(borrow=True)``
  allows it; writing into them changes nothing else.
- One compiled function called from 4 threads at once gives every thread its own right
  answers, for small inputs (the native entry) and for inputs of 250,000 elements (kernels
  split across cores, the GIL released).
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import Out, shared

LARGE = 250_000


def rss_bytes() -> int:
    """The resident set size of this process, now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _training_step(mode, rng):
    X, y = T.fmatrix("X"), T.fmatrix("y")
    W1 = shared(rng.normal(size=(8, 16)).astype("float32") * 0.3, name="W1")
    b1 = shared(np.zeros(16, "float32"), name="b1")
    W2 = shared(rng.normal(size=(16, 4)).astype("float32") * 0.3, name="W2")
    h = T.nnet.relu(T.dot(X, W1) + b1)
    p = T.nnet.sigmoid(T.dot(h, W2))
    cost = T.mean((p - y) ** 2)
    params = [W1, b1, W2]
    grads = theanine.grad(cost, params)
    updates = [(v, v - np.float32(0.05) * g) for v, g in zip(params, grads)]
    return theanine.function([X, y], cost, mode=mode, updates=updates), params


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_100k_training_steps_keep_memory_flat(mode, rng):
    step, params = _training_step(mode, rng)
    Xv = rng.normal(size=(32, 8)).astype("float32")
    yv = rng.uniform(size=(32, 4)).astype("float32")
    slow = [Xv.tolist(), yv.tolist()]                 # lists take the node-by-node path
    first = float(step(Xv, yv))
    for _ in range(2_000):                            # warm up: caches, allocator pools
        step(Xv, yv)
    gc.collect()
    before = rss_bytes()
    for k in range(100_000):
        if k % 1000:
            step(Xv, yv)
        else:
            step(*slow)
    gc.collect()
    after = rss_bytes()
    growth = after - before
    print(f"{mode}: RSS {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after "
          f"100,000 calls ({growth / 2**20:+.2f} MiB)")
    assert growth < 30 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"
    last = float(step(Xv, yv))
    assert np.isfinite(last) and last < first          # it was training all along
    assert all(np.all(np.isfinite(p.get_value())) for p in params)


# ------------------------------------------------------------------ output ownership

@pytest.mark.parametrize("n", [5, LARGE], ids=["small", "large"])
def test_outputs_belong_to_the_caller(mode, n):
    x = T.dvector("x")
    s = shared(np.arange(n, dtype="float64"), name="s")
    c = T.constant(np.full(n, 2.0))
    y = x * 3
    outputs = [y, y, x, x[::-1], s, s[::-1], c, c[::-1], T.exp(x) + s, x.dimshuffle("x", 0)]
    f = theanine.function([x], outputs, mode=mode)
    v = np.linspace(0, 1, n)
    keep_v, keep_s = v.copy(), s.get_value()
    first = f(v)
    snapshot = [o.copy() for o in first]
    second = f(v * 2)
    everything = first + second
    for k, a in enumerate(everything):
        assert not np.may_share_memory(a, v), k
        assert not np.may_share_memory(a, s.get_value(borrow=True)), k
        for b in everything[k + 1:]:
            assert not np.may_share_memory(a, b), k
    for o, want in zip(first, snapshot):                 # a later call changed nothing
        np.testing.assert_array_equal(o, want)
    for o in first + second:
        o[...] = -7.0                                    # the caller may write into them
    np.testing.assert_array_equal(v, keep_v)
    np.testing.assert_array_equal(s.get_value(), keep_s)
    third = f(v)
    for o, want in zip(third, snapshot):
        np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("mode, how", [
    ("llvm", "entry"), ("c", "entry"), ("py", "entry"), ("llvm", "lists"), ("c", "lists"),
    ("llvm", "large"), ("c", "large")])
def test_an_output_that_is_also_an_update_is_a_copy(mode, how):
    n = 1 << 19 if how == "large" else 4  # past the native entry's size limit
    x = T.dvector("x")
    w = shared(np.zeros(n), name="w")
    f = theanine.function([x], w + x, updates=[(w, w + x)], mode=mode)
    out = f(np.ones(n) if how != "lists" else [1.0] * n)
    assert not np.may_share_memory(out, w.get_value(borrow=True))
    out[0] = 55.0
    assert w.get_value()[0] == 1.0


def test_borrowed_outputs_are_right_and_may_be_reused(mode):
    x = T.dvector("x")
    f = theanine.function([x], [Out(x * 2, borrow=True), x + 1], mode=mode)
    a, b = f(np.ones(3))
    np.testing.assert_array_equal(a, [2.0, 2.0, 2.0])
    a2, b2 = f(np.full(3, 4.0))
    np.testing.assert_array_equal(a2, [8.0, 8.0, 8.0])
    assert not np.may_share_memory(b, b2)               # not borrowed: always fresh
    np.testing.assert_array_equal(b, [2.0, 2.0, 2.0])


# ------------------------------------------------------------------------- threads

def _in_threads(f, datasets, wants, repeats, check):
    """Call ``f`` on ``datasets[k]`` in thread k, ``repeats`` times, all starting together."""
    barrier = threading.Barrier(len(datasets))
    errors = []

    def work(k):
        barrier.wait()
        try:
            for _ in range(repeats):
                check(f(*datasets[k]), wants[k])
        except Exception as exc:  # reported below with the thread's number
            errors.append((k, repr(exc)[:500]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(datasets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


def _expression():
    x, y = T.dvectors("x", "y")
    w = shared(np.float64(0.5), name="w")
    return [x, y], [T.exp(-x * x) * y + T.sum(x) * w, T.max(y), (x * y).sum()]


def _numpy(x, y):
    return [np.exp(-x * x) * y + x.sum() * 0.5, y.max(), (x * y).sum()]


def _close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10)


@pytest.mark.parametrize("n, repeats", [(7, 2_000), (LARGE, 6)], ids=["small", "large"])
def test_four_threads_call_one_function(mode, n, repeats, rng):
    inputs, outputs = _expression()
    f = theanine.function(inputs, outputs, mode=mode)
    sizes = [n, n + 1, max(n - 3, 1), n + 2]            # different shapes in every thread
    datasets = [(rng.normal(size=m), rng.normal(size=m)) for m in sizes]
    wants = [_numpy(*d) for d in datasets]
    _in_threads(f, datasets, wants, repeats, _close)


def test_four_threads_through_the_node_by_node_path(mode, rng):
    """A gather (no native kernel) sends every call through the runner between kernels."""
    x, i = T.dvector("x"), T.lvector("i")
    f = theanine.function([x, i], [T.exp(x[i]) * 2 + T.sum(x), x[i][::-1] * 1], mode=mode)
    datasets = []
    for m in (9, 30, 11, LARGE):
        xv = rng.normal(size=m)
        datasets.append((xv, rng.integers(-m, m, size=m)))
    wants = [[np.exp(x[i]) * 2 + x.sum(), x[i][::-1]] for x, i in datasets]
    _in_threads(f, datasets, wants, 20, _close)


def test_four_threads_compile_and_run_at_once(mode):
    """Compiling is serialised where it must be (one LLVM engine per process), never wrong."""
    x = T.dvector("x")
    results, errors = {}, []
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        try:
            f = theanine.function([x], T.exp(x * (k + 0.25)) + T.sum(x) * k, mode=mode)
            results[k] = f(np.linspace(0, 1, 9))
        except Exception as exc:
            errors.append((k, repr(exc)[:500]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    v = np.linspace(0, 1, 9)
    for k in range(4):
        np.testing.assert_allclose(results[k], np.exp(v * (k + 0.25)) + v.sum() * k, rtol=1e-12)
