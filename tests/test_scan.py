"""theanine.scan_module: scan and the loops built on it, against NumPy loops, in every mode."""

import numpy as np
import pytest

import theanine
import theanine.scan_module as scan_module
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.scan_module import (Scan, foldl, foldr, map, reduce, scan, scan_checkpoints,  # noqa: A004
                                  until)


def run(mode, inputs, outputs, *values):
    return theanine.function(inputs, outputs, mode=mode, on_unused_input="ignore")(*values)


def scan_node(var):
    """The Scan node behind a scan output (through the slice that drops the initial states)."""
    while not isinstance(var.owner.op, Scan):
        var = var.owner.inputs[0]
    return var.owner


def tanh_rnn(x, h0, W, U, mode, **kwargs):
    h, _ = scan(lambda xt, h, W, U: T.tanh(T.dot(xt, W) + T.dot(h, U)), sequences=x,
                outputs_info=h0, non_sequences=[W, U], mode=mode, **kwargs)
    return h


def numpy_rnn(x, h0, W, U):
    hs, h = [], h0
    for xt in x:
        h = np.tanh(xt @ W + h @ U)
        hs.append(h)
    return np.array(hs)


def test_names_through_the_module():
    from theanine.scan_module import builder, checkpoints, step, views
    assert scan_module.scan is builder.scan
    assert scan_module.until is step.until
    assert scan_module.scan_checkpoints is checkpoints.scan_checkpoints
    for name in ("map", "reduce", "foldl", "foldr"):
        assert getattr(scan_module, name) is getattr(views, name)
    assert set(scan_module.__all__) >= {"scan", "map", "reduce", "foldl", "foldr", "until",
                                        "scan_checkpoints"}


def test_cumulative_sum(mode, rng):
    x = T.dvector("x")
    out, updates = scan(lambda xt, acc: acc + xt, sequences=x, outputs_info=T.constant(0.0), mode=mode)
    assert not updates
    g = theanine.grad((out * np.arange(1.0, 8.0)).sum(), x)
    a = rng.normal(size=7)
    total, gx = run(mode, [x], [out, g], a)
    np.testing.assert_allclose(total, np.cumsum(a))
    np.testing.assert_allclose(gx, np.cumsum(np.arange(1.0, 8.0)[::-1])[::-1])


def test_polynomial(mode):
    coefficients = T.dvector("coefficients")
    x = T.dscalar("x")
    terms, _ = scan(lambda c, power, x: c * x ** power,
                    sequences=[coefficients, T.arange(10)], non_sequences=x, mode=mode)
    poly = terms.sum()
    c = np.array([1.0, 0.0, 2.0, -3.0])  # the shorter sequence sets the number of steps
    assert run(mode, [coefficients, x], poly, c, 3.0) == pytest.approx(np.polyval(c[::-1], 3.0))
    dx = theanine.grad(poly, x)
    assert run(mode, [coefficients, x], dx, c, 3.0) == pytest.approx(np.polyval(np.polyder(c[::-1]), 3.0))


def test_sequence_taps(mode, rng):
    x = T.dvector("x")
    out, _ = scan(lambda prev, cur, nxt: prev + 2 * cur + nxt,
                  sequences={"input": x, "taps": [-1, 0, 1]}, mode=mode)
    a = rng.normal(size=9)
    np.testing.assert_allclose(run(mode, [x], out, a), a[:-2] + 2 * a[1:-1] + a[2:])
    verify_grad(lambda x: scan(lambda p, c, n: p * c + n, sequences={"input": x, "taps": [-1, 0, 1]},
                               mode=mode)[0], [a], mode=mode)


def test_fibonacci_with_taps(mode):
    f0 = T.lvector("f0")
    n = T.lscalar("n")
    fib, _ = scan(lambda a, b: a + b, outputs_info={"initial": f0, "taps": [-2, -1]}, n_steps=n,
                  mode=mode)
    np.testing.assert_array_equal(run(mode, [f0, n], fib, [0, 1], 10),
                                  [1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    fixed, _ = scan(lambda a, b: a + b, outputs_info={"initial": f0, "taps": [-2, -1]}, n_steps=4,
                    mode=mode)
    np.testing.assert_array_equal(run(mode, [f0], fixed, [2, 1]), [3, 4, 7, 11])


def test_taps_with_gaps_and_several_outputs(mode, rng):
    y0, z0 = T.dvector("y0"), T.dscalar("z0")
    x = T.dvector("x")
    (y, z), _ = scan(lambda xt, y3, y1, z: (0.5 * y3 - y1 + xt * z, z * 0.9 + xt),
                     sequences=x, outputs_info=[{"initial": y0, "taps": [-3, -1]}, z0], mode=mode)
    a, ys, zs = rng.normal(size=6), [0.2, -0.4, 0.7], 1.5
    exp_y, exp_z, z_prev = list(ys), [], zs
    for t, xt in enumerate(a):
        exp_y.append(0.5 * exp_y[t] - exp_y[t + 2] + xt * z_prev)
        z_prev = z_prev * 0.9 + xt
        exp_z.append(z_prev)
    got_y, got_z = run(mode, [x, y0, z0], [y, z], a, ys, zs)
    np.testing.assert_allclose(got_y, exp_y[3:])
    np.testing.assert_allclose(got_z, exp_z)
    verify_grad(lambda x, y0, z0: scan(lambda xt, y3, y1, z: [0.5 * y3 - y1 + xt * z, z * 0.9 + xt],
                                       sequences=x, outputs_info=[{"initial": y0, "taps": [-3, -1]}, z0],
                                       mode=mode)[0][0], [a, np.array(ys), np.array(zs)], mode=mode)


def test_tanh_rnn_forward_and_gradients(mode, rng):
    x, W, U = T.dmatrices("x", "W", "U")
    h0 = T.dvector("h0")
    X, H0 = rng.normal(size=(5, 3)), rng.normal(size=2)
    Wv, Uv = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    np.testing.assert_allclose(run(mode, [x, h0, W, U], tanh_rnn(x, h0, W, U, mode), X, H0, Wv, Uv),
                               numpy_rnn(X, H0, Wv, Uv))
    verify_grad(lambda x, h0, W, U: tanh_rnn(x, h0, W, U, mode), [X, H0, Wv, Uv], mode=mode)


def truncated_bptt(X, H0, W, U, k):
    """Gradients of sum(h) for the tanh RNN, back-propagated through the last k steps only."""
    hs = numpy_rnn(X, H0, W, U)
    prev = np.vstack([H0[None], hs[:-1]])
    gX, gW, gU, gH0 = np.zeros_like(X), np.zeros_like(W), np.zeros_like(U), np.zeros_like(H0)
    pending = np.zeros_like(H0)
    n = len(X)
    for t in range(n - 1, max(n - k, 0) - 1, -1):
        d = (1.0 + pending) * (1 - hs[t] ** 2)
        gW += np.outer(X[t], d)
        gU += np.outer(prev[t], d)
        gX[t] = W @ d
        pending = U @ d
    if k >= n:
        gH0 = pending
    return gX, gH0, gW, gU


@pytest.mark.parametrize("k", [2, 10])
def test_truncate_gradient(mode, rng, k):
    x, W, U = T.dmatrices("x", "W", "U")
    h0 = T.dvector("h0")
    h = tanh_rnn(x, h0, W, U, mode, truncate_gradient=k)
    grads = theanine.grad(h.sum(), [x, h0, W, U])
    values = [rng.normal(size=(5, 3)), rng.normal(size=2), rng.normal(size=(3, 2)), rng.normal(size=(2, 2))]
    for got, expected in zip(run(mode, [x, h0, W, U], grads, *values), truncated_bptt(*values, k)):
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_go_backwards(mode, rng):
    x = T.dvector("x")
    out, _ = scan(lambda xt, acc: acc + xt, sequences=x, outputs_info=T.constant(0.0),
                  go_backwards=True, mode=mode)
    a = rng.normal(size=6)
    np.testing.assert_allclose(run(mode, [x], out, a), np.cumsum(a[::-1]))
    # each tap is sliced first, then the rows are visited from the end
    diff, _ = scan(lambda prev, cur: cur - prev, sequences={"input": x, "taps": [-1, 0]},
                   go_backwards=True, mode=mode)
    np.testing.assert_allclose(run(mode, [x], diff, a), np.diff(a)[::-1])
    gx = theanine.grad((out * np.arange(6.0)).sum(), x)
    # x[i] enters the sums of every step from 5 - i on
    np.testing.assert_allclose(run(mode, [x], gx, a), np.cumsum(np.arange(6.0)[::-1]))


def test_n_steps_limits_the_sequences(mode, rng):
    x, y = T.dvector("x"), T.dvector("y")
    n = T.lscalar("n")
    out, _ = scan(lambda a, b: a * b, sequences=[x, y], n_steps=n, mode=mode)
    a, b = rng.normal(size=8), rng.normal(size=6)
    np.testing.assert_allclose(run(mode, [x, y, n], out, a, b, 4), a[:4] * b[:4])
    with pytest.raises(ValueError, match="fewer than the 7 steps"):
        run(mode, [x, y, n], out, a, b, 7)


def test_until_stops_early(mode):
    x0 = T.dscalar("x0")
    out, _ = scan(lambda p: (p * 2, until(p * 2 > 40)), outputs_info=x0, n_steps=100, mode=mode)
    np.testing.assert_array_equal(run(mode, [x0], out, 1.0), [2, 4, 8, 16, 32, 64])
    np.testing.assert_array_equal(run(mode, [x0], out, 50.0), [100])
    assert run(mode, [x0], theanine.grad(out[-1], x0), 1.0) == 64.0
    xs = T.dvector("xs")
    partial, _ = scan(lambda xt, acc: (acc + xt, until(T.eq(xt, 0))), sequences=xs,
                      outputs_info=T.constant(0.0), mode=mode)
    np.testing.assert_array_equal(run(mode, [xs], partial, [1.0, 2.0, 0.0, 4.0]), [1, 3, 3])


def test_zero_steps_give_empty_outputs_of_the_right_shape(mode):
    s, W = T.dmatrix("s"), T.dmatrix("W")
    h0 = T.dvector("h0")
    (h, y), _ = scan(lambda st, h: [h + st.sum(), T.dot(st, W)], sequences=s,
                     outputs_info=[h0, None], mode=mode)
    got_h, got_y = run(mode, [s, h0, W], [h, y], np.zeros((0, 3)), np.ones(4), np.ones((3, 5)))
    assert got_h.shape == (0, 4) and got_y.shape == (0, 5)
    n = T.lscalar("n")
    f0 = T.dmatrix("f0")
    fib, _ = scan(lambda a, b: a + b, outputs_info={"initial": f0, "taps": [-2, -1]}, n_steps=n,
                  mode=mode)
    assert run(mode, [f0, n], fib, np.ones((2, 7)), 0).shape == (0, 7)


def test_map_reduce_foldl_foldr(mode, rng):
    x, y = T.dvector("x"), T.dvector("y")
    a, b = rng.normal(size=5), rng.normal(size=5)
    squares, _ = map(lambda v: v ** 2, x, mode=mode)
    np.testing.assert_allclose(run(mode, [x], squares, a), a ** 2)
    dots, _ = reduce(lambda u, v, acc: acc + u * v, [x, y], T.constant(0.0), mode=mode)
    assert run(mode, [x, y], dots, a, b) == pytest.approx(a @ b)
    left, _ = foldl(lambda v, acc: acc * 0.5 + v, x, T.constant(0.0), mode=mode)
    right, _ = foldr(lambda v, acc: acc * 0.5 + v, x, T.constant(0.0), mode=mode)
    expected_left, expected_right = 0.0, 0.0
    for v in a:
        expected_left = expected_left * 0.5 + v
    for v in a[::-1]:
        expected_right = expected_right * 0.5 + v
    got_left, got_right = run(mode, [x], [left, right], a)
    assert got_left == pytest.approx(expected_left) and got_right == pytest.approx(expected_right)
    shifted, _ = map(lambda v, c: v + c, x, non_sequences=T.constant(2.0), mode=mode)
    np.testing.assert_allclose(run(mode, [x], shifted, a), a + 2.0)


def test_strict_requires_every_variable_to_be_given():
    x = T.dvector("x")
    w = T.dscalar("w")
    s = theanine.shared(2.0, name="s")
    with pytest.raises(ValueError, match=r"strict=True.*uses w"):
        scan(lambda xt: xt * w, sequences=x, strict=True)
    with pytest.raises(ValueError, match=r"strict=True.*uses s"):
        scan(lambda xt: xt * s, sequences=x, strict=True)
    out, _ = scan(lambda xt, w, s: xt * w * s, sequences=x, non_sequences=[w, s], strict=True)
    np.testing.assert_allclose(run("py", [x, w], out, [1.0, 2.0], 3.0), [6.0, 12.0])
    closure, _ = scan(lambda xt, w_given: xt * w, sequences=x, non_sequences=[w], strict=True)
    np.testing.assert_allclose(run("py", [x, w], closure, [1.0, 2.0], 3.0), [3.0, 6.0])
    loose, _ = scan(lambda xt: xt * w * s, sequences=x)
    np.testing.assert_allclose(run("py", [x, w], loose, [1.0, 2.0], 3.0), [6.0, 12.0])


def test_recurrent_output_type_must_match_its_state():
    h0 = T.fscalar("h0")
    x = T.dvector("x")
    with pytest.raises(TypeError) as info:
        scan(lambda xt, h: h + xt, sequences=x, outputs_info=h0)
    message = str(info.value)
    assert "output 0" in message and "h0" in message
    assert "expected Tensor{float32, ()}" in message and "given Tensor{float64, ()}" in message


def test_clear_errors_for_bad_arguments():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="n_steps must be given when there are no sequences"):
        scan(lambda h: h * 2, outputs_info=T.dscalar("h0"))
    with pytest.raises(ValueError, match="fn returned 2 outputs but outputs_info has 1"):
        scan(lambda xt, h: [h + xt, h], sequences=x, outputs_info=[T.dscalar()])
    with pytest.raises(ValueError, match="must be negative"):
        scan(lambda xt, h: h, sequences=x, outputs_info=[{"initial": T.dvector(), "taps": [0]}])
    with pytest.raises(TypeError, match="is a scalar"):
        scan(lambda xt: xt, sequences=T.dscalar())
    with pytest.raises(TypeError, match="n_steps must be an integer scalar"):
        scan(lambda h: h, outputs_info=T.dscalar(), n_steps=T.dscalar())
    with pytest.raises(ValueError, match="truncate_gradient"):
        scan(lambda xt: xt, sequences=x, truncate_gradient=0)
    with pytest.raises(TypeError, match="condition must be a scalar"):
        until(x)


def test_step_must_keep_the_state_shape():
    h0 = T.dvector("h0")
    out, _ = scan(lambda h: T.concatenate([h, h]), outputs_info=h0, n_steps=2, mode="py")
    with pytest.raises(ValueError, match="must keep the shape of its initial state"):
        run("py", [h0], out, np.ones(2))


def test_shared_variables_read_and_updated_inside(mode, rng):
    x = T.dvector("x")
    W = theanine.shared(1.5, name="W")
    total = theanine.shared(0.0, name="total")
    out, updates = scan(lambda xt: (xt * W, {total: total + xt}), sequences=x, mode=mode)
    assert list(updates) == [total]
    f = theanine.function([x], out, updates=updates, mode=mode)
    a = rng.normal(size=4)
    np.testing.assert_allclose(f(a), 1.5 * a)
    assert total.get_value() == pytest.approx(a.sum())
    f(a)
    assert total.get_value() == pytest.approx(2 * a.sum())
    gW = theanine.grad((out ** 2).sum(), W)  # W is an implicit non-sequence
    assert run(mode, [x], gW, a) == pytest.approx(2 * 1.5 * (a ** 2).sum())


def test_default_updates_advance_once_per_step(mode):
    x = T.dvector("x")
    counter = theanine.shared(np.int64(10), name="counter")
    counter.default_update = counter + 1  # like a random state drawn from inside the step
    out, updates = scan(lambda xt: xt * counter, sequences=x, mode=mode)
    assert list(updates) == [counter]
    f = theanine.function([x], out, updates=updates, mode=mode)
    np.testing.assert_allclose(f(np.ones(3)), [10, 11, 12])
    assert counter.get_value() == 13
    np.testing.assert_allclose(f(np.ones(2)), [13, 14])
    g = theanine.grad(out.sum(), x)  # the counter's states are recomputed for the backward pass
    np.testing.assert_allclose(run(mode, [x], g, np.ones(3)), [15, 16, 17])


def test_random_draws_inside_the_step(mode):
    random = pytest.importorskip("theanine.tensor.random")
    x, W = T.dvector("x"), T.dscalar("W")
    out, updates = scan(lambda xt: xt * W * random.RandomStreams(7).normal(()), sequences=x, mode=mode)
    gW = theanine.grad(out.sum(), W)
    f = theanine.function([x, W], [out, gW], updates=updates, mode=mode)
    first, g = f(np.ones(4), 2.0)
    second, _ = f(np.ones(4), 2.0)
    reference = random.RandomStreams(7).normal(())
    draw = theanine.function([], reference, mode=mode)
    expected = [float(draw()) for _ in range(8)]
    np.testing.assert_allclose(np.concatenate([first, second]), 2.0 * np.array(expected))
    assert g == pytest.approx(first.sum() / 2.0)  # the backward pass sees the same draws


def test_step_returning_only_updates(mode):
    x = T.dvector("x")
    total = theanine.shared(1.0, name="total")
    out, updates = scan(lambda xt, total: {total: total * xt}, sequences=x, non_sequences=total,
                        mode=mode)
    assert out is None
    theanine.function([x], [], updates=updates, mode=mode)([2.0, 3.0, 4.0])
    assert total.get_value() == 24.0


def test_gradient_through_an_updated_shared_state(mode):
    x = T.dvector("x")
    h = theanine.shared(0.5, name="h")
    out, updates = scan(lambda xt: (xt * h, {h: h * xt}), sequences=x, mode=mode)
    a = np.array([1.5, -2.0, 0.7])
    cost = out.sum() + updates[h] * 3
    gx, gh = theanine.grad(cost, [x, h])

    def numpy_cost(a, h0):
        total = 0.0
        for xt in a:
            total += xt * h0
            h0 = h0 * xt
        return total + 3 * h0
    eps = 1e-6
    num_gh = (numpy_cost(a, 0.5 + eps) - numpy_cost(a, 0.5 - eps)) / (2 * eps)
    num_gx = [(numpy_cost(a + eps * e, 0.5) - numpy_cost(a - eps * e, 0.5)) / (2 * eps) for e in np.eye(3)]
    got_gx, got_gh = run(mode, [x], [gx, gh], a)
    np.testing.assert_allclose(got_gx, num_gx, rtol=1e-6)
    assert got_gh == pytest.approx(num_gh, rel=1e-6)


def test_nested_scan_uses_the_outer_step_values(mode, rng):
    m = T.dmatrix("m")

    def row_cumsum(row):
        inner, _ = scan(lambda v, acc: acc + v * row[0], sequences=row, outputs_info=T.constant(0.0),
                        mode=mode)
        return inner
    out, _ = scan(row_cumsum, sequences=m, mode=mode)
    a = rng.normal(size=(3, 4))
    np.testing.assert_allclose(run(mode, [m], out, a), np.cumsum(a * a[:, :1], axis=1))
    verify_grad(lambda m: scan(row_cumsum, sequences=m, mode=mode)[0], [a], mode=mode)


def test_a_scan_left_open_runs_in_the_enclosing_mode(mode, rng):
    def row_sum(row):  # the inner scan is given no mode
        return scan(lambda v, acc: acc + v, sequences=row, outputs_info=T.constant(0.0))[0][-1]
    m = T.dmatrix("m")
    out, _ = scan(row_sum, sequences=m, mode=mode)
    a = rng.normal(size=(3, 4))
    np.testing.assert_allclose(run(mode, [m], out, a), a.sum(axis=1))
    (inner,) = [n.op for n in scan_node(out).op.fgraph.apply_nodes if isinstance(n.op, Scan)]
    assert set(inner._rewritten) == {mode}  # looped natively or compiled, for the mode
    x = T.dvector("x")
    doubled, _ = scan(lambda v: v * 2, sequences=x)
    node = doubled.owner
    storage = [[None]]
    node.op.make_thunk(node, mode)([np.int64(3), np.arange(3.0)], storage)
    np.testing.assert_allclose(storage[0][0], [0.0, 2.0, 4.0])
    assert set(node.op._compiled) == {(mode, False)}


def test_second_order_gradient(mode, rng):
    X, H0, U = rng.normal(size=(4, 2)), rng.normal(size=2), rng.normal(size=(2, 2))

    def gradient_of_cost(W):
        h = tanh_rnn(T.constant(X), T.constant(H0), W, T.constant(U), mode)
        return theanine.grad((h ** 2).sum(), W)
    verify_grad(gradient_of_cost, [rng.normal(size=(2, 2))], mode=mode)


def test_checkpoints_give_the_same_gradients(mode, rng):
    X, h0, Wh = T.dmatrix("X"), T.dvector("h0"), T.dmatrix("Wh")

    def step(xt, h, Wh):
        return T.tanh(xt + T.dot(h, Wh))
    full, _ = scan(step, sequences=X, outputs_info=h0, non_sequences=Wh, mode=mode)
    saved, _ = scan_checkpoints(step, sequences=X, outputs_info=h0, non_sequences=Wh,
                                save_every_N=3, mode=mode)
    wrt = [X, h0, Wh]
    outputs = [full, saved] + theanine.grad(full[-1].sum(), wrt) + theanine.grad(saved[-1].sum(), wrt)
    values = rng.normal(size=(10, 2)), rng.normal(size=2), rng.normal(size=(2, 2))
    got_full, got_saved, *grads = run(mode, wrt, outputs, *values)
    assert got_saved.shape == (4, 2)  # one stored state per block of 3 steps (the last one short)
    np.testing.assert_allclose(got_saved, got_full[[2, 5, 8, 9]], atol=1e-12)
    for plain, checkpointed in zip(grads[:3], grads[3:]):
        np.testing.assert_allclose(checkpointed, plain, atol=1e-12)


def test_infer_shape(mode):
    x = T.dmatrix("x")
    h0 = T.dmatrix("h0")
    W = T.dmatrix("W")
    c = theanine.shared(np.zeros(3), name="c")
    (h, y), updates = scan(lambda xt, h2, h1, W: ([h1 * 2 + h2, T.dot(xt, W)], {c: c + xt}),
                           sequences=x, outputs_info=[{"initial": h0, "taps": [-2, -1]}, None],
                           non_sequences=W, mode=mode)
    node = scan_node(h)
    shapes = node.op.infer_shape(None, node, [tuple(T.shape_i(v, d) for d in range(v.ndim))
                                              for v in node.inputs])
    flat = [d for shape in shapes for d in shape]
    got = run(mode, [x, h0, W], flat, np.ones((5, 3)), np.ones((2, 4)), np.ones((3, 6)))
    assert [int(v) for v in got] == [7, 4, 5, 6, 3]
    from theanine.graph.traversal import ancestors
    assert not any(v in ancestors(flat) for v in node.outputs)  # known without running the loop


def test_step_is_compiled_once_per_mode(mode):
    x = T.dvector("x")
    out, _ = scan(lambda xt, acc: T.tanh(acc * 0.5 + xt), sequences=x, outputs_info=T.constant(0.0),
                  mode=mode)
    f = theanine.function([x], out, mode=mode)
    op = scan_node(out).op
    f(np.ones(3))
    step = op.step_function()
    f(np.ones(4))
    assert op.step_function() is step and len(op._compiled) == 1 and step.mode == mode
    if mode == "py":
        assert step.program is None
    else:  # the step runs as native kernels
        assert step.program.kernels and not step.fallbacks


def test_lstm_training_reduces_the_loss(mode):
    rng = np.random.default_rng(3)
    n_in, n_hid, n_steps, batch = 3, 4, 6, 5
    X = rng.normal(size=(n_steps, batch, n_in))
    target = np.sin(X.sum(axis=(0, 2)))[:, None] * np.ones((1, n_hid)) * 0.5
    Wx = theanine.shared(rng.normal(scale=0.3, size=(n_in, 4 * n_hid)), name="Wx")
    Wh = theanine.shared(rng.normal(scale=0.3, size=(n_hid, 4 * n_hid)), name="Wh")
    b = theanine.shared(np.zeros(4 * n_hid), name="b")
    params = [Wx, Wh, b]

    def lstm_step(xt, h, c, Wx, Wh, b):
        z = T.dot(xt, Wx) + T.dot(h, Wh) + b
        i, f, o = (T.nnet.sigmoid(z[:, k * n_hid:(k + 1) * n_hid]) for k in range(3))
        g = T.tanh(z[:, 3 * n_hid:])
        c_new = f * c + i * g
        return [o * T.tanh(c_new), c_new]
    x = T.tensor3("x")
    zeros = T.zeros((x.shape[1], n_hid))
    (h, _c), _ = scan(lstm_step, sequences=x, outputs_info=[zeros, zeros], non_sequences=params,
                      strict=True, mode=mode)
    loss = ((h[-1] - target) ** 2).mean()
    grads = theanine.grad(loss, params)
    train = theanine.function([x], loss, updates=[(p, p - 2.0 * g) for p, g in zip(params, grads)],
                              mode=mode)
    losses = [float(train(X)) for _ in range(6)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0]
