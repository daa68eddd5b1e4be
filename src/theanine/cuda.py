"""Arrays on an NVIDIA GPU: ``DeviceArray``, transfers, a caching allocator, availability.

``is_available()`` says whether a GPU can be used (False, never an exception, without
the CUDA runtime, a driver or a device). ``to_device(numpy_array)`` copies an array to
the device, ``DeviceArray.get()`` copies one back. A DeviceArray is a strided view of
device memory (shape, dtype, byte strides, device pointer), like a NumPy array; views
(``DeviceArray.view``) share memory with the array they come from.

Device memory comes from a caching pool: memory of an array that is no longer
referenced goes back to the pool and is reused for the next array of the same rounded
size, without ``cudaFree`` (which would synchronise the device). All work is issued on
the default stream, in order, so memory returned to the pool while a kernel still
reads it is only reused by work that runs after that kernel. When an allocation fails
the pool releases its cached memory and tries once more.
"""

from __future__ import annotations

import atexit
import math

import numpy as np

from theanine.codegen import cudart
from theanine.codegen.cudart import CudaError

__all__ = ["CudaError", "DeviceArray", "empty", "is_available", "synchronize", "to_device",
           "pool"]


def is_available() -> bool:
    """Whether a CUDA GPU can be used: the runtime loads, a driver answers, a device exists."""
    return cudart.device_count() > 0


def synchronize() -> None:
    """Wait for all work queued on the GPU (and raise any error it ended with)."""
    cudart.synchronize()


def round_size(nbytes: int) -> int:
    """The pool's size class of a request of ``nbytes`` bytes: a multiple of 512 bytes below
    1 MiB, of 1 MiB from there on."""
    step = 512 if nbytes < (1 << 20) else 1 << 20
    return max(step, -(-nbytes // step) * step)


class Block:
    """One allocation from a Pool; returned to it when no array refers to it any more."""

    __slots__ = ("ptr", "nbytes", "pool")

    def __init__(self, ptr, nbytes, pool):
        self.ptr, self.nbytes, self.pool = ptr, nbytes, pool

    def __del__(self):
        self.pool.release(self.ptr, self.nbytes)


class Pool:
    """A caching device allocator (see the module docstring). ``malloc`` and ``free`` are
    the raw allocation functions (cudart's by default)."""

    def __init__(self, malloc=None, free=None):
        self._malloc = malloc or (lambda nbytes: cudart.malloc(nbytes))
        self._free = free or (lambda ptr: cudart.free(ptr))
        self.cached = {}        # size class -> list of free device pointers
        self.cached_bytes = 0
        self.closed = False

    def allocate(self, nbytes: int) -> Block:
        """A block of at least ``nbytes`` (> 0) bytes."""
        size = round_size(nbytes)
        free = self.cached.get(size)
        if free:
            self.cached_bytes -= size
            return Block(free.pop(), size, self)
        try:
            ptr = self._malloc(size)
        except CudaError as e:
            if e.code != cudart.ERROR_MEMORY_ALLOCATION or not self.cached_bytes:
                raise
            self.release_cached()
            ptr = self._malloc(size)
        return Block(ptr, size, self)

    def release(self, ptr, size) -> None:
        """Take back a block's memory (called by Block.__del__)."""
        if self.closed:
            return
        self.cached.setdefault(size, []).append(ptr)
        self.cached_bytes += size

    def release_cached(self) -> None:
        """Return all cached memory to the device (cudaFree synchronises the device)."""
        cached, self.cached, self.cached_bytes = self.cached, {}, 0
        for ptrs in cached.values():
            for ptr in ptrs:
                self._free(ptr)

    def close(self) -> None:
        """Stop caching: at interpreter exit the runtime may already be gone."""
        self.closed = True


pool = Pool()
atexit.register(pool.close)


def c_strides(shape, itemsize) -> tuple:
    """The byte strides of a C-contiguous array of ``shape``."""
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def byte_extent(shape, strides, itemsize):
    """(lowest, highest + 1) byte offsets, relative to the first element, of the elements of
    an array with this shape and these strides; (0, 0) when it has no elements."""
    if any(n == 0 for n in shape):
        return 0, 0
    low = sum(s * (n - 1) for n, s in zip(shape, strides) if s < 0)
    high = sum(s * (n - 1) for n, s in zip(shape, strides) if s > 0)
    return low, high + itemsize


class DeviceArray:
    """A strided array in GPU memory: ``shape``, ``dtype`` (a NumPy dtype), ``strides``
    (bytes, as NumPy's), ``ptr`` (the device address of the first element) and ``base``
    (the Block that owns the memory; None for memory owned elsewhere).

    ``DeviceArray(shape, dtype)`` allocates a C-contiguous array from the pool;
    ``DeviceArray(shape, dtype, strides, ptr, base)`` describes existing memory.
    """

    __slots__ = ("shape", "dtype", "strides", "ptr", "base", "__weakref__")

    def __init__(self, shape, dtype, strides=None, ptr=None, base=None):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.strides = c_strides(self.shape, self.dtype.itemsize) if strides is None \
            else tuple(int(s) for s in strides)
        if len(self.strides) != len(self.shape):
            raise ValueError(f"DeviceArray: {len(self.strides)} strides for shape {self.shape}")
        if ptr is None:
            nbytes = math.prod(self.shape) * self.dtype.itemsize
            if strides is not None and nbytes:
                raise ValueError("DeviceArray: strides given without a pointer")
            base = pool.allocate(nbytes) if nbytes else None
            ptr = base.ptr if base is not None else 0
        self.ptr, self.base = int(ptr), base

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    def is_c_contiguous(self) -> bool:
        """Whether the elements are dense in row-major order (size-1 dimensions' strides
        do not matter)."""
        if self.size == 0:
            return True
        step = self.itemsize
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1:
                if s != step:
                    return False
                step *= n
        return True

    def view(self, shape, strides, offset=0) -> "DeviceArray":
        """The array of ``shape`` and byte ``strides`` (tuples of ints) starting ``offset``
        bytes after this one's first element, sharing its memory."""
        if len(shape) != len(strides):
            raise ValueError(f"DeviceArray.view: {len(strides)} strides for shape {shape}")
        return wrap(tuple(shape), self.dtype, tuple(strides), self.ptr + offset, self.base)

    def get(self) -> np.ndarray:
        """A new NumPy array with this array's values (waits for the work producing them)."""
        out = np.empty(self.shape, dtype=self.dtype)
        if out.size == 0:
            return out
        if self.is_c_contiguous():
            cudart.memcpy(out.ctypes.data, self.ptr, out.nbytes, cudart.DEVICE_TO_HOST)
            return out
        # a strided view: fetch the bytes it spans, then let NumPy apply the strides
        low, high = byte_extent(self.shape, self.strides, self.itemsize)
        span = np.empty(high - low, dtype=np.uint8)
        cudart.memcpy(span.ctypes.data, self.ptr + low, span.nbytes, cudart.DEVICE_TO_HOST)
        view = np.ndarray(self.shape, self.dtype, buffer=span, offset=-low, strides=self.strides)
        out[...] = view
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.get()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self):
        return (f"DeviceArray(shape={self.shape}, dtype={self.dtype}, strides={self.strides}, "
                f"ptr=0x{self.ptr:x})")


def wrap(shape, dtype, strides, ptr, base) -> DeviceArray:
    """A DeviceArray of parts already in their types (tuples of ints, a NumPy dtype, an int
    pointer), without the constructor's conversions and checks."""
    array = object.__new__(DeviceArray)
    array.shape, array.dtype, array.strides, array.ptr, array.base = shape, dtype, strides, ptr, base
    return array


def allocate(shape, dtype, strides, nbytes) -> DeviceArray:
    """A new array of ``nbytes`` bytes laid out as ``shape`` and ``strides`` (prepared by the
    caller, as ``wrap`` takes them)."""
    if not nbytes:
        return wrap(shape, dtype, strides, 0, None)
    block = pool.allocate(nbytes)
    return wrap(shape, dtype, strides, block.ptr, block)


def empty(shape, dtype) -> DeviceArray:
    """A new C-contiguous device array (values undefined)."""
    return DeviceArray(shape, dtype)


def to_device(array) -> DeviceArray:
    """A new C-contiguous device array with the values of ``array`` (anything
    ``numpy.asarray`` accepts)."""
    host = np.asarray(array)
    if not host.flags.c_contiguous:
        host = host.copy(order="C")
    out = DeviceArray(host.shape, host.dtype)
    if host.size:
        cudart.memcpy(out.ptr, host.ctypes.data, host.nbytes, cudart.HOST_TO_DEVICE)
    return out
