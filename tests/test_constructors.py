"""Symbolic constructors, constants, shared variables and array-building ops vs NumPy."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T

PATTERNS = {
    "scalar": (), "vector": (None,), "row": (1, None), "col": (None, 1),
    "matrix": (None, None), "tensor3": (None,) * 3, "tensor4": (None,) * 4, "tensor5": (None,) * 5,
}
PREFIXES = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32",
            "d": "float64", "c": "complex64", "z": "complex128"}


def run(mode, inputs, outputs, *args):
    return theanine.function(inputs, outputs, mode=mode)(*args)


# --- symbolic inputs ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(PATTERNS))
@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_typed_constructor(prefix, kind):
    v = getattr(T, prefix + kind)("v")
    assert v.dtype == PREFIXES[prefix]
    assert v.ndim == len(PATTERNS[kind])
    assert v.type.shape == PATTERNS[kind]
    assert v.broadcastable == tuple(s == 1 for s in PATTERNS[kind])
    assert v.name == "v"


@pytest.mark.parametrize("kind", sorted(PATTERNS))
@pytest.mark.parametrize("floatX", ["float32", "float64"])
def test_floatx_constructor(kind, floatX):
    with theanine.config.change(floatX=floatX):
        v = getattr(T, kind)()
    assert v.dtype == floatX
    assert v.type.shape == PATTERNS[kind]


def test_constructor_dtype_override_and_plural_helpers():
    assert T.matrix(dtype="int32").dtype == "int32"
    assert T.fmatrix(shape=(2, None)).type.shape == (2, None)
    with pytest.raises(ValueError, match="2 entries"):
        T.matrix(shape=(2,))
    x, y = T.scalars("x y")
    assert (x.name, y.name, x.ndim) == ("x", "y", 0)
    a, b = T.matrices("a, b", dtype="float32")
    assert (a.dtype, b.ndim) == ("float32", 2)
    assert [v.ndim for v in T.vectors("p q")] == [1, 1]


@pytest.mark.parametrize("dtype,shape", [
    ("float32", (None, 3)), ("int64", ()), ("bool", (1, None, 2)), ("complex128", (4,)),
])
def test_tensor_factory(dtype, shape):
    v = T.tensor(dtype=dtype, shape=shape, name="t")
    assert (v.dtype, v.type.shape, v.name) == (dtype, shape, "t")


def test_tensor_factory_defaults_and_errors():
    with theanine.config.change(floatX="float32"):
        assert T.tensor(shape=(None,)).dtype == "float32"
    assert T.tensor(dtype="float64", broadcastable=(True, False)).type.shape == (1, None)
    with pytest.raises(TypeError, match="shape"):
        T.tensor(dtype="float64")
    with pytest.raises(TypeError, match="not a dtype"):
        T.tensor("x")  # a name given as the dtype
    with pytest.raises(TypeError, match="dtype"):
        T.tensor(dtype="object", shape=())


def test_typed_input_shapes_are_checked_at_call(mode):
    r = T.drow()
    f = theanine.function([r], r * 2, mode=mode)
    np.testing.assert_array_equal(f(np.ones((1, 3))), 2 * np.ones((1, 3)))
    with pytest.raises(ValueError, match="dimension 0 must be 1"):
        f(np.ones((2, 3)))
    with pytest.raises(TypeError, match="dimensions"):
        f(np.ones(3))


# --- constants -----------------------------------------------------------------------------

@pytest.mark.parametrize("value,dtype", [
    (0, "int8"), (127, "int8"), (-128, "int8"), (128, "int16"), (-129, "int16"),
    (2 ** 15, "int32"), (2 ** 31, "int64"), (-(2 ** 63), "int64"), (True, "bool"),
    (1.5, "floatX"), (1j, "complex128"), (np.float32(2), "float32"), (np.int16(3), "int16"),
    ([1.0, 2.0], "floatX"), (np.arange(3, dtype="int32"), "int32"),
])
@pytest.mark.parametrize("floatX", ["float32", "float64"])
def test_constant_dtype(value, dtype, floatX):
    with theanine.config.change(floatX=floatX):
        c = T.constant(value)
    assert c.dtype == (floatX if dtype == "floatX" else dtype)
    np.testing.assert_array_equal(c.data, np.asarray(value))


def test_constant_errors_and_ndim():
    with pytest.raises(OverflowError):
        T.constant(2 ** 64)
    with pytest.raises(TypeError):
        T.constant("abc")
    c = T.constant(3.0, ndim=2)
    assert c.type.shape == (1, 1)
    assert T.as_tensor_variable(c) is c
    assert T.constant(5, dtype="float32").dtype == "float32"


# --- shared variables ------------------------------------------------------------------------

def test_shared_borrow_semantics():
    a = np.arange(6.0).reshape(2, 3)
    s = theanine.shared(a, name="s")
    assert s.name == "s" and s.dtype == "float64" and s.ndim == 2
    a[0, 0] = 100.0  # borrow=False copied the value
    assert s.get_value()[0, 0] == 0.0
    v = s.get_value()
    v[0, 1] = 50.0  # get_value() returns a copy
    assert s.get_value()[0, 1] == 1.0
    assert s.get_value(borrow=True) is s.get_value(borrow=True)

    b = np.zeros(3)
    s2 = theanine.shared(b, borrow=True)
    b[1] = 7.0  # borrow=True aliases
    assert s2.get_value(borrow=True)[1] == 7.0

    c = np.ones(4)
    s2.set_value(c)  # copies
    c[0] = -1.0
    assert s2.get_value()[0] == 1.0
    s2.set_value(c, borrow=True)  # aliases
    c[1] = -2.0
    assert s2.get_value(borrow=True)[1] == -2.0
    assert s2.get_value().shape == (4,)  # the shape may change, not the ndim


def test_shared_set_value_errors():
    s = theanine.shared(np.zeros((2, 2)), name="w")
    with pytest.raises(TypeError, match="dimensions"):
        s.set_value(np.zeros(3))
    si = theanine.shared(np.zeros(2, dtype="int32"), name="k")
    with pytest.raises(TypeError, match="int32"):
        si.set_value(np.array([0.5, 1.5]))


def test_shared_in_function(mode):
    s = theanine.shared(np.array([1.0, 2.0]))
    x = T.dvector()
    f = theanine.function([x], x + s, updates=[(s, s * 2)], mode=mode)
    np.testing.assert_array_equal(f(np.zeros(2)), [1.0, 2.0])
    np.testing.assert_array_equal(s.get_value(), [2.0, 4.0])


def test_shared_python_scalars():
    assert theanine.shared(3).dtype == "int64"
    assert theanine.shared(1.5).dtype == theanine.config.floatX
    assert theanine.shared(np.float32(1)).dtype == "float32"


# --- fills -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fn,npfn", [(T.zeros, np.zeros), (T.ones, np.ones)])
@pytest.mark.parametrize("shape", [(), (3,), (2, 0), (2, 3, 1)])
@pytest.mark.parametrize("dtype", [None, "int32", "float32"])
def test_zeros_ones(mode, fn, npfn, shape, dtype):
    out = run(mode, [], fn(shape, dtype=dtype))
    expect = npfn(shape, dtype=dtype or theanine.config.floatX)
    assert out.dtype == expect.dtype
    np.testing.assert_array_equal(out, expect)


def test_zeros_symbolic_shape(mode):
    n = T.lscalar()
    v = T.ivector()
    f = theanine.function([n, v], [T.zeros((n, 2)), T.ones(v.shape[0])], mode=mode)
    a, b = f(3, np.array([1, 2, 3, 4], dtype="int32"))
    np.testing.assert_array_equal(a, np.zeros((3, 2)))
    np.testing.assert_array_equal(b, np.ones(4))


@pytest.mark.parametrize("fn,npfn", [(T.zeros_like, np.zeros_like), (T.ones_like, np.ones_like)])
@pytest.mark.parametrize("dtype", [None, "int8", "float32"])
def test_like(mode, rng, fn, npfn, dtype):
    x = T.tensor(dtype="float64", shape=(None, None, None))
    xv = rng.normal(size=(2, 0, 3)) if dtype == "int8" else rng.normal(size=(2, 1, 3))
    out = run(mode, [x], fn(x, dtype=dtype), xv)
    expect = npfn(xv, dtype=dtype)
    assert out.dtype == expect.dtype
    np.testing.assert_array_equal(out, expect)


@pytest.mark.parametrize("shape,value,dtype", [
    ((2, 3), 7, None), ((4,), 2.5, "float32"), ((), -1, "int16"), ((0, 2), 1.0, None),
])
def test_full(mode, shape, value, dtype):
    out = run(mode, [], T.full(shape, value, dtype=dtype))
    expect = np.full(shape, value, dtype=dtype or T.constant(value).dtype)
    assert out.dtype == expect.dtype
    np.testing.assert_array_equal(out, expect)


def test_full_like(mode, rng):
    x = T.fmatrix()
    xv = rng.normal(size=(2, 3)).astype("float32")
    out = run(mode, [x], T.full_like(x, 4), xv)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out, np.full_like(xv, 4))


@pytest.mark.parametrize("fill", [T.fill, T.second])
def test_fill(mode, rng, fill):
    x, y = T.dmatrix(), T.dscalar()
    xv = rng.normal(size=(3, 2))
    out = run(mode, [x, y], fill(x, y), xv, 5.0)
    np.testing.assert_array_equal(out, np.full((3, 2), 5.0))
    r = T.drow()
    out = run(mode, [x, r], fill(x, r), xv, np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(out, np.broadcast_to([[1.0, 2.0]], (3, 2)))


@pytest.mark.parametrize("vshape,shape", [
    ((), (2, 3)), ((3,), (2, 3)), ((1, 3), (4, 3)), ((2, 1), (2, 5)), ((3,), (0, 3)),
    ((2, 1, 3), (2, 4, 3)),
])
def test_alloc_broadcast_to(mode, rng, vshape, shape):
    v = T.tensor(dtype="float64", shape=(None,) * len(vshape))
    vv = rng.normal(size=vshape)
    a, b = run(mode, [v], [T.alloc(v, *shape), T.broadcast_to(v, shape)], vv)
    expect = np.broadcast_to(vv, shape)
    np.testing.assert_array_equal(a, expect)
    np.testing.assert_array_equal(b, expect)
    assert a.flags.writeable and a.shape == shape


def test_alloc_static_shape_and_errors(mode):
    v = T.dvector()
    n = T.lscalar()
    out = T.alloc(v, n, 3)
    assert out.type.shape == (None, 3)
    f = theanine.function([v, n], out, mode=mode)
    np.testing.assert_array_equal(f(np.arange(3.0), 2), np.broadcast_to(np.arange(3.0), (2, 3)))
    with pytest.raises(ValueError, match="broadcast"):
        f(np.arange(4.0), 2)
    with pytest.raises(ValueError, match="negative"):
        f(np.arange(3.0), -1)
    with pytest.raises(ValueError, match="broadcast"):
        T.alloc(T.constant(np.zeros(4)), 2, 3)
    with pytest.raises(ValueError, match="negative"):
        T.zeros((2, -1))
    with pytest.raises(ValueError, match="dimensions"):
        T.alloc(T.dmatrix(), 3)


@pytest.mark.parametrize("vshape,shape", [((), (2, 3)), ((3,), (2, 3)), ((2, 1), (2, 4))])
def test_alloc_broadcast_to_grad(mode, rng, vshape, shape):
    theanine.gradient.verify_grad(lambda v: T.alloc(v, *shape), [rng.normal(size=vshape)],
                                  mode=mode, rng=rng)
    theanine.gradient.verify_grad(lambda v: T.broadcast_to(v, shape), [rng.normal(size=vshape)],
                                  mode=mode, rng=rng)


# --- ranges -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (5,), (0,), (2, 7), (7, 2), (10, 0, -3), (0, 10, 3), (-3, 3), (5, 5), (0, 1, 0.25),
    (1.0, -1.0, -0.5), (0.5, 3), (3, 0, 1), (2, 2.5, 0.1),
])
def test_arange_constant(mode, args):
    out = run(mode, [], T.arange(*args))
    expect = np.arange(*args)
    assert out.dtype == (expect.dtype if expect.dtype.kind == "i" else theanine.config.floatX)
    np.testing.assert_allclose(out, expect)


@pytest.mark.parametrize("args", [(0, 5, 1), (5, 0, -1), (0, 7, 3), (3, 3, 1), (4, 1, 1), (-2, 6, -2)])
def test_arange_symbolic(mode, args):
    a, b, c = T.lscalar("a"), T.lscalar("b"), T.lscalar("c")
    out = T.arange(a, b, c)
    assert out.type.shape == (None,)
    res = run(mode, [a, b, c], out, *args)
    assert res.dtype == "int64"
    np.testing.assert_array_equal(res, np.arange(*args))


def test_arange_float_symbolic_and_dtype(mode):
    start, stop = T.dscalar(), T.dscalar()
    res = run(mode, [start, stop], T.arange(start, stop, 0.5), 0.0, 2.0)
    np.testing.assert_allclose(res, np.arange(0.0, 2.0, 0.5))
    res = run(mode, [], T.arange(4, dtype="float32"))
    assert res.dtype == "float32"
    assert T.arange(2, 9, 2).type.shape == (4,)


def test_arange_zero_step():
    with pytest.raises(ValueError, match="zero"):
        T.arange(0, 5, 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float_arange_matches_numpy_bit_for_bit(mode, entry_call, dtype):
    # native modes compute NumPy's own formula: start + i * delta, delta being the first
    # two values' difference in the dtype (not step), and ceil((stop - start) / step) values
    rng = np.random.default_rng(7)
    start, stop, step = T.dscalar(), T.dscalar(), T.dscalar()
    f = theanine.function([start, stop, step], T.arange(start, stop, step, dtype=dtype), mode=mode)
    cases = [(0.0, 1.0, 0.1), (0.1, 0.7, 0.2), (-3.0, 3.0, 0.7), (5.0, -1.0, -0.3), (1.0, 1.0, 0.5),
             (2.0, 1.0, 0.5), (0.0, 1.0, 2.0), (1e8, 1e8 + 5, 0.37)]
    for _ in range(40):
        a, d = rng.normal() * 10, rng.normal()
        cases.append((a, a + d * rng.integers(0, 40) + rng.normal() * abs(d), d))
    for a, b, c in cases:
        got = entry_call(f, np.array(a), np.array(b), np.array(c))
        expect = np.arange(a, b, c, dtype=dtype)
        assert got.dtype == expect.dtype and got.shape == expect.shape
        assert got.tobytes() == expect.tobytes(), (a, b, c)


def test_float_arange_of_integers_and_runtime_errors(mode, entry_call):
    n = T.lscalar()
    f = theanine.function([n], [T.arange(n, dtype="float32"), T.arange(1, n, 3, dtype="float64")], mode=mode)
    for k in (0, 1, 2, 7):
        a, b = entry_call(f, np.array(k))
        np.testing.assert_array_equal(a, np.arange(k, dtype="float32"))
        np.testing.assert_array_equal(b, np.arange(1, k, 3, dtype="float64"))
        assert a.dtype == "float32" and b.dtype == "float64"
    stop, step = T.dscalar(), T.dscalar()
    g = theanine.function([stop, step], T.arange(0.0, stop, step), mode=mode)
    with pytest.raises(ValueError, match="zero"):
        g(1.0, 0.0)
    for bad in (np.inf, np.nan, 1e30):
        with pytest.raises(ValueError):
            g(bad, 1.0)


def test_arange_zero_step_runtime(mode):
    s = T.lscalar()
    f = theanine.function([s], T.arange(0, 5, s), mode=mode)
    with pytest.raises(ValueError, match="zero"):
        f(0)


@pytest.mark.parametrize("n,m,k", [
    (3, None, 0), (3, 4, 0), (4, 2, 0), (3, 3, 1), (3, 3, -1), (3, 5, 2), (4, 3, -2), (3, 3, 5),
    (0, 2, 0), (2, 3, -4),
])
def test_eye(mode, n, m, k):
    out = run(mode, [], T.eye(n, m, k))
    expect = np.eye(n, m, k, dtype=theanine.config.floatX)
    assert out.dtype == expect.dtype
    np.testing.assert_array_equal(out, expect)


def test_eye_symbolic_and_dtype(mode):
    n, m, k = T.lscalar(), T.iscalar(), T.lscalar()
    e = T.eye(n, m, k, dtype="int32")
    f = theanine.function([n, m, k], e, mode=mode)
    res = f(3, 4, 1)
    assert res.dtype == "int32"
    np.testing.assert_array_equal(res, np.eye(3, 4, 1, dtype="int32"))
    assert T.eye(2, 5).type.shape == (2, 5)


@pytest.mark.parametrize("dtype", ["float64", "int32", "bool"])
def test_eye_runs_natively(mode, entry_call, dtype):
    n, m, k = T.lscalar(), T.iscalar(), T.bscalar()
    f = theanine.function([n, m, k], T.eye(n, m, k, dtype=dtype), mode=mode)
    for a, b, c in [(3, 3, 0), (3, 4, 1), (4, 2, -1), (0, 3, 0), (3, 0, 0), (2, 2, 5), (1, 1, 0),
                    (3, 5, -4), (1, 4, 3)]:
        got = entry_call(f, np.array(a), np.array(b, dtype="int32"), np.array(c, dtype="int8"))
        expect = np.eye(a, b, c, dtype=dtype)
        assert got.dtype == expect.dtype
        np.testing.assert_array_equal(got, expect)


def test_eye_negative_size_is_an_error(mode):
    n = T.lscalar()
    f = theanine.function([n], [T.eye(n), T.eye(2, n)], mode=mode)
    for bad in (-1, -5):
        with pytest.raises(ValueError, match="negative"):
            f(bad)
