"""CUDA C++ source generation (codegen/cuda.py) and its nvcc compile check (codegen/nvcc.py).

Rendering is checked everywhere; compiling needs nvcc (skipped without it). Nothing runs
on a GPU (the device runtime is not built yet, see tests/gpu/README.md), but the generated
kernels are run on the CPU through a shim and compared with the LLVM back end (needs a
host C++ compiler).
"""

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import cuda, jit, llvm, lower, nvcc
from theanine.codegen.ir import SCALAR_OPCODES, ElementwiseKernel, Instr, ReduceKernel, ScalarProgram
from theanine.compile import native

DTYPES = list(llvm.LLVM_TYPES)
_BOOL_RESULT = {"lt", "le", "gt", "ge", "eq", "ne", "isnan", "isinf", "land", "lor", "lxor", "lnot"}
REDUCE_KINDS = ("sum", "prod", "max", "min", "all", "any")


def _opcode_kernels():
    """One elementwise kernel per (opcode, compute dtype[, cast target]) llvm.py supports."""
    kernels = []
    for op, spec in SCALAR_OPCODES.items():
        for c in DTYPES:
            results = DTYPES if op == "cast" else ["bool"] if op in _BOOL_RESULT else [c]
            for dtype in results:
                instr = Instr(op, tuple(range(spec.arity)), dtype, c)
                if not llvm.supports_instr(instr):
                    continue
                prog = ScalarProgram((c,) * spec.arity, (), (instr,), (spec.arity,))
                name = f"cu_{op}_{c}" + (f"_{dtype}" if op == "cast" else "")
                kernels.append((ElementwiseKernel(name, 1 + len(kernels) % 3, prog), [False] * spec.arity))
    return kernels


def _constants_kernel():
    """Literals that need care: inf, nan, -0.0, the integer extremes."""
    consts = ((math.inf, "float64"), (-math.inf, "float32"), (math.nan, "float64"), (-0.0, "float32"),
              (0.1, "float32"), (-2.5, "float64"), (-(1 << 63), "int64"), ((1 << 64) - 1, "uint64"),
              (-128, "int8"), (True, "bool"))
    instrs = [Instr("bxor" if d == "bool" else "add", (1 + k, 1 + k), d, d)
              for k, (_, d) in enumerate(consts)]
    instrs.append(Instr("mul", (0, 1), "float64", "float64"))
    first = 1 + len(consts)
    prog = ScalarProgram(("float64",), consts, tuple(instrs), tuple(range(first, first + len(instrs))))
    return ElementwiseKernel("cu_constants", 2, prog), [False]


def _reduce_kernels():
    """Every reduction kind into every dtype it supports, over varied axes, plus a fused one."""
    axes_cycle = [(3, (1,)), (3, (0, 2)), (2, (0, 1)), (0, ()), (4, (3,)), (1, (0,)), (2, (1,))]
    kernels = []
    for kind in REDUCE_KINDS:
        for out in DTYPES:
            if not llvm.supports_reduce(kind, out):
                continue
            ndim, axes = axes_cycle[len(kernels) % len(axes_cycle)]
            kernels.append((ReduceKernel(f"cu_reduce_{kind}_{out}", ndim, axes, kind,
                                         lower.identity_program(out), out), [False]))
    fused = ScalarProgram(("float32", "int16"), (), (
        Instr("cast", (1,), "float32", "int16"),
        Instr("mul", (0, 2), "float32", "float32"),
        Instr("tanh", (3,), "float32", "float32"),
    ), (4,))
    kernels.append((ReduceKernel("cu_reduce_fused_tanh", 2, (1,), "sum", fused, "float64"), [False, True]))
    return kernels


def _mlp():
    """A small MLP's forward pass and gradient: fused elementwise kernels and reductions."""
    x, w1, b1, w2, y = T.fmatrix("x"), T.fmatrix("w1"), T.fvector("b1"), T.fmatrix("w2"), T.fmatrix("y")
    h = T.tanh(T.dot(x, w1) + b1)
    out = T.nnet.sigmoid(T.dot(h, w2))
    loss = T.mean((out - y) ** 2) + 1e-3 * T.sum(abs(w1)) + T.max(abs(b1))
    grads = theanine.grad(loss, [w1, b1, w2])
    return theanine.function([x, w1, b1, w2, y], [loss, *grads])


@pytest.fixture(scope="module")
def everything():
    """(kernels, source) of one module with every opcode kernel and every reduction."""
    kernels = _opcode_kernels() + [_constants_kernel()] + _reduce_kernels()
    return kernels, cuda.render_module(kernels, "theanine_module")


def test_function_source_names_every_kernel():
    x, y = T.fmatrix("x"), T.fvector("y")
    f = theanine.function([x, y], [T.exp(-x * x) + y, T.sum(T.tanh(x) * y, axis=1)])
    text = f.source("cuda")
    assert len(f.kernels) == 2
    assert text.count("__global__") == 2 and "#include <cstdint>" in text
    # kernel names carry a digest of the rendered source, so they differ per target
    same, names = native.render(native.plan_kernels(f.graph)[0], "cuda")
    assert same == text and len(names) == 2
    for name in names:
        assert f"__global__ void __launch_bounds__(256) {name}_kernel(" in text \
            or f"__global__ void __launch_bounds__(THEANINE_REDUCE_THREADS) {name}_kernel(" in text
        assert f'extern "C" void {name}(const int64_t *shape, char **data, ' \
               f"const int64_t *strides, void *stream)" in text
    assert "__KERNEL" not in text and "theanine_module" not in text
    reference = theanine.function([x, y], T.exp(-x * x) + y, mode="py")
    assert "__global__" in reference.source("cuda")  # any mode renders CUDA


def test_every_opcode_and_reduction_renders(everything):
    kernels, text = everything
    ops = {k.program.instrs[0].opcode for k, _ in kernels
           if isinstance(k, ElementwiseKernel) and k.name != "cu_constants"}
    supported = {op for op in SCALAR_OPCODES for c in DTYPES
                 if any(llvm.supports_instr(Instr(op, (), d, c)) for d in DTYPES)}
    assert ops == supported and len(ops) > 50
    kinds = {k.kind for k, _ in kernels if isinstance(k, ReduceKernel)}
    assert kinds == set(REDUCE_KINDS)
    for kernel, _ in kernels:
        assert f" {kernel.name}_kernel(const {kernel.name}_params p)" in text
        assert f'extern "C" void {kernel.name}(' in text
    assert text.count("__global__") == len(kernels)


def test_semantics_helpers_are_used():
    """Spot checks that the NumPy-exact lowerings are the ones chosen."""
    def body(op, c, dtype=None, arity=2):
        prog = ScalarProgram((c,) * arity, (), (Instr(op, tuple(range(arity)), dtype or c, c),), (arity,))
        return cuda.render_elementwise(ElementwiseKernel("k", 1, prog))
    assert "th_sfloordiv<int32_t, uint32_t>" in body("floordiv", "int32")
    assert "th_umod<uint8_t>" in body("mod", "uint8")
    assert "th_floordiv(" in body("floordiv", "float32") and "th_mod(" in body("mod", "float64")
    assert "(uint32_t)" in body("mul", "uint16")  # no promotion to a signed int
    assert "th_f2u(" in body("cast", "float32", "uint64", 1)
    assert "(int8_t)th_f2i(" in body("cast", "float64", "int8", 1)
    assert "th_max(" in body("max", "float64") and "th_imax<int64_t>" in body("max", "int64")
    assert "th_mul(" in body("mul", "float32")  # never contracted into an fma


def test_source_is_deterministic():
    def build():
        x, w = T.dmatrix("x"), T.dvector("w")
        return theanine.function([x, w], [T.sum(T.tanh(x) * w, axis=1), T.maximum(x, 0) * 2])
    a, b = build().source("cuda"), build().source("cuda")
    assert a == b
    kernels = _reduce_kernels()
    assert cuda.render_module(kernels) == cuda.render_module(kernels)


def test_oversized_parameters_are_refused():
    n = 600
    prog = ScalarProgram(("float32",) * n, (), (Instr("copy", (0,), "float32", "float32"),), (n,))
    with pytest.raises(ValueError, match="bytes of parameters"):
        cuda.render_module([(ElementwiseKernel("big", 8, prog), [False] * n)])


def test_nvcc_command_and_path(monkeypatch, tmp_path):
    monkeypatch.setenv("THEANINE_NVCC", str(tmp_path / "missing-nvcc"))
    assert not nvcc.available()
    with pytest.raises(RuntimeError, match="nvcc not found"):
        nvcc.compile_check("")
    monkeypatch.delenv("THEANINE_NVCC")
    cmd = nvcc.command("sm_90", "cubin")
    assert cmd[1:5] == ["-std=c++17", "-arch=sm_90", "-cubin", "-o"]
    with pytest.raises(ValueError, match="output"):
        nvcc.command(output="exe")


needs_nvcc = pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")


@needs_nvcc
def test_every_opcode_and_reduction_compiles(everything):
    kernels, text = everything
    ptx = nvcc.compile_check(text, arch="sm_80", output="ptx").decode()
    assert ptx.count(".entry ") == len(kernels)
    for kernel, _ in kernels:
        assert f"{kernel.name}_kernel" in ptx


@needs_nvcc
def test_mlp_kernels_compile_and_errors_are_reported():
    f = _mlp()
    text = f.source("cuda")
    assert len(f.kernels) >= 3 and text.count("__global__") == len(f.kernels)
    assert nvcc.compile_check(text, arch="sm_80", output="cubin")[:4] == b"\x7fELF"
    with pytest.raises(RuntimeError, match=r"nvcc failed[\s\S]*error"):
        nvcc.compile_check("this is not C++;\n")


# --- the generated kernels run on the CPU, against the LLVM back end ---------------------------
#
# With a small shim (CUDA's built-ins as host code, a block's threads as host threads,
# __syncthreads as a barrier) a host C++ compiler builds the very kernels nvcc compiles;
# launchers are left out (they are under __CUDACC__). One block runs each kernel:
# elementwise kernels with 7 threads (the grid-stride loop), reductions with 32 (the
# strided accumulation over up to 100 elements and the shared-memory tree). Results must
# equal the LLVM kernels' bit for bit, except where the math library or reassociation may
# differ. (CUDA's own libdevice math is not what runs here: glibc's is.)

_SHIM = r"""
#include <cstdint>
#include <cstring>
#include <cmath>
#include <pthread.h>
#define THEANINE_REDUCE_THREADS 32
#define __device__
#define __forceinline__ inline
#define __global__
#define __launch_bounds__(n)
#define __shared__ static
struct th_dim3 { unsigned x, y, z; };
static thread_local th_dim3 threadIdx = {0, 0, 0};
static th_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static pthread_barrier_t th_barrier;
static inline void __syncthreads() { pthread_barrier_wait(&th_barrier); }
#define TH_OPS(T, f) \
  static inline T __##f##add_rn(T a, T b) { return a + b; } \
  static inline T __##f##sub_rn(T a, T b) { return a - b; } \
  static inline T __##f##mul_rn(T a, T b) { return a * b; } \
  static inline T __##f##div_rn(T a, T b) { return a / b; } \
  static inline T __##f##sqrt_rn(T a) { return std::sqrt(a); }
TH_OPS(float, f)
TH_OPS(double, d)
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
using std::signbit;
struct th_job { void (*run)(const void *); const void *params; unsigned thread; };
static void *th_start(void *arg) {
  const th_job *job = (const th_job *)arg;
  threadIdx = {job->thread, 0, 0};
  job->run(job->params);
  return nullptr;
}
static void th_launch(void (*run)(const void *), const void *params, unsigned threads) {
  pthread_t ids[64];
  th_job jobs[64];
  blockDim.x = threads;
  pthread_barrier_init(&th_barrier, nullptr, threads);
  for (unsigned t = 0; t < threads; ++t) {
    jobs[t] = {run, params, t};
    pthread_create(&ids[t], nullptr, th_start, &jobs[t]);
  }
  for (unsigned t = 0; t < threads; ++t) pthread_join(ids[t], nullptr);
  pthread_barrier_destroy(&th_barrier);
}
"""


def _host_launchers(kernels):
    """``NAME_host(shape, data, strides)``: fill NAME_params and run one emulated block."""
    out = []
    for k, _ in kernels:
        nd, reduce = max(k.ndim, 1), isinstance(k, ReduceKernel)
        nbuf = len(k.program.input_dtypes) + (1 if reduce else len(k.program.outputs))
        counts = [f"p.{'n_red' if d in k.axes else 'n_out'} *= shape[{d}];" for d in range(nd)] \
            if reduce else [f"p.total *= shape[{d}];" for d in range(nd)]
        out += [f"static void {k.name}_run(const void *p) {{ {k.name}_kernel(*(const {k.name}_params *)p); }}",
                f'extern "C" void {k.name}_host(const int64_t *shape, char **data, const int64_t *strides) {{',
                f"  {k.name}_params p;",
                f"  for (int d = 0; d < {nd}; ++d) p.shape[d] = shape[d];",
                f"  for (int b = 0; b < {nbuf}; ++b) {{",
                "    p.data[b] = data[b];",
                f"    for (int d = 0; d < {nd}; ++d) p.strides[b][d] = strides[b * {nd} + d];",
                "  }",
                "  p.n_out = 1; p.n_red = 1;" if reduce else "  p.total = 1;",
                *counts,
                f"  th_launch({k.name}_run, &p, {32 if reduce else 7});",
                "}"]
    return "\n".join(out)


def _values(dtype):
    """Values that exercise every rule: signed zeros, infinities, NaN, the integer extremes,
    floats outside every integer range, exact halves."""
    if dtype == "bool":
        return np.array([False, True])
    if dtype in llvm.FLOATS:
        v = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 3.0, -7.0, 0.3, 1e-310, 1e-40, 1e20,
             -1e20, 2.0**63, -2.0**63, 2.0**64, 255.7, -129.2, 1e300, math.inf, -math.inf, math.nan]
        with np.errstate(over="ignore"):
            return np.array(v).astype(dtype)
    info = np.iinfo(dtype)
    v = [0, 1, -1, 2, -2, 3, 7, -7, 100, -100, info.max, info.min, info.max - 1, info.min + 1]
    return np.array([x % (1 << info.bits) for x in v], dtype=np.uint64).astype(dtype)


_INEXACT = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin",
            "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
            "lgamma", "pow", "atan2", "sigmoid", "softplus"}


def _elementwise_case(kernel):
    """Inputs (every combination of _values, broadcast where the rank allows) and the shape."""
    nd, dtypes = max(kernel.ndim, 1), kernel.program.input_dtypes
    vals = [_values(d) for d in dtypes]
    if nd >= len(vals):  # input j varies along dimension j only: broadcasting with stride 0
        ins = [v.reshape(tuple(len(v) if d == j else 1 for d in range(nd))) for j, v in enumerate(vals)]
    else:
        ins = [g.reshape((1,) * (nd - 1) + (-1,)) for g in np.meshgrid(*vals, indexing="ij")]
    return ins, np.broadcast_shapes(*[a.shape for a in ins])


def _reduce_case(kernel, inner_broadcast, rng):
    shape = {0: (1,), 1: (100,), 2: (3, 70), 3: (5, 7, 9), 4: (3, 4, 5, 6)}[kernel.ndim]
    ins = []
    for dtype, inner in zip(kernel.program.input_dtypes, inner_broadcast):
        if dtype in llvm.FLOATS and kernel.kind in ("sum", "prod"):
            a = rng.uniform(0.9, 1.1, shape).astype(dtype)  # no cancellation, no overflow
        else:
            v = _values(dtype)
            a = v[rng.integers(0, len(v), shape)]
        ins.append(a[..., :1] if inner else a)
    return ins, shape


def _call(address, shape, arrays):
    rows = [[0 if n == 1 else s for n, s in zip(a.shape, a.strides)] for a in arrays]
    shape = np.array(shape, dtype=np.int64)
    strides = np.array(rows, dtype=np.int64)
    data = np.array([a.ctypes.data for a in arrays], dtype=np.uintp)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(address)(
        shape.ctypes.data, data.ctypes.data, strides.ctypes.data)


def _assert_same(name, expected, got, inexact):
    if expected.dtype.kind == "f":
        assert np.array_equal(np.isnan(expected), np.isnan(got)), name
        if inexact:
            rtol = 1e-5 if inexact == "float32" else 1e-12
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)
            ok = ~np.isnan(expected)
            assert np.array_equal(np.signbit(got[ok]), np.signbit(expected[ok])), name
    else:
        np.testing.assert_array_equal(got, expected, err_msg=name)


_CXX = shutil.which("c++") or shutil.which("g++")


@pytest.mark.skipif(_CXX is None, reason="no host C++ compiler")
def test_kernels_emulated_on_the_cpu_match_the_llvm_back_end(everything, tmp_path):
    kernels, text = everything
    source, library = tmp_path / "emulated.cpp", tmp_path / "emulated.so"
    source.write_text(_SHIM + text + _host_launchers(kernels))
    cmd = [_CXX, "-std=c++17", "-O1", "-ffp-contract=off", "-w", "-shared", "-fPIC", "-pthread",
           "-o", str(library), str(source)]
    build = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reference = jit.compile_ir(llvm.render_module(kernels), [k.name for k, _ in kernels])
    _, stderr = build.communicate(timeout=300)
    assert build.returncode == 0, stderr[:4000]
    emulated = ctypes.CDLL(str(library))
    rng = np.random.default_rng(7)
    for kernel, inner in kernels:
        prog = kernel.program
        if isinstance(kernel, ElementwiseKernel):
            ins, shape = _elementwise_case(kernel)
            outs = [[np.zeros(shape, dtype=d) for d in prog.output_dtypes] for _ in range(2)]
            inexact = prog.instrs[0].compute_dtype if prog.instrs[0].opcode in _INEXACT else None
        else:
            ins, shape = _reduce_case(kernel, inner, rng)
            identity = native._identity(kernel.kind, np.dtype(kernel.out_dtype))
            kept = tuple(1 if d in kernel.axes else n for d, n in enumerate(shape))
            outs = [[np.full(kept, identity, dtype=kernel.out_dtype)] for _ in range(2)]
            dtypes = prog.input_dtypes + (kernel.out_dtype,)
            reassociated = kernel.kind in ("sum", "prod") or any(i.opcode in _INEXACT for i in prog.instrs)
            if reassociated and any(d in llvm.FLOATS for d in dtypes):
                inexact = "float32" if "float32" in dtypes else "float64"
            else:
                inexact = None
        ins = [np.ascontiguousarray(a) for a in ins]
        _call(reference[kernel.name], shape, ins + outs[0])
        _call(ctypes.cast(getattr(emulated, kernel.name + "_host"), ctypes.c_void_p).value,
              shape, ins + outs[1])
        for expected, got in zip(*outs):
            _assert_same(kernel.name, expected, got, inexact)
