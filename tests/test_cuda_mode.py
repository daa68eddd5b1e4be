"""mode="cuda": device arrays, the runtime binding and CudaProgram, against mode="py".

Every comparison runs on two devices (the ``device`` fixture):

- ``emulated``: no GPU needed. The function's CUDA module is built for the CPU (the
  kernels with a shim and launchers of the same signatures, see test_cuda_source.py),
  device memory is host memory, and cuBLAS is either absent (the generated matrix
  product runs) or a NumPy stand-in that checks the column-major arguments cuBLAS
  would get. Everything above the CUDA runtime runs as it does on a GPU.
- ``gpu``: the real thing; skipped unless ``theanine.cuda.is_available()``.

Host-side logic (layouts, plans, the allocator, residency) is also tested directly.
"""

import collections
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import cuda
from theanine.codegen import cudart, nvcc
from theanine.compile import cuda_entry, cuda_program
from theanine.compile.cuda_program import (CudaProgram, Residency, as_matrix, blas_layout,
                                           coalesce, elementwise_plan, mirror_of, remember_mirror,
                                           reshape_shape)
from theanine.cuda import DeviceArray, Pool, byte_extent, round_size

needs_nvcc = pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")
NO_GPU = "no CUDA GPU: theanine.cuda.is_available() is False"


# --- availability and the runtime binding ---------------------------------------------------

def test_is_available_agrees_with_nvidia_smi():
    smi = shutil.which("nvidia-smi")
    listed = False
    if smi:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
        listed = proc.returncode == 0 and "GPU" in proc.stdout
    assert cuda.is_available() is listed


def test_is_available_is_false_without_the_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("THEANINE_CUDART", str(tmp_path / "libcudart.so.missing"))
    monkeypatch.setattr(cudart, "_runtime", None)
    assert cuda.is_available() is False
    assert cudart.device_count() == 0
    with pytest.raises(cudart.CudaError, match="the CUDA runtime is not available"):
        cudart.malloc(16)


# --- device arrays and the allocator (no device memory touched) ---------------------------------

class FakeMemory:
    """Host memory standing in for device memory (filled with 0xFF bytes, so that what a
    kernel fails to write shows), with copies counted by kind."""

    def __init__(self):
        self.buffers, self.copies = {}, collections.Counter()

    def malloc(self, nbytes):
        buf = np.full(nbytes, 0xFF, dtype=np.uint8)
        self.buffers[buf.ctypes.data] = buf
        return buf.ctypes.data

    def free(self, ptr):
        del self.buffers[ptr]

    def memcpy(self, dst, src, nbytes, kind):
        if nbytes:
            ctypes.memmove(dst, src, nbytes)
            self.copies[kind] += 1

    def memset(self, ptr, value, nbytes):
        ctypes.memset(ptr, value, nbytes)


def test_pool_rounds_reuses_and_retries_after_releasing_its_cache():
    assert [round_size(n) for n in (1, 512, 513, (1 << 20) - 1, (1 << 20) + 1)] == \
        [512, 512, 1024, 1 << 20, 2 << 20]
    memory, fail = FakeMemory(), []

    def malloc(nbytes):
        if fail:
            fail.pop()
            raise cudart.CudaError("out of memory", cudart.ERROR_MEMORY_ALLOCATION)
        return memory.malloc(nbytes)

    pool = Pool(malloc, memory.free)
    a = pool.allocate(100)
    ptr = a.ptr
    del a
    assert pool.cached_bytes == 512
    b = pool.allocate(300)                  # same size class: the same memory
    assert b.ptr == ptr and pool.cached_bytes == 0
    c = pool.allocate(2000)
    del c
    fail.append(True)                       # the next malloc fails once
    d = pool.allocate(5000)
    assert pool.cached_bytes == 0 and len(memory.buffers) == 2   # c's memory was freed
    fail.append(True)
    with pytest.raises(cudart.CudaError, match="out of memory"):
        pool.allocate(9000)                 # nothing cached to release: the error stands
    del b
    assert pool.cached_bytes == 512
    pool.close()
    del d
    assert pool.cached_bytes == 512         # closed: nothing more is taken back


def test_device_array_metadata_and_views():
    x = DeviceArray((2, 3, 4), "float32", ptr=0x1000)
    assert x.strides == (48, 16, 4) and x.size == 24 and x.nbytes == 96 and x.is_c_contiguous()
    t = x.view((4, 3, 2), (4, 16, 48))
    assert t.ptr == 0x1000 and not t.is_c_contiguous() and t.base is x.base
    row = x.view((4,), (4,), offset=16)
    assert row.ptr == 0x1010 and row.is_c_contiguous()
    assert DeviceArray((3, 1), "int8", (1, 99), ptr=1).is_c_contiguous()  # size-1 strides are free
    assert byte_extent((2, 3), (12, 4), 4) == (0, 24)
    assert byte_extent((2, 3), (-12, 4), 4) == (-12, 12)
    assert byte_extent((2, 0), (12, 4), 4) == (0, 0)
    assert byte_extent((5,), (0,), 8) == (0, 8)
    with pytest.raises(ValueError, match="strides given without a pointer"):
        DeviceArray((2,), "float32", (4,))


def test_blas_layouts():
    assert blas_layout(3, 4, 4, 1) == ("row", 4)
    assert blas_layout(3, 4, 10, 1) == ("row", 10)      # a slice of wider rows
    assert blas_layout(3, 4, 1, 3) == ("col", 3)        # a transposed matrix
    assert blas_layout(1, 4, 0, 1) == ("row", 4)        # a vector as a row
    assert blas_layout(4, 1, 1, 0) == ("row", 1)        # a column vector, ld 1
    assert blas_layout(4, 1, 3, 0) == ("row", 3)        # a strided column
    assert blas_layout(1, 4, 0, 2) == ("col", 2)        # a strided row
    assert blas_layout(3, 4, 2, 1) is None              # rows overlap
    assert blas_layout(3, 4, 8, 2) is None              # neither dimension is unit-stride
    assert blas_layout(3, 4, 0, 1) is None              # broadcast rows
    assert blas_layout(3, 4, -4, 1) is None
    x = DeviceArray((3, 4), "float64", (8, 24), ptr=8)
    assert as_matrix(x, True) == (3, 4, 1, 3)
    v = DeviceArray((5,), "float32", (8,), ptr=8)
    assert as_matrix(v, True) == (1, 5, 0, 2) and as_matrix(v, False) == (5, 1, 2, 0)
    assert as_matrix(DeviceArray((5,), "float32", (6,), ptr=8), True) is None


def test_elementwise_plans_coalesce_and_broadcast():
    out = ((4, 5, 6), (120, 24, 4))
    bias, column = ((6,), (4,)), ((4, 5, 1), (20, 4, 4))
    plan = elementwise_plan((4, 5, 6), 3, [out, out])
    assert plan.dims.tolist() == [1, 1, 120] and plan.strides.tolist() == [[0, 0, 4], [0, 0, 4]]
    assert plan.dims_ptr == plan.dims.ctypes.data and plan.strides.flags.c_contiguous
    plan = elementwise_plan((4, 5, 6), 3, [bias, column, out])
    assert plan.dims.tolist() == [1, 20, 6]
    assert plan.strides.tolist() == [[0, 0, 4], [0, 4, 0], [0, 24, 4]]
    plan = elementwise_plan((), 1, [((), ())] * 2)
    assert plan.dims.tolist() == [1] and plan.strides.tolist() == [[0], [0]]
    assert coalesce([2, 3], [[12, 4], [0, 0]]) == ([6], [[4], [0]])
    assert coalesce([2, 3], [[4, 8]]) == ([2, 3], [[4, 8]])


def test_reshape_shapes():
    assert reshape_shape(12, [3, -1]) == (3, 4)
    assert reshape_shape(0, [0, 5]) == (0, 5)
    assert reshape_shape(1, []) == ()
    for bad in ([5, -1], [-1, -1], [3, 5], [0, -1], [-2, 6]):
        with pytest.raises(ValueError):
            reshape_shape(12, bad)


def test_mirrors_and_calls(monkeypatch):
    memory = FakeMemory()
    monkeypatch.setattr(cuda, "pool", Pool(memory.malloc, memory.free))
    monkeypatch.setattr(cudart, "memcpy", memory.memcpy)
    monkeypatch.setattr(cuda_program, "_mirrors", {})
    host = np.arange(6.0)
    dev = cuda.to_device(host)
    assert memory.copies[cudart.HOST_TO_DEVICE] == 1
    res = Residency()
    res.enter(0)
    assert res.device(host) is res.device(host)                 # copied once per call
    assert memory.copies[cudart.HOST_TO_DEVICE] == 2
    res.enter(3)
    res.device(host)
    assert memory.copies[cudart.HOST_TO_DEVICE] == 2
    res.enter(0)                                                # a new call: copied again
    res.device(host)
    assert memory.copies[cudart.HOST_TO_DEVICE] == 3
    out = res.output(dev)                                       # a graph output
    assert not out.flags.writeable and mirror_of(out) is dev and out.tolist() == host.tolist()
    res.enter(0)
    assert res.device(out) is dev                               # no copy for a mirror
    assert memory.copies[cudart.HOST_TO_DEVICE] == 3
    out.flags.writeable = True                                  # no longer trusted
    assert mirror_of(out) is None
    out.flags.writeable = False
    del out
    res.enter(0)                        # the last call's copies go: the array is freed...
    assert cuda_program._mirrors == {}  # ...and its mirror forgotten
    writable = np.ones(3)
    remember_mirror(writable, dev)
    assert mirror_of(writable) is None


# --- CudaProgram: placement and the compiled module -----------------------------------------

def _mlp_train(mode, sizes=(12, 8, 8, 4), lr=0.1, dtype="float32", seed=0):
    """A ReLU MLP with a log-softmax cross-entropy cost: (train(X, y) -> loss, params)."""
    rng = np.random.default_rng(seed)
    params = []
    for k, n in zip(sizes[:-1], sizes[1:]):
        params.append(theanine.shared((rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)))
        params.append(theanine.shared(np.full(n, 0.1, dtype=dtype)))
    X, y = T.matrix("X", dtype=dtype), T.ivector("y")
    h = X
    for w, b in zip(params[:-2:2], params[1:-2:2]):
        h = T.nnet.relu(T.dot(h, w) + b)
    logits = T.dot(h, params[-2]) + params[-1]
    logp = logits - T.logsumexp(logits, axis=1, keepdims=True)
    cost = -T.mean(logp[T.arange(X.shape[0]), y])
    grads = theanine.grad(cost, params)
    updates = [(p, p - np.asarray(lr, dtype=dtype) * g) for p, g in zip(params, grads)]
    return theanine.function([X, y], cost, updates=updates, mode=mode), params


def test_placement_of_an_mlp_training_step():
    train, _ = _mlp_train("llvm")        # the graph a native mode fuses
    prog = CudaProgram(train.graph, compile=False)
    where = collections.Counter(prog._where.values())
    ops = {type(n.op).__name__ for n in prog.fallbacks}
    dots = sum(type(n.op).__name__ == "Dot" for n in train.graph.toposort())
    assert where["kernel"] == len(prog.kernels) > 10 and where["dot"] == dots >= 6
    assert "Dot" not in ops and "DimShuffle" not in ops and "SumTo" not in ops
    # the labels' log-probabilities are gathered, and their gradient scattered, on the device
    assert where["gather"] == 1 and where["incsubtensor"] == 1
    assert ops == {"ARange", "Shape"}
    assert "indexed gather of float32" in prog.source and "indexed inc of float32" in prog.source
    transposes = [n for n in prog._where if type(n.op).__name__ == "DimShuffle" and n.op.new_order == (1, 0)]
    assert transposes and all(prog._where[n] == "device view" for n in transposes)
    assert prog.target == "cuda" and prog.entry is None and prog.thunks == {}
    text = prog.source
    assert text.count("C = A @ B in float32") == 1 and "__KERNEL" not in text
    assert all(f'extern "C" int {k.name}(' in text for k in prog.kernels)


@needs_nvcc
def test_program_compiles_for_every_dtype_and_reduction_kind():
    xs = {d: T.tensor3(f"x_{d}", dtype=d) for d in ("float32", "float64", "int32")}
    outs = []
    for d, x in xs.items():
        outs += [T.sum(x, axis=1), T.prod(x, axis=(0, 2)), T.max(x), T.min(x, axis=0),
                 T.all(x, axis=2), T.any(x), x * 2 + x.dimshuffle(0, 2, 1)]
    w = T.fmatrix("w")
    outs.append(T.dot(xs["float32"][0], w))
    graph = theanine.function(list(xs.values()) + [w], outs, mode="llvm").graph
    prog = CudaProgram(graph)
    kinds = {k.ops[-1].split("[")[0] for k in prog.kernels if "[" in k.ops[-1]}
    assert kinds >= {"sum", "prod", "max", "min", "all", "any"}
    assert set(prog.thunks) == set(graph.toposort())
    assert not [n for n in prog.fallbacks if type(n.op).__name__ in ("Dot", "DimShuffle")]


# --- mode="cuda" against mode="py", on the emulated and the real device -----------------------

def _fake_cublas_gemm(dtype, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
    """cuBLAS's column-major GEMM on host memory, refusing what cuBLAS refuses."""
    item = np.dtype(dtype).itemsize

    def operand(ptr, trans, rows, cols, ld):
        stored = (rows, cols) if trans == cudart.OP_N else (cols, rows)
        if ld < max(1, stored[0]) or max(m, n, k, ld) > cudart.CUBLAS_MAX:
            raise cudart.CudaError(f"invalid leading dimension {ld} for {stored}", 7)
        size = item * (ld * (stored[1] - 1) + stored[0])
        buf = (ctypes.c_char * size).from_address(ptr)
        mat = np.ndarray(stored, dtype, buffer=buf, strides=(item, ld * item))
        return mat if trans == cudart.OP_N else mat.T

    A, B = operand(a, trans_a, m, k, lda), operand(b, trans_b, k, n, ldb)
    operand(c, cudart.OP_N, m, n, ldc)[...] = A @ B


class Device:
    """What a test runs on: ``kind`` ('emulated' or 'gpu'), ``entry`` (whether functions get
    their whole-function entry, or run node by node) and the copies made, by kind."""

    def __init__(self, kind, copies, entry):
        self.kind, self.copies, self.entry = kind, copies, entry


@pytest.fixture(params=["emulated", "emulated-nodes", "gpu", "gpu-nodes"])
def device(request, monkeypatch):
    """Each device, with functions run through their entry or node by node."""
    monkeypatch.setattr(cuda_program, "_mirrors", {})
    kind, _, nodes = request.param.partition("-")
    if nodes:
        monkeypatch.setattr(cuda_entry, "render_entry", lambda *args: (None, "the test runs node by node"))
    if kind == "gpu":
        if not cuda.is_available():
            pytest.skip(NO_GPU)
        copies, real = collections.Counter(), cudart.memcpy

        def counted(dst, src, nbytes, kind):
            copies[kind] += 1
            real(dst, src, nbytes, kind)
        monkeypatch.setattr(cudart, "memcpy", counted)
        return Device("gpu", copies, not nodes)
    from test_cuda_source import emulated_library
    memory = FakeMemory()
    monkeypatch.setattr(cuda, "pool", Pool(memory.malloc, memory.free))
    monkeypatch.setattr(cudart, "memcpy", memory.memcpy)
    monkeypatch.setattr(cudart, "memset", memory.memset)
    monkeypatch.setattr(cudart, "cublas_available", lambda: False)
    monkeypatch.setattr(cudart, "gemm", _fake_cublas_gemm)
    monkeypatch.setattr(nvcc, "load_library", lambda source, arch=None, cache=None: emulated_library(source))
    return Device("emulated", memory.copies, not nodes)


@pytest.fixture(params=["cublas", "kernel"])
def gemm(request, device, monkeypatch):
    """Dot through cuBLAS (on the emulated device: the checking stand-in) or the generated kernel."""
    if request.param == "cublas":
        if device.kind == "emulated":
            monkeypatch.setattr(cudart, "cublas_available", lambda: True)
        elif not cudart.cublas_available():
            pytest.skip(f"cuBLAS is not available: {cudart.cublas_unavailable_reason()}")
    else:
        monkeypatch.setattr(cudart, "cublas_available", lambda: False)
    return request.param


def _close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind == "f":
        rtol = 2e-5 if want.dtype == np.float32 else 1e-11
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(got, want)


def _compare(inputs, outputs, *values, **kwargs):
    """mode='cuda' and mode='py' agree on ``values``; the cuda function."""
    f = theanine.function(inputs, outputs, mode="cuda", **kwargs)
    ref = theanine.function(inputs, outputs, mode="py", **kwargs)
    got, want = f(*values), ref(*values)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert isinstance(g, np.ndarray) and g.flags.writeable
        _close(g, w)
    return f


def test_elementwise_broadcasting_strides_and_empty_dims(device, rng):
    x, y, z = T.fmatrix("x"), T.fvector("y"), T.fmatrix("z")
    outs = [T.exp(-x * x) * y + 0.5 * z, T.maximum(x, y) - T.tanh(z), T.cast(x > y, "int8")]
    f = theanine.function([x, y, z], outs, mode="cuda")
    ref = theanine.function([x, y, z], outs, mode="py")
    data = rng.standard_normal((9, 14)).astype("float32")
    cases = [
        (data[:4, :5], data[0, :5], data[4:8, 5:6]),                 # column broadcast, slices
        (data.T[:5, :4], data[1, ::3][:4], data[:5, :4][::-1]),       # transposed, strided, reversed
        (data[:0, :5], data[0, :5], data[:1, :5]),                    # an empty dimension
        (data[:1, :1], data[0, :1], data[:1, :1]),                    # all size 1
        (data[:3, :7], data[0, :1], data[:1, :7]),                    # size-1 against size 7
    ]
    for args in cases:
        for g, w in zip(f(*args), ref(*args)):
            _close(g, w)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        f(data[:3, :4], data[0, :5], data[:3, :4])


def test_integer_and_boolean_elementwise(device, rng):
    a, b = T.ivector("a"), T.lvector("b")
    outs = [a // b, a % b, (a * 3 + b) ** 2, T.eq(a, b) | (a > 0), T.cast(a, "float64") / 4]
    a_val = rng.integers(-50, 50, 40).astype("int32")
    b_val = rng.integers(-7, 7, 40).astype("int64")
    _compare([a, b], outs, a_val, b_val)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_every_reduction_kind_over_several_axes(device, rng, dtype):
    x = T.tensor3("x", dtype=dtype)
    outs = []
    for fn in (T.sum, T.prod, T.max, T.min, T.all, T.any):
        for axis in (None, 0, 1, 2, (0, 2), (1, 2)):
            outs.append(fn(x, axis=axis))
    outs.append(T.sum(x * 2 + 1, axis=1))   # fused with its producer
    f = theanine.function([x], outs, mode="cuda")
    ref = theanine.function([x], outs, mode="py")
    if dtype == "int32":
        values = [rng.integers(-3, 4, (3, 5, 4)).astype(dtype), rng.integers(0, 2, (2, 70, 3)).astype(dtype)]
    else:
        values = [rng.uniform(0.5, 1.5, (3, 5, 4)).astype(dtype),
                  rng.uniform(0.9, 1.1, (2, 700, 3)).astype(dtype)]   # long reductions: split
    values.append(values[0][:, ::2].transpose(2, 1, 0))               # strided input
    for v in values:
        for g, w in zip(f(v), ref(v)):
            if dtype == "float32":
                np.testing.assert_allclose(g, w, rtol=1e-4)
                assert g.dtype == w.dtype and g.shape == w.shape
            else:
                _close(g, w)
    empty = np.zeros((2, 0, 3), dtype=dtype)   # sums and products of nothing: the identity
    total, product = _compare([x], [T.sum(x, axis=1), T.prod(x, axis=1)], empty)(empty)
    assert total.tolist() == [[0] * 3] * 2 and product.tolist() == [[1] * 3] * 2
    m = theanine.function([x], T.max(x, axis=1), mode="cuda")
    with pytest.raises(ValueError, match="empty dimension"):
        m(empty)


def test_large_full_reduction(device, rng):
    x = T.dvector("x")
    values = rng.standard_normal(300_000)
    f = _compare([x], [T.sum(x), T.max(x), T.min(abs(x))], values)
    assert len(f.kernels) == 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot(device, gemm, rng, dtype):
    A, B, v, u = T.matrix("A", dtype=dtype), T.matrix("B", dtype=dtype), \
        T.vector("v", dtype=dtype), T.vector("u", dtype=dtype)
    outs = [T.dot(A, B), T.dot(A.T, A), T.dot(B, B.T), T.dot(A, v), T.dot(v, B), T.dot(u, v),
            T.dot(A[:, ::2], B[::2])]
    f = theanine.function([A, B, v, u], outs, mode="cuda")
    ref = theanine.function([A, B, v, u], outs, mode="py")
    assert not [n for n in f.fallbacks if type(n.op).__name__ == "Dot"]
    a = rng.standard_normal((6, 8)).astype(dtype)
    b = rng.standard_normal((8, 5)).astype(dtype)
    cases = [(a, b, rng.standard_normal(8).astype(dtype), rng.standard_normal(8).astype(dtype)),
             (np.asfortranarray(a), b[::-1][::-1], a[0], b[:, 0].copy()),     # column-major, strided
             (a[:0], b, a[0], a[1]),                                           # m = 0
             (a[:, :0], b[:0], a[0, :0], a[1, :0])]                            # k = 0
    for args in cases:
        for g, w in zip(f(*args), ref(*args)):
            rtol = 1e-4 if dtype == "float32" else 1e-11
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
            assert g.shape == w.shape and g.dtype == w.dtype
    with pytest.raises(ValueError, match="not aligned"):
        f(a, a, a[0], a[0])


def test_views_alloc_and_sum_to(device, rng):
    x, b = T.dmatrix("x"), T.dmatrix("b")    # b is broadcast against x at run time
    y = (x.T * 3).reshape((-1,))             # reshape of a non-contiguous value
    z = T.zeros_like(x) + T.alloc(T.sum(x), 2, x.shape[1])[:1]
    cost = T.sum(T.tanh(x * b))
    gb = theanine.grad(cost, b)              # SumTo over the axes where b has size 1
    outs = [y, x.dimshuffle(1, "x", 0), z, gb, x.T]
    f = theanine.function([x, b], outs, mode="cuda")
    ref = theanine.function([x, b], outs, mode="py")
    xv = rng.standard_normal((3, 4))
    for b_shape in ((1, 4), (3, 1), (3, 4), (1, 1)):
        bv = rng.standard_normal(b_shape)
        for g, w in zip(f(xv, bv), ref(xv, bv)):
            _close(g, w)
    kinds = {type(n.op).__name__ for n in f.fallbacks}
    assert not kinds & {"DimShuffle", "Reshape", "SumTo"}


def test_mlp_training_step_with_updates(device, rng):
    train, params = _mlp_train("cuda")
    ref, ref_params = _mlp_train("py")
    X = rng.standard_normal((10, 12)).astype("float32")
    y = rng.integers(0, 4, 10).astype("int32")
    for step in range(3):
        loss, want = train(X, y), ref(X, y)
        np.testing.assert_allclose(loss, want, rtol=1e-5)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-4, atol=1e-6)
    assert not [n for n in train.fallbacks if type(n.op).__name__ in ("Dot", "SumTo", "DimShuffle")]


def test_shared_values_stay_on_the_device(device, rng):
    x = T.dvector("x")
    w = theanine.shared(rng.standard_normal(50), name="w")
    step = theanine.function([x], T.sum(w * x), updates=[(w, w * 0.5 + x)], mode="cuda")
    xv = rng.standard_normal(50)
    w0 = w.get_value()
    step(xv)
    before = device.copies[cudart.HOST_TO_DEVICE]
    got = step(xv)                              # w comes back as the array made last call
    assert device.copies[cudart.HOST_TO_DEVICE] == before + 1   # x only
    w1 = w0 * 0.5 + xv
    np.testing.assert_allclose(got, np.sum(w1 * xv))
    np.testing.assert_allclose(w.get_value(), w1 * 0.5 + xv)
    w.set_value(np.ones(50))                    # a new value is copied in
    np.testing.assert_allclose(step(xv), np.sum(xv))
    w2 = 0.5 + xv
    xv[:] = 2.0                                 # changed in place between calls: copied again
    np.testing.assert_allclose(step(xv), np.sum(w2 * 2.0))


def test_device_array_arguments_are_used_where_they_are(device, rng):
    x, y = T.dmatrix("x"), T.dvector("y")
    f = theanine.function([x, y], T.exp(x) + y, mode="cuda")
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    on_device = cuda.to_device(a)
    before = dict(device.copies)
    got = f(on_device, b)
    copied = {k: device.copies[k] - before.get(k, 0) for k in (cudart.HOST_TO_DEVICE, cudart.DEVICE_TO_HOST)}
    assert copied == {cudart.HOST_TO_DEVICE: 1, cudart.DEVICE_TO_HOST: 1}   # y in, the result out
    np.testing.assert_allclose(got, np.exp(a) + b)
    with pytest.raises(TypeError, match=r"input 0 \(x\): expected a device array of dtype float64, got float32"):
        f(cuda.to_device(a.astype("float32")), b)
    with pytest.raises(TypeError, match=r"input 1 \(y\): expected 1 dimensions"):
        f(on_device, cuda.to_device(a))
