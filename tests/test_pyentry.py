"""The native CPython entry point of elementwise kernels (theanine.codegen.pyentry)."""

import ctypes
import gc
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import theanine
from theanine.codegen import jit, llvm, lower, pyentry
from theanine.codegen.ir import Instr, ScalarProgram

pytestmark = pytest.mark.skipif(pyentry.LAYOUT is None,
                                reason=f"pyentry probe failed: {pyentry.PROBE_ERROR}")

_kernels = {}


def kernel(program, static_shapes, out_shape):
    """The address of ``program`` lowered like native.py does, for these static shapes."""
    key = (program, tuple(static_shapes), tuple(out_shape))
    if key not in _kernels:
        name = f"pyentry_test_k{len(_kernels)}_{abs(hash(key)) % 10**8}"
        module = llvm.Module(name)
        llvm.render_elementwise(module, *lower.elementwise_kernel(name, program, static_shapes, out_shape))
        _kernels[key] = jit.compile_ir(module.render(), [name])[name]
    return _kernels[key]


def mul_add_one(dtype, n=2):
    """x0 * x1 * ... + 1 in ``dtype``."""
    instrs = [Instr("mul", (0, 1), dtype, dtype)] if n == 2 else []
    last = 1 + n if n == 2 else 0
    instrs.append(Instr("add", (last, n), dtype, dtype))
    return ScalarProgram((dtype,) * n, ((1, dtype),), tuple(instrs), (n + len(instrs),))


def entry(dtype="float64", ndim=2, n=2, in_shapes=None, fallback=None, kernel_shapes=None):
    program = mul_add_one(dtype, n)
    shapes = kernel_shapes or [(None,) * ndim] * n
    address = kernel(program, shapes, (None,) * ndim)
    return pyentry.make_entry(address, [dtype] * n, dtype, ndim, "mul_add_one",
                              in_shapes=in_shapes, fallback=fallback)


def reference(*arrays):
    out = arrays[0] * arrays[1] if len(arrays) == 2 else arrays[0]
    return out + out.dtype.type(1)


def check(f, *arrays, ndim=None):
    """f(*arrays) equals NumPy's result, with leading size-1 dims up to the kernel's ``ndim``."""
    out = f(*arrays)
    want = np.asarray(reference(*arrays))
    if ndim is not None:
        want = want.reshape((1,) * (ndim - want.ndim) + want.shape)
    assert type(out) is np.ndarray and out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    return out


def test_is_a_builtin_function():
    f = entry()
    assert type(f) is type(len) and f.__name__ == "mul_add_one"
    assert "float64" in f.__doc__


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_contiguous_and_strided(dtype, rng):
    f = entry(dtype)
    a = (rng.standard_normal((6, 8)) * 10).astype(dtype)
    b = (rng.standard_normal((6, 8)) * 10).astype(dtype)
    check(f, a, b)
    check(f, a.T.copy(), b.T)                   # transposed
    check(f, a[::2], b[1::2])                   # every other row
    check(f, a[::-1, ::-3], b[:, ::-1][:, ::3])  # negative strides
    check(f, a[:, 2], b[:, 5], ndim=2)       # 1-d arguments broadcast into the 2-d kernel
    check(f, np.asfortranarray(a), b)


@pytest.mark.parametrize("sa, sb", [((2, 3), (3,)), ((2, 1), (1, 3)), ((1, 3), (2, 1)),
                                    ((4, 1), (4, 5)), ((), (2, 3)), ((5,), ()), ((), ()),
                                    ((0, 3), (3,)), ((2, 0), (2, 1)), ((0,), (1, 0))])
def test_broadcasting_and_empty(sa, sb, rng):
    f = entry()
    check(f, rng.standard_normal(sa), rng.standard_normal(sb), ndim=2)


def test_zero_dimensional_output():
    f = entry(ndim=0)
    out = check(f, np.array(2.0), np.array(3.0))
    assert out.shape == () and out[()] == 7.0
    assert f(np.ones(3), np.array(1.0)) is NotImplemented  # more dims than the kernel has


def test_one_argument_and_large_output():
    f = entry(ndim=3, n=1)
    a = np.arange(2 * 300 * 400, dtype=np.float64).reshape(2, 300, 400)  # GIL released
    check(f, a)
    check(f, a[:, ::-2, 1::3])
    check(f, a.transpose(2, 0, 1))


def test_threads_with_gil_released():
    f = entry(ndim=1)
    a, b = np.arange(1_000_000.0), np.full(1_000_000, 2.0)
    results = [None] * 4

    def work(i):
        results[i] = f(a, b)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, a * 2 + 1)


def test_output_is_fresh_writeable_c_contiguous():
    f = entry()
    a, b = np.ones((3, 4)).T, np.ones(3)
    out = f(a, b)
    assert out.flags.c_contiguous and out.flags.writeable and out.flags.owndata and out.base is None
    assert sys.getrefcount(out) == 2
    out2 = f(a, b)
    assert not np.shares_memory(out, out2) and not np.shares_memory(out, a)
    out[...] = 5
    np.testing.assert_array_equal(out2, 2.0)


def test_flattened_calls(rng):
    # contiguous and single-element arguments take the flat one-dimensional kernel call
    f = entry(ndim=3)
    a = rng.standard_normal((3, 4, 5))
    check(f, a, a.copy())
    check(f, a, np.array(2.0))
    check(f, a[0], np.array(2.0), ndim=3)
    check(f, np.ones((1, 1, 1)), a)
    check(f, a, np.broadcast_to(np.float64(3.0), a.shape))  # stride 0, not flat
    check(f, a[:, :, :1], np.ones((3, 4, 1)))


def test_wrong_number_of_arguments():
    f = entry()
    with pytest.raises(TypeError, match=r"^mul_add_one\(\) takes exactly 2 arguments \(3 given\)$"):
        f(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=r"\(0 given\)"):
        f()
    with pytest.raises(TypeError, match="keyword"):
        f(np.ones(2), y=np.ones(2))


class Sub(np.ndarray):
    pass


@pytest.mark.parametrize("bad", [
    np.ones(3, np.float32),                                   # dtype
    np.ones((2, 2, 3)),                                       # too many dims
    [1.0, 2.0, 3.0],                                          # not an array
    3.0,
    np.ones(3).view(Sub),                                     # subclass
    np.ones(3, dtype=">f8"),                                  # byte-swapped
    np.frombuffer(b"\0" * 25, np.float64, count=3, offset=1),  # unaligned
])
def test_not_for_the_fast_path(bad):
    f = entry()
    assert f(np.ones(3), bad) is NotImplemented
    assert f(bad, np.ones(3)) is NotImplemented


def test_fallback_gets_the_arguments():
    calls = []

    def slow(*args):
        calls.append(args)
        return "slow"

    f = entry(fallback=slow)
    a = np.ones(3, np.float32)
    assert f(a, [1.0]) == "slow" and calls[0][0] is a and calls[0][1] == [1.0]
    check(f, np.ones(3), np.ones(3), ndim=2)
    assert len(calls) == 1
    f = entry(fallback=lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        f(1, 2)


def test_static_shapes():
    f = entry(in_shapes=[(None, 3), (3,)])
    check(f, np.ones((2, 3)), np.ones(3))
    assert f(np.ones((2, 4)), np.ones(4)) is NotImplemented      # static size 3
    assert f(np.ones(3), np.ones(3)) is NotImplemented           # exact ndim
    assert f(np.ones((2, 3)), np.ones((1, 3))) is NotImplemented


def test_input_read_once_per_row():
    # the kernel hoists an input whose static last size is 1: the entry must keep it so
    program = mul_add_one("float64")
    address = kernel(program, [(None, None), (None, 1)], (None, None))
    f = pyentry.make_entry(address, ["float64"] * 2, "float64", 2, "hoisted",
                           in_shapes=[(None, None), (None, 1)])
    a, b = np.arange(12.0).reshape(4, 3), np.arange(4.0).reshape(4, 1)
    check(f, a, b)
    check(f, a[:, :1].copy(), b)  # same contiguous shape: must not be flattened
    assert f(a, np.ones((4, 3))) is NotImplemented


def test_broadcast_mismatch():
    f = entry()
    with pytest.raises(ValueError, match=r"could not be broadcast together with shapes \(2,3\) \(4,\)"):
        f(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match=r"shapes \(2,1\) \(3,2\)"):
        f(np.ones((2, 1)), np.ones((3, 2)))


def test_kernel_of_a_compiled_function(rng):
    x, y = theanine.tensor.matrix("x"), theanine.tensor.vector("y")
    fn = theanine.function([x, y], x * y + 1.0, mode="llvm")
    (info,) = fn.kernels
    assert [i.type.shape for i in info.node.inputs] == [(None, None), (1, None)]
    address = jit.compile_ir(fn._native.source, [info.name])[info.name]
    f = pyentry.make_entry(address, ["float64", "float64"], "float64", 2, "fn",
                           in_shapes=[(None, None), (None,)])
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(f(a, b), fn(a, b))
    np.testing.assert_array_equal(f(a, b), a * b + 1.0)


def test_random_layouts(rng):
    f = entry(ndim=3)
    for _ in range(200):
        shape = tuple(int(s) for s in rng.integers(0, 4, size=3))
        base = rng.standard_normal(tuple(2 * s + 1 for s in shape))
        a = base[tuple(slice(None, None, int(rng.choice([1, 2, -1, -2]))) for _ in shape)]
        a = a[tuple(slice(0, s) for s in shape)]
        b_shape = tuple(s if rng.random() < 0.6 else 1 for s in shape)[int(rng.integers(0, 4)):]
        b = rng.standard_normal(b_shape)
        if rng.random() < 0.5:
            a, b = b, a
        check(f, a, b, ndim=3)


def test_reference_counts_are_exact():
    f = entry(fallback=lambda *args: None)
    g = entry()
    a, b = np.ones((2, 3)), np.ones(3)
    bad, wrong = np.ones(3, np.float32), np.ones(4)
    watched = [a, b, bad, np.dtype("float64"), NotImplemented, np.ndarray, f, g]
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(10_000):
        f(a, b)
        f(bad, b)
        g(bad, b)
        try:
            g(a, wrong)
        except ValueError:
            pass
        try:
            g(a)
        except TypeError:
            pass
    after = [sys.getrefcount(o) for o in watched]
    assert after == before


def test_memory_stays_flat():
    f = entry(fallback=lambda *args: None)
    a, b = np.ones((20, 30)), np.ones(30)
    bad = [1.0]

    def run(n):
        for _ in range(n):
            f(a, b)
            f(bad, b)

    run(1000)
    gc.collect()
    tracemalloc.start()
    try:
        run(1000)
        start = tracemalloc.get_traced_memory()[0]
        run(100_000)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 20_000, grown  # a leak would be 100,000 outputs of 4.8 kB


def test_probe_offsets_read_arrays():
    L = pyentry.LAYOUT
    base = np.arange(60.0).reshape(3, 4, 5)
    for a in (base, base[::-1, 1:, ::2], base.T, np.array(1, np.int8), np.zeros((0, 7), np.float32)):
        p = id(a)
        assert ctypes.c_void_p.from_address(p + L["type"]).value == id(np.ndarray)
        assert ctypes.c_void_p.from_address(p + L["data"]).value == a.__array_interface__["data"][0]
        assert ctypes.c_int.from_address(p + L["nd"]).value == a.ndim
        assert ctypes.c_void_p.from_address(p + L["descr"]).value == id(a.dtype)
        if a.ndim:
            dims = ctypes.c_void_p.from_address(p + L["dims"]).value
            strides = ctypes.c_void_p.from_address(p + L["strides"]).value
            assert tuple((ctypes.c_int64 * a.ndim).from_address(dims)) == a.shape
            assert tuple((ctypes.c_int64 * a.ndim).from_address(strides)) == a.strides
        flags = ctypes.c_int.from_address(p + L["flags"]).value
        assert bool(flags & pyentry.NPY_ARRAY_C_CONTIGUOUS) == a.flags.c_contiguous
        assert bool(flags & pyentry.NPY_ARRAY_ALIGNED) == a.flags.aligned


def test_canonical_dtype_objects():
    # the fast path compares the descr pointer with np.dtype(name): NumPy's usual arrays carry it
    made = [np.arange(3.0), np.ones(3) * 2, np.array([1.0]), np.arange(3).astype(float),
            np.random.default_rng(0).random(3), np.linspace(0, 1, 3), np.frombuffer(b"\0" * 8)]
    assert all(a.dtype is np.dtype("float64") for a in made)
    assert np.arange(3).dtype is np.dtype("int64") or np.dtype(int).itemsize != 8


def test_same_signature_shares_code():
    f, g = entry(), entry()
    assert f.__self__.method.ml_meth == g.__self__.method.ml_meth
    assert f(np.ones(2), np.ones(2)).tolist() == g(np.ones(2), np.ones(2)).tolist() == [[2.0, 2.0]]
