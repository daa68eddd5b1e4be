"""The LLVM back end: fusion into kernels, inspection, parallel kernels, differential checks."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.compile import native


def test_llvm_is_the_default_mode():
    assert theanine.config.mode == "llvm"
    x = T.dvector("x")
    f = theanine.function([x], T.exp(x) + 1)
    assert f.mode == "llvm" and len(f.kernels) == 1
    assert theanine.function([x], x * 2, mode="FAST_RUN").mode == "llvm"


def test_elementwise_chain_is_one_kernel():
    x, y, z = T.dvectors("x", "y", "z")
    f = theanine.function([x, y, z], T.exp(-x * x) * y + 0.5 * z)
    (kernel,) = f.kernels
    assert kernel.ops == ("neg", "mul", "exp", "mul", "mul", "add")
    assert f.fallbacks == []
    assert any(r.rewrite == "fuse_elementwise" for r in f.rewrite_log)
    a, b, c = (np.linspace(-2, 2, 7) + k for k in range(3))
    np.testing.assert_allclose(f(a, b, c), np.exp(-a * a) * b + 0.5 * c, rtol=1e-15)


def test_shared_intermediate_is_not_fused_away():
    x = T.dvector("x")
    e = T.exp(x)
    f = theanine.function([x], [e * 2, e + 1])
    a = np.array([0.0, 1.0])
    out = f(a)
    np.testing.assert_allclose(out[0], 2 * np.exp(a))
    np.testing.assert_allclose(out[1], np.exp(a) + 1)
    assert len(f.kernels) == 3  # exp computed once, used by two kernels


def test_reduction_fuses_with_its_producer():
    x, w = T.dmatrix("x"), T.dvector("w")
    f = theanine.function([x, w], T.sum(T.tanh(x) * w, axis=1))
    (kernel,) = f.kernels
    assert kernel.ops[-1] == "sum[1]" and "tanh" in kernel.ops
    a, b = np.random.default_rng(0).normal(size=(5, 4)), np.arange(4.0)
    np.testing.assert_allclose(f(a, b), (np.tanh(a) * b).sum(axis=1), rtol=1e-13)


def test_fallbacks_name_the_nodes_without_a_native_lowering():
    x = T.dmatrix("x")
    f = theanine.function([x], T.dot(x, x.T))
    assert f.entry is not None and f.why_no_entry is None and f.fallbacks == []
    from theanine.graph.basic import Apply, Op

    class ReversedInPython(Op):  # a user's op with a NumPy perform and no lowering
        __props__ = ()

        def make_node(self, x):
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            output_storage[0][0] = inputs[0][::-1].copy()

    v = T.dvector("v")
    g = theanine.function([v], ReversedInPython()(T.exp(v)) * 2)
    # the entry calls back into Python for that node; exp and * 2 stay native
    assert g.entry is not None and [type(n.op).__name__ for n in g.fallbacks] == ["ReversedInPython"]
    got = g.entry(np.arange(4.0))
    np.testing.assert_allclose(got, 2 * np.exp(np.arange(4.0))[::-1])
    assert len(g.kernels) == 2


def test_a_lazy_node_keeps_the_function_off_the_entry():
    from theanine.ifelse import ifelse
    x = T.dvector("x")
    f = theanine.function([x], ifelse(T.gt(x.sum(), 0), T.exp(x), -x))
    assert f.entry is None and "lazily" in f.why_no_entry
    np.testing.assert_allclose(f(np.ones(3)), np.full(3, np.e))
    np.testing.assert_allclose(f(-np.ones(3)), np.ones(3))


def test_source_inspection():
    x = T.fvector("x")
    f = theanine.function([x], T.sqrt(x * x + 1))
    text = f.source("llvm")
    assert f.kernels[0].name in text and "define void" in text
    optimized = f.source("llvm", optimized=True)
    assert " x float>" in optimized  # the dense inner loop vectorised
    assert f.kernels[0].name in f.source("asm")
    with pytest.raises(ValueError, match="unknown target"):
        f.source("fortran")
    reference = theanine.function([x], T.sqrt(x * x + 1), mode="py")
    assert "define void" in reference.source("llvm")  # any mode can render the kernels


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_large_kernels_split_across_cores_give_exact_results(dtype):
    n = native.PARALLEL_MIN_ELEMENTS * 3 + 17
    x, y = T.vector("x", dtype=dtype), T.vector("y", dtype=dtype)
    f = theanine.function([x, y], [x * y + x, T.sum(x * y), T.max(x)])
    rng = np.random.default_rng(1)
    a = rng.integers(-50, 50, n).astype(dtype)
    b = rng.integers(-50, 50, n).astype(dtype)
    prod, total, top = f(a, b)
    np.testing.assert_array_equal(prod, a * b + a)
    assert total == (a * b).sum() and top == a.max()


def test_large_strided_matrix_reduction_over_rows():
    m = T.dmatrix("m")
    f = theanine.function([m], [T.sum(m * 2, axis=0), T.sum(m, axis=1)])
    a = np.random.default_rng(2).normal(size=(1500, 400))[:, ::2]  # non-contiguous
    s0, s1 = f(a)
    np.testing.assert_allclose(s0, (a * 2).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s1, a.sum(axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_random_expressions_agree_with_the_reference(seed):
    """Differential test: random elementwise/reduction graphs, llvm against py."""
    rng = np.random.default_rng(seed)
    x, y = T.dmatrix("x"), T.drow("y")
    leaves = [x, y, x * 0.5, T.constant(1.5)]
    unary = [T.exp, T.tanh, T.sigmoid, T.abs, T.sqr, lambda v: T.log1p(T.abs(v)), T.neg, T.floor]
    binary = [T.add, T.sub, T.mul, T.maximum, T.minimum, lambda a, b: a / (T.abs(b) + 1)]
    pool = list(leaves)
    for _ in range(8):
        if rng.random() < 0.4:
            pool.append(unary[rng.integers(len(unary))](pool[rng.integers(len(pool))]))
        else:
            a, b = (pool[rng.integers(len(pool))] for _ in range(2))
            pool.append(binary[rng.integers(len(binary))](a, b))
    out = pool[-1] + x
    outputs = [out, T.sum(out, axis=int(rng.integers(2))), T.max(out)]
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(1, 4))
    fast = theanine.function([x, y], outputs, mode="llvm", on_unused_input="ignore")(a, b)
    ref = theanine.function([x, y], outputs, mode="py", on_unused_input="ignore")(a, b)
    for got, want in zip(fast, ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_runtime_broadcast_mismatch_names_the_op():
    x, y = T.dvectors("x", "y")
    f = theanine.function([x, y], x + y)
    with pytest.raises(ValueError, match=r"add.*\(2,\).*\(3,\)"):
        f(np.ones(2), np.ones(3))


def test_max_of_empty_dimension_raises():
    x = T.dmatrix("x")
    f = theanine.function([x], T.max(x, axis=0))
    with pytest.raises(ValueError, match="empty"):
        f(np.zeros((0, 3)))


def test_kernels_inside_larger_functions_use_the_native_entry():
    """Each elementwise kernel is called through its CPython entry for small arrays,
    and through the strided, splitting path otherwise: both give the same numbers.
    (A lazy ifelse keeps the function off the whole-function entry.)"""
    from theanine.ifelse import ifelse
    x = T.dmatrix("x")
    e = T.exp(x)
    f = theanine.function([x], [e * 2, T.dot(e, e.T), ifelse(T.gt(x.size, 0), x, x[::-1])])
    assert f.entry is None
    thunks = [t for t in f._native.thunks.values() if isinstance(t, native.ElementwiseThunk)]
    small = np.random.default_rng(3).normal(size=(3, 4))
    big = np.random.default_rng(4).normal(size=(600, 600))[:, ::2]  # non-contiguous, split
    for a in (small, big):
        out = f(a)
        assert thunks and all(t.entry is not None for t in thunks)  # built on first use
        np.testing.assert_allclose(out[0], 2 * np.exp(a), rtol=1e-14)
        np.testing.assert_allclose(out[1], np.exp(a) @ np.exp(a).T, rtol=1e-12)
