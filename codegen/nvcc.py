"""nvcc: turning generated CUDA C++ (codegen/cuda.py) into PTX, cubins and loaded libraries.

- ``compile_check`` turns a translation unit into PTX (or a cubin) and returns the
  bytes, or raises with nvcc's diagnostics; it needs no GPU.
- ``load_library`` builds a translation unit into a shared library (host launchers plus
  the device code for one GPU architecture, and its PTX so that newer GPUs can
  JIT-compile it), stores the library's bytes in the on-disk compile cache under a key
  covering the source, nvcc's identity, the flags and the architecture, and loads it
  with ctypes, once per process. A warm process, or a second one sharing the cache,
  does not run nvcc. Loading needs the CUDA runtime library (``libcudart``) but no GPU.
  A module of several kernels (parts separated by ``cuda.UNIT_SEPARATOR``) is compiled
  as several object files by parallel nvcc processes, one per core, then linked.

The compiler is ``$THEANINE_NVCC`` when set (a path or a name on PATH), else
``nvcc`` on PATH. Several processes may build at once: each works in its own private
temporary directory, and the cache writes atomically without locks.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shlex
import shutil
import subprocess
import tempfile
import threading

#: seconds one nvcc run may take
TIMEOUT = 300
_OUTPUTS = {"ptx": ("--ptx", "kernels.ptx"), "cubin": ("-cubin", "kernels.cubin")}
#: the architecture built for when no GPU says otherwise: sm_90 (H100)
DEFAULT_ARCH = "90"
#: the flags of every compilation (exact float math: no -use_fast_math) and of the link
COMPILE_FLAGS = ("-O3", "-std=c++17", "-Xcompiler", "-fPIC")
LINK_FLAGS = ("-shared", "-cudart", "shared")
LIBRARY_FLAGS = COMPILE_FLAGS + LINK_FLAGS
#: at most this many nvcc processes build one library at once
MAX_JOBS = 16

_lock = threading.Lock()
_loaded: dict = {}       # cache key -> ctypes.CDLL
_identities: dict = {}   # nvcc path -> its version line


def path() -> str | None:
    """The nvcc executable to use, or None when there is none."""
    return shutil.which(os.environ.get("THEANINE_NVCC") or "nvcc")


def available() -> bool:
    """Whether an nvcc executable is available."""
    return path() is not None


def _require() -> str:
    nvcc = path()
    if nvcc is None:
        raise RuntimeError("nvcc not found: install the CUDA toolkit or set THEANINE_NVCC")
    return nvcc


def command(arch="sm_80", output="ptx", source="kernels.cu", target=None) -> list:
    """The nvcc command line ``compile_check`` runs."""
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(_OUTPUTS)}, not {output!r}")
    flag, default = _OUTPUTS[output]
    return [path() or "nvcc", "-std=c++17", f"-arch={arch}", flag, "-o", target or default, source]


def toolkit_lib_dir() -> str | None:
    """The CUDA toolkit's library directory, where its ``libcudart`` lives: next to nvcc
    (``<toolkit>/lib64`` or ``lib``), else under ``$CUDA_HOME``, ``$CUDA_PATH`` or
    ``/usr/local/cuda``; None when none holds libcudart."""
    roots = []
    nvcc = path()
    if nvcc is not None:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    roots += [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    for root in filter(None, roots):
        for sub in ("lib64", "lib"):
            candidate = os.path.join(root, sub)
            if glob.glob(os.path.join(candidate, "libcudart.so*")):
                return os.path.realpath(candidate)
    return None


def _gencode(arch) -> list:
    """Device code for ``sm_<arch>`` and ``compute_<arch>`` PTX (forward compatibility)."""
    arch = str(arch)
    if not arch.isdigit():
        raise ValueError(f"arch must be digits such as '90' (sm_90), not {arch!r}")
    return ["-gencode", f"arch=compute_{arch},code=sm_{arch}",
            "-gencode", f"arch=compute_{arch},code=compute_{arch}"]


def _rpath() -> list:
    lib_dir = toolkit_lib_dir()  # where the library finds libcudart
    return ["-Xlinker", f"-rpath,{lib_dir}"] if lib_dir else []


def library_command(source, target, arch=DEFAULT_ARCH) -> list:
    """The nvcc command line building ``source`` into the shared library ``target`` for
    ``sm_<arch>`` in one step."""
    return [path() or "nvcc", *LIBRARY_FLAGS, *_gencode(arch), *_rpath(), "-o", target, source]


def unit_command(source, obj, arch=DEFAULT_ARCH) -> list:
    """The nvcc command line compiling one unit ``source`` into the object file ``obj``."""
    return [path() or "nvcc", *COMPILE_FLAGS, *_gencode(arch), "-c", "-o", obj, source]


def link_command(objects, target) -> list:
    """The nvcc command line linking object files into the shared library ``target``."""
    return [path() or "nvcc", *LINK_FLAGS, *_rpath(), "-o", target, *objects]


def split_units(source: str, jobs: int) -> list:
    """``source`` as at most ``jobs`` translation units of about equal length, each the
    prelude followed by some of the module's parts (see ``cuda.UNIT_SEPARATOR``)."""
    from theanine.codegen.cuda import UNIT_SEPARATOR
    head, *parts = source.split(f"\n{UNIT_SEPARATOR}\n")
    groups = [[] for _ in range(max(1, min(jobs, len(parts))))]
    sizes = [0] * len(groups)
    for k in sorted(range(len(parts)), key=lambda k: (-len(parts[k]), k)):
        g = sizes.index(min(sizes))   # the longest parts first, each to the lightest unit
        groups[g].append(k)
        sizes[g] += len(parts[k])
    return ["\n\n".join([head] + [parts[k] for k in sorted(group)]) + "\n" for group in groups]


def _run(cmd, cwd):
    """Run nvcc; RuntimeError with the command and the first 40 lines of its diagnostics."""
    _run_all([cmd], cwd)


def _run_all(cmds, cwd):
    """Run nvcc commands in parallel; RuntimeError for the first that fails."""
    procs = []
    try:
        for cmd in cmds:
            procs.append((cmd, subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, text=True)))
    except OSError as e:
        for _, proc in procs:
            proc.kill()
        raise RuntimeError(f"cannot run nvcc ({e}): {shlex.join(cmds[len(procs)])}") from None
    results = []
    for cmd, proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for _, other in procs:
                other.kill()
                other.wait()
            raise RuntimeError(f"nvcc timed out after {TIMEOUT} s: {shlex.join(cmd)}") from None
        results.append((cmd, proc.returncode, stdout, stderr))
    for cmd, returncode, stdout, stderr in results:
        if returncode != 0:
            _fail(cmd, returncode, stderr or stdout)


def _fail(cmd, returncode, output):
    diagnostics = output.splitlines()
    shown = "\n".join(diagnostics[:40])
    more = f"\n... ({len(diagnostics) - 40} more lines)" if len(diagnostics) > 40 else ""
    raise RuntimeError(f"nvcc failed (exit {returncode}): {shlex.join(cmd)}\n{shown}{more}")


def _private_dir(parent=None) -> str:
    directory = tempfile.mkdtemp(prefix="theanine-nvcc-", dir=parent)
    os.chmod(directory, 0o700)
    return directory


def compile_check(source: str, arch: str = "sm_80", output: str = "ptx") -> bytes:
    """Compile the CUDA C++ ``source`` for ``arch`` to PTX (``output="ptx"``) or a cubin
    (``output="cubin"``) in a temporary directory and return the result's bytes.

    RuntimeError when nvcc is missing, fails (with the command and the first 40 lines
    of its diagnostics) or runs longer than ``TIMEOUT`` seconds.
    """
    _require()
    tmp = _private_dir()
    try:
        src = os.path.join(tmp, "kernels.cu")
        with open(src, "w") as fh:
            fh.write(source)
        target = os.path.join(tmp, _OUTPUTS.get(output, ("", "out"))[1])
        _run(command(arch, output, src, target), tmp)
        with open(target, "rb") as fh:
            return fh.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_library(source: str, arch: str = DEFAULT_ARCH, jobs: int | None = None) -> bytes:
    """The bytes of the shared library nvcc builds from ``source`` for ``sm_<arch>``, with
    up to ``jobs`` (default: one per core) nvcc processes at once."""
    _require()
    jobs = min(jobs or os.cpu_count() or 1, MAX_JOBS)
    tmp = _private_dir()
    try:
        target = os.path.join(tmp, "module.so")
        units = split_units(source, jobs)
        if len(units) == 1:
            src = os.path.join(tmp, "module.cu")
            with open(src, "w") as fh:
                fh.write(source)
            _run(library_command(src, target, arch), tmp)
        else:
            objects, cmds = [], []
            for k, unit in enumerate(units):
                src, obj = os.path.join(tmp, f"unit{k}.cu"), os.path.join(tmp, f"unit{k}.o")
                with open(src, "w") as fh:
                    fh.write(unit)
                objects.append(obj)
                cmds.append(unit_command(src, obj, arch))
            _run_all(cmds, tmp)
            _run(link_command(objects, target), tmp)
        with open(target, "rb") as fh:
            return fh.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def identity() -> str:
    """nvcc's path and the last line of ``nvcc --version`` (cached per process)."""
    nvcc = _require()
    if nvcc not in _identities:
        try:
            proc = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"cannot run {nvcc} --version ({e})") from None
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{nvcc} --version failed (exit {proc.returncode})")
        _identities[nvcc] = f"{os.path.realpath(nvcc)}: {lines[-1].strip()}"
    return _identities[nvcc]


def library_key(source: str, arch: str = DEFAULT_ARCH) -> str:
    """The cache key of the library built from ``source`` for ``sm_<arch>``."""
    from theanine.compile.cache import cache_key
    return cache_key("cuda-shared-library", source, identity(), LIBRARY_FLAGS, str(arch),
                     toolkit_lib_dir())


def _load_bytes(blob: bytes, fallback_parent: str) -> ctypes.CDLL:
    """Load the shared library ``blob`` (see cc.load_shared_object), with the CUDA runtime
    loaded first so that its libcudart dependency resolves to that one."""
    from theanine.codegen import cc, cudart
    cudart.load_runtime()
    return cc.load_shared_object(blob, fallback_parent, "CUDA back end")


def load_library(source: str, arch: str = DEFAULT_ARCH, cache=None) -> ctypes.CDLL:
    """The shared library built from ``source`` for ``sm_<arch>`` (from the on-disk cache
    when it is there, built with nvcc otherwise), loaded once per process."""
    from theanine.compile.cache import DiskCache
    from theanine.configparser import config
    with _lock:
        key = library_key(source, arch)
        lib = _loaded.get(key)
        if lib is None:
            cache = cache if cache is not None else DiskCache()
            blob = cache.get("cuda", key)
            if blob is None:
                blob = build_library(source, arch)
                cache.put("cuda", key, blob)
            fallback = os.path.join(os.path.expanduser(config.cache_dir), "tmp")
            lib = _loaded[key] = _load_bytes(blob, fallback)
        return lib


def symbol(lib: ctypes.CDLL, name: str):
    """The function ``name`` of ``lib``; RuntimeError when the library lacks it."""
    try:
        return getattr(lib, name)
    except AttributeError:
        raise RuntimeError(f"CUDA back end: symbol {name!r} was not found in the compiled library") from None
