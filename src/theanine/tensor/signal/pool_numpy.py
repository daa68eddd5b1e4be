"""NumPy kernels of 2-d pooling over the last two axes, and of its gradients.

The input is padded (and, with ignore_border=False, extended so that the
partial windows at the border are whole) with a value that cannot change the
result: -inf (the dtype's minimum for integers) for max, 0 for the sums.
Windows are then a strided view reduced at once; gradients scatter back with
one vectorised addition per window offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class PoolParams:
    """Window size, stride, padding and border handling of a 2-d pooling."""

    ws: tuple
    stride: tuple
    pad: tuple
    ignore_border: bool

    def out_size(self, axis, n, maximum=max):
        """The output size along axis 0 (rows) or 1 (columns) for an input of size ``n``
        (an int, or a symbolic scalar with ``maximum`` the symbolic maximum), as Theano."""
        ws, st, pad = self.ws[axis], self.stride[axis], self.pad[axis]
        if self.ignore_border:
            return maximum((n + 2 * pad - ws) // st + 1, 0)
        if st >= ws:
            return (n - 1) // st + 1
        return maximum((n - 1 - ws + st) // st, 0) + 1

    def out_shape(self, shape):
        return tuple(shape[:-2]) + (self.out_size(0, shape[-2]), self.out_size(1, shape[-1]))


def _fill_value(dtype, mode):
    if mode != "max":
        return 0
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _padded(x, p: PoolParams, out_hw, fill):
    """x padded by p.pad on both sides of its last two axes and extended so that every
    window of the output fits: the frame the windows are taken from."""
    h, w = x.shape[-2:]
    (ph, pw), (sh, sw), (kh, kw) = p.pad, p.stride, p.ws
    rows = max(h + 2 * ph, (out_hw[0] - 1) * sh + kh)
    cols = max(w + 2 * pw, (out_hw[1] - 1) * sw + kw)
    if (rows, cols) == (h, w):
        return x
    frame = np.full(x.shape[:-2] + (rows, cols), fill, dtype=x.dtype)
    frame[..., ph: ph + h, pw: pw + w] = x
    return frame


def _windows(frame, p: PoolParams, out_hw):
    """The view (..., out_rows, out_cols, ws_rows, ws_cols) of the windows of ``frame``."""
    (sh, sw), (ho, wo) = p.stride, out_hw
    win = sliding_window_view(frame, p.ws, axis=(-2, -1))
    return win[..., : (ho - 1) * sh + 1: sh, : (wo - 1) * sw + 1: sw, :, :]


def _counts(p: PoolParams, hw, out_hw, include_pad):
    """How many input (or, with include_pad, input and padding) cells each window covers:
    (out_rows, out_cols), as Theano counts them for averages."""
    sizes = []
    for axis in (0, 1):
        n, pad, st, ws = hw[axis], p.pad[axis], p.stride[axis], p.ws[axis]
        starts = np.arange(out_hw[axis]) * st
        ends = np.minimum(starts + ws, n + 2 * pad)
        if not include_pad:
            starts, ends = np.maximum(starts, pad), np.minimum(ends, n + pad)
        sizes.append(ends - starts)
    return np.outer(*sizes)


def _scatter(contrib, p: PoolParams, x_shape, frame_hw):
    """The sum, into an array of ``x_shape``, of per-window values ``contrib``
    (..., out_rows, out_cols, ws_rows, ws_cols) at the cells each window covers."""
    ho, wo, kh, kw = contrib.shape[-4:]
    (sh, sw), (ph, pw) = p.stride, p.pad
    frame = np.zeros(x_shape[:-2] + tuple(frame_hw), dtype=contrib.dtype)
    for i in range(kh):
        for j in range(kw):
            frame[..., i: i + (ho - 1) * sh + 1: sh, j: j + (wo - 1) * sw + 1: sw] += contrib[..., i, j]
    h, w = x_shape[-2:]
    return np.ascontiguousarray(frame[..., ph: ph + h, pw: pw + w])


def pool(x, p: PoolParams, mode):
    """Pooling of ``x`` over its last two axes: 'max', 'sum', 'average_inc_pad' or
    'average_exc_pad'."""
    out_hw = (p.out_size(0, x.shape[-2]), p.out_size(1, x.shape[-1]))
    if 0 in out_hw or 0 in x.shape[:-2]:
        return np.zeros(x.shape[:-2] + out_hw, dtype=x.dtype)
    win = _windows(_padded(x, p, out_hw, _fill_value(x.dtype, mode)), p, out_hw)
    if mode == "max":
        return np.ascontiguousarray(win.max(axis=(-2, -1)))
    total = win.sum(axis=(-2, -1), dtype=x.dtype)
    if mode == "sum":
        return total
    return total / _counts(p, x.shape[-2:], out_hw, mode == "average_inc_pad").astype(x.dtype)


def max_pool_grad(x, maxout, gz, p: PoolParams):
    """The gradient of max pooling in x: each output's gradient goes to every cell of its
    window equal to the maximum (summed over overlapping windows)."""
    out_hw = maxout.shape[-2:]
    if 0 in out_hw or x.size == 0:
        return np.zeros(x.shape, dtype=gz.dtype)
    frame = _padded(x, p, out_hw, _fill_value(x.dtype, "max"))
    win = _windows(frame, p, out_hw)
    contrib = np.where(win == maxout[..., None, None], gz[..., None, None], 0).astype(gz.dtype)
    return _scatter(contrib, p, x.shape, frame.shape[-2:])


def max_pool_grad_grad(x, maxout, gg, p: PoolParams):
    """The adjoint of max_pool_grad in its output gradient: for each window, the sum of
    ``gg`` (shaped like x) over the cells equal to the window's maximum."""
    out_hw = maxout.shape[-2:]
    if 0 in out_hw or x.size == 0:
        return np.zeros(maxout.shape, dtype=gg.dtype)
    mask = _windows(_padded(x, p, out_hw, _fill_value(x.dtype, "max")), p, out_hw) == maxout[..., None, None]
    values = _windows(_padded(gg, p, out_hw, 0), p, out_hw)
    return np.ascontiguousarray(np.where(mask, values, 0).sum(axis=(-2, -1), dtype=gg.dtype))


def average_pool_grad(x_shape, gz, p: PoolParams, mode):
    """The gradient of sum or average pooling in its input, of shape ``x_shape``."""
    out_hw = gz.shape[-2:]
    if 0 in out_hw or 0 in x_shape:
        return np.zeros(x_shape, dtype=gz.dtype)
    if mode != "sum":
        gz = gz / _counts(p, x_shape[-2:], out_hw, mode == "average_inc_pad").astype(gz.dtype)
    (sh, sw), (kh, kw) = p.stride, p.ws
    frame_hw = (max(x_shape[-2] + 2 * p.pad[0], (out_hw[0] - 1) * sh + kh),
                max(x_shape[-1] + 2 * p.pad[1], (out_hw[1] - 1) * sw + kw))
    contrib = np.broadcast_to(gz[..., None, None], gz.shape + (kh, kw))
    return _scatter(contrib, p, tuple(x_shape), frame_hw)
