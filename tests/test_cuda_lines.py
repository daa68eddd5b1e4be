"""Line kernels in mode 'cuda' (codegen/cuda.py ``LineKernel``): cumulative sums and
products, argmax and argmin, stable argsorts, one thread per line, on the emulated and
the real device of tests/test_cuda_mode.py, against mode 'py'."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import cuda, nvcc
from theanine.tensor.random import RandomStreams

from test_cuda_mode import device  # noqa: F401  (a fixture)


def _same(f, ref, *values):
    for g, w in zip(f(*values), ref(*values)):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def _on_device(f, names=("CumOp", "ArgReduce")):
    assert not [n for n in f.fallbacks if type(n.op).__name__ in names]


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "uint8", "bool", "int64"])
def test_cumulative_and_arg_reductions_along_every_axis(device, rng, dtype):
    x = T.tensor3("x", dtype=dtype)
    outs = []
    for axis in (None, 0, 1, -1):
        outs += [T.cumsum(x, axis=axis), T.cumprod(x, axis=axis), T.argmax(x, axis=axis),
                 T.argmin(x, axis=axis)]
    f = theanine.function([x], outs, mode="cuda")
    ref = theanine.function([x], outs, mode="py")
    _on_device(f)
    if dtype in ("float64", "float32"):
        data = rng.uniform(0.5, 1.5, (4, 5, 6)).astype(dtype)
        data[1, 2, 3] = data[2, 0, 1] = np.nan               # the first NaN wins
        data[3, 4, :] = data[3, 4, 0]                        # ties: the first position
    else:
        data = rng.integers(0, 3 if dtype != "bool" else 2, (4, 5, 6)).astype(dtype)
    for value in (data, data[:, ::-2].transpose(2, 0, 1), data[:1, :1]):   # strided; size-1 dimensions
        _same(f, ref, value)


def test_empty_lines_and_their_errors(device):
    x = T.dmatrix("x")
    f = theanine.function([x], [T.cumsum(x, axis=1), T.cumprod(x, axis=0), T.cumsum(x)], mode="cuda")
    ref = theanine.function([x], [T.cumsum(x, axis=1), T.cumprod(x, axis=0), T.cumsum(x)], mode="py")
    for shape in ((3, 0), (0, 4)):
        _same(f, ref, np.zeros(shape))
    g = theanine.function([x], T.argmax(x, axis=1), mode="cuda")
    _on_device(g)
    np.testing.assert_array_equal(g(np.zeros((0, 3))), np.zeros(0, "int64"))
    with pytest.raises(ValueError, match="attempt to get argmax of an empty sequence"):
        g(np.zeros((3, 0)))


def test_gradient_of_a_cumulative_sum(device, rng):
    x = T.dmatrix("x")
    cost = T.sum(T.cumsum(T.exp(x), axis=0) ** 2)
    outs = [cost, theanine.grad(cost, x)]
    f = theanine.function([x], outs, mode="cuda")
    ref = theanine.function([x], outs, mode="py")
    _on_device(f)
    value = rng.normal(size=(5, 3))
    for g, w in zip(f(value), ref(value)):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_multinomial_draws_accumulate_on_the_device(device):
    p = T.dmatrix("p")
    draws = RandomStreams(11).multinomial(pvals=T.nnet.softmax(p))
    f = theanine.function([p], draws, mode="cuda")
    ref = theanine.function([p], RandomStreams(11).multinomial(pvals=T.nnet.softmax(p)), mode="py")
    _on_device(f, ("CumOp",))
    value = np.linspace(-1, 1, 12).reshape(3, 4)
    for _ in range(2):                                     # the same numbers, call after call
        np.testing.assert_array_equal(f(value), ref(value))


@pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")
def test_line_kernels_compile_for_every_dtype():
    kernels = []
    for src in cuda.CUDA_TYPES:
        acc = "float64" if src == "float64" else "float32" if src == "float32" else \
            "uint64" if src.startswith("u") else "int64"
        for kind, dst in (("cumsum", acc), ("cumprod", acc), ("argmax", "int64"), ("argmin", "int64"),
                          ("argsort", "int64")):
            kernels.append((cuda.LineKernel(f"line_{kind}_{src}", 3, src, dst, kind), None))
    ptx = nvcc.compile_check(cuda.render_module(kernels), arch="sm_80", output="ptx").decode()
    assert all(f"{k.name}_kernel" in ptx for k, _ in kernels)
    with pytest.raises(ValueError, match="unknown line kernel kind"):
        cuda.render_line(cuda.LineKernel("bad", 1, "float32", "float32", "cummax"))


@pytest.mark.parametrize("dtype", ["float64", "float32", "int16", "uint32", "bool"])
def test_sorts_are_stable_with_nan_last(device, rng, dtype):
    x = T.tensor3("x", dtype=dtype)
    outs = [T.argsort(x), T.sort(x, axis=0), T.argsort(x, axis=None), T.sort(x, axis=1)]
    f = theanine.function([x], outs, mode="cuda")
    ref = theanine.function([x], outs, mode="py")
    _on_device(f, ("ArgSort",))
    if dtype.startswith("float"):
        data = rng.integers(-3, 3, (3, 4, 7)).astype(dtype)      # many ties
        data[0, 1, ::3] = np.nan
        data[1, 2, :3] = [-0.0, 0.0, -0.0]
    else:
        data = rng.integers(0, 2 if dtype == "bool" else 9, (3, 4, 7)).astype(dtype)
    for value in (data, data.transpose(1, 2, 0)[:, ::-2], data[:, :0], data[:1, :1, :1]):
        _same(f, ref, value)


def test_permutations_and_draws_without_replacement_on_the_device(device):
    srng, ref_srng = RandomStreams(5), RandomStreams(5)
    outs = [srng.permutation(9), srng.choice(size=(4,), a=10, replace=False)]
    ref_outs = [ref_srng.permutation(9), ref_srng.choice(size=(4,), a=10, replace=False)]
    f = theanine.function([], outs, mode="cuda")
    ref = theanine.function([], ref_outs, mode="py")
    _on_device(f, ("ArgSort", "CumOp"))
    for _ in range(2):
        _same(f, ref)
