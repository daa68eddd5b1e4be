"""Mode 'cuda''s whole-function entry (codegen/cuda_entry.py, compile/cuda_entry.py): the
schedule runs as one native call over device buffers. Each case runs on the emulated and
the real device of tests/test_cuda_mode.py (with the entry: the ``-nodes`` variants of
that fixture are skipped here), checks that the calls ran in the entry, and compares with
mode 'py'."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import cuda
from theanine.codegen import cudart, nvcc

from test_cuda_mode import _mlp_train, device, needs_nvcc  # noqa: F401  (device is a fixture)
from test_scan_native import rnn


@pytest.fixture
def on(device):  # noqa: F811
    if not device.entry:
        pytest.skip("these tests are of the entry; the -nodes variant runs without one")
    return device


def _functions(inputs, outputs, **kwargs):
    """(the function in mode 'cuda', which must have an entry; the same in mode 'py')."""
    f = theanine.function(inputs, outputs, mode="cuda", **kwargs)
    assert f.entry is not None, f.why_no_entry
    return f, theanine.function(inputs, outputs, mode="py", **kwargs)


def _same(got, want, rtol=1e-12):
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        w = np.asarray(w)
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype, (g, w)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
        else:
            np.testing.assert_array_equal(g, w)


def test_mlp_training_step_runs_as_one_call(on, rng):
    train, params = _mlp_train("cuda")
    ref, ref_params = _mlp_train("py")
    assert train.entry is not None, train.why_no_entry
    X = rng.standard_normal((10, 12)).astype("float32")
    y = rng.integers(0, 4, 10).astype("int32")
    for step in range(3):
        before = dict(on.copies)
        np.testing.assert_allclose(train(X, y), ref(X, y), rtol=1e-5)
        copied = {k: on.copies[k] - before.get(k, 0) for k in (cudart.HOST_TO_DEVICE, cudart.DEVICE_TO_HOST)}
        # in: X, y, the gather's and the scatter's offset tables (worked out from the labels
        # the host has) and two scalars computed from sizes on the host (the parameters at
        # the first call only); out: the loss and the six parameters
        assert copied == {cudart.HOST_TO_DEVICE: 6 + (6 if step == 0 else 0), cudart.DEVICE_TO_HOST: 7}
    assert (train.entry.completed, train.entry.handed_over) == (3, 0)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-4, atol=1e-6)


def test_size_arithmetic_runs_on_the_host_and_data_on_the_device(on, rng):
    x, i = T.dmatrix("x"), T.lscalar("i")
    n = x.shape[0] * 2 + x.shape[1]
    outputs = [n, T.arange(x.shape[1]) * x.sum(), x.reshape((x.shape[1], -1)), x[i], x[1:, ::-2].T * i,
               T.zeros_like(x) + x.shape[0], (x + np.arange(3.0)).max(axis=0)]
    f, ref = _functions([x, i], outputs)
    for a, k in [(rng.standard_normal((4, 3)), 2), (rng.standard_normal((1, 3)), -1)]:
        _same(f(a, k), ref(a, k))
    assert f.entry.completed == 2
    assert "T.arange" not in f.source("cuda") and "the whole function as one call" in f.source("cuda")


def test_awkward_layouts_and_sizes(on, rng):
    x, y = T.dmatrix("x"), T.dvector("y")
    f, ref = _functions([x, y], [T.exp(x) * y, (x * y).sum(axis=1), T.dot(x, y), x.T + 1])
    a = rng.standard_normal((5, 4))
    for args in [(a, a[0]), (a.T.copy().T, a[1, ::-1]), (a[:, :1].repeat(4, axis=1), a[0, ::1]),
                 (np.zeros((0, 4)), np.ones(4)), (a[:1], np.ones(4))]:
        _same(f(*args), ref(*args))
    transposed = cuda.to_device(a.T.copy())
    view = transposed.view((5, 4), transposed.strides[::-1])      # a non-contiguous device array
    _same(f(view, a[1]), ref(a, a[1]))
    assert f.entry.completed == 6 and f.entry.handed_over == 0


def test_bad_shapes_take_the_node_by_node_path_and_raise(on, rng):
    x, y = T.dvector("x"), T.dvector("y")
    f, _ = _functions([x, y], x + y)
    with pytest.raises(ValueError, match=r"add: shapes \(3,\), \(4,\) cannot be broadcast together"):
        f(np.ones(3), np.ones(4))
    assert (f.entry.completed, f.entry.handed_over) == (0, 1)
    _same(f(np.ones(3), np.ones(3)), np.full(3, 2.0))
    g, _ = _functions([x], x[3])
    with pytest.raises(IndexError):
        g(np.ones(3))
    assert (g.entry.completed, g.entry.handed_over) == (0, 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_recurrent_network_loops_in_the_entry(on, rng, dtype):
    x, W, U = (T.tensor3("x", dtype=dtype), T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype))
    h0 = T.matrix("h0", dtype=dtype)
    h = rnn(x, h0, W, U)
    cost = (h ** 2).sum()
    f, ref = _functions([x, h0, W, U], [h, cost] + theanine.grad(cost, [x, h0, W, U]))
    assert ". Loop:" in f.entry.source
    values = [rng.normal(size=s).astype(dtype) for s in [(6, 3, 4), (3, 5), (4, 5), (5, 5)]]
    _same(f(*values), ref(*values), rtol=1e-12 if dtype == "float64" else 2e-4)
    assert (f.entry.completed, f.entry.handed_over) == (1, 0)


def test_graphs_with_host_only_steps_on_device_data_run_node_by_node(on, rng):
    x = T.dmatrix("x")
    f = theanine.function([x], T.nonzero(x > 0), mode="cuda")
    assert f.entry is None and "NonZero runs on the host" in f.why_no_entry
    a = rng.standard_normal((3, 4))
    _same(f(a), list(np.nonzero(a > 0)))


def test_lines_sorts_and_arg_reductions_on_the_device(on, rng):
    x = T.dmatrix("x")
    outputs = [T.argmax(x, axis=1), T.argmin(x, axis=0), T.argmax(x), T.cumsum(x, axis=0), T.cumprod(x),
               T.argsort(x), T.sort(x.T, axis=1)]
    f, ref = _functions([x], outputs)
    a = rng.standard_normal((4, 5))
    a[1, 2] = np.nan
    for value in (a, a[:, ::-2], np.ones((2, 3)), np.zeros((1, 0))[:, :0] + np.zeros((3, 0))):
        if value.size == 0:
            with pytest.raises(ValueError):
                f(value)
            continue
        _same(f(value), ref(value))
    assert f.entry.completed == 3 and f.entry.handed_over >= 1


def test_every_function_renders_its_cuda_entry(rng):
    x, i = T.dmatrix("x"), T.lscalar("i")
    f = theanine.function([x, i], [T.exp(x[i]).sum(), x.shape[0] * 2], mode="llvm")
    text = f.source("cuda")
    assert "the whole function as one call" in text and "__ENTRY__" not in text and "__KERNEL" not in text
    assert "int theanine_" in text and "_cuda_entry(void *const *table" in text


@needs_nvcc
def test_the_entry_module_of_a_training_step_compiles_with_nvcc():
    train, _ = _mlp_train("llvm")
    text = train.source("cuda")
    module = text[text.index("/* ---- the CUDA module it launches ---- */"):]
    assert "indexed gather of float32" in module and "indexed inc of float32" in module
    nvcc.compile_check(module, "sm_80")


def test_gathers_and_scatters_through_offset_tables(on, rng):
    x, y, i = T.dmatrix("x"), T.dvector("y"), T.lvector("i")
    outputs = [x[i], x[:, i], T.set_subtensor(x[i], y), T.inc_subtensor(x[i, 1:], y[1:]),
               T.inc_subtensor(x[:, i], 2.0)]
    f, ref = _functions([x, y, i], outputs)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal(4)
    _same(f(a, b, np.array([2, -1, 0])), ref(a, b, np.array([2, -1, 0])))
    before = on.copies[cudart.DEVICE_TO_HOST]
    _same(f(a, b, cuda.to_device(np.array([2, -1, 0]))), ref(a, b, np.array([2, -1, 0])))
    assert on.copies[cudart.DEVICE_TO_HOST] == before + 5 + 1   # the outputs, and the indices read back
    assert (f.entry.completed, f.entry.handed_over) == (2, 0)
    # a set through a repeated index keeps the last value, as NumPy does: node by node
    _same(f(a, b, np.array([1, 1, 3, -3])), ref(a, b, np.array([1, 1, 3, -3])))
    assert (f.entry.completed, f.entry.handed_over) == (2, 1)
    with pytest.raises(IndexError):
        f(a, b, np.array([0, 4]))
    _same(f(a, b, np.zeros(0, "int64")), ref(a, b, np.zeros(0, "int64")))
    assert f.entry.completed == 3


def test_python_numbers_are_converted_and_the_call_retried(on):
    x, w = T.dvector("x"), T.dscalar("w")
    f, ref = _functions([x, w], x * w)
    _same(f([1.0, 2.0], 3), ref([1.0, 2.0], 3))
    assert (f.entry.completed, f.entry.handed_over) == (1, 0)
    g, _ = _functions([x], x + x[:2])
    with pytest.raises(ValueError):
        g(np.ones(3))
    assert g.entry.why_handed_over == "shape"


def test_the_node_by_node_path_is_built_only_for_a_call_handed_over(on, monkeypatch):
    from theanine.compile.cuda_program import CudaProgram
    built, real = [], CudaProgram._build_thunks
    monkeypatch.setattr(CudaProgram, "_build_thunks", lambda self, *a: built.append(1) or real(self, *a))
    x = T.dvector("x")
    f, _ = _functions([x], T.exp(x) + x[::2].sum())
    _same(f(np.ones(4)), np.exp(np.ones(4)) + 2.0)
    assert built == []
    _same(f(np.ones(0)), np.zeros(0))
    assert built == [] and f.entry.completed == 2
    g, _ = _functions([x], x + x[:2])
    with pytest.raises(ValueError):
        g(np.ones(3))
    assert built == [1] and g.entry.why_handed_over == "shape"
