"""Values read only for their shape are not computed (rewriting/shape_only.py), SumToShape,
and what that does to gradients of scans: the backward step neither recomputes the
forward product nor accumulates the weight gradient one small product per step."""

import subprocess
import sys

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.scan_module import Scan, scan
from theanine.tensor.elemwise import SumTo, SumToShape
from theanine.tensor.math import Dot


def reference_sum_to(g, shape):
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


@pytest.mark.parametrize("g_shape, shape", [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 4), (3, 1)),
                                             ((3, 4), (1, 1)), ((0, 4), (0, 1)), ((1, 1), (1, 1))])
def test_sum_to_shape_against_numpy(mode, rng, g_shape, shape):
    g = T.dmatrix("g")
    d0, d1 = T.lscalars("d0", "d1")
    f = theanine.function([g, d0, d1], SumToShape()(g, d0, d1), mode=mode)
    gv = rng.normal(size=g_shape)
    np.testing.assert_allclose(f(gv, *shape), reference_sum_to(gv, shape))
    np.testing.assert_allclose(f(np.asfortranarray(gv), *shape), reference_sum_to(gv, shape))
    if shape != g_shape and 0 not in g_shape:
        verify_grad(lambda g: SumToShape()(g, *[T.constant(np.int64(d)) for d in shape]), [gv], mode=mode)


def test_sum_to_shape_rejects_sizes_it_cannot_reduce_to(mode):
    g = T.dmatrix("g")
    f = theanine.function([g], SumToShape()(g, T.constant(np.int64(2)), T.constant(np.int64(4))), mode=mode)
    with pytest.raises(ValueError, match="cannot reduce shape"):
        f(np.ones((3, 4)))
    with pytest.raises(TypeError, match="expected 2 integer scalars"):
        SumToShape()(g, T.dscalar())


@pytest.fixture(params=["llvm", "c"])
def native_mode(request):
    return request.param


@pytest.mark.parametrize("rows", [3, 1, 0])
def test_a_product_read_only_for_its_shape_is_not_computed(native_mode, rng, rows):
    a, b, g, c = T.dmatrix("a"), T.dmatrix("b"), T.dmatrix("g"), T.drow("c")
    like = T.dot(a, b) + c  # rows from a, columns from b (and c)
    f = theanine.function([a, b, c, g], SumTo()(g, like), mode=native_mode)
    assert not any(isinstance(n.op, Dot) for n in f.graph.toposort())
    av, bv, cv = rng.normal(size=(rows, 5)), rng.normal(size=(5, 4)), rng.normal(size=(1, 4))
    gv = rng.normal(size=(2 if rows == 1 else rows, 4))  # one row of like was broadcast to two
    np.testing.assert_allclose(f(av, bv, cv, gv), reference_sum_to(gv, (rows, 4)))


def test_a_value_needed_elsewhere_keeps_its_sum_to(native_mode, rng):
    a, b, g = T.dmatrix("a"), T.dmatrix("b"), T.dmatrix("g")
    p = T.dot(a, b)
    f = theanine.function([a, b, g], [SumTo()(g, p), p], mode=native_mode)
    assert any(isinstance(n.op, SumTo) for n in f.graph.toposort())


def rnn_gradient_step(mode):
    """The step graph of the backward scan of a tanh RNN's gradient, as compiled."""
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    h, _ = scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0, non_sequences=W)
    cost = (h ** 2).sum()
    f = theanine.function([x, h0, W], [cost] + theanine.grad(cost, [x, h0, W]), mode=mode)
    (back,) = [n for n in f.graph.toposort() if isinstance(n.op, Scan) and "grad" in str(n.op)]
    return f, back.op.step_graph(mode), [x, h0, W]


def test_rnn_backward_step_holds_one_product(native_mode, rng):
    f, step, _ = rnn_gradient_step(native_mode)
    products = [n for n in step.toposort() if isinstance(n.op, Dot)]
    assert len(products) == 1  # the state's gradient; no forward product, no weight gradient
    ref, _, inputs = rnn_gradient_step("py")
    values = [rng.normal(size=(6, 3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(4, 4)) * 0.5]
    for got, want in zip(f(*values), ref(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_weight_gradient_with_truncation_and_two_uses(mode, rng):
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    for k in (-1, 2):
        h, _ = scan(lambda xt, h, W: T.tanh(T.dot(xt, W) + T.dot(h, W)), sequences=x, outputs_info=h0,
                    non_sequences=W, truncate_gradient=k)
        values = [rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3)) * 0.5]
        got = theanine.function([x, h0, W], theanine.grad(h.sum(), W), mode=mode)(*values)
        want = theanine.function([x, h0, W], theanine.grad(h.sum(), W), mode="py")(*values)
        np.testing.assert_allclose(got, want, rtol=1e-10)
    verify_grad(lambda x, h0, W: scan(lambda xt, h, W: T.tanh(T.dot(xt, W) + T.dot(h, W)), sequences=x,
                                      outputs_info=h0, non_sequences=W)[0], values, mode=mode)


def test_freed_memory_is_kept_unless_switched_off():
    code = ("import theanine, theanine.tensor as T; from theanine.compile import memory; "
            "x = T.dvector(); theanine.function([x], x + 1, mode='llvm'); "
            "print(memory.keep_freed_memory())")
    runs = {}
    for flag in ("on", "off"):
        env = dict(__import__("os").environ, THEANINE_FLAGS=f"malloc_tuning={flag}")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        runs[flag] = out.stdout.split()[-1]
    glibc = hasattr(__import__("ctypes").CDLL(None), "gnu_get_libc_version")
    assert runs == {"on": str(glibc), "off": "False"}


def test_the_backward_step_reads_forward_products_stacked_by_the_one_forward_loop(mode, rng):
    x, h0, c0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("c0"), T.dmatrix("W")

    def cell(xt, h, c, W):  # gates from one product; the step returns neither product nor gate
        z = xt + T.dot(h, W)
        c = T.nnet.sigmoid(z[:, :2]) * c + T.tanh(z[:, 2:])
        return T.tanh(c) * T.nnet.sigmoid(z[:, :2]), c
    (h, c), _ = scan(cell, sequences=x, outputs_info=[h0, c0], non_sequences=W)
    cost = (h ** 2).sum() + c[-1].sum()
    f = theanine.function([x, h0, c0, W], [cost] + theanine.grad(cost, [x, h0, c0, W]), mode=mode)
    loops = [n.op for n in f.graph.toposort() if isinstance(n.op, Scan)]
    assert len(loops) == 2  # one forward loop (stacking its products), one backward loop
    (back,) = [op for op in loops if "grad" in str(op)]
    assert sum(isinstance(n.op, Dot) for n in back.fgraph.apply_nodes) == 1
    values = [rng.normal(size=(5, 3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)),
              rng.normal(size=(2, 4)) * 0.5]
    ref = theanine.function([x, h0, c0, W], [cost] + theanine.grad(cost, [x, h0, c0, W]), mode="py")
    for got, want in zip(f(*values), ref(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    verify_grad(lambda x, h0, c0, W: scan(cell, sequences=x, outputs_info=[h0, c0], non_sequences=W)[0][0],
                values, mode=mode)
