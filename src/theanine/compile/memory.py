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

Blocks of 32 MiB and more are mapped fresh by any malloc: for them, ``empty``
keeps the blocks of dead results in a pool (at most ``POOL_BYTES`` idle) and
hands them out again. Faulting in a fresh 80 MB result took 9 ms of an 18 ms
elementwise call over 10 million float64 elements. A pooled block is reused
only once every array over it is gone, so results never alias.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref
from collections import OrderedDict

import numpy as np

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


#: results of at least this many bytes come from the pool of large blocks
POOL_MIN_BYTES = MMAP_THRESHOLD
#: idle bytes the pool keeps at most; the oldest idle blocks go first
POOL_BYTES = 1 << 30
#: block sizes are rounded up to this, so results of nearly equal sizes share blocks
_POOL_GRAIN = 2 << 20


class _BlockPool:
    """Idle large blocks (uint8 arrays) by size, oldest first."""

    def __init__(self):
        self.idle = OrderedDict()  # id(block) -> block
        self.idle_bytes = 0
        self.lock = threading.Lock()

    def take(self, nbytes: int):
        size = -(-nbytes // _POOL_GRAIN) * _POOL_GRAIN
        with self.lock:
            for key, block in self.idle.items():
                if block.size == size:
                    del self.idle[key]
                    self.idle_bytes -= size
                    return block
        return np.empty(size, dtype=np.uint8)

    def give_back(self, block):
        with self.lock:
            self.idle[id(block)] = block
            self.idle_bytes += block.size
            while self.idle_bytes > POOL_BYTES:
                _, oldest = self.idle.popitem(last=False)
                self.idle_bytes -= oldest.size

    def clear(self):
        with self.lock:
            self.idle.clear()
            self.idle_bytes = 0


_pool = _BlockPool()


def empty(shape, dtype):
    """A new C-contiguous array like ``np.empty(shape, dtype)``; a large one reuses the block
    of a dead result when the pool has one of its size (see the module's docstring)."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes < POOL_MIN_BYTES or not keep_freed_memory():
        return np.empty(shape, dtype=dtype)
    block = _pool.take(nbytes)
    # The result's base is a ctypes array over the block, made for this result alone.
    # Views of the result keep it alive (NumPy collapses chains of views only as far
    # as the first base that is not an ndarray), so it dies with the last of them.
    exporter = (ctypes.c_byte * nbytes).from_buffer(block)
    weakref.finalize(exporter, _pool.give_back, block).atexit = False
    return np.ndarray(shape, dtype=dtype, buffer=exporter)


def release_pool() -> int:
    """Return the pool's idle blocks to the system; how many bytes were idle."""
    idle = _pool.idle_bytes
    _pool.clear()
    return idle
