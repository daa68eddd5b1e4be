"""CUDA C++ source generation (codegen/cuda.py) and nvcc (codegen/nvcc.py).

Rendering is checked everywhere; compiling and building libraries needs nvcc (skipped
without it). Nothing here needs a GPU: the generated kernels are run on the CPU through
a shim, with launchers of the same signatures as the CUDA ones, and compared with the
LLVM back end (needs a host C++ compiler). tests/test_cuda_mode.py runs whole functions
on these emulated libraries; the GPU itself is tests/gpu/'s business.
"""

import ctypes
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import cuda, jit, llvm, lower, nvcc
from theanine.codegen.ir import SCALAR_OPCODES, ElementwiseKernel, Instr, ReduceKernel, ScalarProgram
from theanine.compile import native
from theanine.compile.cuda_program import ENTRY_MARKER

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
    kernels.append((ReduceKernel("cu_reduce_middle", 3, (1,), "sum", lower.identity_program("float64"),
                                 "float64"), [False]))
    return kernels


def _mlp():
    """A small MLP's forward pass and gradient: fused elementwise kernels and reductions."""
    x, w1, b1, w2, y = T.fmatrix("x"), T.fmatrix("w1"), T.fvector("b1"), T.fmatrix("w2"), T.fmatrix("y")
    h = T.tanh(T.dot(x, w1) + b1)
    out = T.nnet.sigmoid(T.dot(h, w2))
    loss = T.mean((out - y) ** 2) + 1e-3 * T.sum(abs(w1)) + T.max(abs(b1))
    grads = theanine.grad(loss, [w1, b1, w2])
    return theanine.function([x, w1, b1, w2, y], [loss, *grads])


GEMMS = [("cu_gemm_float32", "float32"), ("cu_gemm_float64", "float64")]


@pytest.fixture(scope="module")
def everything():
    """(kernels, source) of one module with every opcode kernel, every reduction and the
    matrix products."""
    kernels = _opcode_kernels() + [_constants_kernel()] + _reduce_kernels()
    return kernels, cuda.render_module(kernels, "theanine_module", GEMMS)


def test_function_source_names_every_kernel():
    x, y = T.fmatrix("x"), T.fvector("y")
    f = theanine.function([x, y], [T.exp(-x * x) + y, T.sum(T.tanh(x) * y, axis=1)])
    text = f.source("cuda").split(ENTRY_MARKER)[0]     # the node-by-node module
    assert len(f.kernels) == 2
    assert text.count("__global__") == 1 + 3 and "#include <cstdint>" in text
    # kernel names carry a digest of the rendered source, so they differ per target
    same, names = native.render(native.plan_kernels(f.graph)[0], "cuda")
    assert same == text and len(names) == 2
    elementwise, reduction = names
    assert (f"template <typename I>\n__global__ void __launch_bounds__(256) {elementwise}_kernel("
            in text)
    assert f'extern "C" int {elementwise}(const int64_t *shape, char *const *data, ' \
           f"const int64_t *strides, void *stream)" in text
    for part in ("serial", "kernel", "finish"):
        assert f"__global__ void __launch_bounds__(THEANINE_REDUCE_THREADS) {reduction}_{part}(" in text
    assert f'extern "C" int {reduction}(const int64_t *shape, char *const *data, ' \
           f"const int64_t *strides, void *workspace, void *stream)" in text
    assert f'extern "C" int64_t {reduction}_workspace(const int64_t *shape)' in text
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
    n_reduce = sum(isinstance(k, ReduceKernel) for k, _ in kernels)
    for kernel, _ in kernels:
        assert f" {kernel.name}_kernel(const {kernel.name}_params p)" in text
        assert f'extern "C" int {kernel.name}(' in text
    for name, dtype in GEMMS:
        assert f"{name}_kernel(const int64_t m," in text and f'extern "C" int {name}(' in text
    assert text.count("__global__") == len(kernels) + 2 * n_reduce + len(GEMMS)


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


def test_index_arithmetic_is_32_bit_only_where_the_launcher_allows():
    text = cuda.render_elementwise(ElementwiseKernel("k", 3, lower.identity_program("float32")))
    assert "I rest_off0 = (I)(idx);" in text and "% (I)p.shape[2]" in text
    assert "if (th_fits32(total))\n    k_kernel<uint32_t>" in text and "k_kernel<int64_t>" in text
    reduce = cuda.render_reduce(ReduceKernel("r", 3, (0, 2), "sum", lower.identity_program("int64"),
                                             "int64"))
    assert "int64_t rest_base0 = (int64_t)(o);" in reduce and "(I)" not in reduce


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


def test_gemm_is_only_for_floats():
    assert "__shared__ double ta[16][17];" in cuda.render_gemm("g", "float64")
    with pytest.raises(ValueError, match="no matrix product kernel for int32"):
        cuda.render_gemm("g", "int32")


def test_nvcc_command_and_path(monkeypatch, tmp_path):
    monkeypatch.setenv("THEANINE_NVCC", str(tmp_path / "missing-nvcc"))
    assert not nvcc.available()
    with pytest.raises(RuntimeError, match="nvcc not found"):
        nvcc.compile_check("")
    with pytest.raises(RuntimeError, match="nvcc not found"):
        nvcc.build_library("")
    monkeypatch.delenv("THEANINE_NVCC")
    cmd = nvcc.command("sm_90", "cubin")
    assert cmd[1:5] == ["-std=c++17", "-arch=sm_90", "-cubin", "-o"]
    with pytest.raises(ValueError, match="output"):
        nvcc.command(output="exe")


def test_library_commands_target_the_gpu_and_embed_ptx():
    cmd = nvcc.library_command("m.cu", "m.so", "90")
    assert {"-shared", "-fPIC", "-O3"} <= set(cmd) and "-cudart shared" in " ".join(cmd)
    assert "-gencode arch=compute_90,code=sm_90" in " ".join(cmd)
    assert "-gencode arch=compute_90,code=compute_90" in " ".join(cmd)  # PTX for newer GPUs
    assert "-use_fast_math" not in cmd and cmd[-3:] == ["-o", "m.so", "m.cu"]
    assert "arch=compute_80,code=sm_80" in " ".join(nvcc.library_command("m.cu", "m.so", 80))
    with pytest.raises(ValueError, match="arch must be digits"):
        nvcc.library_command("m.cu", "m.so", "sm_90")
    unit = nvcc.unit_command("u.cu", "u.o", "90")
    assert unit[-4:] == ["-c", "-o", "u.o", "u.cu"] and "-shared" not in unit
    assert "arch=compute_90,code=sm_90" in unit
    link = nvcc.link_command(["a.o", "b.o"], "m.so")
    assert "-shared" in link and link[-4:] == ["-o", "m.so", "a.o", "b.o"]
    lib_dir = nvcc.toolkit_lib_dir()
    if lib_dir is not None:   # the library finds the toolkit's libcudart
        assert any(name.startswith("libcudart.so") for name in os.listdir(lib_dir))
        assert f"-rpath,{lib_dir}" in link


def test_modules_split_into_units_of_about_equal_size():
    kernels = [(ElementwiseKernel(f"u{k}", 1 + k % 3, lower.identity_program("float32")), [False])
               for k in range(7)]
    source = cuda.render_module(kernels, gemms=[("u_gemm", "float64")])
    assert source.count(cuda.UNIT_SEPARATOR) == 8
    units = nvcc.split_units(source, 3)
    assert len(units) == 3 and all(u.count("#include <cstdint>") == 1 for u in units)
    names = [f"u{k}" for k in range(7)] + ["u_gemm"]
    for name in names:  # every kernel in exactly one unit
        assert sum(f'extern "C" int {name}(' in u for u in units) == 1
    sizes = [len(u) for u in units]
    assert max(sizes) < 1.5 * min(sizes)
    (one,) = nvcc.split_units(source, 1)
    assert all(one.count(f'extern "C" int {name}(') == 1 for name in names)
    assert len(nvcc.split_units(source, 50)) == 8


needs_nvcc = pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")


@needs_nvcc
def test_every_opcode_and_reduction_compiles(everything):
    kernels, text = everything
    ptx = nvcc.compile_check(text, arch="sm_80", output="ptx").decode()
    n_reduce = sum(isinstance(k, ReduceKernel) for k, _ in kernels)
    # elementwise kernels twice (32- and 64-bit indices), reductions three kernels
    assert ptx.count(".entry ") == 2 * (len(kernels) - n_reduce) + 3 * n_reduce + len(GEMMS)
    for kernel, _ in kernels:
        assert f"{kernel.name}_kernel" in ptx


@needs_nvcc
def test_mlp_kernels_compile_and_errors_are_reported():
    f = _mlp()
    text = f.source("cuda").split(ENTRY_MARKER)[0]
    assert len(f.kernels) >= 3 and text.count("__global__") >= len(f.kernels)
    assert nvcc.compile_check(text, arch="sm_80", output="cubin")[:4] == b"\x7fELF"
    with pytest.raises(RuntimeError, match=r"nvcc failed[\s\S]*error"):
        nvcc.compile_check("this is not C++;\n")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh on-disk cache, and no library loaded yet in this process."""
    from theanine.compile.cache import DiskCache
    monkeypatch.setattr(nvcc, "_loaded", {})
    return DiskCache(tmp_path / "cache")


@needs_nvcc
def test_library_is_built_cached_on_disk_and_loaded_once(private_cache, monkeypatch):
    kernels = [(ElementwiseKernel("lib_copy", 2, lower.identity_program("float32")), [False]),
               (ReduceKernel("lib_sum", 2, (1,), "sum", lower.identity_program("float64"), "float64"),
                [False])]
    source = cuda.render_module(kernels, gemms=[("lib_gemm", "float32")])
    lib = nvcc.load_library(source, "90", cache=private_cache)
    for name in ("lib_copy", "lib_sum", "lib_sum_workspace", "lib_gemm"):
        assert nvcc.symbol(lib, name) is not None
    with pytest.raises(RuntimeError, match="symbol 'lib_missing' was not found"):
        nvcc.symbol(lib, "lib_missing")
    assert private_cache.stats["writes"] == 1
    assert nvcc.load_library(source, "90", cache=private_cache) is lib      # loaded once
    monkeypatch.setattr(nvcc, "_loaded", {})
    monkeypatch.setattr(nvcc, "build_library", lambda *a: pytest.fail("nvcc ran again"))
    again = nvcc.load_library(source, "90", cache=private_cache)          # from the disk cache
    assert again is not lib and private_cache.stats["hits"] == 1
    assert nvcc.library_key(source, "90") != nvcc.library_key(source, "80")
    # the launchers query their workspace on the host: a full sum of 10**6 elements is split
    workspace = nvcc.symbol(lib, "lib_sum_workspace")
    workspace.restype, workspace.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    shape = np.array([1, 10**6], dtype=np.int64)
    assert workspace(shape.ctypes.data) == 8 * math.ceil(10**6 / (256 * 16))
    shape = np.array([1000, 100], dtype=np.int64)
    assert workspace(shape.ctypes.data) == 0


@needs_nvcc
def test_launch_without_a_gpu_returns_an_error(private_cache):
    from theanine.cuda import is_available
    if is_available():
        pytest.skip("a GPU is present: launches succeed")
    source = cuda.render_module([(ElementwiseKernel("nogpu", 1, lower.identity_program("float32")),
                                  [False])])
    lib = nvcc.load_library(source, "90", cache=private_cache)
    launch = nvcc.symbol(lib, "nogpu")
    launch.restype = ctypes.c_int
    x = np.ones(4, dtype=np.float32)
    shape, strides = np.array([4], dtype=np.int64), np.array([4, 4], dtype=np.int64)
    data = (ctypes.c_void_p * 2)(x.ctypes.data, x.ctypes.data)
    code = launch(ctypes.c_void_p(shape.ctypes.data), data, ctypes.c_void_p(strides.ctypes.data), None)
    assert code != 0
    from theanine.codegen import cudart
    with pytest.raises(cudart.CudaError, match=f"CUDA error {code}"):
        cudart.check(code, "the launch")


# --- the generated kernels run on the CPU, against the LLVM back end ---------------------------
#
# With a small shim (CUDA's built-ins as host code, a block's threads as host threads,
# __syncthreads as a barrier) a host C++ compiler builds the very kernels nvcc compiles.
# ``emulated_library`` adds, for each kernel, a launcher with the CUDA launcher's name and
# signature that runs the kernel as one emulated block (the grid-stride loops cover the
# whole grid): elementwise kernels with 7 threads, reductions with 32 (the block size
# is THEANINE_REDUCE_THREADS, here 32), the matrix product with its 256 threads, one
# block per column tile. ``NAME_with`` forces an elementwise kernel's index type or a
# reduction's strategy. tests/test_cuda_mode.py runs whole functions on these libraries.
# Results must equal the LLVM kernels' bit for bit, except where the math library or
# reassociation may differ. (CUDA's own libdevice math is not what runs here: glibc's is.)

SHIM = r"""
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
static pthread_mutex_t th_atomic = PTHREAD_MUTEX_INITIALIZER;
template <typename T> static T atomicAdd(T *address, T value) {
  pthread_mutex_lock(&th_atomic);
  const T old = *address;
  *address = old + value;
  pthread_mutex_unlock(&th_atomic);
  return old;
}
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
  static pthread_t ids[1024];
  static th_job jobs[1024];
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

_PARAMS = re.compile(r"struct (\w+)_params \{\n  int64_t shape\[(\d+)\];\n  char \*data\[(\d+)\];")
_COUNTS = re.compile(r'extern "C" int64_t (\w+)_workspace\(const int64_t \*shape\) \{\n'
                     r"  const int64_t splits = th_reduce_splits\((.+?), (.+?)\);")
_GEMM = re.compile(r"/\* (\w+): C = A @ B in (\w+),")


def _emulated_launchers(source):
    """C++ launchers with the CUDA launchers' names and signatures (see above)."""
    counts = {m.group(1): (m.group(2), m.group(3)) for m in _COUNTS.finditer(source)}
    out = []
    for m in _PARAMS.finditer(source):
        name, nd, nbuf = m.group(1), int(m.group(2)), int(m.group(3))
        fill = [f"static {name}_params {name}_fill(const int64_t *shape, char *const *data, "
                "const int64_t *strides) {",
                f"  {name}_params p;",
                f"  for (int d = 0; d < {nd}; ++d) p.shape[d] = shape[d];",
                f"  for (int b = 0; b < {nbuf}; ++b) {{",
                "    p.data[b] = data[b];",
                f"    for (int d = 0; d < {nd}; ++d) p.strides[b][d] = strides[b * {nd} + d];",
                "  }",
                "  return p;",
                "}"]
        if name not in counts:
            out += fill + [
                f"static void {name}_run32(const void *p) {{ {name}_kernel<uint32_t>(*(const {name}_params *)p); }}",
                f"static void {name}_run64(const void *p) {{ {name}_kernel<int64_t>(*(const {name}_params *)p); }}",
                f'extern "C" int {name}_with(const int64_t *shape, char *const *data, '
                "const int64_t *strides, int wide) {",
                f"  {name}_params p = {name}_fill(shape, data, strides);",
                "  p.total = 1;",
                f"  for (int d = 0; d < {nd}; ++d) p.total *= shape[d];",
                "  if (p.total <= 0) return 0;",
                f"  th_launch(wide ? {name}_run64 : {name}_run32, &p, 7);",
                "  return 0;",
                "}",
                f'extern "C" int {name}(const int64_t *shape, char *const *data, const int64_t *strides, '
                "void *stream) {",
                "  int64_t total = 1;",
                f"  for (int d = 0; d < {nd}; ++d) total *= shape[d];",
                f"  return {name}_with(shape, data, strides, !th_fits32(total));",
                "}"]
            continue
        n_out, n_red = counts[name]
        out += fill + [
            *[f"static void {name}_run_{part}(const void *p) {{ {name}_{part}(*(const {name}_params *)p); }}"
              for part in ("serial", "kernel", "finish")],
            f'extern "C" int {name}_with(const int64_t *shape, char *const *data, const int64_t *strides, '
            "void *workspace, int64_t splits) {",
            f"  {name}_params p = {name}_fill(shape, data, strides);",
            f"  p.n_out = {n_out};",
            f"  p.n_red = {n_red};",
            "  if (p.n_out <= 0) return 0;",
            "  p.splits = splits > 1 ? splits : 1;",
            "  p.chunk = (p.n_red + p.splits - 1) / p.splits;",
            "  p.partial = (char *)workspace;",
            f"  if (splits == 0) {{ th_launch({name}_run_serial, &p, THEANINE_REDUCE_THREADS); return 0; }}",
            f"  th_launch({name}_run_kernel, &p, THEANINE_REDUCE_THREADS);",
            f"  if (splits > 1) th_launch({name}_run_finish, &p, THEANINE_REDUCE_THREADS);",
            "  return 0;",
            "}",
            f'extern "C" int {name}(const int64_t *shape, char *const *data, const int64_t *strides, '
            "void *workspace, void *stream) {",
            f"  const int64_t splits = th_reduce_splits({n_out}, {n_red});",
            "  if (splits > 1 && workspace == nullptr) return 1;",
            f"  return {name}_with(shape, data, strides, workspace, splits);",
            "}"]
    for m in _GEMM.finditer(source):
        name, t = m.group(1), cuda.CUDA_TYPES[m.group(2)]
        tile = cuda.GEMM_TILE
        out += [
            f"struct {name}_args {{ int64_t m, n, k; const {t} *a; int64_t sa0, sa1; const {t} *b; "
            f"int64_t sb0, sb1; {t} *c; }};",
            f"static void {name}_run(const void *v) {{",
            f"  const {name}_args *g = (const {name}_args *)v;",
            f"  {name}_kernel(g->m, g->n, g->k, g->a, g->sa0, g->sa1, g->b, g->sb0, g->sb1, g->c);",
            "}",
            f'extern "C" int {name}(int64_t m, int64_t n, int64_t k, const void *a, int64_t sa0, '
            "int64_t sa1, const void *b, int64_t sb0, int64_t sb1, void *c, void *stream) {",
            "  if (m <= 0 || n <= 0) return 0;",
            f"  {name}_args g = {{m, n, k, (const {t} *)a, sa0, sa1, (const {t} *)b, sb0, sb1, ({t} *)c}};",
            f"  gridDim.x = (unsigned)((n + {tile - 1}) / {tile});",
            "  for (unsigned bx = 0; bx < gridDim.x; ++bx) {",
            "    blockIdx.x = bx;",
            f"    th_launch({name}_run, &g, {tile * tile});",
            "  }",
            "  blockIdx.x = 0;",
            "  gridDim.x = 1;",
            "  return 0;",
            "}"]
    return "\n".join(out)


_CXX = shutil.which("c++") or shutil.which("g++")
_emulated: dict = {}


def emulated_library(source: str) -> ctypes.CDLL:
    """``source`` (a module from codegen/cuda.py) built for the CPU with the shim and
    emulated launchers; cached per source for the session."""
    if _CXX is None:
        pytest.skip("no host C++ compiler")
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _emulated:
        directory = tempfile.mkdtemp(prefix="theanine-emulated-")
        src, lib = os.path.join(directory, "emulated.cpp"), os.path.join(directory, "emulated.so")
        with open(src, "w") as fh:
            fh.write(SHIM + source + "\n" + _emulated_launchers(source) + "\n")
        # -O0: building is most of an emulated test's time; the kernels' results do not depend on it
        cmd = [_CXX, "-std=c++17", "-O0", "-ffp-contract=off", "-w", "-shared", "-fPIC", "-pthread",
               "-o", lib, src]
        build = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stderr[:4000]
        _emulated[key] = ctypes.CDLL(lib)
    return _emulated[key]


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



def _rows(arrays):
    return np.array([[0 if n == 1 else s for n, s in zip(a.shape, a.strides)] or [0] for a in arrays],
                    dtype=np.int64)


def _call_llvm(address, shape, arrays):
    shape, strides = np.array(list(shape) or [1], dtype=np.int64), _rows(arrays)
    data = np.array([a.ctypes.data for a in arrays], dtype=np.uintp)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(address)(
        shape.ctypes.data, data.ctypes.data, strides.ctypes.data)


def _call_emulated(lib, name, shape, arrays, variant, workspace=None):
    """Run ``name``'s emulated kernel: ``variant`` is the index width (elementwise: 0 narrow,
    1 wide) or the strategy (reductions: 0 serial, 1 one block, s > 1 split in s)."""
    shape, strides = np.array(list(shape) or [1], dtype=np.int64), _rows(arrays)
    data = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    fn = getattr(lib, name + "_with")
    fn.restype = ctypes.c_int
    p = ctypes.c_void_p
    if workspace is None:
        fn.argtypes = [p, p, p, ctypes.c_int]
        return fn(shape.ctypes.data, data, strides.ctypes.data, variant)
    fn.argtypes = [p, p, p, p, ctypes.c_int64]
    return fn(shape.ctypes.data, data, strides.ctypes.data, workspace.ctypes.data, variant)


def test_kernels_emulated_on_the_cpu_match_the_llvm_back_end(everything):
    kernels, text = everything
    emulated = emulated_library(text)
    reference = jit.compile_ir(llvm.render_module(kernels), [k.name for k, _ in kernels])
    rng = np.random.default_rng(7)
    for kernel, inner in kernels:
        prog = kernel.program
        if isinstance(kernel, ElementwiseKernel):
            ins, shape = _elementwise_case(kernel)
            make = lambda fill: [np.full(shape, fill, dtype=d) for d in prog.output_dtypes]  # noqa: E731
            inexact = prog.instrs[0].compute_dtype if prog.instrs[0].opcode in _INEXACT else None
            variants = (0, 1)
        else:
            ins, shape = _reduce_case(kernel, inner, rng)
            kept = tuple(1 if d in kernel.axes else n for d, n in enumerate(shape))
            make = lambda fill: [np.full(kept, fill, dtype=kernel.out_dtype)]  # noqa: E731
            dtypes = prog.input_dtypes + (kernel.out_dtype,)
            reassociated = kernel.kind in ("sum", "prod") or any(i.opcode in _INEXACT for i in prog.instrs)
            if reassociated and any(d in llvm.FLOATS for d in dtypes):
                inexact = "float32" if "float32" in dtypes else "float64"
            else:
                inexact = None
            variants = (0, 1, 3)
        ins = [np.ascontiguousarray(a) for a in ins]
        expected = make(0)
        if isinstance(kernel, ReduceKernel):  # the CPU kernels start from the identity
            expected = [np.full_like(expected[0], native._identity(kernel.kind, expected[0].dtype))]
        _call_llvm(reference[kernel.name], shape, ins + expected)
        for variant in variants:
            got = make(1)  # every element must be written: no reliance on what is there
            workspace = None
            if isinstance(kernel, ReduceKernel):
                workspace = np.zeros(got[0].size * max(variant, 1) * got[0].itemsize, dtype=np.uint8)
            assert _call_emulated(emulated, kernel.name, shape, ins + got, variant, workspace) == 0
            for e, g in zip(expected, got):
                _assert_same(f"{kernel.name} ({variant})", e, g, inexact)


def test_emulated_reductions_choose_serial_block_and_split_launches(everything):
    """The emulated launcher follows th_reduce_splits: one thread per output element for
    short reductions, split blocks and a workspace for long ones (here 32 threads and
    chunks of 512 elements)."""
    lib = emulated_library(everything[1])
    name = "cu_reduce_middle"  # a float64 sum over axis 1 of 3
    workspace = getattr(lib, name + "_workspace")
    workspace.restype, workspace.argtypes = ctypes.c_int64, [ctypes.c_void_p]
    launch = getattr(lib, name)
    launch.restype = ctypes.c_int
    launch.argtypes = [ctypes.c_void_p] * 5
    rng = np.random.default_rng(3)
    for shape, splits in (((3, 60, 2), 0), ((2, 100, 3), 1), ((1, 3000, 2), 6), ((1, 0, 2), 0)):
        dims = np.array(shape, dtype=np.int64)
        assert workspace(dims.ctypes.data) == (8 * 2 * splits if splits > 1 else 0)
        x = rng.standard_normal(shape)
        out = np.full((shape[0], 1, shape[2]), np.nan)
        ws = np.zeros(max(workspace(dims.ctypes.data), 1), dtype=np.uint8)
        data = (ctypes.c_void_p * 2)(x.ctypes.data, out.ctypes.data)
        strides = _rows([x, out])
        assert launch(dims.ctypes.data, data, strides.ctypes.data,
                      ws.ctypes.data if splits > 1 else None, None) == 0
        np.testing.assert_allclose(out[:, 0], x.sum(axis=1), rtol=1e-12, atol=1e-12)
        if splits > 1:  # without its workspace a split launch refuses to run
            assert launch(dims.ctypes.data, data, strides.ctypes.data, None, None) != 0


def test_gemm_kernel_emulated_matches_numpy(everything):
    lib = emulated_library(everything[1])
    rng = np.random.default_rng(11)
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for name, dtype in GEMMS:
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [i64, i64, i64, p, i64, i64, p, i64, i64, p, p]
        for m, k, n in ((5, 7, 3), (17, 33, 18), (4, 0, 3), (1, 16, 1)):
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            row = rng.standard_normal((1, n)).astype(dtype)
            layouts = [(a, b), (np.asfortranarray(a), b[::-1][::-1]),
                       (a, np.ascontiguousarray(b[::-1])[::-1]),       # negative row stride
                       (a, np.broadcast_to(row, (k, n)))]              # zero row stride
            for x, y in layouts:
                c = np.full((m, n), np.nan, dtype=dtype)
                item = x.itemsize
                assert fn(m, n, k, x.ctypes.data, x.strides[0] // item, x.strides[1] // item,
                          y.ctypes.data, y.strides[0] // item, y.strides[1] // item,
                          c.ctypes.data, None) == 0
                rtol = 1e-5 if dtype == "float32" else 1e-12
                np.testing.assert_allclose(c, x @ y, rtol=rtol, atol=rtol * 10, err_msg=f"{name} {m}x{k}x{n}")
