"""theanine.gradient: grad and its options, Lop/Rop, jacobian/hessian, gradient modifiers."""

import warnings

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import (DisconnectedInputError, GradientError, Lop, Rop, disconnected_grad,
                               grad, grad_clip, grad_scale, hessian, jacobian, verify_grad,
                               zero_grad)
from theanine.graph import Apply, Op


def run(mode, inputs, outputs, *values):
    return theanine.function(inputs, outputs, mode=mode, on_unused_input="ignore")(*values)


def test_aliases():
    assert theanine.grad is grad and T.grad is grad
    assert T.jacobian is jacobian and T.hessian is hessian


def test_cost_must_be_scalar():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="cost must be a scalar"):
        grad(x * 2, x)


def test_cost_must_be_differentiable_dtype():
    x = T.lvector("x")
    with pytest.raises(TypeError, match="discrete dtype"):
        grad(x.sum(), x)


def test_wrt_must_be_symbolic():
    x = T.dscalar("x")
    with pytest.raises(TypeError, match="wrt"):
        grad(x * 2, 3.0)


@pytest.mark.parametrize("option, expected", [("zero", 0.0), ("None", None)])
def test_disconnected_inputs(option, expected, mode):
    x, y = T.dscalars("x", "y")
    cost = x * 2
    with pytest.raises(DisconnectedInputError, match="does not depend on y"):
        grad(cost, [x, y])
    with pytest.warns(UserWarning, match="does not depend on y"):
        grad(cost, [x, y], disconnected_inputs="warn")
    gx, gy = grad(cost, [x, y], disconnected_inputs="ignore", return_disconnected=option)
    if expected is None:
        assert gy is None
    else:
        assert run(mode, [x, y], gy, 1.0, 2.0) == expected
    assert run(mode, [x], gx, 1.0) == 2.0


def test_return_disconnected_marker():
    x, y = T.dscalars("x", "y")
    _, gy = grad(x * 2, [x, y], disconnected_inputs="ignore", return_disconnected="Disconnected")
    assert isinstance(gy.type, theanine.gradient.DisconnectedType)


def test_consider_constant(mode):
    x = T.dscalar("x")
    y = x * x
    z = y * x  # x**3, but with y held constant: d/dx = y = x**2
    g = grad(z, x, consider_constant=[y])
    assert run(mode, [x], g, 3.0) == 9.0
    assert run(mode, [x], grad(z, x), 3.0) == 27.0


def test_known_grads(mode):
    x = T.dvector("x")
    h = T.tanh(x)
    g_h = T.dvector("g_h")
    (gx,) = grad(None, [x], known_grads={h: g_h})
    a, b = np.array([0.1, -0.3]), np.array([2.0, 3.0])
    np.testing.assert_allclose(run(mode, [x, g_h], gx, a, b), b * (1 - np.tanh(a) ** 2))


def test_grad_wrt_intermediate(mode):
    x = T.dscalar("x")
    h = x * 3
    cost = h ** 2
    assert run(mode, [x], grad(cost, h), 1.0) == 6.0


def test_gradient_sums_over_multiple_paths(mode):
    x = T.dvector("x")
    cost = (T.exp(x) * x + T.sin(x)).sum()
    a = np.array([0.3, -0.7])
    np.testing.assert_allclose(run(mode, [x], grad(cost, x), a), np.exp(a) * (a + 1) + np.cos(a))


def test_integer_wrt_gets_zero(mode):
    x, i = T.dvector("x"), T.lscalar("i")
    gi = grad((x * i).sum(), i)
    assert gi.dtype == theanine.config.floatX
    assert run(mode, [x, i], gi, np.ones(2), 3) == 0.0


def test_second_derivative(mode):
    x = T.dscalar("x")
    y = T.sin(x) * x
    d2 = grad(grad(y, x), x)
    a = 0.4
    np.testing.assert_allclose(run(mode, [x], d2, a), 2 * np.cos(a) - a * np.sin(a))


def test_jacobian_static_and_dynamic_length(mode):
    v = T.dvector("v")
    fixed = T.tensor(dtype="float64", shape=(3,), name="fixed")
    a = np.array([0.5, 1.0, 2.0])
    for x in (v, fixed):
        J = jacobian(x ** 2 * T.sum(x), x)
        expected = np.diag(2 * a * a.sum()) + np.outer(a ** 2, np.ones(3))
        np.testing.assert_allclose(run(mode, [x], J, a), expected)


def test_jacobian_wrt_matrix_and_list(mode):
    W = T.dmatrix("W")
    x = T.dvector("x")
    y = T.dot(W, x)
    JW, Jx = jacobian(y, [W, x])
    w, a = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 2.0])
    jw, jx = run(mode, [W, x], [JW, Jx], w, a)
    assert jw.shape == (2, 2, 3)
    np.testing.assert_allclose(jx, w)
    np.testing.assert_allclose(jw[0, 0], a)
    np.testing.assert_allclose(jw[0, 1], 0.0)


def test_jacobian_of_empty_vector(mode):
    x = T.dvector("x")
    J = jacobian(T.exp(x), x)
    assert run(mode, [x], J, np.zeros(0)).shape == (0, 0)


def test_hessian(mode):
    x = T.dvector("x")
    cost = (x ** 3).sum() + x[0] * x[1]
    H = hessian(cost, x)
    a = np.array([1.0, 2.0, 3.0])
    expected = np.diag(6 * a)
    expected[0, 1] = expected[1, 0] = 1.0
    np.testing.assert_allclose(run(mode, [x], H, a), expected)


def test_lop_and_rop_match_the_jacobian(mode, rng):
    W = T.dmatrix("W")
    x = T.dvector("x")
    y = T.tanh(T.dot(W, x))
    u, v = T.dvector("u"), T.dvector("v")
    w, a = rng.normal(size=(3, 4)), rng.normal(size=4)
    uu, vv = rng.normal(size=3), rng.normal(size=4)
    J = run(mode, [W, x], jacobian(y, x), w, a)
    lop = run(mode, [W, x, u], Lop(y, x, u), w, a, uu)
    rop = run(mode, [W, x, v], Rop(y, x, v), w, a, vv)
    np.testing.assert_allclose(lop, uu @ J, rtol=1e-10)
    np.testing.assert_allclose(rop, J @ vv, rtol=1e-10)


def test_rop_several_wrt(mode, rng):
    A, B = T.dmatrices("A", "B")
    y = (A * B).sum(axis=0)
    ea, eb = T.dmatrices("ea", "eb")
    a, b, va, vb = (rng.normal(size=(2, 3)) for _ in range(4))
    out = run(mode, [A, B, ea, eb], Rop(y, [A, B], [ea, eb]), a, b, va, vb)
    np.testing.assert_allclose(out, (va * b + a * vb).sum(axis=0))


def test_zero_grad_and_disconnected_grad(mode):
    x = T.dscalar("x")
    cost = zero_grad(x * x) * x
    assert run(mode, [x], grad(cost, x), 3.0) == 9.0
    assert run(mode, [x], zero_grad(x) * 2, 5.0) == 10.0
    with pytest.raises(DisconnectedInputError):
        grad(disconnected_grad(x) * 3, x)
    g = grad(disconnected_grad(x) * x, x)
    assert run(mode, [x], g, 4.0) == 4.0


def test_grad_clip_and_scale(mode):
    x = T.dvector("x")
    g = grad((grad_clip(x, -1.0, 1.0) * 5).sum(), x)
    np.testing.assert_array_equal(run(mode, [x], g, np.ones(2)), [1.0, 1.0])
    g = grad((grad_scale(x, 0.5) * 4).sum(), x)
    np.testing.assert_array_equal(run(mode, [x], g, np.ones(2)), [2.0, 2.0])
    with pytest.raises(ValueError, match="lower_bound"):
        grad_clip(x, 1.0, -1.0)


class WrongGradOp(Op):
    """sin(x) with a deliberately wrong gradient (cos(x) + 0.1)."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.sin(inputs[0])

    def grad(self, inputs, output_grads):
        return [output_grads[0] * (T.cos(inputs[0]) + 0.1)]


def test_verify_grad_detects_a_wrong_gradient():
    with pytest.raises(GradientError, match="disagrees with finite differences"):
        verify_grad(WrongGradOp(), [np.array([0.1, 0.2, 0.3])])


def test_verify_grad_accepts_a_right_gradient():
    verify_grad(lambda x: T.sin(x) * x, [np.array([0.1, 0.2, 0.3])])


def test_verify_grad_float32():
    verify_grad(lambda x: T.tanh(x).sum(), [np.array([0.1, 0.2], dtype="float32")])


def test_verify_grad_rejects_integer_points():
    with pytest.raises(TypeError, match="float array"):
        verify_grad(lambda x: x * 2, [np.array([1, 2])])


def test_logistic_regression_gradient_matches_numpy(mode, rng):
    X, y = T.dmatrix("X"), T.dvector("y")
    w = T.dvector("w")
    p = T.sigmoid(T.dot(X, w))
    loss = -(y * T.log(p) + (1 - y) * T.log(1 - p)).mean()
    x_val, y_val, w_val = rng.normal(size=(5, 3)), (rng.random(5) > 0.5) * 1.0, rng.normal(size=3)
    got = run(mode, [X, y, w], grad(loss, w), x_val, y_val, w_val)
    pv = 1 / (1 + np.exp(-x_val @ w_val))
    np.testing.assert_allclose(got, x_val.T @ (pv - y_val) / 5, rtol=1e-10)


def test_grad_names():
    x = T.dscalar("x")
    cost = T.exp(x)
    cost.name = "c"
    assert grad(cost, x).name == "(dc/dx)"


def test_warn_mode_is_silent_when_connected():
    x = T.dscalar("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad(x * 2, x, disconnected_inputs="warn")
