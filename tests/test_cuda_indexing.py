"""Indexing, joins and the lowered convolution and pooling on the device (mode 'cuda').

``place`` (compile/cuda_indexing.py: where x[index] lies in x's memory) is checked against
NumPy on the host; the device runs (views, gather and scatter kernels, joins) on the
emulated and the real device of tests/test_cuda_mode.py, against mode 'py'.
"""

import collections

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import cuda, nvcc
from theanine.compile.cuda_indexing import last_writes, layout_rank, place
from theanine.tensor.signal.pool import pool_2d
from theanine.tensor.subtensor import _parse_index

from test_cuda_mode import _close
from test_cuda_mode import device  # noqa: F401  (a fixture)


# --- place, against NumPy ---------------------------------------------------------------------

def _read(x, placement):
    """The elements ``placement`` names, read from ``x``'s memory by byte offsets."""
    base = x
    while base.base is not None and isinstance(base.base, np.ndarray):
        base = base.base
    start = x.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    flat = base.reshape(-1).view(np.uint8)
    out = np.empty(placement.layout_shape, x.dtype)
    for idx in np.ndindex(*placement.layout_shape):
        off = start + placement.offset + sum(i * s for i, s in zip(idx, placement.strides))
        if placement.axis is not None:
            off += int(placement.table[idx[placement.axis]])
        out[idx] = flat[off:off + x.itemsize].view(x.dtype)[0]
    return out.reshape(placement.shape)


def _symbolic(x, index):
    """(idx_list, index values, index ranks) of ``x[index]``, as Subtensor sees them."""
    xv = T.tensor(dtype=str(x.dtype), shape=(None,) * x.ndim)
    idx_list, inputs = _parse_index(xv, index)
    return idx_list, [i.data for i in inputs], [i.ndim for i in inputs]


_BUFFER = np.arange(4 * 5 * 6 * 3, dtype=np.float64)
_ARRAYS = {
    "contiguous": _BUFFER.reshape(4, 5, 6, 3),
    "transposed": _BUFFER.reshape(3, 6, 5, 4).transpose(3, 2, 1, 0),
    "strided": _BUFFER.reshape(4, 5, 6, 3)[:, :, ::-2],
}
_INDICES = [
    (slice(1, 3), 2), (Ellipsis, 1), (None, slice(None, None, -2), 0), (-1, -5),
    (np.array([0, 2, -1]),), (slice(None), np.array([1, 0])),
    (slice(None), np.array([1, 0]), np.array([[0], [2]])),        # adjacent arrays, broadcast
    (np.array([1, 0]), slice(None), np.array([2, 2])),              # separated: arrays first
    (0, slice(None), np.array([1, 2])),                            # an integer counts as an array
    (np.array([0, 1]), None, np.array([1, 1, 0])[:2]),              # a new axis separates
    (np.array([[True, False, True, False, True]] * 4),),            # a 2-d mask
    (slice(None), np.array([True, False, True, True, False]), 1),
    (2, Ellipsis, np.array([], dtype=np.int64)),                    # an empty result
    (slice(5, 1), np.array([0])),
    (np.array([3], dtype=np.uint8), slice(1, None, 3), 1, np.array([0, 1, 2])),
    (np.array([[1, 1], [0, 3]]), np.array([4, -5])),                # repeated positions
]


@pytest.mark.parametrize("layout", sorted(_ARRAYS))
@pytest.mark.parametrize("index", range(len(_INDICES)))
def test_place_names_the_elements_numpy_indexing_gives(layout, index):
    x, ix = _ARRAYS[layout], _INDICES[index]
    want = x[ix]
    idx_list, values, ranks = _symbolic(x, ix)
    p = place(x.shape, x.strides, idx_list, values)
    got = _read(x, p)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert len(p.dims) == layout_rank(idx_list, x.ndim, ranks)
    assert (p.table is None) == (not any(isinstance(i, np.ndarray) for i in ix))


@pytest.mark.parametrize("index, error", [
    ((4,), "index 4 is out of bounds for axis 0 with size 4"),
    ((slice(None), -6), "index -6 is out of bounds for axis 1 with size 5"),
    ((np.array([0, 7]),), "index 7 is out of bounds for axis 0 with size 4"),
    ((np.array([2 ** 63 + 1], dtype=np.uint64),), "out of bounds for axis 0 with size 4"),
    ((np.array([0, 1]), np.array([0, 1, 2])), "could not be broadcast together"),
    ((np.array([True, False]),), "boolean index did not match indexed array along axis 0"),
])
def test_place_refuses_what_numpy_refuses(index, error):
    x = _ARRAYS["contiguous"]
    with pytest.raises(IndexError, match=error):
        x[index]
    idx_list, values, _ = _symbolic(x, index)
    with pytest.raises(IndexError, match=error):
        place(x.shape, x.strides, idx_list, values)


def test_last_writes_keeps_the_last_occurrence_of_each_offset():
    assert last_writes(np.array([8, 0, 16])) is None
    assert last_writes(np.array([8, 0, 8, 16, 0, 8])).tolist() == [3, 4, 5]


# --- the device, against mode 'py' ------------------------------------------------------------

def _compare(inputs, outputs, *values):
    f = theanine.function(inputs, outputs, mode="cuda")
    ref = theanine.function(inputs, outputs, mode="py")
    got, want = f(*values), ref(*values)
    for g, w in zip(got, want):
        _close(g, w)
    return f


def _fallback_ops(f):
    return {type(n.op).__name__ for n in f.fallbacks}


def test_slices_and_gathers_of_device_values(device, rng):
    x, i, m = T.ftensor3("x"), T.lvector("i"), T.bmatrix("m")
    y = T.exp(x)                      # on the device: its indexing runs there too
    outs = [y[1:, ::-2, 1], y[:, i], y[i, :, i[:1]], y[-1][T.cast(m, "bool")], y[i][:, 1:, 0],
            y[0, -1, -2]]
    f = theanine.function([x, i, m], outs, mode="cuda")
    ref = theanine.function([x, i, m], outs, mode="py")
    data = rng.standard_normal((6, 7, 5)).astype("float32")
    for xv in (data[:3, :4], data[::2, 1:5].transpose(0, 1, 2)[:, :, ::-1][:3]):
        iv = np.array([2, 0, -1, 2])
        mv = (rng.random((xv.shape[1], xv.shape[2])) > 0.5).astype("int8")
        for g, w in zip(f(xv, iv, mv), ref(xv, iv, mv)):
            _close(g, w)
    where = collections.Counter(f._native._where[n] for n in f.graph.toposort()
                                if type(n.op).__name__ == "Subtensor" and n.inputs[0].dtype == "float32")
    assert where["gather"] >= 3 and where["subtensor view"] >= 1 and "host" not in where
    with pytest.raises(IndexError, match="index 9 is out of bounds for axis 0"):
        f(data[:3, :4], np.array([9]), np.zeros((4, 5), "int8"))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_increments_and_sets_through_repeated_indices(device, rng, dtype):
    x, y, i = T.matrix("x", dtype=dtype), T.matrix("y", dtype=dtype), T.lvector("i")
    z = x + x                          # made on the device
    outs = [T.inc_subtensor(z[i], y), T.set_subtensor(z[i], y), T.inc_subtensor(z[1:, i[1::2]], y[0, :3]),
            T.set_subtensor(z[::2, -1], y[0, 0]), T.inc_subtensor(z[0], 1),
            T.set_subtensor(z[:, 0], T.cast(y[:5, 0] > 0, "int8"))]
    xv = rng.integers(-9, 9, (5, 3)).astype(dtype)
    yv = rng.integers(-9, 9, (6, 3)).astype(dtype)
    iv = np.array([4, 0, 4, 1, 4, -1])        # 4 and -1 are the same row, four times
    f = _compare([x, y, i], outs, xv, yv, iv)
    assert not _fallback_ops(f) & {"IncSubtensor", "Subtensor"}
    # 'set' writes each row's last value, as NumPy does
    want = (2 * xv)
    want[iv] = yv
    np.testing.assert_array_equal(f(xv, yv, iv)[1], want)
    with pytest.raises(ValueError, match=r"could not broadcast a value of shape \(6, 3\)"):
        f(xv, yv, iv[:4])


def test_join_converts_and_places_each_part(device, rng):
    a, b, c = T.fmatrix("a"), T.dmatrix("b"), T.imatrix("c")
    outs = [T.concatenate([a * 2, b, T.cast(c, "float64")], axis=1), T.concatenate([a, a[:0], a], axis=0),
            T.concatenate([c + 1, c], axis=0)]
    av = rng.standard_normal((3, 4)).astype("float32")
    bv = rng.standard_normal((3, 2))
    cv = rng.integers(-5, 5, (3, 1)).astype("int32")
    f = _compare([a, b, c], outs, av, bv, cv)
    assert "Join" not in _fallback_ops(f)
    with pytest.raises(ValueError, match="join along axis 1"):
        f(av, bv[:2], cv)


def test_gradients_of_indexing_on_the_device(device, rng):
    x, i = T.dmatrix("x"), T.lvector("i")
    cost = T.sum(T.exp(x)[i] ** 2) + T.sum(T.tanh(x[1:, ::2]))
    g = theanine.grad(cost, x)
    xv, iv = rng.standard_normal((4, 5)), np.array([3, 1, 3, 0])
    f = _compare([x, i], [cost, g], xv, iv)
    assert not _fallback_ops(f) & {"IncSubtensor", "Subtensor"}


# --- convolution and pooling run on the device -------------------------------------------------

_CONV_CASES = [
    dict(border_mode="valid"), dict(border_mode="full"), dict(border_mode="half", subsample=(2, 1)),
    dict(border_mode=(1, 2), filter_dilation=(2, 1)), dict(border_mode="valid", filter_flip=False),
    dict(border_mode="valid", num_groups=2),
]


@pytest.mark.parametrize("case", range(len(_CONV_CASES)))
def test_conv2d_and_its_gradients_run_on_the_device(device, rng, case):
    kwargs = _CONV_CASES[case]
    groups = kwargs.get("num_groups", 1)
    xs, ws = (2, 4, 7, 6), (4, 4 // groups, 3, 2)
    x, w = T.dtensor4("x"), T.dtensor4("w")
    y = T.nnet.conv2d(x, w, input_shape=xs, filter_shape=ws, **kwargs)
    cost = T.sum(y * y)
    outs = [y, *theanine.grad(cost, [x, w])]
    xv, wv = rng.standard_normal(xs), rng.standard_normal(ws)
    f = _compare([x, w], outs, xv, wv[:, :, ::-1].copy())
    ops = _fallback_ops(f)
    assert not ops & {"Conv2d", "Conv2dGradInputs", "Conv2dGradWeights", "Subtensor", "IncSubtensor", "Join"}


@pytest.mark.parametrize("mode", ["max", "sum", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("ws, stride, pad", [((2, 2), None, (0, 0)), ((3, 2), (2, 1), (1, 1))])
def test_pooling_and_its_gradient_run_on_the_device(device, rng, mode, ws, stride, pad):
    x = T.ftensor4("x")
    y = pool_2d(x, ws, ignore_border=True, stride=stride, pad=pad, mode=mode)
    outs = [y, theanine.grad(T.sum(y * T.arange(y.shape[-1], dtype="float32")), x)]
    xv = rng.standard_normal((2, 3, 6, 8)).astype("float32")
    f = _compare([x], outs, xv)
    assert not _fallback_ops(f) & {"Pool", "MaxPoolGrad", "AveragePoolGrad", "IncSubtensor"}


# --- the indexed kernels and the CNN step's module compile with nvcc ---------------------------

needs_nvcc = pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")


@needs_nvcc
def test_indexed_kernels_compile_for_every_dtype_and_mode():
    kernels = [(cuda.IndexedKernel(f"ix_{mode}_{dtype}_{rank}", rank, dtype, mode), None)
               for dtype in cuda.CUDA_TYPES for mode in ("gather", "set", "inc")
               for rank in (1, 3) if mode != "inc" or dtype in cuda.ATOMIC_ADD]
    ptx = nvcc.compile_check(cuda.render_module(kernels), arch="sm_80", output="ptx").decode()
    for kernel, _ in kernels:
        assert f"{kernel.name}_kernel" in ptx
    assert ptx.count("atom.global.add") >= sum(k.mode == "inc" for k, _ in kernels)
    with pytest.raises(ValueError, match="no atomic addition for int8"):
        cuda.render_indexed(cuda.IndexedKernel("bad", 1, "int8", "inc"))


@needs_nvcc
def test_a_cnn_training_step_is_all_device_kernels_that_compile():
    x, labels = T.ftensor4("x"), T.ivector("labels")
    rng = np.random.default_rng(0)
    w1 = theanine.shared(rng.standard_normal((4, 1, 3, 3)).astype("float32"))
    w2 = theanine.shared(rng.standard_normal((16, 3)).astype("float32"))
    h = pool_2d(T.nnet.relu(T.nnet.conv2d(x, w1, filter_shape=(4, 1, 3, 3))), (2, 2), ignore_border=True)
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(h.flatten(2), w2)), labels))
    train = theanine.function([x, labels], cost, mode="llvm",
                              updates=[(p, p - 0.1 * g) for p, g in zip([w1, w2], theanine.grad(cost, [w1, w2]))])
    from theanine.compile.cuda_program import CudaProgram
    prog = CudaProgram(train.graph, compile=False)
    assert {type(n.op).__name__ for n in prog.fallbacks} <= {"Shape", "MakeVector", "ARange", "SpecifyShape"}
    assert nvcc.compile_check(prog.source, arch="sm_80", output="cubin")[:4] == b"\x7fELF"


# --- conditions read on the host, values left where they are -----------------------------------

def test_ifelse_reads_a_device_condition_and_runs_only_its_branch(device, rng):
    from theanine.ifelse import ifelse
    c, x, i = T.dscalar("c"), T.dmatrix("x"), T.lscalar("i")
    out = ifelse(T.exp(c) > 1.0, T.tanh(x) * 2, x[i] - 1.0 + x)   # the condition is computed on the device
    outs = [out, theanine.grad(T.sum(out ** 2), x)]
    xv = rng.standard_normal((3, 4))
    for cv in (-1.0, 1.0):
        f = _compare([c, x, i], outs, cv, xv, 2)
    assert f._native._where[[n for n in f.graph.toposort() if type(n.op).__name__ == "IfElse"][0]] == "condition"
    lazy = theanine.function([c, x, i], out, mode="cuda")
    np.testing.assert_allclose(lazy(1.0, xv, 99), np.tanh(xv) * 2)   # x[99] is never evaluated
    with pytest.raises(IndexError, match="index 99 is out of bounds"):
        lazy(-1.0, xv, 99)


def test_a_small_conv_net_trains_on_the_device(device):
    rng = np.random.default_rng(3)
    x, labels = T.ftensor4("x"), T.ivector("labels")
    w1 = theanine.shared((rng.standard_normal((4, 1, 3, 3)) * 0.5).astype("float32"))
    b1 = theanine.shared(np.zeros(4, "float32"))
    w2 = theanine.shared((rng.standard_normal((36, 3)) * 0.1).astype("float32"))
    h = pool_2d(T.nnet.relu(T.nnet.conv2d(x, w1, filter_shape=(4, 1, 3, 3), border_mode="half")
                            + b1.dimshuffle("x", 0, "x", "x")), (2, 2), ignore_border=True)
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(h.flatten(2), w2)), labels))
    params = [w1, b1, w2]
    train = theanine.function([x, labels], cost, mode="cuda",
                              updates=[(p, p - 0.5 * g) for p, g in zip(params, theanine.grad(cost, params))])
    assert not {type(n.op).__name__ for n in train.fallbacks} - {"Shape", "MakeVector", "ARange", "SpecifyShape"}
    images = rng.standard_normal((12, 1, 6, 6)).astype("float32")
    targets = (images[:, 0, :3].sum(axis=(1, 2)) > 0).astype("int32") + (images[:, 0, 3:].mean() > 0)
    losses = [float(train(images, targets)) for _ in range(10)]
    assert losses[-1] < 0.7 * losses[0] and all(np.isfinite(losses))


def test_views_are_worked_out_once_per_layout(device, rng, monkeypatch):
    from theanine.compile import cuda_program
    if device.entry:
        pytest.skip("the node-by-node path's views: the entry works out its views in C")
    calls = []
    real = cuda_program.place
    monkeypatch.setattr(cuda_program, "place", lambda *a: calls.append(a[2]) or real(*a))
    x, i = T.dmatrix("x"), T.lscalar("i")
    y = T.exp(x)
    f = theanine.function([x, i], [y[1:, i], T.inc_subtensor(y[:, ::2], 1.0), y[[0, 2]]], mode="cuda")
    a = rng.standard_normal((4, 5))
    for _ in range(3):
        f(a, 2)
    assert len(calls) == 2 + 3        # the two views once; the gather at every call (its table)
    f(a, 3)                           # another index value
    f(a[:3], 3)                       # another layout
    assert len(calls) == 5 + 2 + 3
    np.testing.assert_allclose(f(a, -1)[0], np.exp(a)[1:, -1])
