"""Freed memory kept for reuse: glibc's malloc thresholds.

A compiled function allocates its intermediates and results on every call and
frees them before the next one. With glibc's defaults, blocks of a few hundred
KiB and more are mapped fresh from the kernel and returned to it when freed
(or the heap is trimmed), so every call pays for page faults and zeroing of the
same memory again: about a third of the time of the RNN training step of the
benchmarks. ``keep_freed_memory`` raises the size below which malloc serves
blocks from its heap to 32 MiB and the amount of free heap it keeps to 64 MiB.
It runs once per process, when native code is first loaded, unless
``config.malloc_tuning`` is 'off'; on a C library other than glibc it does
nothing. The cost: a process may hold up to 64 MiB of freed memory.
"""

from __future__ import annotations

import ctypes
import functools

#: blocks smaller than this come from the heap, not from fresh mappings
MMAP_THRESHOLD = 32 << 20
#: free memory at the top of the heap kept, not returned to the kernel
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds as the module says (once); whether they were set."""
    from theanine.configparser import config
    if config.malloc_tuning != "on":
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: mallopt's parameters differ elsewhere
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
