"""ctypes bindings of the CUDA runtime (libcudart) and of cuBLAS (libcublas).

Only what the CUDA back end uses: device count and compute capability, memory
(``malloc``, ``free``, ``memset``, copies between host and device), synchronisation,
error strings, and single/double precision GEMM. Everything runs on the legacy
default stream, so kernels, copies and GEMMs are ordered among themselves.

Libraries are looked up in the CUDA toolkit next to nvcc, in ``$CUDA_HOME`` /
``$CUDA_PATH``, ``/usr/local/cuda``, in the ``nvidia`` wheels of site-packages
(``nvidia/cuda_runtime/lib``, ``nvidia/cublas/lib``, ``nvidia/cu13/lib``) and on the
loader's path.
``$THEANINE_CUDART`` and ``$THEANINE_CUBLAS`` name a library file explicitly.
Nothing here needs a GPU to import; calls that need one raise ``CudaError``.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading

_c = ctypes
_ptr, _size, _int = _c.c_void_p, _c.c_size_t, _c.c_int

#: cudaMemcpyKind
HOST_TO_DEVICE, DEVICE_TO_HOST, DEVICE_TO_DEVICE = 1, 2, 3
#: cudaError_t values this module reacts to
SUCCESS, ERROR_MEMORY_ALLOCATION = 0, 2
#: cublasOperation_t
OP_N, OP_T = 0, 1

_lock = threading.Lock()
_runtime = None          # the loaded libcudart, or the OSError that prevented it
_cublas = None           # (library, handle), or the reason there is none


class CudaError(RuntimeError):
    """A CUDA runtime or cuBLAS call failed; ``code`` is its error code."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _search_dirs(wheel_subdir):
    dirs = []
    from theanine.codegen import nvcc
    lib_dir = nvcc.toolkit_lib_dir()
    if lib_dir:
        dirs.append(lib_dir)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root:
            dirs += [os.path.join(root, "lib64"), os.path.join(root, "lib")]
    dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/lib"]
    for site in sys.path:  # pip's NVIDIA wheels: nvidia/<library>/lib, or nvidia/cu13/lib
        dirs.append(os.path.join(site, "nvidia", wheel_subdir, "lib"))
        dirs += sorted(glob.glob(os.path.join(site, "nvidia", "cu[0-9]*", "lib")), reverse=True)
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _candidates(stem, wheel_subdir, env):
    """Library files to try for ``lib<stem>.so``, best first."""
    explicit = os.environ.get(env)
    if explicit:
        return [explicit]
    found = []
    for directory in _search_dirs(wheel_subdir):
        versioned = sorted(glob.glob(os.path.join(directory, f"lib{stem}.so.*")), key=len)
        found += [os.path.join(directory, f"lib{stem}.so")] + versioned
    found += [f"lib{stem}.so.13", f"lib{stem}.so.12", f"lib{stem}.so"]  # the loader's path
    return [f for f in dict.fromkeys(found) if os.path.sep not in f or os.path.exists(f)]


def _open(stem, wheel_subdir, env):
    errors = []
    for candidate in _candidates(stem, wheel_subdir, env):
        try:
            return _c.CDLL(candidate, mode=_c.RTLD_GLOBAL)
        except OSError as e:
            errors.append(f"{candidate}: {e}")
    raise OSError(f"cannot load lib{stem}: " + ("; ".join(errors[-3:]) or "no candidate found"))


def _declare(lib, name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype, fn.argtypes = restype, list(argtypes)


def load_runtime():
    """The loaded libcudart (ctypes.CDLL); CudaError when it cannot be loaded."""
    global _runtime
    with _lock:
        if _runtime is None:
            try:
                lib = _open("cudart", "cuda_runtime", "THEANINE_CUDART")
                _declare(lib, "cudaGetDeviceCount", _int, _c.POINTER(_int))
                _declare(lib, "cudaDeviceGetAttribute", _int, _c.POINTER(_int), _int, _int)
                _declare(lib, "cudaGetErrorString", _c.c_char_p, _int)
                _declare(lib, "cudaGetLastError", _int)
                _declare(lib, "cudaMalloc", _int, _c.POINTER(_ptr), _size)
                _declare(lib, "cudaFree", _int, _ptr)
                _declare(lib, "cudaMemcpy", _int, _ptr, _ptr, _size, _int)
                _declare(lib, "cudaMemset", _int, _ptr, _int, _size)
                _declare(lib, "cudaDeviceSynchronize", _int)
                _declare(lib, "cudaRuntimeGetVersion", _int, _c.POINTER(_int))
                _runtime = lib
            except (OSError, AttributeError) as e:
                _runtime = OSError(str(e))
        if isinstance(_runtime, OSError):
            raise CudaError(f"the CUDA runtime is not available: {_runtime}")
        return _runtime


def error_string(code: int) -> str:
    """The runtime's description of error ``code``."""
    text = load_runtime().cudaGetErrorString(int(code))
    return text.decode(errors="replace") if text else f"CUDA error {code}"


def check(code: int, what: str) -> None:
    """Raise CudaError naming ``what`` when ``code`` is not cudaSuccess."""
    if code != SUCCESS:
        raise CudaError(f"{what} failed: {error_string(code)} (CUDA error {code})", code)


def device_count() -> int:
    """The number of usable CUDA devices: 0 without the runtime, a driver or a GPU."""
    try:
        lib = load_runtime()
    except CudaError:
        return 0
    count = _int(0)
    if lib.cudaGetDeviceCount(_c.byref(count)) != SUCCESS:
        lib.cudaGetLastError()  # clear the error so that it does not surface later
        return 0
    return count.value


def compute_capability(device: int = 0) -> tuple:
    """(major, minor) compute capability of ``device``."""
    lib = load_runtime()
    major, minor = _int(0), _int(0)
    check(lib.cudaDeviceGetAttribute(_c.byref(major), 75, device), "cudaDeviceGetAttribute")
    check(lib.cudaDeviceGetAttribute(_c.byref(minor), 76, device), "cudaDeviceGetAttribute")
    return major.value, minor.value


def malloc(nbytes: int) -> int:
    """Device memory of ``nbytes`` bytes (> 0); its address. CudaError (code 2) when the
    device is out of memory."""
    ptr = _ptr()
    check(load_runtime().cudaMalloc(_c.byref(ptr), nbytes), f"cudaMalloc({nbytes})")
    return ptr.value


def free(ptr: int) -> None:
    """Release device memory from ``malloc``."""
    check(load_runtime().cudaFree(ptr), "cudaFree")


def memcpy(dst: int, src: int, nbytes: int, kind: int) -> None:
    """Copy ``nbytes`` bytes (``kind``: HOST_TO_DEVICE, DEVICE_TO_HOST or DEVICE_TO_DEVICE);
    returns once the source may be reused (a copy to the host has completed)."""
    if nbytes:
        check(load_runtime().cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy")


def memset(ptr: int, value: int, nbytes: int) -> None:
    """Set ``nbytes`` bytes of device memory to ``value`` (asynchronous, stream-ordered)."""
    if nbytes:
        check(load_runtime().cudaMemset(ptr, value, nbytes), "cudaMemset")


def synchronize() -> None:
    """Wait for all work on the device; CudaError for any error a kernel raised."""
    check(load_runtime().cudaDeviceSynchronize(), "cudaDeviceSynchronize")


def runtime_version() -> int:
    """The runtime's version (1000 * major + 10 * minor)."""
    version = _int(0)
    check(load_runtime().cudaRuntimeGetVersion(_c.byref(version)), "cudaRuntimeGetVersion")
    return version.value


# --- cuBLAS ------------------------------------------------------------------------------

def _load_cublas():
    global _cublas
    with _lock:
        if _cublas is None:
            try:
                lib = _open("cublas", "cublas", "THEANINE_CUBLAS")
                _declare(lib, "cublasCreate_v2", _int, _c.POINTER(_ptr))
                for name, real in (("cublasSgemm_v2", _c.c_float), ("cublasDgemm_v2", _c.c_double)):
                    _declare(lib, name, _int, _ptr, _int, _int, _int, _int, _int, _c.POINTER(real),
                             _ptr, _int, _ptr, _int, _c.POINTER(real), _ptr, _int)
                handle = _ptr()
                status = lib.cublasCreate_v2(_c.byref(handle))
                _cublas = (lib, handle) if status == 0 else f"cublasCreate failed (status {status})"
            except (OSError, AttributeError) as e:
                _cublas = str(e)
        return _cublas


def cublas_available() -> bool:
    """Whether cuBLAS is loaded and has a handle on the current device."""
    return isinstance(_load_cublas(), tuple)


def cublas_unavailable_reason() -> str | None:
    """Why cuBLAS cannot be used, or None when it can."""
    state = _load_cublas()
    return None if isinstance(state, tuple) else state


#: the largest dimension or leading dimension cuBLAS's 32-bit interface takes
CUBLAS_MAX = (1 << 31) - 1


def gemm(dtype: str, trans_a: int, trans_b: int, m: int, n: int, k: int, a: int, lda: int,
         b: int, ldb: int, c: int, ldc: int) -> None:
    """Column-major ``C (m x n) = op(A) @ op(B)`` in float32 or float64 through cuBLAS
    (alpha 1, beta 0), on the default stream. CudaError when cuBLAS is not there or fails."""
    state = _load_cublas()
    if not isinstance(state, tuple):
        raise CudaError(f"cuBLAS is not available: {state}")
    lib, handle = state
    real, fn = ((_c.c_float, lib.cublasSgemm_v2) if dtype == "float32"
                else (_c.c_double, lib.cublasDgemm_v2))
    one, zero = real(1.0), real(0.0)
    status = fn(handle, trans_a, trans_b, m, n, k, _c.byref(one), a, lda, b, ldb, _c.byref(zero), c, ldc)
    if status != 0:
        raise CudaError(f"cuBLAS {dtype} gemm (m={m}, n={n}, k={k}) failed with status {status}", status)
