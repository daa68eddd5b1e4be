"""LLVM object code linked into shared libraries, which a new process loads without LLVM.

Importing llvmlite's binding and starting its JIT costs a new process about 40 ms,
more than everything else a warm start does. So the object code the LLVM back end
emits (position-independent) is also linked by the system C compiler into a shared
library, in a background thread, and stored in the on-disk cache (kind
``llvm-so``) under ``library_key``: a hash of the IR text, the llvmlite version
(which fixes the LLVM version), the host CPU's model name and feature flags as
``/proc/cpuinfo`` gives them, and the optimisation level. A later process computes
that key without LLVM and, on a hit, loads the library with ctypes, as the C back
end does.

Linking takes about 30 ms of one core per module. It runs beside the caller, and at
exit the process waits for the queue at most ``EXIT_WAIT`` seconds; what is left is
linked by a later process that compiles the same module. Where there is no
``/proc/cpuinfo`` or no working C compiler, nothing is linked and every process uses
the JIT. ``config.shared_libraries = 'off'`` turns the whole mechanism off.
"""

from __future__ import annotations

import atexit
import functools
import os
import queue
import shutil
import subprocess
import threading

from theanine.compile.cache import DiskCache, cache_key

#: the cache kind of linked libraries
KIND = "llvm-so"
#: at most this many seconds of linking still queued delay the process's exit
EXIT_WAIT = 2.0
LINK_TIMEOUT = 120

_queue: queue.Queue = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def enabled() -> bool:
    """Whether shared libraries are used (``config.shared_libraries``)."""
    from theanine.configparser import config
    return config.shared_libraries == "on"


@functools.cache
def cpu_identity() -> str | None:
    """The first processor's model name and feature flags from ``/proc/cpuinfo``; None
    where there is none (the key of a library must name the CPU its code was made for)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    model = fields.get("model name") or fields.get("cpu model") or fields.get("cpu")
    flags = fields.get("flags") or fields.get("features")
    if not model or not flags:
        return None
    return f"{model}|{flags}"


def library_key(ir_text: str, *flags: str) -> str | None:
    """The cache key of the library linked from ``ir_text``'s object code made with
    ``flags`` (the llvmlite version, the optimisation level...), or None when libraries
    are off or the CPU cannot be named."""
    cpu = cpu_identity()
    if cpu is None or not enabled():
        return None
    return cache_key("llvm-shared-library", ir_text, cpu, *flags)


def load(key: str, symbols, cache: DiskCache) -> dict | None:
    """Addresses of ``symbols`` in the cached library ``key``, or None when it is not in
    the cache, cannot be loaded, or lacks a symbol (the JIT then serves the module)."""
    from theanine.codegen import cc
    blob = cache.get(KIND, key)
    if blob is None:
        return None
    try:
        return cc.symbol_addresses(cc.load_shared_object(blob, what="LLVM back end"), symbols)
    except RuntimeError:
        return None


def link_later(key: str, obj: bytes, cache: DiskCache) -> None:
    """Queue ``obj`` to be linked into the library ``key`` and stored in ``cache``."""
    global _worker
    with _worker_lock:
        _queue.put((key, obj, cache))
        if _worker is None:
            _worker = threading.Thread(target=_work, name="theanine-link", daemon=True)
            _worker.start()


def wait(timeout: float | None = None) -> bool:
    """Wait until every queued library is linked (at most ``timeout`` seconds); whether
    the queue is empty."""
    with _worker_lock:
        if _worker is None:
            return True
        done = threading.Event()
        _queue.put(done)
    return done.wait(timeout)


def _forget_parent_queue():
    """In a forked child: the parent's queue and thread are not this process's."""
    global _queue, _worker, _worker_lock
    _queue, _worker, _worker_lock = queue.Queue(), None, threading.Lock()


atexit.register(wait, EXIT_WAIT)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_queue)


def _work():
    while True:
        item = _queue.get()
        if isinstance(item, threading.Event):
            item.set()
            continue
        key, obj, cache = item
        try:
            library = link(obj)
        except RuntimeError:
            continue
        if library is not None:
            cache.put(KIND, key, library)


def link(obj: bytes) -> bytes | None:
    """The bytes of a shared library linked from the object code ``obj`` by the system C
    compiler, or None when it cannot be run or fails."""
    from theanine.codegen import cc
    directory = cc.private_dir()
    try:
        src, out = os.path.join(directory, "module.o"), os.path.join(directory, "module.so")
        with open(src, "wb") as f:
            f.write(obj)
        try:
            proc = subprocess.run(cc.compiler_command() + ["-shared", "-Wl,-z,noexecstack", "-o", out, src, "-lm"],
                                  capture_output=True, timeout=LINK_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0 or not os.path.exists(out):
            return None
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
