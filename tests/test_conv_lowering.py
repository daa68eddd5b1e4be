"""Convolution and pooling lowered to ordinary tensor ops in the native modes
(theanine.rewriting.lower_conv) against the NumPy reference (mode "py", the ops' ``perform``).

Each native function must have lost its convolution and pooling nodes and run as one
native entry; its values, and those of the gradient ops inside it, must match mode "py".
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.tensor.elemwise import Elemwise
from theanine.tensor.nnet import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from theanine.tensor.signal.pool import AveragePoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool, pool_2d

NATIVE = ["llvm", "c"]
LOWERED_OPS = (Conv2d, Conv2dGradWeights, Conv2dGradInputs, Pool, MaxPoolGrad, MaxPoolGradGrad,
               AveragePoolGrad)
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10)}


def kept_ops(f):
    """The convolution and pooling nodes left in ``f``'s graph."""
    return [n for n in f.graph.apply_nodes if isinstance(n.op, LOWERED_OPS)]


def elementwise_ranks(f):
    """The ranks of the elementwise nodes of ``f``'s graph."""
    return [n.outputs[0].ndim for n in f.graph.apply_nodes if isinstance(n.op, Elemwise)]


def check_lowered(inputs, outputs, values, mode, dtype="float64"):
    """Compile ``outputs`` in ``mode`` and in "py"; the native one is lowered, has an entry and
    the same values."""
    f = theanine.function(inputs, outputs, mode=mode)
    assert kept_ops(f) == []
    assert f.entry is not None, f.why_no_entry
    assert f.fallbacks == []
    want = theanine.function(inputs, outputs, mode="py")(*values)
    got = f(*values)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL[dtype])
    return f


def conv_and_grads(x, w, **kw):
    """conv2d(x, w) and the gradients of a weighted sum of it: the three convolution ops."""
    out = T.nnet.conv2d(x, w, **kw)
    weights = T.cos(T.arange(out.size).reshape(out.shape).astype(out.dtype))
    gx, gw = theanine.grad(T.sum(out * weights), [x, w])
    return [out, gx, gw]


CONV_CASES = [  # input shape, filter shape, conv2d arguments
    ((2, 3, 7, 6), (4, 3, 3, 2), dict()),
    ((2, 3, 7, 6), (4, 3, 3, 2), dict(border_mode="full")),
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(border_mode="half", subsample=(2, 3))),
    ((2, 3, 7, 6), (4, 3, 3, 2), dict(border_mode=(2, 0), subsample=(2, 1))),
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(filter_dilation=(2, 3), border_mode=1)),
    ((1, 2, 8, 9), (2, 2, 2, 3), dict(filter_dilation=2, border_mode="full", subsample=(1, 2))),
    ((2, 4, 7, 6), (6, 2, 3, 2), dict(num_groups=2, border_mode=1, subsample=2, filter_dilation=(1, 2))),
    ((2, 6, 5, 5), (3, 2, 1, 1), dict(num_groups=3)),
    ((2, 3, 7, 6), (4, 3, 3, 2), dict(filter_flip=False, border_mode="half")),
    ((1, 1, 1, 1), (1, 1, 1, 1), dict(border_mode="full")),                 # all size 1
    ((3, 1, 4, 1), (2, 1, 2, 1), dict()),                                   # a column
    ((3, 2, 10, 9), (3, 2, 5, 5), dict()),                                  # 5 x 5 filters
    ((2, 3, 7, 8), (4, 3, 2, 2), dict(subsample=(3, 3))),                   # cells no window reads
    ((2, 2, 9, 11), (3, 2, 3, 3), dict(subsample=2, filter_dilation=2, border_mode=(1, 2))),
    ((1, 4, 5, 9), (4, 2, 2, 4), dict(num_groups=2, border_mode="full", subsample=(1, 3))),
]


def case_id(case):
    x_shape, w_shape, kw = case
    return f"{x_shape}*{w_shape}," + (",".join(f"{k}={v}" for k, v in kw.items()) or "valid")


@pytest.mark.parametrize("mode", NATIVE)
@pytest.mark.parametrize("case", CONV_CASES, ids=[case_id(c) for c in CONV_CASES])
def test_conv_ops_lowered(rng, mode, case):
    x_shape, w_shape, kw = case
    x = T.tensor(dtype="float64", shape=x_shape)
    w = T.tensor(dtype="float64", shape=w_shape)
    values = [np.asfortranarray(rng.normal(size=x_shape)), rng.normal(size=w_shape)]  # x not C-contiguous
    check_lowered([x, w], conv_and_grads(x, w, **kw), values, mode)


@pytest.mark.parametrize("mode", NATIVE)
def test_conv_float32_symbolic_sizes_and_odd_inputs(rng, mode):
    """Only the filters' shape static: batch, channels and image sizes are symbolic, checked at
    run time; inputs transposed, strided, or with an empty batch."""
    x = T.ftensor4()
    w = T.tensor(dtype="float32", shape=(4, 2, 3, 2))
    f = check_lowered([x, w], conv_and_grads(x, w, border_mode=(1, 0), subsample=(2, 1), num_groups=1),
                      [rng.normal(size=(2, 2, 6, 5)).astype("float32"),
                       rng.normal(size=(4, 2, 3, 2)).astype("float32")], mode, "float32")
    want = theanine.function([x, w], conv_and_grads(x, w, border_mode=(1, 0), subsample=(2, 1)), mode="py")
    wv = rng.normal(size=(4, 2, 3, 2)).astype("float32")
    for xv in (rng.normal(size=(3, 5, 2, 7)).astype("float32").transpose(0, 2, 3, 1),   # transposed
               rng.normal(size=(2, 4, 9, 11)).astype("float32")[:, ::2, 1::2, ::2],     # strided
               np.zeros((0, 2, 4, 4), "float32")):                                       # empty batch
        for g, r in zip(f(xv, wv), want(xv, wv)):
            np.testing.assert_allclose(g, r, **TOL["float32"])
    with pytest.raises(ValueError, match="span more than the padded input"):
        f(np.zeros((1, 2, 0, 4), "float32"), wv)        # 0 + 2 * 1 rows < 3
    with pytest.raises(ValueError):
        f(np.zeros((1, 3, 5, 5), "float32"), wv)        # 3 channels, the filters expect 2


@pytest.mark.parametrize("mode", NATIVE)
def test_conv_grad_ops_alone_with_symbolic_shapes(rng, mode):
    """The gradient ops built directly, with the input size given symbolically (groups need
    static channel and filter counts)."""
    kw = dict(border_mode="half", subsample=(2, 2), num_groups=2)
    gz, like = T.tensor(dtype="float64", shape=(None, 4, None, None)), T.dtensor4()
    w = T.tensor(dtype="float64", shape=(4, 1, 3, 3))
    x = T.tensor(dtype="float64", shape=(None, 2, None, None))
    outs = [T.nnet.conv2d_grad_wrt_inputs(gz, w, like.shape, **kw),
            T.nnet.conv2d_grad_wrt_weights(x, gz, (4, 1, 3, 3), **kw)]
    xv = rng.normal(size=(2, 2, 5, 6))
    gzv = rng.normal(size=(2, 4, 3, 3))
    f = check_lowered([gz, w, like, x], outs, [gzv, rng.normal(size=(4, 1, 3, 3)), xv, xv], mode)
    with pytest.raises(ValueError, match="output gradient"):
        f(gzv[:, :, :2], rng.normal(size=(4, 1, 3, 3)), xv, xv)
    with pytest.raises(ValueError, match="output gradient"):       # would broadcast
        f(gzv[:, :, :1], rng.normal(size=(4, 1, 3, 3)), xv, xv)


def test_conv_not_lowered_without_static_filter_size(rng):
    x, w = T.dtensor4(), T.dtensor4()
    f = theanine.function([x, w], T.nnet.conv2d(x, w), mode="llvm")
    assert [type(n.op) for n in kept_ops(f)] == [Conv2d]
    xv, wv = rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(3, 2, 2, 2))
    np.testing.assert_allclose(f(xv, wv), theanine.function([x, w], T.nnet.conv2d(x, w), mode="py")(xv, wv))


def test_conv_gradients_finite_differences(rng):
    x = rng.normal(size=(2, 2, 5, 4))
    w = rng.normal(size=(2, 2, 2, 3))
    verify_grad(lambda a, b: T.tanh(T.nnet.conv2d(a, b, filter_shape=(2, 2, 2, 3), border_mode="half",
                                                  subsample=(2, 1))), [x, w], mode="llvm")


def test_conv_second_derivatives(rng):
    """Gradients of the (lowered) gradient ops."""
    x, w = rng.normal(size=(1, 2, 4, 5)), rng.normal(size=(2, 1, 2, 2))
    case = dict(num_groups=2, filter_dilation=(1, 2), border_mode="full", filter_shape=(2, 1, 2, 2))

    def grad_w(a, b):
        return theanine.grad(T.sum(T.nnet.conv2d(a, b, **case) ** 2), b)

    verify_grad(grad_w, [x, w], mode="llvm")


POOL_CASES = [  # input shape, ws, ignore_border, stride, pad
    ((2, 3, 8, 6), (2, 2), True, None, (0, 0)),        # windows tile the input
    ((2, 3, 7, 5), (2, 2), True, None, (0, 0)),        # a row and a column left over
    ((2, 3, 7, 5), (2, 2), False, None, (0, 0)),       # partial windows at the border
    ((2, 3, 7, 5), (3, 2), True, (1, 1), (0, 0)),      # overlapping windows
    ((2, 3, 7, 5), (3, 2), False, (2, 3), (0, 0)),
    ((2, 3, 7, 5), (3, 3), False, (1, 2), (0, 0)),
    ((2, 3, 7, 5), (3, 2), True, (2, 1), (1, 1)),      # padding
    ((2, 3, 7, 5), (3, 3), True, None, (2, 1)),
    ((2, 3, 7, 5), (1, 1), True, (2, 2), (0, 0)),
    ((3, 7, 5), (4, 1), False, (3, 1), (0, 0)),        # 3-d
    ((1, 2, 1, 1), (2, 2), False, None, (0, 0)),       # one pixel
    ((2, 6, 4), (3, 3), True, (1, 1), (0, 0)),         # a window taller than the input: empty
]


def pool_id(case):
    shape, ws, ib, st, pad = case
    return f"{shape}-ws{ws}-ib{int(ib)}-st{st}-pad{pad}"


def pools_and_grads(x, ws, ib, st, pad):
    """Every pooling mode and its gradient in x (MaxPoolGrad, AveragePoolGrad)."""
    outs = []
    for pool_mode in ("max", "sum", "average_inc_pad", "average_exc_pad"):
        out = pool_2d(x, ws, ib, st, pad, pool_mode)
        weights = T.cos(T.arange(out.size).reshape(out.shape).astype(out.dtype))
        outs += [out, theanine.grad(T.sum(out * weights), x)]
    return outs


@pytest.mark.parametrize("mode", NATIVE)
@pytest.mark.parametrize("case", POOL_CASES, ids=[pool_id(c) for c in POOL_CASES])
def test_pool_ops_lowered(rng, mode, case):
    shape, ws, ib, st, pad = case
    x = T.tensor(dtype="float64", shape=shape)
    # distinct values: each window's maximum is unambiguous (ties are tested below); not
    # C-contiguous
    value = np.asfortranarray(rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1)
    check_lowered([x], pools_and_grads(x, ws, ib, st, pad), [value], mode)


@pytest.mark.parametrize("mode", NATIVE)
def test_pool_float32_symbolic_sizes_and_odd_inputs(rng, mode):
    x = T.ftensor4()
    outs = pools_and_grads(x, (3, 2), True, (2, 1), (1, 1))
    f = check_lowered([x], outs, [rng.normal(size=(2, 2, 7, 5)).astype("float32")], mode, "float32")
    ref = theanine.function([x], outs, mode="py")
    for value in (rng.normal(size=(2, 6, 5, 3)).astype("float32").transpose(0, 3, 1, 2),
                  rng.normal(size=(2, 3, 9, 8)).astype("float32")[:, ::2, 1::2, ::3],
                  np.zeros((0, 2, 4, 4), "float32"),
                  np.zeros((1, 1, 1, 1), "float32")):
        for g, r in zip(f(value), ref(value)):
            np.testing.assert_allclose(g, r, **TOL["float32"])


@pytest.mark.parametrize("mode", NATIVE)
@pytest.mark.parametrize("stride", [None, (1, 1)], ids=["tiled", "overlapping"])
def test_max_pool_gradient_goes_to_every_tied_maximum(mode, stride):
    x = T.tensor(dtype="float64", shape=(2, 4))
    g = theanine.grad(T.sum(pool_2d(x, (2, 2), True, stride)), x)
    value = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, -1.0]])
    f = theanine.function([x], g, mode=mode)
    assert kept_ops(f) == []
    np.testing.assert_array_equal(f(value), theanine.function([x], g, mode="py")(value))


TILED_CASES = [  # input shape, ws: windows that tile the input (stride = window, no padding)
    ((2, 3, 8, 6), (2, 2)),
    ((2, 2, 9, 4), (3, 2)),
    ((3, 6, 6), (1, 3)),
    ((1, 2, 8, 3), (4, 1)),
]


@pytest.mark.parametrize("mode", NATIVE)
@pytest.mark.parametrize("case", TILED_CASES, ids=[f"{s}-ws{ws}" for s, ws in TILED_CASES])
def test_tiled_max_pool_gradient_with_ties_and_non_finite_values(rng, mode, case):
    """Max pooling of windows that tile the input and its gradient (two passes, through the
    maximum of each window's rows): ties within a row, within a column and across both,
    windows of -inf, and NaN and +inf cells, as in mode "py"."""
    shape, ws = case
    x = T.tensor(dtype="float64", shape=shape)
    value = rng.integers(0, 3, size=shape).astype("float64")         # many ties
    flat = value.reshape(-1)
    flat[:ws[0] * ws[1] * 2] = -np.inf
    flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    out = pool_2d(x, ws, True)
    weights = T.cos(T.arange(out.size).reshape(out.shape).astype(out.dtype))
    outputs = [out, theanine.grad(T.sum(out * weights), x)]
    f = theanine.function([x], outputs, mode=mode)
    assert kept_ops(f) == [] and f.entry is not None
    assert elementwise_ranks(f) and max(elementwise_ranks(f)) == x.ndim + 1   # no pass over x's tiles
    for got, want in zip(f(value), theanine.function([x], outputs, mode="py")(value)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", NATIVE)
@pytest.mark.parametrize("stride", [None, (1, 1)], ids=["tiled", "overlapping"])
def test_max_pool_grad_of_a_given_maximum(rng, mode, stride):
    """MaxPoolGrad built directly, with ``maxout`` not the windows' maximum: the gradient goes
    to the cells equal to the given value, as in mode "py" (the two-pass form of tiled
    windows needs maxout to be the pooling of x, and is not used here)."""
    x, m, gz = T.dtensor4(), T.dtensor4(), T.dtensor4()
    op = MaxPoolGrad((2, 2), True, stride or (2, 2))
    x4 = T.specify_shape(x, (1, 2, 4, 6))
    f = theanine.function([x, m, gz], op(x4, m, gz), mode=mode)
    assert kept_ops(f) == []
    if stride is None:
        assert max(elementwise_ranks(f)) == 6      # one pass over x's tiles (..., OH, 2, OW, 2)
    xv = rng.integers(0, 4, size=(1, 2, 4, 6)).astype("float64")
    step = stride or (2, 2)
    smallest = sliding_window_view(xv, (2, 2), axis=(2, 3))[:, :, ::step[0], ::step[1]].min(axis=(-2, -1))
    gzv = rng.normal(size=smallest.shape)
    want = theanine.function([x, m, gz], op(x4, m, gz), mode="py")(xv, smallest, gzv)
    np.testing.assert_array_equal(f(xv, smallest, gzv), want)


@pytest.mark.parametrize("mode", NATIVE)
def test_pool_gradient_ops_check_shapes(rng, mode):
    x, m, gz = T.dtensor4(), T.dtensor4(), T.dtensor4()
    f = theanine.function([x, m, gz], MaxPoolGrad((2, 2), True, (1, 1))(x, m, gz), mode=mode)
    assert kept_ops(f) == []
    xv = rng.normal(size=(1, 1, 3, 3))
    with pytest.raises(ValueError, match="pooled shape"):      # would broadcast
        f(xv, np.zeros((1, 1, 2, 1)), np.zeros((1, 1, 2, 2)))


def test_pool_not_lowered_with_partial_windows_of_symbolic_size(rng):
    x = T.dtensor4()
    f = theanine.function([x], pool_2d(x, (2, 2), ignore_border=False), mode="llvm")
    assert [type(n.op) for n in kept_ops(f)] == [Pool]


def test_windows_of_many_taps(rng):
    """Global pooling (windows that tile the input) is lowered whatever its size; other
    windows of more than MAX_TAPS taps are not."""
    x = T.tensor(dtype="float64", shape=(2, 3, 12, 10))
    check_lowered([x], pools_and_grads(x, (12, 10), True, None, (0, 0)),
                  [rng.permutation(720).reshape(2, 3, 12, 10) * 0.1], "llvm")
    f = theanine.function([x], pool_2d(x, (9, 9), stride=(1, 1)), mode="llvm")
    assert [type(n.op) for n in kept_ops(f)] == [Pool]
    w = T.tensor(dtype="float64", shape=(2, 3, 9, 9))
    f = theanine.function([x, w], T.nnet.conv2d(x, w), mode="llvm")
    assert [type(n.op) for n in kept_ops(f)] == [Conv2d]


def test_pool_gradients_finite_differences(rng):
    value = rng.permutation(60).reshape(1, 2, 6, 5) * 0.1
    for pool_mode in ("max", "average_exc_pad"):
        verify_grad(lambda a, m=pool_mode: T.tanh(pool_2d(a, (3, 2), True, (2, 1), (1, 1), m)),
                    [value], mode="llvm")
    verify_grad(lambda a: pool_2d(T.specify_shape(a, (1, 2, 6, 5)), (2, 2), False), [value], mode="llvm")


def test_pool_second_derivatives(rng):
    """MaxPoolGradGrad (and pooling as AveragePoolGrad's gradient), lowered."""
    value = rng.permutation(20).reshape(1, 4, 5) * 0.1
    c = rng.normal(size=(1, 4, 5))
    for pool_mode in ("max", "average_inc_pad"):
        def grad_then_weight(a, m=pool_mode):
            g = theanine.grad(T.sum(pool_2d(a, (2, 2), True, (1, 2), mode=m) ** 2), a)
            return g * T.constant(c)

        verify_grad(grad_then_weight, [value], mode="llvm")
    x, m, gg = T.dtensor3(), T.dtensor3(), T.dtensor3()
    f = theanine.function([x, m, gg], MaxPoolGradGrad((2, 2), True, (1, 2))(x, m, gg), mode="llvm")
    assert kept_ops(f) == []


@pytest.mark.parametrize("mode", NATIVE)
def test_cnn_training_step_is_one_native_entry(rng, mode):
    """conv-relu-pool twice, dense, softmax cross-entropy, SGD updates: no Python on the path."""
    def params():
        r = np.random.default_rng(0)
        return [theanine.shared((r.normal(size=s) * 0.3).astype("float32"))
                for s in ((4, 1, 3, 3), (4,), (6, 4, 3, 3), (6,), (24, 5))]

    def step(mode):
        ps = params()
        X, y = T.ftensor4("X"), T.ivector("y")
        W1, b1, W2, b2, W3 = ps
        h = T.nnet.conv2d(X, W1, filter_shape=(4, 1, 3, 3))
        h = pool_2d(T.nnet.relu(h + b1.dimshuffle("x", 0, "x", "x")), (2, 2))
        h = T.nnet.conv2d(h, W2, filter_shape=(6, 4, 3, 3), border_mode="half")
        h = pool_2d(T.nnet.relu(h + b2.dimshuffle("x", 0, "x", "x")), (3, 3), stride=(2, 2))
        cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(h.flatten(2), W3)), y))
        grads = theanine.grad(cost, ps)
        f = theanine.function([X, y], cost, updates=[(p, p - 0.1 * g) for p, g in zip(ps, grads)],
                              mode=mode)
        return f, ps

    X = rng.normal(size=(8, 1, 14, 14)).astype("float32")
    y = rng.integers(0, 5, 8).astype("int32")
    f, ps = step(mode)
    assert kept_ops(f) == [] and f.fallbacks == [] and f.entry is not None
    ref, ref_ps = step("py")
    for _ in range(2):
        np.testing.assert_allclose(f(X, y), ref(X, y), rtol=1e-4)
    for p, r in zip(ps, ref_ps):
        np.testing.assert_allclose(p.get_value(), r.get_value(), rtol=1e-4, atol=1e-6)
