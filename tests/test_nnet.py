"""theanine.tensor.nnet: activations, softmax and log-softmax, cross-entropies, and the
rewrites that make their compositions stable and expand them for the native back ends.

Every value is checked against a NumPy/SciPy reference under each mode (``mode``
fixture); ``FAST_COMPILE`` (no stabilize or specialize phase) runs the ops' own
``perform``. Gradients are checked against finite differences with verify_grad.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import theanine
import theanine.tensor as T
from theanine.compile.executor import GraphRunner
from theanine.gradient import verify_grad
from theanine.graph.fg import FunctionGraph
from theanine.rewriting import rewrite_graph
from theanine.tensor.nnet import (BinaryCrossentropy, BinaryCrossentropyGrad, CrossentropyCategorical1Hot,
                                  CrossentropyCategorical1HotGrad, LogSoftmax, Softmax, SoftmaxGrad)
from theanine.tensor.nnet.expandable import ExpandableOp

TOL = {"float32": dict(rtol=3e-5, atol=3e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
NATIVE = ("llvm", "c")


def compile_fn(inputs, outputs, mode):
    return theanine.function(inputs, outputs, mode=mode, on_unused_input="ignore")


def close(got, want, dtype="float64", **kw):
    got = np.asarray(got)
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    np.testing.assert_allclose(got, want, **{**TOL[str(dtype)], **kw})


def nnet_fallbacks(f):
    """The nodes of ops defined by theanine.tensor.nnet that run through Python."""
    return [n for n in f.fallbacks
            if isinstance(n.op, ExpandableOp) or type(n.op).__module__.startswith("theanine.tensor.nnet")]


def fired(f):
    return {r.rewrite for r in f.rewrite_log}


def op_types(f):
    return {type(n.op) for n in f.graph.toposort()}


def noncontig(a):
    """The same values as the 2-d ``a``, as a non-contiguous view."""
    big = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    big[:, ::2] = a
    return big[:, ::2]


# --- activations ----------------------------------------------------------------------------

SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

ACTIVATIONS = [
    ("sigmoid", T.nnet.sigmoid, sps.expit),
    ("hard_sigmoid", T.nnet.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
    ("softplus", T.nnet.softplus, lambda x: np.logaddexp(0, x)),
    ("relu", T.nnet.relu, lambda x: np.maximum(x, 0)),
    ("leaky_relu", lambda x: T.nnet.relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    ("elu", T.nnet.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    ("elu_alpha", lambda x: T.nnet.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    ("selu", T.nnet.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0)))),
]


def kink_free(rng, shape, dtype):
    """Values in (-4, 4) at least 0.1 away from 0 and from +-2.5 (the kinks of the
    piecewise activations), so finite differences see a smooth function."""
    v = rng.uniform(0.1, 4, shape) * rng.choice([-1.0, 1.0], shape)
    v = np.where(np.abs(np.abs(v) - 2.5) < 0.1, v * 0.8, v)
    return v.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_values(mode, rng, name, fn, ref, dtype):
    x = T.matrix(dtype=dtype)
    f = compile_fn([x], fn(x), mode)
    for value in (kink_free(rng, (3, 5), dtype), noncontig(kink_free(rng, (2, 3), dtype)),
                  np.zeros((1, 4), dtype), np.array([[-30.0, 30.0, -1e4, 1e4]], dtype)):
        out = f(value)
        assert out.dtype == dtype
        close(out, ref(value.astype("float64")).astype(dtype), dtype)
    if mode in NATIVE:
        assert f.fallbacks == []  # elementwise ops only: one native kernel


def test_activation_gradients(mode, rng):
    """All activations at once: verify_grad projects their stack on random weights, so
    each one's derivative is checked entry by entry."""
    verify_grad(lambda x: T.stack([fn(x) for _, fn, _ in ACTIVATIONS]),
                [kink_free(rng, (3, 4), "float64")], mode=mode)


def test_relu_with_symbolic_alpha(mode, rng):
    x, a = T.dvector(), T.dscalar()
    f = compile_fn([x, a], T.nnet.relu(x, a), mode)
    v = kink_free(rng, (6,), "float64")
    close(f(v, 0.25), np.where(v > 0, v, 0.25 * v))
    verify_grad(lambda xv, av: T.nnet.relu(xv, av), [v, np.asarray(0.3)], mode=mode)


def test_elu_gradient_is_finite_for_huge_inputs(mode):
    x = T.dvector()
    g = theanine.grad(T.sum(T.nnet.elu(x) + T.nnet.selu(x)), x)
    out = compile_fn([x], g, mode)(np.array([1e4, 800.0, -1e4, -800.0]))
    close(out, [1 + SELU_S, 1 + SELU_S, 0.0, 0.0])


# --- softmax and log-softmax ----------------------------------------------------------------

def np_softmax(x, axis):
    return sps.softmax(x, axis=axis)


def np_log_softmax(x, axis):
    return sps.log_softmax(x, axis=axis)


SOFTMAX_CASES = [((4, 5), -1), ((4, 5), 0), ((4, 5), None), ((2, 3, 4), 1), ((2, 3, 4), (0, 2)),
                 ((6,), -1), ((1, 5), -1), ((4, 1), -1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_and_log_softmax_values(mode, rng, dtype):
    """Every case of SOFTMAX_CASES in one compiled function."""
    inputs, outputs, values = [], [], []
    for shape, axis in SOFTMAX_CASES:
        x = T.tensor(dtype=dtype, shape=(None,) * len(shape))
        inputs.append(x)
        outputs += [T.nnet.softmax(x, axis), T.nnet.log_softmax(x, axis)]
        values.append((rng.normal(size=shape) * 3).astype(dtype))
    f = compile_fn(inputs, outputs, mode)
    got = f(*values)
    for k, ((shape, axis), value) in enumerate(zip(SOFTMAX_CASES, values)):
        sm, lsm = got[2 * k], got[2 * k + 1]
        assert sm.dtype == lsm.dtype == dtype
        close(sm, np_softmax(value.astype("float64"), axis).astype(dtype), dtype)
        close(lsm, np_log_softmax(value.astype("float64"), axis).astype(dtype), dtype)
    if mode in NATIVE:
        assert nnet_fallbacks(f) == []


def test_softmax_of_noncontiguous_huge_and_empty_inputs(mode, rng):
    x = T.dmatrix()
    f = compile_fn([x], [T.nnet.softmax(x), T.nnet.log_softmax(x)], mode)
    for value in (noncontig(rng.normal(size=(3, 4))), rng.normal(size=(4, 3)).T,
                  np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [800.0, 799.0, 0.0]]),
                  np.zeros((0, 3))):
        sm, lsm = f(value)
        close(sm, np_softmax(value, -1))
        close(lsm, np_log_softmax(value, -1))
        assert np.isfinite(lsm).all()


def test_softmax_default_axis_is_the_last():
    x = T.tensor3()
    assert T.nnet.softmax(x).owner.op == Softmax((2,))
    assert T.nnet.log_softmax(x).owner.op == LogSoftmax((2,))
    assert T.nnet.logsoftmax is T.nnet.log_softmax


@pytest.mark.parametrize("shape,axis", [((3, 4), -1), ((3, 4), 0), ((2, 2, 3), (1, 2))])
def test_softmax_gradients(mode, rng, shape, axis):
    value = rng.normal(size=shape)
    verify_grad(lambda v: T.stack([T.nnet.softmax(v, axis), T.nnet.log_softmax(v, axis)]),
                [value], mode=mode)


def test_softmax_gradient_float32(rng):
    value = rng.normal(size=(3, 4)).astype("float32")
    verify_grad(lambda v: T.stack([T.nnet.softmax(v), T.nnet.log_softmax(v)]), [value], mode="llvm")


def test_softmax_second_derivatives(rng):
    """SoftmaxGrad's own gradient (in dy and in sm), through a Hessian-vector product."""
    value, v = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))

    def hvp(x):
        g = theanine.grad(T.sum(T.nnet.softmax(x) * v * x), x)
        return g * T.constant(v)

    verify_grad(hvp, [value], mode="py")
    dy, sm = rng.normal(size=(2, 4)), sps.softmax(rng.normal(size=(2, 4)), axis=-1)
    verify_grad(lambda a, b: SoftmaxGrad((1,))(a, b), [dy, sm], mode="py")


def test_softmax_perform_matches_expansion(rng):
    """FAST_COMPILE runs the ops' perform; the default modes run their expansion."""
    x, dy = T.dmatrix(), T.dmatrix()
    sm = T.nnet.softmax(x)
    outs = [sm, T.nnet.log_softmax(x), SoftmaxGrad((1,))(dy, sm)]
    value, dyv = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    f_ref = compile_fn([x, dy], outs, "FAST_COMPILE")
    assert {Softmax, LogSoftmax, SoftmaxGrad} <= op_types(f_ref)
    want = [np_softmax(value, -1), np_log_softmax(value, -1)]
    want.append((dyv - (dyv * want[0]).sum(-1, keepdims=True)) * want[0])
    for got, w in zip(f_ref(value, dyv), want):
        close(got, w)
    f = compile_fn([x, dy], outs, "py")
    assert "expand_nnet_ops" in fired(f)
    assert not op_types(f) & {Softmax, LogSoftmax, SoftmaxGrad}
    for got, w in zip(f(value, dyv), want):
        close(got, w)


def check_infer_shape(out, inputs, values):
    """The op's infer_shape, evaluated, equals the shape of the value it computes."""
    node = out.owner
    shapes = [tuple(v.shape[i] for i in range(v.ndim)) for v in node.inputs]
    symbolic = node.op.infer_shape(None, node, shapes)[0]
    f = compile_fn(inputs, [out] + [T.as_tensor_variable(s) for s in symbolic], "FAST_COMPILE")
    value, *sizes = f(*values)
    assert tuple(int(s) for s in sizes) == value.shape


def test_infer_shape(rng):
    x, dy, y, t = T.dtensor3(), T.dtensor3(), T.lmatrix(), T.dvector()
    xs, ys = rng.uniform(0.1, 0.9, size=(2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    check_infer_shape(Softmax((1,))(x), [x], [xs])
    check_infer_shape(LogSoftmax((0, 2))(x), [x], [xs])
    check_infer_shape(SoftmaxGrad((2,))(dy, x), [dy, x], [xs, xs])
    check_infer_shape(T.nnet.crossentropy_categorical_1hot(x, y), [x, y], [xs, ys])
    check_infer_shape(CrossentropyCategorical1HotGrad()(y, x, y), [x, y], [xs, ys])
    check_infer_shape(T.nnet.binary_crossentropy(x, t), [x, t], [xs, np.full(4, 0.5)])
    check_infer_shape(BinaryCrossentropyGrad()(t, x, t), [x, t], [xs, np.full(4, 0.5)])


def test_softmax_errors():
    with pytest.raises(TypeError, match="softmax: x must have a float dtype, got int64"):
        T.nnet.softmax(T.lmatrix())
    with pytest.raises(ValueError, match="log_softmax: x must have at least one dimension"):
        T.nnet.log_softmax(T.dscalar())
    with pytest.raises(np.exceptions.AxisError, match="softmax: axis 2 is out of bounds"):
        T.nnet.softmax(T.dmatrix(), axis=2)
    with pytest.raises(ValueError, match="softmax: cannot normalise over axis 1"):
        T.nnet.softmax(T.tensor(dtype="float64", shape=(3, 0)))
    with pytest.raises(ValueError, match="SoftmaxGrad: dy's shape"):
        SoftmaxGrad((1,))(T.tensor(dtype="float64", shape=(2, 3)), T.tensor(dtype="float64", shape=(2, 4)))


# --- categorical cross-entropy --------------------------------------------------------------

def np_cce_labels(p, y):
    return -np.log(np.take_along_axis(p, y[..., None].astype(int), -1)[..., 0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_categorical_crossentropy_with_labels(mode, rng, dtype, label_dtype):
    p, y = T.matrix(dtype=dtype), T.vector(dtype=label_dtype)
    f = compile_fn([p, y], T.nnet.categorical_crossentropy(p, y), mode)
    probs = sps.softmax(rng.normal(size=(5, 4)), axis=-1).astype(dtype)
    labels = np.array([0, 3, 1, 3, 2], dtype=label_dtype)
    out = f(probs, labels)
    assert out.dtype == dtype
    close(out, np_cce_labels(probs.astype("float64"), labels).astype(dtype), dtype)
    close(f(noncontig(probs), labels), np_cce_labels(probs.astype("float64"), labels).astype(dtype), dtype)
    if mode in NATIVE:
        assert nnet_fallbacks(f) == []


def test_categorical_crossentropy_with_distributions(mode, rng):
    p, t = T.dmatrix(), T.dmatrix()
    f = compile_fn([p, t], T.nnet.categorical_crossentropy(p, t), mode)
    probs = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    targets = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    close(f(probs, targets), -(targets * np.log(probs)).sum(-1))
    onehot = np.eye(4)[[1, 0, 3]]
    close(f(probs, onehot), np_cce_labels(probs, np.array([1, 0, 3])))


def test_categorical_crossentropy_of_higher_rank(mode, rng):
    p, y = T.dtensor3(), T.lmatrix()
    f = compile_fn([p, y], T.nnet.categorical_crossentropy(T.nnet.softmax(p), y), mode)
    logits = rng.normal(size=(2, 3, 4))
    labels = rng.integers(0, 4, size=(2, 3))
    close(f(logits, labels), np_cce_labels(sps.softmax(logits, -1), labels))


def test_categorical_crossentropy_gradients(mode, rng):
    probs = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    labels = np.array([2, 0, 3])
    verify_grad(lambda v: T.nnet.categorical_crossentropy(v, T.constant(labels)), [probs], mode=mode)
    targets = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    verify_grad(lambda v, t: T.nnet.categorical_crossentropy(v, t), [probs, targets], mode=mode)
    verify_grad(lambda v: T.nnet.categorical_crossentropy(T.nnet.softmax(v), T.constant(labels)),
                [rng.normal(size=(3, 4))], mode=mode)


def test_crossentropy_grad_second_derivative(rng):
    probs = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    labels = T.constant(np.array([2, 0, 3]))
    gz = rng.uniform(0.5, 1.5, size=3)
    verify_grad(lambda g, p: CrossentropyCategorical1HotGrad()(g, p, labels), [gz, probs], mode="py")


def test_crossentropy_perform(rng):
    """The ops' perform (FAST_COMPILE), including the label check the expansion cannot make."""
    p, y, gz = T.dmatrix(), T.lvector(), T.dvector()
    outs = [T.nnet.categorical_crossentropy(p, y), CrossentropyCategorical1HotGrad()(gz, p, y)]
    f = compile_fn([p, y, gz], outs, "FAST_COMPILE")
    assert {CrossentropyCategorical1Hot, CrossentropyCategorical1HotGrad} <= op_types(f)
    probs = sps.softmax(rng.normal(size=(3, 4)), axis=-1)
    labels, g = np.array([3, 0, 1]), np.array([1.0, 2.0, -1.0])
    loss, grad = f(probs, labels, g)
    close(loss, np_cce_labels(probs, labels))
    want = np.zeros_like(probs)
    want[np.arange(3), labels] = -g / probs[np.arange(3), labels]
    close(grad, want)
    with pytest.raises(ValueError, match="label 4 is out of range for 4 classes"):
        f(probs, np.array([0, 4, 1]), g)
    with pytest.raises(ValueError, match="label -1 is out of range"):
        f(probs, np.array([0, -1, 1]), g)


def test_categorical_crossentropy_errors():
    with pytest.raises(TypeError, match="true_dist must have as many dimensions as coding_dist"):
        T.nnet.categorical_crossentropy(T.dmatrix(), T.lscalar())
    with pytest.raises(TypeError, match="true_dist must hold integer labels, got dtype float64"):
        T.nnet.categorical_crossentropy(T.dmatrix(), T.dvector())
    with pytest.raises(TypeError, match="coding_dist must have a float dtype, got int64"):
        T.nnet.categorical_crossentropy(T.lmatrix(), T.lvector())
    with pytest.raises(ValueError, match=r"dimension 0 differs \(3 != 4\)"):
        T.nnet.categorical_crossentropy(T.tensor(dtype="float64", shape=(3, 5)),
                                        T.tensor(dtype="int64", shape=(4,)))


# --- binary cross-entropy -------------------------------------------------------------------

def np_bce(p, t):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def np_sigmoid_bce(x, t):
    return np.logaddexp(0, x) - x * t


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_values(mode, rng, dtype):
    p, t = T.matrix(dtype=dtype), T.matrix(dtype=dtype)
    f = compile_fn([p, t], T.nnet.binary_crossentropy(p, t), mode)
    probs = rng.uniform(0.05, 0.95, size=(3, 4)).astype(dtype)
    targets = rng.uniform(0, 1, size=(3, 4)).astype(dtype)
    out = f(probs, targets)
    assert out.dtype == dtype
    close(out, np_bce(probs.astype("float64"), targets).astype(dtype), dtype)
    close(f(probs.T.copy().T, noncontig(targets)), np_bce(probs.astype("float64"), targets).astype(dtype), dtype)
    if mode in NATIVE:
        assert nnet_fallbacks(f) == []


def test_binary_crossentropy_broadcasts_and_takes_integer_targets(mode, rng):
    p, t = T.dmatrix(), T.lvector()
    f = compile_fn([p, t], T.nnet.binary_crossentropy(p, t), mode)
    probs = rng.uniform(0.05, 0.95, size=(3, 4))
    labels = np.array([0, 1, 1, 0])
    close(f(probs, labels), np_bce(probs, labels[None, :]))
    g = theanine.grad(T.sum(T.nnet.binary_crossentropy(p, t)), p)
    close(compile_fn([p, t], g, mode)(probs, labels), (probs - labels) / (probs * (1 - probs)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_binary_crossentropy_values(mode, dtype):
    x, t = T.vector(dtype=dtype), T.vector(dtype=dtype)
    f = compile_fn([x, t], T.nnet.sigmoid_binary_crossentropy(x, t), mode)
    logits = np.array([-1e4, -30.0, -2.0, -0.0, 0.0, 0.5, 30.0, 1e4], dtype)
    targets = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 1.0, 0.0, 1.0], dtype)
    close(f(logits, targets), np_sigmoid_bce(logits.astype("float64"), targets).astype(dtype), dtype)
    if mode in NATIVE:
        assert f.fallbacks == []


def test_binary_crossentropy_gradients(mode, rng):
    probs = rng.uniform(0.1, 0.9, size=(2, 3))
    targets = rng.uniform(0, 1, size=(2, 3))
    verify_grad(T.nnet.binary_crossentropy, [probs, targets], mode=mode)
    verify_grad(T.nnet.sigmoid_binary_crossentropy, [rng.normal(size=(2, 3)) * 3, targets], mode=mode)
    verify_grad(lambda v: T.nnet.binary_crossentropy(T.nnet.sigmoid(v), T.constant(targets)),
                [rng.normal(size=(2, 3))], mode=mode)
    verify_grad(lambda v, tv: T.nnet.binary_crossentropy(v, tv), [probs, targets[0]], mode=mode)


def test_sigmoid_binary_crossentropy_gradient_at_zero(mode):
    x, t = T.dvector(), T.dvector()
    g = theanine.grad(T.sum(T.nnet.sigmoid_binary_crossentropy(x, t)), x)
    close(compile_fn([x, t], g, mode)(np.zeros(3), np.array([0.0, 0.25, 1.0])), [0.5, 0.25, -0.5])


def test_binary_crossentropy_perform_and_second_derivative(rng):
    p, t, gz = T.dmatrix(), T.dmatrix(), T.dmatrix()
    outs = [T.nnet.binary_crossentropy(p, t), BinaryCrossentropyGrad()(gz, p, t)]
    f = compile_fn([p, t, gz], outs, "FAST_COMPILE")
    assert {BinaryCrossentropy, BinaryCrossentropyGrad} <= op_types(f)
    probs, targets = rng.uniform(0.1, 0.9, size=(2, 3)), rng.uniform(0, 1, size=(2, 3))
    g = rng.normal(size=(2, 3))
    loss, grad = f(probs, targets, g)
    close(loss, np_bce(probs, targets))
    close(grad, g * (probs - targets) / (probs * (1 - probs)))
    verify_grad(lambda a, b, c: BinaryCrossentropyGrad()(a, b, c), [g, probs, targets], mode="py")


def test_binary_crossentropy_errors():
    with pytest.raises(TypeError, match="binary_crossentropy: output must have a float dtype"):
        T.nnet.binary_crossentropy(T.lvector(), T.dvector())
    with pytest.raises(ValueError, match="cannot be broadcast"):
        T.nnet.binary_crossentropy(T.tensor(dtype="float64", shape=(3,)), T.tensor(dtype="float64", shape=(4,)))
    with pytest.raises(TypeError, match="sigmoid_binary_crossentropy: output must have a float dtype"):
        T.nnet.sigmoid_binary_crossentropy(T.lvector(), T.dvector())


# --- stabilizing rewrites -------------------------------------------------------------------

HUGE = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 5.0], [1.0, 2.0, 3.0]])


def test_log_softmax_from_log(mode):
    x = T.dmatrix()
    out = T.log(T.nnet.softmax(x))
    f = compile_fn([x], out, mode)
    assert "log_softmax_from_log" in fired(f)
    close(f(HUGE), np_log_softmax(HUGE, -1))
    with np.errstate(divide="ignore"):
        naive = compile_fn([x], out, "FAST_COMPILE")(HUGE)
    assert np.isinf(naive).any()  # what the rewrite avoids


@pytest.mark.parametrize("static", [False, True], ids=["dynamic_shapes", "static_shapes"])
def test_log_softmax_grad(mode, static):
    """The gradient of sum(w * log(softmax(x))) in x: w - softmax(x) * sum(w), finite.
    With dynamic shapes the division by softmax(x) sits inside a SumTo."""
    shape = (3, 3) if static else (None, None)
    x, w = T.tensor(dtype="float64", shape=shape), T.tensor(dtype="float64", shape=shape)
    g = theanine.grad(T.sum(w * T.log(T.nnet.softmax(x))), x)
    f = compile_fn([x, w], g, mode)
    assert "log_softmax_grad" in fired(f)
    weights = np.arange(9.0).reshape(3, 3) / 4
    want = weights - np_softmax(HUGE, -1) * weights.sum(-1, keepdims=True)
    close(f(HUGE, weights), want)
    with np.errstate(all="ignore"):
        assert np.isnan(compile_fn([x, w], g, "FAST_COMPILE")(HUGE, weights)).any()


def test_crossentropy_of_softmax_with_distributions(mode):
    x, t = T.dmatrix(), T.dmatrix()
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(x), t))
    f = compile_fn([x, t], [cost, theanine.grad(cost, x)], mode)
    assert {"log_softmax_from_log", "log_softmax_grad"} <= fired(f)
    targets = np.eye(3)[[2, 0, 1]] * 0.8 + 0.2 / 3
    loss, grad = f(HUGE, targets)
    close(loss, -(targets * np_log_softmax(HUGE, -1)).sum(-1).mean())
    close(grad, (np_softmax(HUGE, -1) - targets) / 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_crossentropy_softmax_1hot(mode, dtype):
    x, y = T.matrix(dtype=dtype), T.lvector()
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y))
    f = compile_fn([x, y], [cost, theanine.grad(cost, x)], mode)
    assert {"crossentropy_softmax_1hot", "crossentropy_softmax_1hot_grad", "expand_nnet_ops"} <= fired(f)
    if mode in NATIVE:
        assert nnet_fallbacks(f) == []
    logits = HUGE.astype(dtype)
    labels = np.array([2, 0, 1])
    loss, grad = f(logits, labels)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    close(loss, -np_log_softmax(HUGE, -1)[np.arange(3), labels].mean(), dtype)
    close(grad, ((np_softmax(HUGE, -1) - np.eye(3)[labels]) / 3).astype(dtype), dtype)
    with np.errstate(all="ignore"):
        naive = compile_fn([x, y], [cost, theanine.grad(cost, x)], "FAST_COMPILE")(logits, labels)
    assert not np.isfinite(naive[0]) or not np.isfinite(naive[1]).all()


@pytest.mark.parametrize("static", [False, True], ids=["dynamic_shapes", "static_shapes"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_of_sigmoid(mode, dtype, static):
    shape = (6,) if static else (None,)
    x, t = T.tensor(dtype=dtype, shape=shape), T.tensor(dtype=dtype, shape=shape)
    cost = T.sum(T.nnet.binary_crossentropy(T.nnet.sigmoid(x), t))
    f = compile_fn([x, t], [cost, theanine.grad(cost, x)], mode)
    assert {"binary_crossentropy_of_sigmoid", "sigmoid_binary_crossentropy_grad"} <= fired(f)
    if mode in NATIVE:
        assert nnet_fallbacks(f) == []
    logits = np.array([1e4, -1e4, 1e4, -1e4, 3.0, -2.0], dtype)
    targets = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.6], dtype)
    loss, grad = f(logits, targets)
    close(loss, np_sigmoid_bce(logits.astype("float64"), targets).sum().astype(dtype), dtype)
    close(grad, (sps.expit(logits.astype("float64")) - targets).astype(dtype), dtype)
    with np.errstate(all="ignore"):
        naive = compile_fn([x, t], [cost, theanine.grad(cost, x)], "FAST_COMPILE")(logits, targets)
    assert not np.isfinite(naive[0]) or not np.isfinite(naive[1]).all()


def test_binary_crossentropy_of_sigmoid_with_broadcast_target(mode):
    """The gradient rewrite also sees through the SumTo that broadcasting adds."""
    x, t = T.dmatrix(), T.dmatrix()
    cost = T.sum(T.nnet.binary_crossentropy(T.nnet.sigmoid(x), t))
    f = compile_fn([x, t], theanine.grad(cost, x), mode)
    assert "sigmoid_binary_crossentropy_grad" in fired(f)
    logits = np.array([[1e4, -1e4, 0.5]])
    targets = np.array([[0.0, 1.0, 0.2], [1.0, 1.0, 0.9]])
    close(f(logits, targets), (2 * sps.expit(logits) - targets.sum(0, keepdims=True)))


def test_stabilize_rewrites_in_isolation():
    """Each rewrite on a FunctionGraph, with only its phase, run by the reference executor."""
    x, y = T.dmatrix("x"), T.lvector("y")
    sm = T.nnet.softmax(x)
    cost = T.sum(T.nnet.categorical_crossentropy(sm, y))
    outs = [T.log(sm), cost, theanine.grad(cost, x)]
    fg = FunctionGraph([x, y], outs)
    rewrite_graph(fg, "py", include=("stabilize",))
    names = [r.rewrite for r in fg.rewrite_log]
    assert {"log_softmax_from_log", "crossentropy_softmax_1hot", "crossentropy_softmax_1hot_grad"} <= set(names)
    assert "expand_nnet_ops" not in names  # a specialize rewrite
    kinds = {type(n.op) for n in fg.toposort()}
    assert LogSoftmax in kinds and CrossentropyCategorical1Hot not in kinds and SoftmaxGrad not in kinds
    labels = np.array([2, 0, 1])
    got = GraphRunner(fg.inputs, fg.outputs)(HUGE, labels)
    close(got[0], np_log_softmax(HUGE, -1))
    close(got[1], -np_log_softmax(HUGE, -1)[np.arange(3), labels].sum())
    close(got[2], np_softmax(HUGE, -1) - np.eye(3)[labels])


def test_rewrites_have_docstrings_with_identities():
    from theanine.rewriting import rewrite_db
    names = ["log_softmax_from_log", "log_softmax_grad", "crossentropy_softmax_1hot",
             "crossentropy_softmax_1hot_grad", "binary_crossentropy_of_sigmoid",
             "sigmoid_binary_crossentropy_grad", "expand_nnet_ops"]
    for name in names:
        assert "->" in rewrite_db.get(name).doc


def test_training_step_with_softmax_crossentropy_is_native(mode, rng):
    """A logistic-regression step: loss, gradient and update, against NumPy."""
    X, y = T.dmatrix(), T.lvector()
    W = theanine.shared(np.zeros((4, 3)), name="W")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(X, W)), y))
    step = theanine.function([X, y], cost, updates=[(W, W - 0.5 * theanine.grad(cost, W))], mode=mode)
    xs, ys = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    assert np.isclose(step(xs, ys), np.log(3))
    probs = np.full((6, 3), 1 / 3)
    close(W.get_value(), -0.5 * xs.T @ (probs - np.eye(3)[ys]) / 6)
    if mode in NATIVE:
        assert nnet_fallbacks(step) == []


def test_out_of_range_labels_raise(mode):
    """A label outside [0, classes) is an error in every mode, never a silent number."""
    logits, labels = T.dmatrix("logits"), T.lvector("labels")
    loss = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), labels))
    f = theanine.function([logits, labels], [loss, theanine.grad(loss, logits)], mode=mode)
    z = np.random.default_rng(0).normal(size=(3, 4))
    good = f(z, np.array([0, 3, 1]))
    assert np.isfinite(good[0])
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(ValueError, match="out of range"):
            f(z, np.array(bad))
