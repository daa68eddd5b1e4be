"""Where ``x[index]`` lies in ``x``'s memory: the host side of indexing in mode 'cuda'.

A Subtensor's index entries (``idx_list``: slices, integers, new axes, an ellipsis,
integer arrays and boolean masks) and their run-time values are turned, on the host,
into a ``Placement``: a byte ``offset`` from ``x``'s first element, the result's
dimensions as (size, byte stride) pairs, and, when the index has arrays, one *gathered*
dimension whose positions are listed in ``table`` (byte offsets, int64) instead of being
a stride apart. The device then reads or writes the elements where the placement says:
a view when there is no table, a gather or scatter kernel otherwise.

The result's order of dimensions is NumPy's: the dimensions of the broadcast index
arrays replace the first array's dimension when the array entries (integers among them
count) are adjacent, and come first otherwise. Bounds are checked here, with NumPy's
messages, so the device never reads out of range.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Placement:
    """The elements of ``x[index]``: ``offset`` (bytes from x's first element), ``dims``
    ((size, byte stride) per dimension of the gathered layout), ``axis`` (which of
    ``dims`` is gathered through ``table``, whose size it has; None without arrays),
    ``table`` (int64 byte offsets, or None) and ``shape`` (the result's NumPy shape: the
    gathered dimension unfolded into the broadcast shape of the index arrays)."""

    offset: int
    dims: tuple
    axis: int | None
    table: np.ndarray | None
    shape: tuple

    @property
    def layout_shape(self) -> tuple:
        """The sizes of ``dims``."""
        return tuple(n for n, _ in self.dims)

    @property
    def strides(self) -> tuple:
        """The byte strides of ``dims`` (0 for the gathered dimension)."""
        return tuple(s for _, s in self.dims)


def _check_bounds(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``values`` (integers) as int64 with negative ones counted from the end; NumPy's
    IndexError for the first out of range."""
    if values.dtype.kind == "u":
        bad = values >= size
    else:
        bad = (values < -size) | (values >= size)
    if bad.any():
        raise IndexError(f"index {values[bad].flat[0]} is out of bounds for axis {axis} with size {size}")
    out = values.astype(np.int64)
    return np.where(out < 0, out + size, out)


def _expand(idx_list, values, ndim):
    """The entries as (kind, value) with masks split into one array per dimension they
    index, the ellipsis replaced by full slices and trailing full slices added."""
    it = iter(values)
    entries = []
    for entry in idx_list:
        kind = entry[0]
        if kind == "s":
            entries.append(("s", tuple(int(next(it)) if present else None for present in entry[1:])))
        elif kind in ("i", "a"):
            entries.append((kind, next(it)))
        elif kind == "b":
            entries.append(("b", np.asarray(next(it))))
        else:
            entries.append((kind, None))
    consumed = sum(v.ndim if k == "b" else 1 for k, v in entries if k in ("s", "i", "a", "b"))
    if consumed > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {consumed} were indexed")
    fill = [("s", (None, None, None))] * (ndim - consumed)
    at = next((k for k, (kind, _) in enumerate(entries) if kind == "e"), len(entries))
    entries = entries[:at] + fill + entries[at + 1:]
    return [e for e in entries if e[0] != "e"]


def place(shape, strides, idx_list, values) -> Placement:
    """Where ``x[index]`` lies, for ``x`` of ``shape`` and byte ``strides`` and a
    Subtensor's ``idx_list`` with the run-time ``values`` of its index inputs."""
    shape, strides = tuple(int(n) for n in shape), tuple(int(s) for s in strides)
    entries = _expand(idx_list, values, len(shape))
    has_arrays = any(kind in ("a", "b") for kind, _ in entries)
    offset, dim = 0, 0
    slots = []                # per result position: (size, stride), or 'array' for an array entry
    arrays, array_strides = [], []
    for kind, value in entries:
        if kind == "n":
            slots.append((1, 0))
        elif kind == "s":
            n, s = shape[dim], strides[dim]
            start, stop, step = value
            if step == 0:
                raise ValueError("slice step cannot be zero")
            start, stop, step = slice(start, stop, step).indices(n)
            length = len(range(start, stop, step))
            if length:
                offset += start * s
            slots.append((length, s * step))
            dim += 1
        elif kind == "i" and not has_arrays:
            offset += int(_check_bounds(np.asarray(value), shape[dim], dim)) * strides[dim]
            dim += 1
        elif kind == "b":
            mask = value
            for k, n in enumerate(mask.shape):
                if shape[dim + k] != n:
                    raise IndexError(f"boolean index did not match indexed array along axis {dim + k}; size "
                                     f"of axis is {shape[dim + k]} but size of corresponding boolean axis is {n}")
            for k, positions in enumerate(np.nonzero(mask)):
                arrays.append(positions.astype(np.int64))
                array_strides.append(strides[dim + k])
            slots.append("array")
            dim += mask.ndim
        else:                 # an integer array, or an integer beside arrays
            array = np.asarray(value)
            if array.dtype.kind not in "iu":
                raise IndexError(f"arrays used as indices must be of integer type, got {array.dtype}")
            arrays.append(_check_bounds(array, shape[dim], dim))
            array_strides.append(strides[dim])
            slots.append("array")
            dim += 1
    if not arrays:
        return Placement(offset, tuple(slots), None, None, tuple(n for n, _ in slots))
    try:
        broadcast = np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError:
        shapes = " ".join(str(a.shape) for a in arrays)
        raise IndexError("shape mismatch: indexing arrays could not be broadcast together with "
                         f"shapes {shapes}") from None
    table = np.zeros(broadcast, dtype=np.int64)
    for array, stride in zip(arrays, array_strides):
        table += array * stride
    table = np.ascontiguousarray(table.reshape(-1))
    positions = [k for k, slot in enumerate(slots) if slot == "array"]
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    basic = [slot for slot in slots if slot != "array"]
    axis = positions[0] if adjacent else 0
    dims = basic[:axis] + [(table.size, 0)] + basic[axis:]
    result = [n for n, _ in basic[:axis]] + list(broadcast) + [n for n, _ in basic[axis:]]
    return Placement(offset, tuple(dims), axis, table, tuple(result))


def layout_rank(idx_list, ndim, index_ndims) -> int:
    """The number of ``dims`` of the Placement of indexing a rank-``ndim`` array with
    ``idx_list`` whose index inputs have ranks ``index_ndims`` (known before run time)."""
    ranks = iter(index_ndims)
    consumed, slots, arrays = 0, 0, False
    for entry in idx_list:
        kind = entry[0]
        if kind == "n":
            slots += 1
        elif kind == "s":
            consumed, slots = consumed + 1, slots + 1
            for _ in range(sum(entry[1:])):
                next(ranks)
        elif kind == "b":
            consumed, arrays = consumed + next(ranks), True
        elif kind in ("i", "a"):
            consumed, arrays = consumed + 1, arrays or kind == "a"
            next(ranks)
    return slots + (ndim - consumed) + (1 if arrays else 0)


def last_writes(table: np.ndarray) -> np.ndarray | None:
    """The positions of ``table`` to keep so that each offset is written once, by its last
    occurrence (NumPy's assignment through repeated indices); None when none repeats."""
    if np.unique(table).size == table.size:
        return None
    reversed_first = np.unique(table[::-1], return_index=True)[1]
    return np.sort(table.size - 1 - reversed_first)
