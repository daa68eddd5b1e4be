"""theanine.tensor.signal.pool against Theano's own loop definition of pooling.

``ref_pool`` is Theano's Pool.perform rewritten for any number of leading axes:
windows truncated at the border (ignore_border=False), padding excluded from max
and from average_exc_pad, and counted by average_inc_pad.
"""

from __future__ import annotations

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.tensor.signal.pool import AveragePoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool, pool_2d

MODES = ["max", "sum", "average_inc_pad", "average_exc_pad"]


def out_size(n, ws, st, pad, ignore_border):
    if ignore_border:
        return max(0, (n + 2 * pad - ws) // st + 1)
    if st >= ws:
        return (n - 1) // st + 1
    return max(0, (n - 1 - ws + st) // st) + 1


def ref_pool(x, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    stride = stride or ws
    r, c = x.shape[-2:]
    pr = out_size(r, ws[0], stride[0], pad[0], ignore_border)
    pc = out_size(c, ws[1], stride[1], pad[1], ignore_border)
    rows, cols = r + 2 * pad[0], c + 2 * pad[1]
    y = np.zeros(x.shape[:-2] + (rows, cols), x.dtype)
    y[..., pad[0]:pad[0] + r, pad[1]:pad[1] + c] = x
    inc_pad = mode == "average_inc_pad"
    func = {"max": np.max, "sum": np.sum}.get(mode, np.average)
    out = np.zeros(x.shape[:-2] + (pr, pc), x.dtype)
    for idx in np.ndindex(*x.shape[:-2]):
        for i in range(pr):
            rs, re = i * stride[0], min(i * stride[0] + ws[0], rows)
            if not inc_pad:
                rs, re = max(rs, pad[0]), min(re, r + pad[0])
            for j in range(pc):
                cs, ce = j * stride[1], min(j * stride[1] + ws[1], cols)
                if not inc_pad:
                    cs, ce = max(cs, pad[1]), min(ce, c + pad[1])
                out[idx + (i, j)] = func(y[idx][rs:re, cs:ce])
    return out


CONFIGS = [  # ws, ignore_border, stride, pad
    ((2, 2), True, None, (0, 0)),
    ((2, 2), False, None, (0, 0)),
    ((3, 2), True, (1, 1), (0, 0)),
    ((3, 2), False, (2, 3), (0, 0)),
    ((3, 3), False, (1, 2), (0, 0)),
    ((3, 2), True, (2, 1), (1, 1)),
    ((3, 3), True, None, (2, 1)),
    ((1, 1), True, (2, 2), (0, 0)),
    ((4, 1), False, (3, 1), (0, 0)),
]


def cfg_id(cfg):
    ws, ib, st, pad = cfg
    return f"ws{ws}-ib{int(ib)}-st{st}-pad{pad}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=[cfg_id(c) for c in CONFIGS])
@pytest.mark.parametrize("pool_mode", MODES)
def test_pool_values(rng, cfg, pool_mode):
    ws, ib, st, pad = cfg
    x = T.dtensor4()
    f = theanine.function([x], pool_2d(x, ws, ib, st, pad, pool_mode), mode="py")
    value = rng.normal(size=(2, 3, 7, 5))
    np.testing.assert_allclose(f(value), ref_pool(value, ws, ib, st, pad, pool_mode), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool_mode", MODES)
def test_pool_on_every_backend(mode, rng, pool_mode, dtype):
    x = T.tensor3(dtype=dtype)
    f = theanine.function([x], pool_2d(x, (2, 3), False, (2, 2), (0, 0), pool_mode), mode=mode)
    value = rng.normal(size=(2, 5, 7)).astype(dtype)
    out = f(value)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref_pool(value, (2, 3), False, (2, 2), (0, 0), pool_mode), rtol=1e-6)


def test_pool_ranks_and_awkward_inputs(rng):
    for value in (rng.normal(size=(5, 6)),                              # a matrix
                  rng.normal(size=(2, 1, 2, 3, 4)),                     # 5-d
                  rng.normal(size=(1, 1, 1, 1)),                        # one pixel
                  rng.normal(size=(3, 6, 5)).transpose(0, 2, 1),        # transposed
                  rng.normal(size=(2, 9, 8))[:, 1::2, ::3],             # strided slice
                  np.zeros((0, 4, 4))):                                 # empty leading axis
        x = T.tensor(dtype="float64", shape=(None,) * value.ndim)
        for pool_mode in MODES:
            f = theanine.function([x], pool_2d(x, (2, 2), False, (1, 2), mode=pool_mode), mode="py")
            np.testing.assert_allclose(f(value), ref_pool(value, (2, 2), False, (1, 2), (0, 0), pool_mode))


def test_window_larger_than_input(rng):
    value = rng.normal(size=(1, 2, 2))
    x = T.dtensor3()
    empty = theanine.function([x], pool_2d(x, (3, 3)), mode="py")(value)
    assert empty.shape == (1, 0, 0)
    partial = theanine.function([x], pool_2d(x, (3, 3), ignore_border=False), mode="py")(value)
    np.testing.assert_allclose(partial, value.max(axis=(1, 2)).reshape(1, 1, 1))


def test_integer_max_and_sum_pooling(mode):
    x = T.imatrix()
    value = np.arange(-10, 10, dtype="int32").reshape(4, 5)
    for pool_mode in ("max", "sum"):
        f = theanine.function([x], pool_2d(x, (2, 2), ignore_border=False, mode=pool_mode), mode=mode)
        out = f(value)
        assert out.dtype == "int32"
        np.testing.assert_array_equal(out, ref_pool(value, (2, 2), False, None, (0, 0), pool_mode))


def test_static_shape_and_infer_shape():
    x = T.tensor(dtype="float64", shape=(2, 3, 7, 5))
    for (ws, ib, st, pad) in CONFIGS:
        out = pool_2d(x, ws, ib, st, pad)
        want = (out_size(7, ws[0], (st or ws)[0], pad[0], ib), out_size(5, ws[1], (st or ws)[1], pad[1], ib))
        assert out.type.shape == (2, 3) + want
    xs = T.dtensor4()
    for (ws, ib, st, pad) in CONFIGS:
        node = pool_2d(xs, ws, ib, st, pad).owner
        shp = node.op.infer_shape(None, node, [tuple(xs.shape[i] for i in range(4))])[0]
        got = theanine.function([xs], list(shp), mode="py")(np.zeros((2, 3, 7, 5)))
        assert tuple(int(s) for s in got) == (2, 3) + (out_size(7, ws[0], (st or ws)[0], pad[0], ib),
                                                      out_size(5, ws[1], (st or ws)[1], pad[1], ib))


GRAD_CONFIGS = [
    ((2, 2), True, None, (0, 0)),
    ((3, 2), False, (2, 1), (0, 0)),
    ((3, 2), True, (1, 2), (1, 1)),
    ((2, 3), False, (1, 1), (0, 0)),
]


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=[cfg_id(c) for c in GRAD_CONFIGS])
@pytest.mark.parametrize("pool_mode", MODES)
def test_pool_gradients(rng, cfg, pool_mode):
    ws, ib, st, pad = cfg
    # distinct values far apart: the maximum of each window is unambiguous
    value = rng.permutation(40).reshape(2, 1, 5, 4) * 0.1
    verify_grad(lambda a: pool_2d(a, ws, ib, st, pad, pool_mode), [value], mode="py")


def test_pool_gradients_on_native_backends(mode, rng):
    value = rng.permutation(36).reshape(1, 6, 6) * 0.1
    for pool_mode in ("max", "average_exc_pad"):
        verify_grad(lambda a: T.tanh(pool_2d(a, (3, 2), True, (2, 1), (1, 1), pool_mode)), [value], mode=mode)


def test_max_pool_gradient_goes_to_every_tied_maximum():
    x = T.dmatrix()
    g = theanine.grad(T.sum(pool_2d(x, (2, 2), True, (1, 1))), x)
    value = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(theanine.function([x], g, mode="py")(value), [[1.0, 2.0, 1.0], [0, 0, 0]])


def test_second_derivatives(rng):
    """Gradients of the gradient ops: MaxPoolGradGrad, and pooling itself for averages."""
    value = rng.permutation(20).reshape(1, 4, 5) * 0.1
    c = rng.normal(size=(1, 4, 5))
    for pool_mode in MODES:
        def grad_then_weight(a, m=pool_mode):
            g = theanine.grad(T.sum(pool_2d(a, (2, 2), False, (1, 2), mode=m) ** 2), a)
            return g * T.constant(c)

        verify_grad(grad_then_weight, [value], mode="py")
    gz = rng.normal(size=(1, 3, 3))
    xv = T.constant(value)
    for op in (MaxPoolGrad((2, 3), True, (1, 1)), AveragePoolGrad((2, 3), True, (1, 1), mode="average_inc_pad")):
        if isinstance(op, MaxPoolGrad):
            maxout = pool_2d(xv, (2, 3), True, (1, 1))
            verify_grad(lambda g, o=op, m=maxout: o(xv, m, g), [gz], mode="py")
            verify_grad(lambda gg, m=maxout: MaxPoolGradGrad((2, 3), True, (1, 1))(xv, m, gg),
                        [rng.normal(size=(1, 4, 5))], mode="py")
        else:
            verify_grad(lambda g, o=op: o(xv, g), [gz], mode="py")


def test_float32_gradients(rng):
    value = (rng.permutation(30).reshape(1, 5, 6) * 0.1).astype("float32")
    for pool_mode in MODES:
        verify_grad(lambda a, m=pool_mode: pool_2d(a, (2, 2), False, mode=m), [value], mode="py")


def test_errors():
    x = T.dtensor4()
    with pytest.raises(ValueError, match="pool_2d: input must have at least 2 dimensions"):
        pool_2d(T.dvector(), (2, 2))
    with pytest.raises(ValueError, match="pool_2d: mode must be one of 'max', 'sum', 'average_inc_pad', 'average_exc_pad', got 'mean'"):
        pool_2d(x, (2, 2), mode="mean")
    with pytest.raises(ValueError, match=r"pool_2d: ws must be a pair of positive ints, got \(0, 2\)"):
        pool_2d(x, (0, 2))
    with pytest.raises(ValueError, match="pool_2d: stride must be a pair of positive ints"):
        pool_2d(x, (2, 2), stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"padding \(pad=\(1, 1\)\) requires ignore_border=True"):
        pool_2d(x, (2, 2), ignore_border=False, pad=(1, 1))
    with pytest.raises(ValueError, match=r"pad=\(2, 0\) must be smaller than ws=\(2, 2\)"):
        pool_2d(x, (2, 2), pad=(2, 0))
    with pytest.raises(TypeError, match="pool_2d: mode 'average_exc_pad' needs a float input, got int64"):
        pool_2d(T.lmatrix(), (2, 2), mode="average_exc_pad")
    with pytest.raises(ValueError, match="MaxPoolGrad: gz has static shape"):
        MaxPoolGrad((2, 2))(T.tensor(dtype="float64", shape=(4, 4)), T.dmatrix(),
                            T.tensor(dtype="float64", shape=(3, 2)))


def test_ops_are_values():
    assert Pool((2, 2)) == Pool((2, 2), True, (2, 2), (0, 0), "max")
    assert hash(Pool((2, 2))) == hash(Pool((2, 2), True, (2, 2)))
    assert Pool((2, 2)) != Pool((2, 2), mode="sum")
    assert MaxPoolGrad((2, 2)) != Pool((2, 2))


def test_gradient_ops_infer_shape(rng):
    x, out, gz = T.dtensor3(), T.dtensor3(), T.dtensor3()
    xv = rng.normal(size=(2, 5, 4))
    pooled = pool_2d(T.constant(xv), (2, 3), False, (1, 2)).eval()
    for node_out, inputs, values in [
        (MaxPoolGrad((2, 3), False, (1, 2))(x, out, gz), [x, out, gz], [xv, pooled, pooled]),
        (MaxPoolGradGrad((2, 3), False, (1, 2))(x, out, x), [x, out], [xv, pooled]),
        (AveragePoolGrad((2, 3), False, (1, 2), mode="sum")(x, gz), [x, gz], [xv, pooled]),
    ]:
        node = node_out.owner
        shapes = [tuple(v.shape[i] for i in range(v.ndim)) for v in node.inputs]
        symbolic = node.op.infer_shape(None, node, shapes)[0]
        f = theanine.function(inputs, [node_out] + [T.as_tensor_variable(s) for s in symbolic], mode="py")
        value, *sizes = f(*values)
        assert tuple(int(s) for s in sizes) == value.shape
