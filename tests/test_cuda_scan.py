"""Scan in mode 'cuda': the loop runs over device buffers (scan_module/loop.py with the
device's memory), the step reads rows in place and leaves its results on the device.
Each case runs on the emulated and the real device of tests/test_cuda_mode.py, checks
that every Scan ran that way, and compares with mode 'py'."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import nvcc
from theanine.compile.cuda_program import CudaProgram
from theanine.scan_module import scan, until

from test_cuda_mode import device  # noqa: F401  (a fixture)
from test_scan_native import rnn


def on_device_and_reference(inputs, outputs, **kwargs):
    """(the function in mode 'cuda', whose scans all loop over device values; the same in
    'py')."""
    f = theanine.function(inputs, outputs, mode="cuda", **kwargs)
    scans = [n for n in f.graph.toposort() if type(n.op).__name__ == "Scan"]
    assert scans and all(f._native._where[n] == "scan" for n in scans)
    assert not [n for n in f.fallbacks if type(n.op).__name__ == "Scan"]
    return f, theanine.function(inputs, outputs, mode="py", **kwargs)


def assert_same(got, want, rtol=1e-12):
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert isinstance(g, np.ndarray) and g.shape == np.asarray(w).shape and g.dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rnn_forward_and_backward_through_time(device, rng, dtype):
    x, W, U = (T.tensor3("x", dtype=dtype), T.matrix("W", dtype=dtype), T.matrix("U", dtype=dtype))
    h0 = T.matrix("h0", dtype=dtype)
    h = rnn(x, h0, W, U)
    cost = (h ** 2).sum()
    f, ref = on_device_and_reference([x, h0, W, U], [h, cost] + theanine.grad(cost, [x, h0, W, U]))
    values = [rng.normal(size=s).astype(dtype) for s in [(6, 3, 4), (3, 5), (4, 5), (5, 5)]]
    assert_same(f(*values), ref(*values), rtol=1e-12 if dtype == "float64" else 2e-4)


def test_taps_states_stacked_rows_and_layouts(device, rng):
    y0, z0, x = T.dvector("y0"), T.dscalar("z0"), T.dmatrix("x")
    seq = x[::2, 1]                                       # a strided sequence
    (y, z, w), _ = scan(lambda xt, y3, y1, z: (0.5 * y3 - y1 + xt * z, z * 0.9 + xt, T.stack([xt, z])),
                        sequences=seq, outputs_info=[{"initial": y0, "taps": [-3, -1]}, z0, None],
                        go_backwards=True)
    cost = y.sum() + z[-1] + w.sum()
    f, ref = on_device_and_reference([x, y0, z0], [y, z, w] + theanine.grad(cost, [x, y0, z0]))
    values = [rng.normal(size=(14, 3)), rng.normal(size=3), np.float64(1.5)]
    assert_same(f(*values), ref(*values))


def test_nested_loops_no_steps_and_empty_rows(device, rng):
    m, n = T.dmatrix("m"), T.lscalar("n")

    def row_cumsum(row):
        return scan(lambda v, acc: acc + v * row[0], sequences=row, outputs_info=T.constant(0.0))[0]
    out, _ = scan(row_cumsum, sequences=m)
    f, ref = on_device_and_reference([m], [out, theanine.grad(out.sum(), m)])
    a = rng.normal(size=(3, 4))
    assert_same(f(a), ref(a))
    doubled, _ = scan(lambda v: v * 2, sequences=m, n_steps=n)
    f, ref = on_device_and_reference([m, n], doubled)
    for steps in (2, 0):                                   # no step: an empty stack of rows
        assert_same(f(a, steps), ref(a, steps))
    with pytest.raises(ValueError, match="fewer than the 5 steps"):
        f(a, 5)


def test_a_while_loop_stops_after_the_step_whose_condition_holds(device, rng):
    xs, h0 = T.dmatrix("xs"), T.dvector("h0")

    def step(xt, h, acc):
        h = 0.5 * h + xt
        return [h, acc + h.sum()], until(T.abs(h).sum() > 3.0)
    (hs, accs), _ = scan(step, sequences=xs, outputs_info=[h0, T.constant(0.0)])
    f, ref = on_device_and_reference([xs, h0], [hs, accs, hs.shape[0]])
    for scale in (0.1, 2.0):   # never stops; stops early
        data = scale * rng.uniform(0.5, 1.5, size=(6, 3))
        got = f(data, np.zeros(3))
        assert_same(got, ref(data, np.zeros(3)))
        assert (got[2] == 6) == (scale == 0.1)


def test_updates_and_random_draws_inside_the_step(device):
    from theanine.tensor import random
    x, W = T.dvector("x"), T.dscalar("W")
    total = theanine.shared(0.0, name="total")
    out, updates = scan(lambda xt: (xt * W * random.RandomStreams(7).normal(()), {total: total + xt}),
                        sequences=x)
    f = theanine.function([x, W], [out, theanine.grad(out.sum(), W)], updates=updates, mode="cuda")
    assert not [n for n in f.fallbacks if type(n.op).__name__ == "Scan"]
    first, g = f(np.ones(4), 2.0)
    second, _ = f(np.ones(4), 2.0)
    draw = theanine.function([], random.RandomStreams(7).normal(()), mode="py")
    np.testing.assert_allclose(np.concatenate([first, second]), 2.0 * np.array([draw() for _ in range(8)]))
    assert g == pytest.approx(first.sum() / 2.0)
    assert total.get_value() == 8.0


def test_a_scan_left_in_another_mode_runs_on_the_host(device, rng):
    x = T.dvector("x")
    out, _ = scan(lambda v, acc: acc + v, sequences=x, outputs_info=T.constant(0.0), mode="py")
    f = theanine.function([x], out, mode="cuda")
    assert [type(n.op).__name__ for n in f.fallbacks if type(n.op).__name__ == "Scan"] == ["Scan"]
    a = rng.normal(size=5)
    np.testing.assert_allclose(f(a), np.cumsum(a))


@pytest.mark.parametrize("mode", ["cuda", "llvm"])
def test_kernels_and_source_show_the_steps_modules(device, mode):
    x, h0, W, U = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W"), T.dmatrix("U")
    h = rnn(x, h0, W, U)
    f = theanine.function([x, h0, W, U], [h] + theanine.grad(h.sum(), [W]), mode=mode)
    cuda_kernels = f.kernels if mode == "cuda" else CudaProgram(f.graph, compile=False).kernels
    in_loops = [k for k in cuda_kernels if k.loop]
    assert in_loops and all("Scan" in k.loop and "in the loop of Scan" in str(k) for k in in_loops)
    assert any("tanh" in " ".join(k.ops) for k in in_loops)
    text = f.source("cuda")
    assert text.count("a module of its own ----") == 2         # the forward and the backward step
    assert all(f'extern "C" int {k.name}(' in text for k in cuda_kernels)


@pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")
def test_the_modules_of_a_function_and_its_steps_compile_with_nvcc():
    x, h0, W, U = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("W"), T.fmatrix("U")
    h = rnn(x, h0, W, U)
    f = theanine.function([x, h0, W, U], theanine.grad((h ** 2).sum(), [W, U]), mode="llvm")
    prog = CudaProgram(f.graph, compile=False)
    assert len(prog.loop_programs) == 2
    for module in [prog.module] + [p.module for p in prog.loop_programs]:
        assert nvcc.compile_check(module, arch="sm_80", output="cubin")[:4] == b"\x7fELF"
