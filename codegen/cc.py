"""Turns rendered C into native code: the system compiler builds a shared object, loaded here.

``compile_source(text, symbols)`` compiles ``text`` with ``theanine.config.cxx``
and ``theanine.config.cflags`` (plus the flags below, which keep results exact),
stores the shared object's bytes in the on-disk cache under a key covering the
source, the compiler's identity (the first line of ``cxx --version``), the flags
and the host CPU, and loads it with ctypes. A module is loaded once per process;
a warm process, or a second one sharing the cache, does not run the compiler.

Several processes may compile at once: each works in its own private temporary
directory, and the cache writes atomically without locks.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import tempfile
import threading

from theanine.compile.cache import DiskCache, cache_key

#: always added: position-independent shared object, C11, exact floating point
#: (no FMA contraction; errno-free math lets sqrt/floor/... inline), OpenMP SIMD
#: pragmas only (reassociated float sum/prod reductions, as the LLVM back end allows)
REQUIRED_FLAGS = ("-shared", "-fPIC", "-std=c11", "-fno-math-errno", "-ffp-contract=off",
                  "-fopenmp-simd")
#: how long one compilation may take, in seconds
COMPILE_TIMEOUT = 600

_lock = threading.Lock()
_loaded: dict = {}        # cache key -> (ctypes.CDLL, {symbol: address})
_identities: dict = {}    # compiler command -> first line of its --version


def _config():
    from theanine.configparser import config
    return config


def compiler_command() -> list:
    """The compiler as an argument list (``config.cxx`` may hold a command with arguments)."""
    cmd = shlex.split(_config().cxx)
    if not cmd:
        raise RuntimeError("C back end: theanine.config.cxx is empty; set it to a C compiler (e.g. 'cc')")
    return cmd


def flags() -> list:
    """The flags of every compilation: ``config.cflags`` then the required ones."""
    return shlex.split(_config().cflags) + list(REQUIRED_FLAGS)


def compiler_identity(cmd=None) -> str:
    """The first line of ``<compiler> --version`` (cached per process)."""
    cmd = list(cmd or compiler_command())
    key = tuple(cmd)
    if key not in _identities:
        try:
            proc = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"C back end: cannot run the C compiler {shlex.join(cmd)!r} ({e}); "
                               "set theanine.config.cxx (THEANINE_FLAGS=cxx=...)") from None
        lines = (proc.stdout or proc.stderr).strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"C back end: {shlex.join(cmd + ['--version'])} failed "
                               f"(exit {proc.returncode}): {(proc.stderr or '').strip()[:500]}")
        _identities[key] = lines[0].strip()
    return _identities[key]


def host_cpu() -> str:
    """The host CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def module_key(text: str) -> str:
    """The cache key of the shared object built from ``text`` with the current settings."""
    return cache_key("c-shared-object", text, compiler_identity(), tuple(flags()), host_cpu())


def private_dir(parent=None) -> str:
    """A new temporary directory only this user can enter (in ``parent`` when given)."""
    path = tempfile.mkdtemp(prefix="theanine-cc-", dir=parent)
    os.chmod(path, 0o700)
    return path


def load_shared_object(blob: bytes, fallback_parent=None, what="C back end") -> ctypes.CDLL:
    """Load a shared object from its bytes: written to a private temporary file, opened,
    then deleted (the mapping keeps it alive; it is never unloaded, so its inode is not
    reused while loaded). Where the temporary directory is mounted noexec,
    ``fallback_parent`` (default: the cache directory's tmp) holds the file instead.
    RuntimeError naming ``what`` when it cannot be loaded."""
    if fallback_parent is None:
        fallback_parent = os.path.join(os.path.expanduser(_config().cache_dir), "tmp")
    error = None
    for parent in (None, fallback_parent):
        try:
            if parent is not None:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            directory = private_dir(parent)
        except OSError as e:
            error = e
            continue
        try:
            path = os.path.join(directory, "module.so")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            return ctypes.CDLL(path)
        except OSError as e:
            error = e
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"{what}: cannot load the compiled module ({error})")


def build(text: str, directory: str) -> str:
    """Compile ``text`` into a shared object in ``directory``; its path. RuntimeError on
    failure, with the command and the compiler's messages."""
    src = os.path.join(directory, "module.c")
    out = os.path.join(directory, "module.so")
    with open(src, "w") as f:
        f.write(text)
    cmd = compiler_command() + flags() + ["-o", out, src, "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"C back end: cannot run the C compiler ({e})\n  command: {shlex.join(cmd)}") from None
    if proc.returncode != 0 or not os.path.exists(out):
        messages = "\n".join((proc.stderr or proc.stdout or "").splitlines()[:40])
        raise RuntimeError(f"C back end: the C compiler failed (exit {proc.returncode})\n"
                           f"  command: {shlex.join(cmd)}\n{messages}")
    return out


def symbol_addresses(lib, symbols) -> dict:
    """{name: address} of ``symbols`` in the loaded library ``lib``; RuntimeError naming a missing one."""
    out = {}
    for name in symbols:
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise RuntimeError(f"C back end: symbol {name!r} was not found in the compiled module") from None
        out[name] = ctypes.cast(fn, ctypes.c_void_p).value
    return out


def compile_source(text: str, symbols, cache: DiskCache | None = None) -> dict:
    """Native addresses of ``symbols`` defined by the C source ``text`` (compiled with the
    system compiler, or taken from the on-disk cache; loaded once per process)."""
    with _lock:
        key = module_key(text)
        lib = _loaded.get(key)
        if lib is None:
            cache = cache if cache is not None else DiskCache()
            blob = cache.get("c", key)
            lib = None
            if blob is not None:
                try:
                    lib = load_shared_object(blob)
                except RuntimeError:  # an intact entry this machine cannot load: rebuild it
                    lib = None
            if lib is None:
                directory = private_dir()
                try:
                    with open(build(text, directory), "rb") as f:
                        blob = f.read()
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
                cache.put("c", key, blob)
                lib = load_shared_object(blob)
            _loaded[key] = lib
        return symbol_addresses(lib, symbols)
