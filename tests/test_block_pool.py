"""The pool of large result blocks (``theanine.compile.memory.empty``).

Results of 32 MiB and more reuse the blocks of dead results instead of faulting in
fresh memory. What must hold: a block is reused only once no array over it is alive
(views included), so results never alias; sizes that round to the same grain share
blocks; the idle bytes stay under the cap; small results and malloc_tuning=off are
plain ``np.empty``; and a compiled function's large results obey all of this.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.compile import memory

BIG = memory.POOL_MIN_BYTES // 8  # float64 elements in the smallest pooled block


@pytest.fixture(autouse=True)
def empty_pool():
    memory.release_pool()
    yield
    memory.release_pool()


def block_of(array):
    """The address of the pooled block under ``array``."""
    return ctypes.addressof(array.base)


def test_a_dead_result_block_is_reused():
    a = memory.empty((BIG,), np.float64)
    first_address = block_of(a)
    del a
    gc.collect()
    assert memory._pool.idle_bytes >= memory.POOL_MIN_BYTES
    b = memory.empty((BIG,), np.float64)
    assert b.ctypes.data == first_address
    assert memory._pool.idle_bytes == 0


def test_a_block_under_a_live_view_is_not_reused():
    a = memory.empty((BIG,), np.float64)
    a[:] = 1.0
    view = a[10:20].reshape(2, 5)[:, 1:]  # a view of a view of a view
    del a
    gc.collect()
    b = memory.empty((BIG,), np.float64)
    b[:] = 2.0
    np.testing.assert_array_equal(view, 1.0)
    assert not np.shares_memory(view, b)


def test_shapes_and_dtypes_of_the_same_grain_share_blocks():
    a = memory.empty((BIG + 1,), np.float64)  # 8 bytes over a grain boundary
    address = a.ctypes.data
    del a
    gc.collect()
    b = memory.empty((BIG * 2 + 3,), np.float32)  # 12 bytes over it: the same rounded size
    assert b.ctypes.data == address
    assert b.shape == (BIG * 2 + 3,) and b.dtype == np.float32 and b.flags.c_contiguous
    assert b.flags.writeable


def test_small_results_do_not_use_the_pool():
    a = memory.empty((10, 3), np.int32)
    assert a.shape == (10, 3) and a.dtype == np.int32
    del a
    gc.collect()
    assert memory._pool.idle_bytes == 0


def test_idle_bytes_stay_under_the_cap(monkeypatch):
    monkeypatch.setattr(memory, "POOL_BYTES", 2 * memory.POOL_MIN_BYTES)
    arrays = [memory.empty((BIG,), np.float64) for _ in range(4)]
    del arrays
    gc.collect()
    assert memory._pool.idle_bytes == 2 * memory.POOL_MIN_BYTES
    assert len(memory._pool.idle) == 2
    assert memory.release_pool() == 2 * memory.POOL_MIN_BYTES
    assert memory._pool.idle_bytes == 0


def test_large_results_of_a_compiled_function_never_alias():
    x = T.vector("x")
    f = theanine.function([x], T.exp(-x * x) * 2.0 + 1.0)
    data = np.linspace(-2, 2, BIG)
    expected = np.exp(-data * data) * 2.0 + 1.0
    first = f(data)
    second = f(data[::-1].copy())
    assert not np.shares_memory(first, second)
    np.testing.assert_allclose(first, expected)
    np.testing.assert_allclose(second, expected[::-1])
    address = block_of(first)
    del first
    gc.collect()
    third = f(data)  # takes the block the first result left
    assert block_of(third) == address
    np.testing.assert_allclose(third, expected)
    np.testing.assert_allclose(second, expected[::-1])
