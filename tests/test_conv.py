"""theanine.tensor.nnet.conv2d and its gradient ops against a direct (loop) reference.

The reference below computes each output pixel as a sum over its window, written
from the definition (padding, stride, dilation, groups, flipped filters), so it
shares nothing with the im2col kernels under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.tensor.nnet import Conv2d, Conv2dGradInputs, Conv2dGradWeights

TOL = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-10)}


def pads_for(border_mode, kh, kw, dilation):
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    if border_mode == "valid":
        return 0, 0
    if border_mode == "full":
        return eh - 1, ew - 1
    if border_mode == "half":
        return eh // 2, ew // 2
    return (border_mode, border_mode) if isinstance(border_mode, int) else tuple(border_mode)


def ref_conv(x, w, border_mode="valid", stride=(1, 1), dilation=(1, 1), groups=1, flip=True):
    """conv2d from its definition, one output pixel at a time."""
    if flip:
        w = w[:, :, ::-1, ::-1]
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    ph, pw = pads_for(border_mode, kh, kw, dilation)
    xp = np.pad(x.astype("float64"), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    ho, wo = (h + 2 * ph - eh) // stride[0] + 1, (wd + 2 * pw - ew) // stride[1] + 1
    out = np.zeros((n, f, ho, wo))
    per_group = f // groups
    for k in range(f):
        g = k // per_group
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(ho):
            for j in range(wo):
                r, s = i * stride[0], j * stride[1]
                patch = xs[:, :, r:r + eh:dilation[0], s:s + ew:dilation[1]]
                out[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3))
    return out


def conv_fn(mode, dtype="float64", **kw):
    x, w = T.tensor4(dtype=dtype), T.tensor4(dtype=dtype)
    return theanine.function([x, w], T.nnet.conv2d(x, w, **kw), mode=mode)


CASES = [
    dict(),
    dict(border_mode="full"),
    dict(border_mode="half"),
    dict(border_mode=1),
    dict(border_mode=(2, 0)),
    dict(subsample=(2, 1)),
    dict(subsample=(2, 3), border_mode="half"),
    dict(filter_dilation=(2, 1)),
    dict(filter_dilation=(2, 2), border_mode="full", subsample=(1, 2)),
    dict(num_groups=2),
    dict(num_groups=2, border_mode=1, subsample=2, filter_dilation=(1, 2)),
    dict(filter_flip=False),
    dict(filter_flip=False, border_mode="half", num_groups=2),
]


def case_id(case):
    return ",".join(f"{k}={v}" for k, v in case.items()) or "valid"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_conv2d_values(rng, case):
    groups = case.get("num_groups", 1)
    x = rng.normal(size=(2, 4, 7, 6))
    w = rng.normal(size=(4, 4 // groups, 3, 2))
    got = conv_fn("py", **case)(x, w)
    want = ref_conv(x, w, case.get("border_mode", "valid"), _pair(case.get("subsample", 1)),
                    _pair(case.get("filter_dilation", 1)), groups, case.get("filter_flip", True))
    np.testing.assert_allclose(got, want, **TOL["float64"])


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_on_every_backend(mode, rng, dtype):
    x = rng.normal(size=(2, 2, 5, 5)).astype(dtype)
    w = rng.normal(size=(3, 2, 3, 3)).astype(dtype)
    out = conv_fn(mode, dtype, border_mode="half", subsample=(2, 1))(x, w)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref_conv(x, w, "half", (2, 1)), **TOL[dtype])


def test_conv2d_awkward_inputs(rng):
    f = conv_fn("py", border_mode="full")
    for x, w in [
        (rng.normal(size=(1, 1, 1, 1)), rng.normal(size=(1, 1, 1, 1))),       # all size 1
        (rng.normal(size=(3, 1, 4, 1)), rng.normal(size=(2, 1, 2, 1))),       # a column
        (rng.normal(size=(2, 5, 3, 2)).transpose(0, 2, 3, 1).transpose(0, 3, 1, 2),
         rng.normal(size=(2, 5, 3, 2))),                                        # transposed
        (rng.normal(size=(2, 3, 8, 9))[:, ::2, 1::2, ::3], rng.normal(size=(3, 2, 2, 3))[:, :, :, ::-1]),
        (np.zeros((0, 2, 4, 4)), rng.normal(size=(3, 2, 2, 2))),              # empty batch
    ]:
        np.testing.assert_allclose(f(x, w), ref_conv(x, w, "full"), **TOL["float64"])


def test_conv2d_mixed_precision_gives_float64(rng):
    x, w = T.ftensor4(), T.dtensor4()
    out = T.nnet.conv2d(x, w)
    assert out.dtype == "float64"
    xv, wv = rng.normal(size=(1, 2, 4, 4)).astype("float32"), rng.normal(size=(1, 2, 2, 2))
    np.testing.assert_allclose(theanine.function([x, w], out, mode="py")(xv, wv), ref_conv(xv, wv), rtol=1e-6)


def test_conv2d_static_shapes_and_infer_shape():
    x = T.tensor(dtype="float64", shape=(2, 4, 9, 8))
    w = T.tensor(dtype="float64", shape=(6, 2, 3, 2))
    out = T.nnet.conv2d(x, w, border_mode=(1, 0), subsample=(2, 3), filter_dilation=(2, 1), num_groups=2)
    assert out.type.shape == (2, 6, 4, 3)  # rows: (9 + 2 - 5) // 2 + 1; columns: (8 - 2) // 3 + 1
    xs, ws = T.dtensor4(), T.dtensor4()
    node = T.nnet.conv2d(xs, ws, border_mode="half", subsample=2).owner
    shp = node.op.infer_shape(None, node, [tuple(xs.shape[i] for i in range(4)),
                                           tuple(ws.shape[i] for i in range(4))])[0]
    f = theanine.function([xs, ws], list(shp), mode="py")
    assert [int(s) for s in f(np.zeros((2, 3, 7, 6)), np.zeros((5, 3, 3, 2)))] == [2, 5, 4, 4]


def test_conv2d_input_and_filter_shape_arguments(rng):
    x, w = T.dtensor4(), T.dtensor4()
    out = T.nnet.conv2d(x, w, input_shape=(2, 3, 5, 5), filter_shape=(4, 3, 3, 3))
    assert out.type.shape == (2, 4, 3, 3)
    f = theanine.function([x, w], out, mode="py")
    xv, wv = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3))
    np.testing.assert_allclose(f(xv, wv), ref_conv(xv, wv), **TOL["float64"])
    with pytest.raises(ValueError):  # the declared input_shape is checked at run time
        f(rng.normal(size=(2, 3, 6, 5)), wv)
    with pytest.raises(ValueError, match=r"conv2d: input_shape=\(2, 3, 6, 6\) disagrees"):
        T.nnet.conv2d(T.tensor(dtype="float64", shape=(2, 3, 5, 5)), w, input_shape=(2, 3, 6, 6))


GRAD_CASES = [
    dict(),
    dict(border_mode="full"),
    dict(border_mode="half", subsample=2),
    dict(border_mode=(1, 2), subsample=(2, 1)),
    dict(subsample=(3, 2)),
    dict(filter_dilation=(2, 1), border_mode=1),
    dict(num_groups=2, subsample=(1, 2)),
    dict(filter_flip=False, filter_dilation=2, border_mode="full"),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[case_id(c) for c in GRAD_CASES])
def test_conv2d_gradients(rng, case):
    groups = case.get("num_groups", 1)
    x = rng.normal(size=(2, 2, 5, 6))
    w = rng.normal(size=(2, 2 // groups, 3, 2))
    verify_grad(lambda a, b: T.nnet.conv2d(a, b, **case), [x, w], mode="py")


def test_conv2d_gradients_on_native_backends(mode, rng):
    """The gradient ops are the same nodes in every mode; run them inside a native function."""
    x = rng.normal(size=(2, 2, 5, 4))
    w = rng.normal(size=(2, 2, 2, 3))
    verify_grad(lambda a, b: T.tanh(T.nnet.conv2d(a, b, border_mode="half", subsample=(2, 1))),
                [x, w], mode=mode)


def test_conv2d_gradients_float32(rng):
    x = rng.normal(size=(1, 2, 4, 4)).astype("float32")
    w = rng.normal(size=(2, 2, 2, 2)).astype("float32")
    verify_grad(lambda a, b: T.nnet.conv2d(a, b, border_mode=1, subsample=2), [x, w], mode="py")


@pytest.mark.parametrize("case", [dict(border_mode="half", subsample=(2, 1)),
                                  dict(num_groups=2, filter_dilation=(1, 2), border_mode="full")],
                         ids=case_id)
def test_second_derivatives(rng, case):
    """The gradient ops differentiate into each other: gradients of gradients."""
    groups = case.get("num_groups", 1)
    x = rng.normal(size=(1, 2, 4, 5))
    w = rng.normal(size=(2, 2 // groups, 2, 2))
    c = rng.normal(size=T.nnet.conv2d(T.constant(x), T.constant(w), **case).eval().shape)

    def grad_x(a, b):
        return theanine.grad(T.sum(T.nnet.conv2d(a, b, **case) ** 2 * c), a)

    def grad_w(a, b):
        return theanine.grad(T.sum(T.nnet.conv2d(a, b, **case) ** 2 * c), b)

    verify_grad(grad_x, [x, w], mode="py")
    verify_grad(grad_w, [x, w], mode="py")


def test_gradient_ops_are_adjoints(rng):
    """<conv(x, w), gz> = <x, grad_inputs(w, gz)> = <w, grad_weights(x, gz)>."""
    kw = dict(border_mode=(1, 0), subsample=(2, 2), filter_dilation=(1, 2), num_groups=2)
    x, w = rng.normal(size=(2, 4, 7, 8)), rng.normal(size=(6, 2, 3, 2))
    out = T.nnet.conv2d(T.constant(x), T.constant(w), **kw).eval()
    gz = rng.normal(size=out.shape)
    gi = T.nnet.conv2d_grad_wrt_inputs(T.constant(gz), T.constant(w), x.shape, **kw).eval()
    gw = T.nnet.conv2d_grad_wrt_weights(T.constant(x), T.constant(gz), w.shape, **kw).eval()
    assert gi.shape == x.shape and gw.shape == w.shape
    assert np.isclose((out * gz).sum(), (x * gi).sum())
    assert np.isclose((out * gz).sum(), (w * gw).sum())


def test_grad_wrt_inputs_with_symbolic_shape(rng):
    """A transposed convolution whose output size comes from a symbolic shape."""
    gz, w, like = T.dtensor4(), T.dtensor4(), T.dtensor4()
    out = T.nnet.conv2d_grad_wrt_inputs(gz, w, like.shape, subsample=2)
    assert isinstance(out.owner.op, Conv2dGradInputs)
    f = theanine.function([gz, w, like], out, mode="py")
    wv = rng.normal(size=(3, 2, 3, 3))
    got = f(rng.normal(size=(1, 3, 2, 2)), wv, np.zeros((1, 2, 6, 6)))
    assert got.shape == (1, 2, 6, 6)


def test_graph_build_errors():
    x4, w4 = T.dtensor4(), T.dtensor4()
    with pytest.raises(TypeError, match=r"conv2d: input must be a 4-d tensor \(batch, channels, rows, columns\), got 3"):
        T.nnet.conv2d(T.dtensor3(), w4)
    with pytest.raises(TypeError, match="conv2d: filters must be a 4-d tensor"):
        T.nnet.conv2d(x4, T.dmatrix())
    with pytest.raises(TypeError, match="conv2d: input must have a float dtype, got int64"):
        T.nnet.conv2d(T.ltensor4(), w4)
    with pytest.raises(ValueError, match=r"the input has 6 channels but the filters expect 4 \(filters.shape\[1\]=2 \* num_groups=2\)"):
        T.nnet.conv2d(T.tensor(dtype="float64", shape=(None, 6, None, None)),
                      T.tensor(dtype="float64", shape=(4, 2, 3, 3)), num_groups=2)
    with pytest.raises(ValueError, match="num_groups=2 does not divide the 3 input channels"):
        T.nnet.conv2d(T.tensor(dtype="float64", shape=(None, 3, None, None)), w4, num_groups=2)
    with pytest.raises(ValueError, match="num_groups=2 does not divide the 5 filters"):
        T.nnet.conv2d(x4, T.tensor(dtype="float64", shape=(5, None, None, None)), num_groups=2)
    with pytest.raises(ValueError, match="border_mode must be 'valid', 'full', 'half', a non-negative int or a pair of them, got 'same'"):
        T.nnet.conv2d(x4, w4, border_mode="same")
    with pytest.raises(ValueError, match=r"border_mode .* got -1"):
        T.nnet.conv2d(x4, w4, border_mode=-1)
    with pytest.raises(ValueError, match=r"conv2d: subsample must be a pair of positive ints, got \(0, 1\)"):
        T.nnet.conv2d(x4, w4, subsample=(0, 1))
    with pytest.raises(ValueError, match="conv2d: filter_dilation must be a pair of positive ints"):
        T.nnet.conv2d(x4, w4, filter_dilation=(1, 2, 3))
    with pytest.raises(ValueError, match="conv2d: num_groups must be a positive int, got 0"):
        T.nnet.conv2d(x4, w4, num_groups=0)
    with pytest.raises(ValueError, match=r"the filters span 5 rows \(with dilation\), more than the 4 of the padded input"):
        T.nnet.conv2d(T.tensor(dtype="float64", shape=(1, 1, 4, 4)),
                      T.tensor(dtype="float64", shape=(1, 1, 3, 3)), filter_dilation=2)


def test_run_time_errors(rng):
    f = conv_fn("py", num_groups=2)
    with pytest.raises(ValueError, match=r"the input has 4 channels but the filters expect 6"):
        f(rng.normal(size=(1, 4, 5, 5)), rng.normal(size=(2, 3, 2, 2)))
    with pytest.raises(ValueError, match="the filters span 3 columns"):
        f(rng.normal(size=(1, 4, 5, 2)), rng.normal(size=(2, 2, 2, 3)))


def test_ops_are_values():
    a = Conv2d("valid", 1, True, 1, 1)
    assert a == Conv2d((0, 0), (1, 1), True, (1, 1), 1)
    assert hash(a) == hash(Conv2d((0, 0), (1, 1), True, (1, 1), 1))
    assert a != Conv2d((0, 0), (1, 1), False, (1, 1), 1)
    assert Conv2dGradWeights("half") != Conv2dGradInputs("half")


def test_gradient_ops_infer_shape(rng):
    x, w, gz = T.dtensor4(), T.dtensor4(), T.dtensor4()
    kw = dict(border_mode="half", subsample=(2, 1), num_groups=2)
    xv, wv = rng.normal(size=(2, 4, 5, 6)), rng.normal(size=(6, 2, 3, 2))
    gzv = T.nnet.conv2d(T.constant(xv), T.constant(wv), **kw).eval()
    for out, inputs, values in [
        (T.nnet.conv2d_grad_wrt_inputs(gz, w, x.shape, **kw), [gz, w, x], [gzv, wv, xv]),
        (T.nnet.conv2d_grad_wrt_weights(x, gz, w.shape, **kw), [x, gz, w], [xv, gzv, wv]),
    ]:
        node = out.owner
        shapes = [tuple(v.shape[i] for i in range(v.ndim)) for v in node.inputs]
        symbolic = node.op.infer_shape(None, node, shapes)[0]
        f = theanine.function(inputs, [out] + [T.as_tensor_variable(s) for s in symbolic], mode="py")
        value, *sizes = f(*values)
        assert tuple(int(s) for s in sizes) == value.shape
