"""A Scan inside a compiled function runs as a native loop in the whole-function entry
(schedule step ``Loop``) in modes 'llvm' and 'c': no call into Python per step. Every
case checks that the call stayed in the entry, and compares with mode 'py'."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.scan_module import scan, until
from test_schedule import bails, compiled, entry_only, target  # noqa: F401 (target: both entries)


def native_and_reference(inputs, outputs, **kwargs):
    """(the function in the target mode, which must never leave its entry nor call into
    Python from it; the same in 'py')."""
    f = entry_only(compiled(inputs, outputs, **kwargs))
    assert f.fallbacks == [] and f._native.host_nodes == []
    return f, theanine.function(inputs, outputs, mode="py", **kwargs)


def assert_same(got, want, rtol=1e-12):
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert np.asarray(g).shape == np.asarray(w).shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


def rnn(x, h0, W, U, **kwargs):
    h, _ = scan(lambda xt, h, W, U: T.tanh(T.dot(xt, W) + T.dot(h, U)), sequences=x,
                outputs_info=h0, non_sequences=[W, U], **kwargs)
    return h


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rnn_forward_and_backward_through_time(rng, dtype):
    x, W, U = (T.tensor3("x", dtype=dtype), T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype))
    h0 = T.matrix("h0", dtype=dtype)
    h = rnn(x, h0, W, U)
    cost = (h ** 2).sum()
    f, ref = native_and_reference([x, h0, W, U], [h, cost] + theanine.grad(cost, [x, h0, W, U]))
    values = [rng.normal(size=s).astype(dtype) for s in [(6, 3, 4), (3, 5), (4, 5), (5, 5)]]
    assert_same(f(*values), ref(*values), rtol=1e-12 if dtype == "float64" else 2e-4)


def test_several_outputs_with_taps_and_one_not_fed_back(rng):
    y0, z0, x = T.dvector("y0"), T.dscalar("z0"), T.dvector("x")
    (y, z, w), _ = scan(lambda xt, y3, y1, z: (0.5 * y3 - y1 + xt * z, z * 0.9 + xt, T.stack([xt, z])),
                        sequences=x, outputs_info=[{"initial": y0, "taps": [-3, -1]}, z0, None])
    cost = y.sum() + z[-1] + w.sum()
    f, ref = native_and_reference([x, y0, z0], [y, z, w] + theanine.grad(cost, [x, y0, z0]))
    values = [rng.normal(size=7), rng.normal(size=3), np.float64(1.5)]
    assert_same(f(*values), ref(*values))


@pytest.mark.parametrize("layout", ["transposed", "backwards", "strided"])
def test_sequences_of_any_layout(rng, layout):
    x, h0, W, U = T.dmatrix("x"), T.dvector("h0"), T.dmatrix("W"), T.dmatrix("U")
    seq = {"transposed": x.T, "backwards": x, "strided": x[::2, 1:]}[layout]
    h = rnn(seq, h0, W, U, go_backwards=layout == "backwards")
    f, ref = native_and_reference([x, h0, W, U], [h] + theanine.grad(h.sum(), [x, W]))
    shape = {"transposed": (3, 6), "backwards": (6, 3), "strided": (6, 4)}[layout]
    values = [rng.normal(size=shape), rng.normal(size=2), rng.normal(size=(3, 2)), rng.normal(size=(2, 2))]
    assert_same(f(*values), ref(*values))


def test_n_steps_shorter_than_the_sequence_and_a_non_contiguous_argument(rng):
    x, n = T.dmatrix("x"), T.lscalar("n")
    acc, _ = scan(lambda row, acc: acc * 0.5 + row, sequences=x, outputs_info=T.zeros_like(x[0]),
                  n_steps=n)
    f, ref = native_and_reference([x, n], acc)
    a = rng.normal(size=(5, 8))[:, ::2]
    assert_same(f(a, 3), ref(a, 3))


def test_nested_loops_and_empty_rows(rng):
    m = T.dmatrix("m")

    def row_cumsum(row):
        return scan(lambda v, acc: acc + v * row[0], sequences=row, outputs_info=T.constant(0.0))[0]
    out, _ = scan(row_cumsum, sequences=m)
    f, ref = native_and_reference([m], [out, theanine.grad(out.sum(), m)])
    a = rng.normal(size=(3, 4))
    assert_same(f(a), ref(a))
    h0, x = T.dmatrix("h0"), T.dtensor3("x")
    h = rnn(x, h0, T.eye(3), T.eye(3))
    f, ref = native_and_reference([x, h0], h)
    empty = [np.zeros((4, 0, 3)), np.zeros((0, 3))]  # a batch of no rows
    assert_same(f(*empty), ref(*empty))


def test_updates_of_shared_variables_and_random_draws_inside_the_step():
    random = pytest.importorskip("theanine.tensor.random")
    x, W = T.dvector("x"), T.dscalar("W")
    total = theanine.shared(0.0, name="total")
    out, updates = scan(lambda xt: (xt * W * random.RandomStreams(7).normal(()), {total: total + xt}),
                        sequences=x)
    f = entry_only(compiled([x, W], [out, theanine.grad(out.sum(), W)], updates=updates))
    assert f.fallbacks == []
    first, g = f(np.ones(4), 2.0)
    second, _ = f(np.ones(4), 2.0)
    draw = theanine.function([], random.RandomStreams(7).normal(()), mode="py")
    np.testing.assert_allclose(np.concatenate([first, second]), 2.0 * np.array([draw() for _ in range(8)]))
    assert g == pytest.approx(first.sum() / 2.0)
    assert total.get_value() == 8.0


def test_what_the_loop_does_not_take_runs_node_by_node_with_its_errors(rng):
    x, n = T.dvector("x"), T.lscalar("n")
    doubled, _ = scan(lambda v: v * 2, sequences=x, n_steps=n)
    f = compiled([x, n], doubled)
    counter = bails(f)
    np.testing.assert_allclose(f(np.arange(4.0), 3), [0, 2, 4])
    assert counter.calls == 0
    assert f(np.arange(4.0), 0).shape == (0,)  # the row shape of an empty stack is not native
    assert counter.calls == 1
    with pytest.raises(ValueError, match="fewer than the 5 steps"):
        f(np.arange(4.0), 5)
    with pytest.raises(ValueError, match="non-negative"):
        f(np.arange(4.0), -1)
    h0 = T.dvector("h0")
    grows, _ = scan(lambda v, h: T.concatenate([h, [v]]), sequences=x, outputs_info=h0)
    g = compiled([x, h0], grows)
    with pytest.raises(ValueError, match="must keep the shape"):
        g(np.arange(3.0), np.zeros(2))


def test_many_calls_keep_memory_and_references_steady(rng):
    import sys
    x, h0, W, U = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W"), T.dmatrix("U")
    h = rnn(x, h0, W, U)
    f = entry_only(compiled([x, h0, W, U], [h[-1]] + theanine.grad(h.sum(), [W, U])))
    values = [rng.normal(size=s) for s in [(5, 2, 3), (2, 4), (3, 4), (4, 4)]]
    before = [sys.getrefcount(v) for v in values]
    first = f(*values)
    for _ in range(500):
        again = f(*values)
    assert [sys.getrefcount(v) for v in values] == before
    assert_same(again, first, rtol=0)
    assert [sys.getrefcount(again[k]) for k in range(3)] == [2, 2, 2]  # the list's and the call's


def test_a_while_loop_stops_natively_after_the_step_whose_condition_holds(rng):
    x0 = T.dscalar("x0")
    out, _ = scan(lambda p: (p * 2, until(p * 2 > 40)), outputs_info=x0, n_steps=100)
    f, ref = native_and_reference([x0], [out, out.shape[0]])
    for start in (1.0, 50.0, 1e-300):
        assert_same(f(np.float64(start)), ref(np.float64(start)))
    assert f(np.float64(1.0))[0].tolist() == [2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("cond_dtype", ["bool", "int32", "float64"])
def test_while_loops_with_histories_stacks_and_states(rng, cond_dtype):
    xs, h0 = T.dmatrix("xs"), T.dmatrix("h0")

    def step(xt, h2, h1, acc):
        h = 0.5 * h1 - 0.25 * h2 + xt
        stop = T.cast(T.abs(h).sum() > 3.0, cond_dtype)
        return [h, acc + h.sum(), T.stack([h.max(), h.min()])], until(stop)
    (hs, accs, extremes), _ = scan(step, sequences=xs, outputs_info=[{"initial": h0, "taps": [-2, -1]},
                                                                        T.constant(0.0), None])
    f, ref = native_and_reference([xs, h0], [hs, accs, extremes, accs[-1], hs.shape[0]])
    h_init = rng.normal(size=(2, 3)) * 0.1
    for scale, steps in ((0.1, 6), (2.0, None)):  # never stops; stops early
        data = scale * rng.uniform(0.5, 1.5, size=(6, 3))
        got = f(data, h_init)
        assert_same(got, ref(data, h_init))
        assert got[0].shape[0] == got[1].shape[0] == got[2].shape[0] == got[4]
        if steps:
            assert got[1].shape[0] == steps
        else:
            assert got[1].shape[0] < 6


def test_a_nan_condition_stops_and_no_step_runs_past_the_count(rng):
    x0 = T.dscalar("x0")
    out, _ = scan(lambda p: (p + 1.0, until(T.switch(p > 2.0, np.nan, 0.0))), outputs_info=x0, n_steps=5)
    f, ref = native_and_reference([x0], out)
    assert_same(f(np.float64(0.0)), ref(np.float64(0.0)))
    assert f(np.float64(0.0)).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert f(np.float64(-10.0)).tolist() == [-9.0, -8.0, -7.0, -6.0, -5.0]  # never stops: 5 steps


def test_kernels_list_the_loop_bodies_kernels(rng, target):
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    h, _ = scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0, non_sequences=[W])
    f = compiled([x, h0, W], [h] + theanine.grad((h ** 2).sum(), [W]))
    in_loops = [k for k in f.kernels if k.loop]
    assert {k.loop for k in in_loops} == {"Scan", "Scan{grad_of_scan}"}
    forward = [k for k in in_loops if k.loop == "Scan"]
    assert [k.ops for k in forward] == [("add", "tanh")]
    source = f.source(target)
    assert all(k.name in source for k in f.kernels)
    assert "(in the loop of Scan)" in str(forward[0])
    assert all(k.node not in f._native.thunks for k in in_loops)  # only the entry calls them
