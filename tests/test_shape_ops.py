"""Shape ops and array-building ops vs NumPy, with gradients vs finite differences."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad


def ftensor(ndim, dtype="float64"):
    return T.tensor(dtype=dtype, shape=(None,) * ndim)


def check(mode, build, *arrays, expect, dtype=None):
    """Compile build(*symbolic inputs) and compare with ``expect`` (a NumPy result)."""
    xs = [ftensor(np.ndim(a), np.asarray(a).dtype) for a in arrays]
    out = build(*xs)
    res = theanine.function(xs, out, mode=mode)(*arrays)
    expect = np.asarray(expect)
    assert res.shape == expect.shape
    assert res.dtype == (dtype or expect.dtype)
    np.testing.assert_array_equal(res, expect)
    return out


def grad_check(mode, rng, build, *arrays):
    verify_grad(build, [np.asarray(a, dtype="float64") for a in arrays], mode=mode, rng=rng)


# --- reshape / flatten --------------------------------------------------------------------

RESHAPES = [
    ((2, 3), (3, 2)), ((2, 3), (6,)), ((2, 3), (-1,)), ((2, 3), (-1, 2)), ((2, 3, 4), (4, -1)),
    ((6,), (1, 2, 1, 3)), ((), (1, 1)), ((1, 1), ()), ((1,), ()), ((0, 3), (3, 0)),
    ((0, 3), (-1, 3)), ((2, 3), (3, -1, 1)),
]


@pytest.mark.parametrize("src,dst", RESHAPES)
def test_reshape(mode, rng, src, dst):
    x = rng.normal(size=src)
    out = check(mode, lambda v: v.reshape(dst), x, expect=x.reshape(dst))
    assert out.ndim == len(dst)
    if 0 not in src:
        grad_check(mode, rng, lambda v: T.reshape(v, dst), x)


@pytest.mark.parametrize("src,dst", [((2, 3), (3, 2)), ((4, 3), (2, -1)), ((2, 3), (6,))])
def test_reshape_static_shapes(src, dst):
    x = T.tensor(dtype="float64", shape=src)
    assert x.reshape(dst).type.shape == np.empty(src).reshape(dst).shape


def test_reshape_symbolic_entries(mode, rng):
    x = T.dmatrix()
    n = T.lscalar()
    i32 = T.iscalar()
    xv = rng.normal(size=(4, 6))
    f = theanine.function([x, n, i32], [x.reshape((n, -1)), x.reshape((i32, n, 2)),
                                        T.reshape(x, T.stack([n, i32 * 2]))], mode=mode)
    a, b, c = f(xv, 3, 4)
    np.testing.assert_array_equal(a, xv.reshape(3, -1))
    np.testing.assert_array_equal(b, xv.reshape(4, 3, 2))
    np.testing.assert_array_equal(c, xv.reshape(3, 8))
    # a shape vector of unknown length needs ndim
    v = T.lvector()
    with pytest.raises(ValueError, match="ndim"):
        T.reshape(x, v)
    g = theanine.function([x, v], T.reshape(x, v, ndim=3), mode=mode)
    np.testing.assert_array_equal(g(xv, np.array([2, 3, 4])), xv.reshape(2, 3, 4))
    # x.shape reused as a shape
    y = T.dvector()
    h = theanine.function([x, y], y.reshape(x.shape), mode=mode)
    np.testing.assert_array_equal(h(xv, np.arange(24.0)), np.arange(24.0).reshape(4, 6))


def test_reshape_build_time_errors():
    x = T.tensor(dtype="float64", shape=(2, 3))
    with pytest.raises(ValueError, match=r"size 6.*\(4, 2\)"):
        x.reshape((4, 2))
    with pytest.raises(ValueError, match="size 6"):
        x.reshape((4, -1))
    with pytest.raises(ValueError, match="-1"):
        T.dmatrix().reshape((-1, -1))
    with pytest.raises(TypeError):
        T.dmatrix().reshape((2.5, 2))


def test_reshape_static_with_symbolic_entries():
    x = T.tensor(dtype="float64", shape=(2, 6))
    n = T.lscalar()
    assert x.reshape((n, 4)).type.shape == (3, 4)  # the one free entry is inferred
    assert x.reshape((n, n, 2)).type.shape == (None, None, 2)
    with pytest.raises(ValueError, match=r"size 12.*\('\?', 5\)"):
        x.reshape((n, 5))
    with pytest.raises(ValueError, match="size 12"):
        x.reshape((n, 0))


def test_reshape_runtime_mismatch(mode):
    x = T.dmatrix()
    f = theanine.function([x], x.reshape((4, 2)), mode=mode)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        f(np.zeros((2, 3)))


@pytest.mark.parametrize("shape,ndim", [((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), 3), ((5,), 1),
                                        ((2, 0, 3), 2), ((), 1)])
def test_flatten(mode, rng, shape, ndim):
    x = rng.normal(size=shape)
    expect = x.reshape(shape[:ndim - 1] + (-1,)) if shape else x.reshape(1)
    out = check(mode, lambda v: T.flatten(v, ndim), x, expect=expect)
    assert out.ndim == ndim
    if 0 not in shape:
        grad_check(mode, rng, lambda v: v.flatten(ndim), x)


def test_flatten_bad_ndim():
    with pytest.raises(ValueError, match="ndim"):
        T.dmatrix().flatten(3)
    with pytest.raises(ValueError, match="ndim"):
        T.dmatrix().flatten(0)


# --- dimshuffle / transpose / swapaxes / squeeze / expand_dims -------------------------------

DIMSHUFFLES = [  # (input shape, static shape, pattern, numpy equivalent)
    ((2, 3), (None, None), (1, 0), lambda a: a.T),
    ((2, 3), (None, None), ("x", 0, 1), lambda a: a[None]),
    ((2, 3), (None, None), (0, "x", 1, "x"), lambda a: a[:, None, :, None]),
    ((3,), (None,), ("x", 0), lambda a: a[None]),
    ((3,), (None,), (0, "x"), lambda a: a[:, None]),
    ((1, 3), (1, None), (1,), lambda a: a[0]),
    ((2, 1, 3), (None, 1, None), (2, 0), lambda a: a[:, 0, :].T),
    ((1,), (1,), (), lambda a: a[0]),
    ((), (), ("x", "x"), lambda a: a[None, None]),
    ((2, 3, 4), (None,) * 3, (2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ((0, 3), (None, None), (1, "x", 0), lambda a: a.T[:, None]),
]


@pytest.mark.parametrize("shape,static,pattern,npf", DIMSHUFFLES)
def test_dimshuffle(mode, rng, shape, static, pattern, npf):
    xv = rng.normal(size=shape)
    x = T.tensor(dtype="float64", shape=static)
    out = x.dimshuffle(*pattern)
    res = theanine.function([x], out, mode=mode)(xv)
    assert res.shape == npf(xv).shape
    np.testing.assert_array_equal(res, npf(xv))
    assert out.broadcastable[:len(pattern)] == tuple(p == "x" or static[p] == 1 for p in pattern)
    if 0 not in shape:
        def build(v):
            return T.specify_shape(v, static).dimshuffle(pattern)
        grad_check(mode, rng, build, xv)


def test_dimshuffle_errors(mode):
    with pytest.raises(ValueError, match="cannot drop dimension 0"):
        T.tensor(dtype="float64", shape=(3, None)).dimshuffle(1)
    with pytest.raises(ValueError, match="repeats"):
        T.dmatrix().dimshuffle(0, 0)
    with pytest.raises(ValueError, match="dimension"):
        T.dmatrix().dimshuffle(0, 2)
    with pytest.raises(TypeError):
        T.DimShuffle(3, (0, 1, 2))(T.dmatrix())
    # dropping a dimension whose size is only known at run time is checked then
    x = T.dmatrix()
    f = theanine.function([x], x.dimshuffle(1), mode=mode)
    np.testing.assert_array_equal(f(np.ones((1, 3))), np.ones(3))
    with pytest.raises(ValueError, match="size 2"):
        f(np.ones((2, 3)))


@pytest.mark.parametrize("shape,axes", [
    ((2, 3), None), ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (-1, 0, 1)), ((5,), None), ((), None),
])
def test_transpose(mode, rng, shape, axes):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.transpose(v, axes), xv, expect=np.transpose(xv, axes))
    if axes is not None:
        check(mode, lambda v: v.transpose(*axes), xv, expect=np.transpose(xv, axes))
        check(mode, lambda v: v.transpose(axes), xv, expect=np.transpose(xv, axes))
    else:
        check(mode, lambda v: v.T, xv, expect=xv.T)
        check(mode, lambda v: v.transpose(), xv, expect=xv.T)
    grad_check(mode, rng, lambda v: T.transpose(v, axes), xv)


def test_transpose_bad_axes():
    with pytest.raises(ValueError, match="repeated axis"):
        T.transpose(T.dtensor3(), (0, 1, 1))
    with pytest.raises(ValueError, match="permutation"):
        T.transpose(T.dtensor3(), (0, 1))


@pytest.mark.parametrize("shape,a,b", [((2, 3), 0, 1), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, 1),
                                       ((2, 3), 1, 1)])
def test_swapaxes(mode, rng, shape, a, b):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.swapaxes(v, a, b), xv, expect=np.swapaxes(xv, a, b))
    check(mode, lambda v: v.swapaxes(a, b), xv, expect=np.swapaxes(xv, a, b))
    grad_check(mode, rng, lambda v: T.swapaxes(v, a, b), xv)


@pytest.mark.parametrize("static,shape,axis", [
    ((1, None, 1), (1, 3, 1), None), ((1, None, 1), (1, 3, 1), 0), ((1, None, 1), (1, 3, 1), -1),
    ((None, None), (1, 3), 0), ((None, 1, None, 1), (2, 1, 3, 1), (1, 3)), ((1,), (1,), None),
])
def test_squeeze(mode, rng, static, shape, axis):
    xv = rng.normal(size=shape)
    x = T.tensor(dtype="float64", shape=static)
    out = T.squeeze(x, axis)
    res = theanine.function([x], [out, x.squeeze(axis)], mode=mode)(xv)
    for r in res:
        np.testing.assert_array_equal(r, np.squeeze(xv, axis))
    grad_check(mode, rng, lambda v: T.squeeze(T.specify_shape(v, static), axis), xv)


def test_squeeze_errors(mode):
    with pytest.raises(ValueError, match="not 1"):
        T.squeeze(T.tensor(dtype="float64", shape=(2, 1)), 0)
    x = T.dmatrix()
    f = theanine.function([x], T.squeeze(x, 0), mode=mode)
    with pytest.raises(ValueError):
        f(np.ones((2, 3)))
    # with no axis, only statically known size-1 dims are dropped
    assert T.squeeze(T.dmatrix()).ndim == 2


@pytest.mark.parametrize("shape,axis", [((3,), 0), ((3,), 1), ((3,), -1), ((2, 3), (0, 2)),
                                        ((2, 3), (-1, 0)), ((), 0), ((2, 3), 1)])
def test_expand_dims(mode, rng, shape, axis):
    xv = rng.normal(size=shape)
    out = check(mode, lambda v: T.expand_dims(v, axis), xv, expect=np.expand_dims(xv, axis))
    assert out.broadcastable == tuple(d == 1 for d in np.expand_dims(np.empty((2,) * len(shape)),
                                                                       axis).shape)
    grad_check(mode, rng, lambda v: T.expand_dims(v, axis), xv)


def test_pad_helpers(mode, rng):
    xv = rng.normal(size=(2, 3))
    check(mode, lambda v: T.shape_padleft(v, 2), xv, expect=xv[None, None])
    check(mode, lambda v: T.shape_padright(v), xv, expect=xv[..., None])
    check(mode, lambda v: T.shape_padaxis(v, 1), xv, expect=xv[:, None])


def test_expand_dims_static_pattern():
    out = T.expand_dims(T.dmatrix(), (0, 2))
    assert out.type.shape == (1, None, 1, None)


# --- broadcast_to ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,target", [((3,), (2, 3)), ((2, 1), (2, 4)), ((), (3,)),
                                          ((1, 3), (0, 3)), ((3,), (3,))])
def test_broadcast_to(mode, rng, shape, target):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.broadcast_to(v, target), xv, expect=np.broadcast_to(xv, target))
    if 0 not in target:
        grad_check(mode, rng, lambda v: T.broadcast_to(v, target), xv)


def test_broadcast_to_symbolic_shape(mode):
    x, y = T.dvector(), T.dmatrix()
    f = theanine.function([x, y], T.broadcast_to(x, y.shape), mode=mode)
    np.testing.assert_array_equal(f(np.arange(3.0), np.zeros((2, 3))),
                                  np.broadcast_to(np.arange(3.0), (2, 3)))
    with pytest.raises(ValueError):
        f(np.arange(3.0), np.zeros((2, 4)))


# --- join / concatenate / stack ---------------------------------------------------------------

@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1), ([(2, 3), (2, 5)], -1),
    ([(2, 3, 4), (2, 3, 1)], 2), ([(3,), (0,), (2,)], 0), ([(0, 2), (0, 3)], 1), ([(2,)], 0),
])
def test_concatenate(mode, rng, shapes, axis):
    arrays = [rng.normal(size=s) for s in shapes]
    expect = np.concatenate(arrays, axis=axis)
    check(mode, lambda *xs: T.concatenate(xs, axis=axis), *arrays, expect=expect)
    check(mode, lambda *xs: T.join(axis, *xs), *arrays, expect=expect)
    if all(0 not in s for s in shapes):
        grad_check(mode, rng, lambda *xs: T.concatenate(list(xs), axis=axis), *arrays)


@pytest.mark.parametrize("dtypes", [("int8", "int32"), ("int32", "float32"), ("float32", "float64"),
                                    ("bool", "int16"), ("int64", "float64")])
def test_concatenate_mixed_dtypes(mode, dtypes):
    arrays = [np.arange(k, k + 3).astype(d) for k, d in enumerate(dtypes)]
    expect = np.concatenate(arrays)
    check(mode, lambda *xs: T.concatenate(xs), *arrays, expect=expect)


def test_concatenate_grad_mixed_dtypes(mode):
    a, b = T.fvector(), T.dvector()
    ga, gb = theanine.grad(T.concatenate([a, b]).sum(), [a, b])
    assert ga.dtype == "float32" and gb.dtype == "float64"
    ra, rb = theanine.function([a, b], [ga, gb], mode=mode)(np.ones(2, "float32"), np.ones(3))
    np.testing.assert_array_equal(ra, np.ones(2))
    np.testing.assert_array_equal(rb, np.ones(3))


def test_concatenate_errors(mode):
    a = T.tensor(dtype="float64", shape=(2, 3))
    b = T.tensor(dtype="float64", shape=(2, 4))
    with pytest.raises(ValueError, match="dimension 1"):
        T.concatenate([a, b], axis=0)
    assert T.concatenate([a, b], axis=1).type.shape == (2, 7)
    with pytest.raises(ValueError, match="rank"):
        T.concatenate([T.dmatrix(), T.dvector()])
    with pytest.raises(ValueError):
        T.concatenate([T.dscalar(), T.dscalar()])
    with pytest.raises(ValueError):
        T.concatenate([])
    x, y = T.dmatrix(), T.dmatrix()
    f = theanine.function([x, y], T.concatenate([x, y]), mode=mode)
    with pytest.raises(ValueError, match="join"):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (2, 3)], 0), ([(2, 3), (2, 3), (2, 3)], 1), ([(2, 3), (2, 3)], -1),
    ([(), (), ()], 0), ([(), ()], -1), ([(3,), (3,)], 1), ([(3,)], 0), ([(0, 2), (0, 2)], 1),
])
def test_stack(mode, rng, shapes, axis):
    arrays = [rng.normal(size=s) for s in shapes]
    check(mode, lambda *xs: T.stack(xs, axis=axis), *arrays, expect=np.stack(arrays, axis=axis))
    if all(0 not in s for s in shapes):
        grad_check(mode, rng, lambda *xs: T.stack(list(xs), axis=axis), *arrays)


def test_stack_scalars_mixed(mode):
    a, b = T.iscalar(), T.dscalar()
    out = T.stack([a, b, 2])
    res = theanine.function([a, b], out, mode=mode)(1, 0.5)
    assert res.dtype == "float64"
    np.testing.assert_array_equal(res, [1.0, 0.5, 2.0])
    # a list with symbolic entries becomes a tensor through as_tensor_variable
    res = theanine.function([a, b], T.as_tensor_variable([a, b]), mode=mode)(3, 1.5)
    np.testing.assert_array_equal(res, [3.0, 1.5])


def test_stack_errors():
    with pytest.raises(ValueError):
        T.stack([T.dvector(), T.dmatrix()])
    with pytest.raises(TypeError):
        T.stack(T.dvector())


# --- split --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,sizes,axis", [
    ((6,), [1, 2, 3], 0), ((5, 2), [2, 3], 0), ((2, 5), [0, 5], 1), ((2, 5), [4, 1], -1),
    ((3, 4, 2), [2, 2], 1), ((4,), [4], 0),
])
def test_split(mode, rng, shape, sizes, axis):
    xv = rng.normal(size=shape)
    x = ftensor(len(shape))
    outs = T.split(x, sizes, len(sizes), axis=axis)
    assert len(outs) == len(sizes)
    res = theanine.function([x], outs, mode=mode)(xv)
    expect = np.split(xv, np.cumsum(sizes)[:-1], axis=axis)
    for r, e in zip(res, expect):
        assert r.shape == e.shape
        np.testing.assert_array_equal(r, e)
    weights = [rng.normal(size=e.shape) for e in expect]

    def build(v):
        parts = T.split(v, sizes, len(sizes), axis=axis)
        return sum((p * w).sum() for p, w in zip(parts, weights))
    grad_check(mode, rng, build, xv)
    # a gradient through only one of the pieces
    grad_check(mode, rng, lambda v: T.split(v, sizes, len(sizes), axis=axis)[-1] * 2, xv)


def test_split_symbolic_sizes_and_errors(mode):
    x = T.dvector()
    s = T.lvector()
    a, b = T.split(x, s, 2)
    f = theanine.function([x, s], [a, b], mode=mode)
    ra, rb = f(np.arange(5.0), np.array([3, 2]))
    np.testing.assert_array_equal(ra, [0, 1, 2])
    np.testing.assert_array_equal(rb, [3, 4])
    with pytest.raises(ValueError, match="partition"):
        f(np.arange(5.0), np.array([3, 3]))
    with pytest.raises(ValueError, match="partition"):
        f(np.arange(5.0), np.array([-1, 6]))  # adds up, but a size is negative
    with pytest.raises(ValueError, match="partition"):
        f(np.arange(5.0), np.array([1, 1, 3]))  # three sizes for two pieces
    with pytest.raises(ValueError, match="add up"):
        T.split(T.tensor(dtype="float64", shape=(5,)), [2, 2], 2)
    with pytest.raises(ValueError):
        T.split(x, [1, 2, 3], 2)


def strided(a):
    """The values of ``a`` as a non-contiguous view (every other element of the last axis)."""
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("sizes_kind", ["constant", "symbolic"])
@pytest.mark.parametrize("shape,sizes,axis", [
    ((6,), [1, 2, 3], 0), ((2, 5), [0, 5], 1), ((0, 2), [0, 0], 0), ((3, 4, 2), [2, 2], 1),
    ((1, 4), [1], 0), ((3, 1), [1, 0, 0], -1),
])
def test_split_runs_natively(mode, entry_call, rng, shape, sizes, axis, sizes_kind, layout):
    xv = rng.normal(size=shape)
    xv = strided(xv) if layout == "strided" else xv
    x, s = ftensor(len(shape)), T.lvector()
    pieces = T.split(x, sizes if sizes_kind == "constant" else s, len(sizes), axis=axis)
    f = theanine.function([x, s], pieces, mode=mode, on_unused_input="ignore")
    got = entry_call(f, xv, np.array(sizes, dtype="int64"))
    for g, e in zip(got, np.split(xv, np.cumsum(sizes)[:-1], axis=axis)):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


# --- tile / repeat / roll / flip -----------------------------------------------------------------

@pytest.mark.parametrize("shape,reps", [
    ((3,), 2), ((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (1, 3)), ((3,), (2, 2)), ((2, 3), (2,)),
    ((), (3,)), ((2, 1), (0, 2)), ((2, 2), (2, 1, 2)),
])
def test_tile(mode, rng, shape, reps):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.tile(v, reps), xv, expect=np.tile(xv, reps))
    if 0 not in np.atleast_1d(reps):
        grad_check(mode, rng, lambda v: T.tile(v, reps), xv)


def test_tile_symbolic_reps(mode, rng):
    x, r, rv = T.dmatrix(), T.lscalar(), T.lvector()
    xv = rng.normal(size=(2, 3))
    outs = [T.tile(x, (r, 2)), T.tile(x, rv, ndim=2), T.tile(x, np.array([2, 1])),
            T.tile(x, T.constant(np.array([1, 2, 2])))]
    res = theanine.function([x, r, rv], outs, mode=mode)(xv, 3, np.array([1, 4]))
    for out, expect in zip(res, [np.tile(xv, (3, 2)), np.tile(xv, (1, 4)), np.tile(xv, (2, 1)),
                                 np.tile(xv, (1, 2, 2))]):
        np.testing.assert_array_equal(out, expect)
    assert T.tile(T.tensor(dtype="float64", shape=(2, 3)), (2, 2)).type.shape == (4, 6)
    with pytest.raises(ValueError, match="ndim"):
        T.tile(x, rv)


@pytest.mark.parametrize("shape,repeats,axis", [
    ((3,), 2, 0), ((2, 3), 2, 1), ((2, 3), 3, None), ((2, 3), [1, 0, 2], 1), ((2, 3), [2, 1], 0),
    ((2, 3), [1, 2, 0, 1, 1, 3], None), ((2, 3), 0, 0), ((2, 3), 2, -1), ((3,), [3, 3, 3], 0),
])
def test_repeat(mode, rng, shape, repeats, axis):
    xv = rng.normal(size=shape)
    expect = np.repeat(xv, repeats, axis=axis)
    check(mode, lambda v: T.repeat(v, repeats, axis=axis), xv, expect=expect)
    if expect.size:
        grad_check(mode, rng, lambda v: T.repeat(v, repeats, axis=axis), xv)


def test_repeat_symbolic(mode, rng):
    x, r, rv = T.dmatrix(), T.lscalar(), T.ivector()
    xv = rng.normal(size=(2, 3))
    f = theanine.function([x, r, rv], [T.repeat(x, r, axis=0), T.repeat(x, rv, axis=1)], mode=mode)
    a, b = f(xv, 2, np.array([0, 1, 3], dtype="int32"))
    np.testing.assert_array_equal(a, np.repeat(xv, 2, axis=0))
    np.testing.assert_array_equal(b, np.repeat(xv, [0, 1, 3], axis=1))
    with pytest.raises(ValueError, match="negative"):
        f(xv, -1, np.array([0, 1, 3], dtype="int32"))
    with pytest.raises(TypeError):
        T.repeat(x, 1.5)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", ["int64", "uint8"])
@pytest.mark.parametrize("shape,repeats,axis", [
    ((2, 3), 2, 1), ((2, 3), 0, 0), ((1, 3), 3, 0), ((0, 3), 2, 0), ((2, 0), 2, 1), ((), 3, None),
    ((2, 3), 2, None), ((2, 3), [1, 0, 2], 1), ((2, 3), [3], 1), ((0, 3), [2], 0), ((0, 3), [], 0),
    ((2, 3), [0, 0, 0], -1), ((3, 2), [2, 1, 0, 1, 1, 3], None), ((4, 5), [1, 2, 0, 3], 0),
])
def test_repeat_runs_natively(mode, entry_call, rng, shape, repeats, axis, dtype, layout):
    xv = rng.normal(size=shape)
    xv = strided(xv) if layout == "strided" else xv
    r = np.array(repeats, dtype=dtype)
    x, rs = ftensor(len(shape)), T.tensor(dtype=dtype, shape=(None,) * r.ndim)
    f = theanine.function([x, rs], T.repeat(x, rs, axis=axis), mode=mode)
    got = entry_call(f, xv, r)
    expect = np.repeat(xv, r, axis=axis)
    assert got.shape == expect.shape and got.dtype == expect.dtype
    np.testing.assert_array_equal(got, expect)


def test_repeat_runtime_errors(mode):
    x, rv = T.dmatrix(), T.lvector()
    f = theanine.function([x, rv], T.repeat(x, rv, axis=1), mode=mode)
    with pytest.raises(ValueError):  # neither one count nor one per column
        f(np.zeros((2, 3)), np.array([1, 2]))
    with pytest.raises(ValueError, match="negative"):
        f(np.zeros((2, 3)), np.array([1, -1, 2]))
    with pytest.raises(ValueError, match="negative"):
        f(np.zeros((2, 3)), np.array([-1]))


@pytest.mark.parametrize("shape,shift,axis", [
    ((5,), 2, 0), ((5,), -2, 0), ((5,), 7, 0), ((5,), -12, None), ((5,), 0, 0), ((2, 3), 1, None),
    ((2, 3), -1, 1), ((2, 3), 4, 0), ((3, 4), 5, -1), ((0, 3), 1, 0), ((3, 4), (1, -2), (0, 1)),
    ((3, 4), 2, (0, 1)), ((3, 4), (1, 2), 1), ((3, 4), (1, 1), (1, 1)),
])
def test_roll(mode, rng, shape, shift, axis):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.roll(v, shift, axis), xv, expect=np.roll(xv, shift, axis))
    if xv.size:
        grad_check(mode, rng, lambda v: T.roll(v, shift, axis), xv)


def test_roll_symbolic_shift(mode, rng):
    x, s = T.dmatrix(), T.lscalar()
    xv = rng.normal(size=(3, 4))
    f = theanine.function([x, s], [T.roll(x, s, 1), T.roll(x, s)], mode=mode)
    for shift in (-5, -1, 0, 3, 9):
        a, b = f(xv, shift)
        np.testing.assert_array_equal(a, np.roll(xv, shift, 1))
        np.testing.assert_array_equal(b, np.roll(xv, shift))


@pytest.mark.parametrize("shape,axis", [((4,), None), ((2, 3), None), ((2, 3), 0), ((2, 3), -1),
                                        ((2, 3, 2), (0, 2)), ((0, 2), 0)])
def test_flip(mode, rng, shape, axis):
    xv = rng.normal(size=shape)
    check(mode, lambda v: T.flip(v, axis), xv, expect=np.flip(xv, axis))
    if xv.size:
        grad_check(mode, rng, lambda v: T.flip(v, axis), xv)


# --- .shape, .ndim, .dtype ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (3,), (2, 0), (1, 4, 2), (2, 1, 1, 3)])
def test_shape_values(mode, rng, shape):
    xv = rng.normal(size=shape)
    x = ftensor(len(shape))
    outs = [x.shape] + [x.shape[i] for i in range(len(shape))] + [T.shape(x), x.size]
    res = theanine.function([x], outs, mode=mode, on_unused_input="ignore")(xv)  # () is static
    assert res[0].dtype == "int64"
    np.testing.assert_array_equal(res[0], shape)
    assert [int(r) for r in res[1:1 + len(shape)]] == list(shape)
    np.testing.assert_array_equal(res[-2], shape)
    assert int(res[-1]) == xv.size
    assert x.ndim == len(shape) and x.dtype == "float64"


def test_static_shape_is_constant(mode):
    x = T.tensor(dtype="float32", shape=(2, None))
    assert isinstance(T.shape_i(x, 0), T.TensorConstant)
    res = theanine.function([x], x.shape[-1] * x.shape[0], mode=mode)(np.zeros((2, 5), "float32"))
    assert int(res) == 10
    # shapes are disconnected from the gradient
    y = T.dmatrix()
    g = theanine.grad((y.shape[0] * y).sum(), y)
    np.testing.assert_array_equal(theanine.function([y], g, mode=mode)(np.ones((3, 2))),
                                  np.full((3, 2), 3.0))


@pytest.mark.parametrize("ctor,ndim,dtype", [(T.fmatrix, 2, "float32"), (T.ivector, 1, "int32"),
                                             (T.btensor3, 3, "int8"), (T.zscalar, 0, "complex128")])
def test_ndim_dtype(ctor, ndim, dtype):
    x = ctor()
    assert (x.ndim, x.dtype) == (ndim, dtype)
    assert (x.T.ndim, x.T.dtype) == (ndim, dtype)
    assert x.flatten().ndim == 1


def test_specify_shape(mode):
    x = T.dmatrix()
    y = T.specify_shape(x, (2, None))
    assert y.type.shape == (2, None)
    f = theanine.function([x], y * 2, mode=mode)
    np.testing.assert_array_equal(f(np.ones((2, 5))), np.full((2, 5), 2.0))
    with pytest.raises(ValueError, match="specify_shape"):
        f(np.ones((3, 5)))
    with pytest.raises(ValueError):
        T.specify_shape(x, (2,))


# --- axis checking ------------------------------------------------------------------------------

AXIS_ERRORS = [
    lambda x: T.concatenate([x, x], axis=2), lambda x: T.concatenate([x, x], axis=-3),
    lambda x: T.join(2, x, x), lambda x: T.stack([x, x], axis=3), lambda x: T.stack([x], axis=-4),
    lambda x: T.expand_dims(x, 3), lambda x: T.expand_dims(x, (0, -5)), lambda x: T.squeeze(x, 2),
    lambda x: T.swapaxes(x, 0, 2), lambda x: T.transpose(x, (0, 2)), lambda x: T.take(x, [0], 2),
    lambda x: T.roll(x, 1, 2), lambda x: T.flip(x, -3), lambda x: T.repeat(x, 2, 2),
    lambda x: T.split(x, [1, 1], 2, axis=2), lambda x: T.swapaxes(T.dscalar(), 0, 0),
]


@pytest.mark.parametrize("build", AXIS_ERRORS)
def test_axis_out_of_range(build):
    """An out-of-range axis is an error (numpy.exceptions.AxisError), never wrapped around."""
    with pytest.raises(np.exceptions.AxisError, match="out of bounds"):
        build(T.dmatrix())


def test_repeated_axes():
    with pytest.raises(ValueError, match="repeated axis"):
        T.expand_dims(T.dmatrix(), (0, 0))
    with pytest.raises(ValueError, match="repeated axis"):
        T.flip(T.dmatrix(), (1, -1))


def test_join_constant_axis(mode, rng):
    xv = rng.normal(size=(2, 3))
    check(mode, lambda v: T.join(T.constant(1), v, v), xv, expect=np.concatenate([xv, xv], 1))
    with pytest.raises(TypeError, match="build time"):
        T.join(T.lscalar(), T.dmatrix(), T.dmatrix())


def test_integer_only_sizes():
    with pytest.raises(TypeError, match="integer"):
        T.alloc(1.0, 2.5)
    with pytest.raises(TypeError, match="integer"):
        T.zeros((2, T.dscalar()))
    with pytest.raises(TypeError, match="integer"):
        T.eye(2.5)
    with pytest.raises(TypeError, match="integer"):
        T.tile(T.dvector(), (1.5,))
    with pytest.raises(ValueError, match="negative"):
        T.repeat(T.tensor(dtype="float64", shape=(2, 3)), -1, 0)


# --- non-contiguous inputs -------------------------------------------------------------------

NONCONTIG = [
    lambda a: a.T,
    lambda a: a[::2],
    lambda a: a[:, ::-1],
    lambda a: np.asfortranarray(a),
    lambda a: a[1:, 1::2],
]


@pytest.mark.parametrize("view", NONCONTIG)
def test_noncontiguous_inputs(mode, rng, view):
    base = rng.normal(size=(4, 6))
    xv = view(base)
    x = T.dmatrix()
    outs = [x.reshape((-1,)), x.flatten(), x.T, x.dimshuffle(1, "x", 0), T.concatenate([x, x], 1),
            T.tile(x, (1, 2)), T.repeat(x, 2, 0), T.roll(x, 1, 1), x[::-1, 1:], x[[0, -1]],
            T.set_subtensor(x[0], 1.0), T.inc_subtensor(x[:, [0, 0]], 1.0)]
    inc = np.array(xv)
    np.add.at(inc, (slice(None), [0, 0]), 1.0)
    setv = np.array(xv)
    setv[0] = 1.0
    expect = [xv.reshape(-1), xv.reshape(-1), xv.T, xv.T[:, None, :], np.concatenate([xv, xv], 1),
              np.tile(xv, (1, 2)), np.repeat(xv, 2, 0), np.roll(xv, 1, 1), xv[::-1, 1:],
              xv[[0, -1]], setv, inc]
    before = xv.copy()
    res = theanine.function([x], outs, mode=mode)(xv)
    for r, e in zip(res, expect):
        np.testing.assert_array_equal(r, e)
    np.testing.assert_array_equal(xv, before)  # inputs are not modified
