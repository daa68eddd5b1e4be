"""Convolution and pooling rewritten into ordinary tensor ops, in the native modes.

``Conv2d``, ``Conv2dGradWeights``, ``Conv2dGradInputs``, ``Pool``, ``MaxPoolGrad``,
``MaxPoolGradGrad`` and ``AveragePoolGrad`` have only a NumPy ``perform``. The native
modes' first phase, ``native`` (after ``grad`` has built the backward ops, before
canonicalize and fusion), replaces each by a graph of ops that the native schedule runs:
basic slices with steps, DimShuffle, Join, Reshape, Alloc, Set/IncSubtensor of basic
slices, elementwise ops and ``dot`` of matrices (BLAS GEMM).

Windows. A window of extent ``e`` (a dilated filter, or a pooling window) moved by
stride ``s`` over a frame of ``n`` cells has ``(n - e) // s + 1`` positions; the cells
of its tap at offset ``o``, one per position, are the slice ``o : o - (e - 1) : s``
(``o :: s`` when ``o = e - 1``). Those bounds do not depend on ``n``, so image sizes may
be symbolic.

Convolution (im2col). The taps of the zero-padded input, each viewed as (C, N, OH, OW)
and stacked on a new axis 1, make the contiguous column matrix (C * kh * kw, N * OH * OW).
The taps are stacked in reverse order when the filters are flipped (Theano's
convolution), so the filters are used as stored, reshaped to (F, C * kh * kw):

- conv2d: ``W @ cols``, reshaped to (F, N, OH, OW) and transposed to NCHW;
- gradient in the filters: ``dy @ cols.T`` with dy the output gradient as (F, N * OH * OW)
  (the columns are the forward's: merge computes them once), computed as
  ``(cols @ dy.T).T``, the faster orientation for BLAS;
- gradient in the input: half an im2col, over the filter columns only. dy, in
  (OH, OW, N) order, is spread on the padded input's columns, once per filter column j
  (views, shifted by j, of one zero-padded dy stacked into (F * kw, OH * columns * N));
  the filters as (C * kh, F * kw) times that matrix give, for each filter row i, a block
  (C, OH, columns, N) that is added into a zero frame at row i of every window, then the
  padding is cropped. kh additions of whole frame rows (runs of columns * N cells) instead
  of kh * kw of rows of OW; the product's inner dimension is F * kw rather than F.

With ``num_groups`` > 1 each group's product takes its block of rows; the products are
joined.

Pooling. The frame is the input padded (and, with ignore_border=False, extended to the
last partial window) with -inf for max, 0 otherwise. Max is separable: r, the elementwise
maximum of the kh row views (whole rows, (..., OH, frame columns)), then the maximum of
r's kw column views. Sum is the sum of the kh * kw tap views (fusion makes it one
kernel); averages divide the sum by the number of cells each window counts, the same sum
of taps over a frame of ones. The gradients add each tap's contribution into a zero
frame (``MaxPoolGrad``: the output gradient where the tap equals the window's maximum,
every tied maximum included, as in ``pool_numpy``). Windows that tile the input exactly
(stride = window, no padding, static sizes the window divides: the usual 2 x 2 pooling,
global pooling) need no taps: the gradients are elementwise ops over the input reshaped
to (..., OH, kh, OW, kw), each window's value broadcast over its tile, and windows of
more than MAX_TAPS taps are pooled by a reduction over the tiles. When the window maxima
are known to be the max pooling of the input, the tiled max gradient goes through r in
two passes: over r's tiles (..., OH, OW, kw), then along the input's rows.

Not lowered (the node keeps its ``perform``): filters whose rows and columns are not
static, windows of more than MAX_TAPS taps (except tiling pooling windows), dtypes other
than float32 and float64, ``num_groups`` > 1 with symbolic channel or filter counts, and
``ignore_border=False`` pooling of symbolic image sizes. Sizes that ``perform`` checks
and the lowered graph would not (a wrong size could broadcast) are checked by an
``Assert``; a check that fails at build time keeps the node as it is.
"""

from __future__ import annotations

import functools

import numpy as np

from theanine.graph.basic import Constant
from theanine.rewriting.engine import register_rewrite
from theanine.rewriting.lowering import (PHASE, Unlowerable, checked, eq, ge, product, size, sizes,
                                          static)
from theanine.tensor import math as tm
from theanine.tensor.basic import alloc, join
from theanine.tensor.nnet.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from theanine.tensor.shape import SpecifyShape, constant_entries, reshape, specify_shape
from theanine.tensor.signal.pool import AveragePoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool
from theanine.tensor.subtensor import inc_subtensor, set_subtensor

#: windows of more taps are not lowered: one view (and, in gradients, one IncSubtensor) per
#: tap makes the compiled function's code, and its compile time, grow with the window
MAX_TAPS = 64
_DTYPES = ("float32", "float64")



# --- sizes and checks ---------------------------------------------------------------------






def _plus(size, k):
    """size + k for a size (int or symbolic) and an int ``k``."""
    return size + k if static(size) or k == 0 else tm.add(size, np.int64(k))





def _same_shape(v, sizes, message):
    """``v`` checked to have the given sizes (ints or symbolic scalars), one per axis."""
    return checked(v, [eq(size(v, a), s) for a, s in enumerate(sizes)], message)


# --- frames and windows -------------------------------------------------------------------


def _inner(pads):
    """The slice of a frame axis that drops ``pads`` = (before, after) cells."""
    before, after = pads
    return slice(before or None, -after if after else None)


def _framed(x, fill, rows, cols):
    """``x`` inside a frame of ``fill`` around its last two axes: ``rows`` = (above, below)
    and ``cols`` = (left, right) cells added (``x`` itself when none are)."""
    if not any(rows + cols):
        return x
    dims = sizes(x)
    dims[-2], dims[-1] = _plus(dims[-2], sum(rows)), _plus(dims[-1], sum(cols))
    frame = alloc(np.array(fill, dtype=x.dtype), *dims)
    return set_subtensor(frame[..., _inner(rows), _inner(cols)], x)


def _zeros(dtype, dims):
    """Zeros of ``dtype`` and sizes ``dims`` (ints or symbolic scalars)."""
    return alloc(np.array(0, dtype=dtype), *dims)


def _zero_frame(x, dtype, rows, cols):
    """Zeros of ``dtype`` shaped like ``_framed(x, 0, rows, cols)``."""
    dims = sizes(x)
    dims[-2], dims[-1] = _plus(dims[-2], sum(rows)), _plus(dims[-1], sum(cols))
    return _zeros(dtype, dims)


def _cropped(frame, rows, cols):
    """``frame`` without the cells _framed added."""
    return frame[..., _inner(rows), _inner(cols)] if any(rows + cols) else frame


def _window_slice(offset, step, extent):
    """The cells at ``offset`` of every position of a window of ``extent`` moved by ``step``."""
    stop = offset - (extent - 1)
    return slice(offset or None, stop or None, step if step != 1 else None)


def _check_taps(kh, kw):
    """Unlowerable for a window of more than MAX_TAPS taps."""
    if kh * kw > MAX_TAPS:
        raise Unlowerable(f"a window of {kh} x {kw} taps (more than MAX_TAPS)")


def _taps(ws, stride, dilation=(1, 1), before=(Ellipsis,)):
    """For each tap (i, j) of a window of ``ws`` taps, in row-major order, the index of the
    frame cells at that tap of every window position: ``before`` (the index of the axes
    before the rows and columns; by default, rows and columns are the last two axes),
    then the rows' and the columns' slices."""
    (kh, kw), (sh, sw), (dh, dw) = ws, stride, dilation
    _check_taps(kh, kw)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    return [before + (_window_slice(i * dh, sh, eh), _window_slice(j * dw, sw, ew))
            for i in range(kh) for j in range(kw)]


def _scatter(frame, taps, values):
    """``frame`` with each value added at the cells of its tap."""
    for index, value in zip(taps, values):
        frame = inc_subtensor(frame[index], value)
    return frame


# --- convolution --------------------------------------------------------------------------


def _pair_entries(shape):
    """The two entries of a (rows, columns) shape vector: ints where known at build time."""
    return (constant_entries(shape) + [None, None])[:2]


def _filter_size(kh, kw):
    if not static(kh, kw):
        raise Unlowerable("the filters' rows and columns are not static")
    return kh, kw


def _conv_pads(p, kh, kw):
    ph, pw = p.pad(0, kh), p.pad(1, kw)
    return (ph, ph), (pw, pw)


def _fits(rows, cols, p, kh, kw):
    """The conditions that the dilated filters fit in a padded input of ``rows`` x ``cols``."""
    return [ge(_plus(rows, 2 * p.pad(0, kh)), p.effective(0, kh)),
            ge(_plus(cols, 2 * p.pad(1, kw)), p.effective(1, kw))]


def _columns(x, p, kh, kw):
    """im2col: (the column matrix (C * kh * kw, N * OH * OW), (N, OH, OW)). Row (c, i, j)
    holds the input cells that filter tap (c, i, j) multiplies, flip included."""
    x = checked(x, _fits(size(x, 2), size(x, 3), p, kh, kw),
                 "conv2d: the filters (with dilation) span more than the padded input")
    frame = _framed(x, 0, *_conv_pads(p, kh, kw)).dimshuffle(1, "x", 0, 2, 3)  # (C, 1, N, rows, cols)
    views = [frame[index] for index in _taps((kh, kw), p.subsample, p.filter_dilation)]
    if p.filter_flip:
        views.reverse()
    n, oh, ow = (size(views[0], a) for a in (2, 3, 4))
    stacked = join(1, *views) if len(views) > 1 else views[0]  # (C, taps, N, OH, OW)
    return reshape(stacked, (product(size(x, 1), kh * kw), product(n, oh, ow))), (n, oh, ow)


def _by_group(g, multiply, *operands):
    """``multiply`` of the operands ((matrix, rows per group) pairs), once per group on the
    group's block of rows of each, the results joined along the rows."""
    if g == 1:
        return multiply(*(m for m, _ in operands))
    return join(0, *[multiply(*(m[k * r:(k + 1) * r] for m, r in operands)) for k in range(g)])


def _group_sizes(g, *sizes):
    """Each size divided by the group count (which must divide it); sizes must be static
    when there are groups."""
    if g == 1:
        return sizes
    if not static(*sizes) or any(s % g for s in sizes):
        raise Unlowerable("groups need static channel and filter counts that they divide")
    return tuple(s // g for s in sizes)


def _output_gradient(gz, n, f, oh, ow):
    """The output gradient (N, F, OH, OW), checked, as the matrix (F, N * OH * OW)."""
    gz = _same_shape(gz, (n, f, oh, ow), "conv2d: the output gradient's shape does not match "
                                         "the convolution's output")
    return reshape(gz.dimshuffle(1, 0, 2, 3), (f, product(n, oh, ow)))


def _lower_conv2d(node):
    """conv2d(x, W) -> (W.reshape(F, -1) @ im2col(x)).reshape(F, N, OH, OW).transpose(1, 0, 2, 3)"""
    x, w = (tm.cast(v, node.outputs[0].dtype) for v in node.inputs)
    p = node.op.params
    f, cg, kh, kw = (size(w, a) for a in range(4))
    _filter_size(kh, kw)
    (fg,) = _group_sizes(p.num_groups, f)
    w = checked(w, [eq(size(x, 1), product(cg, p.num_groups))],
                 "conv2d: the input's channels do not match the filters' times num_groups")
    cols, (n, oh, ow) = _columns(x, p, kh, kw)
    wmat = reshape(w, (f, product(cg, kh * kw)))
    out = _by_group(p.num_groups, tm.dot, (wmat, fg), (cols, product(cg, kh * kw)))
    return reshape(out, (f, n, oh, ow)).dimshuffle(1, 0, 2, 3)


def _lower_conv2d_grad_weights(node):
    """conv2d_grad_weights(x, dy) -> (im2col(x) @ dy_matrix.T).T.reshape(F, C / groups, kh, kw)"""
    x, gz = (tm.cast(v, node.outputs[0].dtype) for v in node.inputs[:2])
    p = node.op.params
    kh, kw = _filter_size(*_pair_entries(node.inputs[2]))
    c, f = size(x, 1), size(gz, 1)
    cg, fg = _group_sizes(p.num_groups, c, f)
    cols, (n, oh, ow) = _columns(x, p, kh, kw)
    dy = _output_gradient(gz, n, f, oh, ow)
    gw = _by_group(p.num_groups, _filter_product, (dy, fg), (cols, product(cg, kh * kw)))
    return reshape(gw, (f, cg, kh, kw))


def _filter_product(dy, cols):
    """``dy @ cols.T``, computed as ``(cols @ dy.T).T``: with few filters and a long shared
    dimension (N * OH * OW), BLAS runs this orientation of the product 1.5 to 1.8 times
    faster."""
    return tm.dot(cols, dy.T).T


def _lower_conv2d_grad_inputs(node):
    """conv2d_grad_inputs(W, dy) -> crop(zeros + each filter row's block of
    W'.T @ column_spread(dy) added at that row's window cells), W' the (flipped) filters as
    (F * kw, C * kh)"""
    w, gz = (tm.cast(v, node.outputs[0].dtype) for v in node.inputs[:2])
    p = node.op.params
    shape = node.inputs[2]
    f, cg, kh, kw = (size(w, a) for a in range(4))
    _check_taps(*_filter_size(kh, kw))
    (fg,) = _group_sizes(p.num_groups, f)
    h, wd = (e if e is not None else shape[a] for a, e in enumerate(_pair_entries(shape)))
    gz = checked(gz, _fits(h, wd, p, kh, kw),
                  "conv2d: the filters (with dilation) span more than the padded input")
    n, c = size(gz, 0), product(cg, p.num_groups)
    rows, cols = _conv_pads(p, kh, kw)
    (sh, sw), (dh, dw) = p.subsample, p.filter_dilation
    # (C, rows, columns, N): a filter row's cells are whole rows of the frame, runs of columns * N
    frame = _zeros(w.dtype, (c, _plus(h, sum(rows)), _plus(wd, sum(cols)), n))
    row_cells = [(slice(None), _window_slice(i * dh, sh, p.effective(0, kh))) for i in range(kh)]
    oh = size(frame[row_cells[0]], 1)
    ow = size(frame[:, :, _window_slice(0, sw, p.effective(1, kw))], 2)
    dy = _same_shape(gz, (n, f, oh, ow), "conv2d: the output gradient's shape does not match "
                                         "the convolution's output").dimshuffle(1, 2, 3, 0)
    columns = size(frame, 2)
    spread = reshape(_column_spread(dy, columns, kw, sw, dw), (product(f, kw), product(oh, columns, n)))
    flipped = w[:, :, ::-1, ::-1] if p.filter_flip else w
    wmat = reshape(flipped.dimshuffle(0, 3, 1, 2), (product(f, kw), product(cg, kh)))
    blocks = _by_group(p.num_groups, lambda m, d: tm.dot(m.T, d), (wmat, product(fg, kw)),
                       (spread, product(fg, kw)))
    blocks = reshape(blocks, (c, kh, oh, columns, n))
    frame = _scatter(frame, row_cells, [blocks[:, i] for i in range(kh)])
    return frame[:, _inner(rows), _inner(cols)].dimshuffle(3, 0, 1, 2)


def _column_spread(dy, columns, kw, sw, dw):
    """dy (F, OH, OW, N) laid on the padded input's ``columns``, once per filter column j:
    (F, kw, OH, columns, N), copy j holding dy[:, :, ow] at column ow * sw + j * dw (where
    filter column j of window ow reads) and zeros elsewhere. The copies are views of one
    zero-padded dy, shifted by dw columns each."""
    reach = (kw - 1) * dw
    f, oh, _, n = sizes(dy)
    padded = _zeros(dy.dtype, (f, oh, _plus(columns, reach), n))
    # columns reach, reach + sw, ...: OW of them, as the windows in a frame `reach` wider
    padded = set_subtensor(padded[:, :, _window_slice(reach, sw, 2 * reach + 1)], dy)
    copies = [padded[:, :, reach - j * dw:(-j * dw) or None].dimshuffle(0, "x", 1, 2, 3)
              for j in range(kw)]
    return join(1, *copies) if kw > 1 else copies[0]


# --- pooling ------------------------------------------------------------------------------


def _pool_pads(x, p):
    """(rows, cols): the cells added above and below, left and right of ``x``'s last two
    axes so that every window of the output fits (padding, and with ignore_border=False
    the rest of the last partial window)."""
    (ph, pw), (sh, sw), (kh, kw) = p.pad, p.stride, p.ws
    if p.ignore_border:
        return (ph, ph), (pw, pw)
    h, w = x.type.shape[-2:]
    if not static(h, w):
        raise Unlowerable("ignore_border=False needs static image sizes")
    extra_h = max(0, (p.out_size(0, h) - 1) * sh + kh - h - 2 * ph)
    extra_w = max(0, (p.out_size(1, w) - 1) * sw + kw - w - 2 * pw)
    return (ph, ph + extra_h), (pw, pw + extra_w)


def _pool_views(x, p, fill):
    """(the taps' views of x's pooling frame filled with ``fill``, the taps, rows, cols)."""
    rows, cols = _pool_pads(x, p)
    taps = _taps(p.ws, p.stride)
    frame = _framed(x, fill, rows, cols)
    return [frame[index] for index in taps], taps, rows, cols


def _max_fill(dtype):
    """What max pooling pads with: it never wins."""
    return np.array(-np.inf, dtype=dtype)


def _row_then_column_max(x, p):
    """(r, m): r, for each window position's rows and every column of x's max-pooling frame,
    the maximum of those rows (..., OH, frame columns); m, the max pooling of x, the maximum
    of r over each window's columns. kh + kw taps in two passes rather than kh * kw in one,
    and the first pass runs along whole rows, the contiguous direction."""
    _check_taps(*p.ws)
    (kh, kw), (sh, sw) = p.ws, p.stride
    frame = _framed(x, _max_fill(x.dtype), *_pool_pads(x, p))
    r = functools.reduce(tm.maximum, [frame[..., _window_slice(i, sh, kh), :] for i in range(kh)])
    return r, functools.reduce(tm.maximum, [r[..., _window_slice(j, sw, kw)] for j in range(kw)])


def _same_expression(a, b) -> bool:
    """Whether ``a`` and ``b`` compute the same thing: the same variable, equal constants,
    or equal ops applied to inputs that compute the same things."""
    if a is b:
        return True
    if isinstance(a, Constant) or isinstance(b, Constant):
        return (isinstance(a, Constant) and isinstance(b, Constant) and a.type == b.type
                and np.array_equal(a.data, b.data))
    if a.owner is None or b.owner is None or a.index != b.index or a.owner.op != b.owner.op:
        return False
    return len(a.owner.inputs) == len(b.owner.inputs) and all(
        _same_expression(u, v) for u, v in zip(a.owner.inputs, b.owner.inputs))


def _is_max_pool_of(v, x, p) -> bool:
    """Whether ``v`` is this module's max pooling of ``x`` with parameters ``p`` (a Pool node
    is lowered before the gradient that reads its output)."""
    while v.owner is not None and isinstance(v.owner.op, SpecifyShape):
        v = v.owner.inputs[0]
    try:
        return _same_expression(v, _row_then_column_max(x, p)[1])
    except Unlowerable:
        return False


def _window_counts(x, p, include_pad, dtype):
    """The number of cells each window counts for an average, (OH, OW) in ``dtype``: the
    window sums of a frame of ones over the input (and over the padding, ``include_pad``)."""
    rows, cols = _pool_pads(x, p)
    h, w = size(x, x.ndim - 2), size(x, x.ndim - 1)
    one = np.array(1, dtype=dtype)
    if include_pad:
        (ph, pw) = p.pad
        ones = alloc(one, _plus(h, 2 * ph), _plus(w, 2 * pw))
        frame = _framed(ones, 0, (0, rows[1] - ph), (0, cols[1] - pw))
    else:
        frame = _framed(alloc(one, h, w), 0, rows, cols)
    return functools.reduce(tm.add, [frame[index] for index in _taps(p.ws, p.stride)])


def _divided_by_counts(v, x, p, mode):
    """``v`` (pooled values of x) divided by the window counts of an average ``mode``."""
    if mode == "sum":
        return v
    return tm.true_div(v, _window_counts(x, p, mode == "average_inc_pad", v.dtype))


def _tiled(x, p) -> bool:
    """Whether the windows tile x's last two axes exactly: stride = window, no padding,
    static sizes that the window divides."""
    h, w = x.type.shape[-2:]
    return (p.stride == p.ws and p.pad == (0, 0) and static(h, w)
            and h % p.ws[0] == 0 and w % p.ws[1] == 0)


def _tiles(x, p):
    """``x`` (…, OH * kh, OW * kw) as (…, OH, kh, OW, kw), for _tiled windows."""
    (kh, kw), (h, w) = p.ws, x.type.shape[-2:]
    return reshape(x, sizes(x)[:-2] + [h // kh, kh, w // kw, kw])


def _per_tile(v):
    """One value per window, (…, OH, OW), as (…, OH, 1, OW, 1): broadcast over each tile."""
    n = v.ndim
    return v.dimshuffle(*range(n - 1), "x", n - 1, "x")


def _tiled_out_sizes(x, p):
    """The pooled sizes of x, for _tiled windows."""
    (kh, kw), (h, w) = p.ws, x.type.shape[-2:]
    return sizes(x)[:-2] + [h // kh, w // kw]


def _lower_pool(node):
    """pool(x) -> the maximum over each window's rows, then over its columns, of strided views
    of x's frame; the sum or the average of the views of x's frame, one view per window tap;
    for windows of more taps that tile x, a reduction over x's tiles (slower than the views
    for small windows)"""
    x = node.inputs[0]
    p, mode = node.op.params, node.op.mode
    if p.ws[0] * p.ws[1] > MAX_TAPS and _tiled(x, p):
        tiles = _tiles(x, p)
        axes = (tiles.ndim - 3, tiles.ndim - 1)
        if mode == "max":
            return tm.max(tiles, axis=axes)
        total = tm.sum(tiles, axis=axes)
        if mode == "sum":
            return total
        return tm.true_div(total, np.array(p.ws[0] * p.ws[1], dtype=total.dtype))
    if mode == "max":
        return _row_then_column_max(x, p)[1]
    views = _pool_views(x, p, 0)[0]
    return _divided_by_counts(functools.reduce(tm.add, views), x, p, mode)


def _tiled_max_pool_grad_by_rows(x, maxout, gz, p, zero):
    """The max-pooling gradient for windows that tile ``x`` and the window maxima ``maxout``,
    in two elementwise passes over r, the maximum of each window's rows per column
    (_row_then_column_max): each column of a window gets gz where its r equals the window's
    maximum, then each cell gets its column's share where it equals its r. A cell gets gz
    exactly when it equals the window's maximum, as in one pass over x's tiles; but the
    first pass, the one with the short (kw) inner loop, runs over r, kh times smaller than
    x, and the second runs along x's rows."""
    (kh, kw), w = p.ws, x.type.shape[-1]
    r = _row_then_column_max(x, p)[0]
    *lead, oh, ow = _tiled_out_sizes(x, p)
    by_window = reshape(r, lead + [oh, ow, kw])
    per_window = [v.dimshuffle(*range(v.ndim), "x") for v in (maxout, gz)]
    by_column = reshape(tm.switch(tm.eq(by_window, per_window[0]), per_window[1], zero), lead + [oh, w])
    per_row = [v.dimshuffle(*range(v.ndim - 1), "x", v.ndim - 1) for v in (r, by_column)]
    by_row = tm.switch(tm.eq(reshape(x, lead + [oh, kh, w]), per_row[0]), per_row[1], zero)
    return reshape(by_row, sizes(x))


def _lower_max_pool_grad(node):
    """max_pool_grad(x, m, gz) -> crop(zeros + switch(tap view of x == m, gz, 0) added at each
    tap's window cells); for windows that tile x, an elementwise switch over x's tiles, in
    two passes (_tiled_max_pool_grad_by_rows) when m is known to be x's max pooling"""
    x, maxout, gz = node.inputs
    p = node.op.params
    zero = np.array(0, dtype=node.outputs[0].dtype)
    message = "MaxPoolGrad: the pooled value and the output gradient must have the pooled shape"
    if _tiled(x, p):
        pooled = maxout
        maxout, gz = (_same_shape(v, _tiled_out_sizes(x, p), message) for v in (maxout, gz))
        if _is_max_pool_of(pooled, x, p):
            return _tiled_max_pool_grad_by_rows(x, maxout, gz, p, zero)
        grad = tm.switch(tm.eq(_tiles(x, p), _per_tile(maxout)), _per_tile(gz), zero)
        return reshape(grad, sizes(x))
    views, taps, rows, cols = _pool_views(x, p, _max_fill(x.dtype))
    maxout, gz = (_same_shape(v, sizes(views[0]), message) for v in (maxout, gz))
    contributions = [tm.switch(tm.eq(v, maxout), gz, zero) for v in views]
    return _cropped(_scatter(_zero_frame(x, zero.dtype, rows, cols), taps, contributions), rows, cols)


def _lower_max_pool_grad_grad(node):
    """max_pool_grad_grad(x, m, gg) -> the sum over taps of switch(tap view of x == m, tap view
    of gg, 0)"""
    x, maxout, gg = node.inputs
    p = node.op.params
    gg = _same_shape(gg, sizes(x), "MaxPoolGradGrad: gg must have the input's shape")
    views = _pool_views(x, p, _max_fill(x.dtype))[0]
    maxout = _same_shape(maxout, sizes(views[0]),
                         "MaxPoolGradGrad: the pooled value must have the pooled shape")
    zero = np.array(0, dtype=node.outputs[0].dtype)
    values = _pool_views(gg, p, 0)[0]
    return functools.reduce(tm.add, [tm.switch(tm.eq(v, maxout), g, zero)
                                     for v, g in zip(views, values)])


def _lower_average_pool_grad(node):
    """average_pool_grad(x, gz) -> crop(zeros + gz (divided by the window counts) added at
    each tap's window cells); for windows that tile x, gz broadcast over x's tiles"""
    x, gz = node.inputs
    p, mode = node.op.params, node.op.mode
    message = "AveragePoolGrad: the output gradient must have the pooled shape"
    if _tiled(x, p):
        gz = _same_shape(gz, _tiled_out_sizes(x, p), message)
        if mode != "sum":  # every window counts all its kh * kw cells
            gz = tm.true_div(gz, np.array(p.ws[0] * p.ws[1], dtype=gz.dtype))
        *lead, oh, ow = _tiled_out_sizes(x, p)
        return reshape(alloc(_per_tile(gz), *lead, oh, p.ws[0], ow, p.ws[1]), sizes(x))
    rows, cols = _pool_pads(x, p)
    taps = _taps(p.ws, p.stride)
    frame = _zero_frame(x, node.outputs[0].dtype, rows, cols)
    gz = _divided_by_counts(_same_shape(gz, sizes(frame[taps[0]]), message), x, p, mode)
    return _cropped(_scatter(frame, taps, [gz] * len(taps)), rows, cols)


# --- the rewrites -------------------------------------------------------------------------


def _as_output(old, new):
    """``new`` with ``old``'s dtype and with every static size either one knows."""
    new = tm.cast(new, old.dtype)
    shape = tuple(a if a is not None else b for a, b in zip(old.type.shape, new.type.shape))
    return new if shape == new.type.shape else specify_shape(new, shape)


def _lowering(op_type, lower):
    """Register ``lower`` as the rewrite of the nodes of ``op_type`` (phase ``native``): the
    node's output is replaced by ``lower(node)`` when its data (every input and output but
    a shape vector) is float32 or float64 and ``lower`` does not give up."""

    def rewrite(fgraph, node):
        data = [v for v in node.inputs if v.ndim >= 2] + node.outputs
        if any(v.dtype not in _DTYPES for v in data):
            return None
        try:
            return [_as_output(node.outputs[0], lower(node))]
        except Unlowerable:
            return None

    rewrite.__name__ = f"lower_{op_type.__name__}"
    rewrite.__doc__ = lower.__doc__
    return register_rewrite(PHASE, tracks=(op_type,))(rewrite)


for _op_type, _lower in ((Conv2d, _lower_conv2d), (Conv2dGradWeights, _lower_conv2d_grad_weights),
                         (Conv2dGradInputs, _lower_conv2d_grad_inputs), (Pool, _lower_pool),
                         (MaxPoolGrad, _lower_max_pool_grad),
                         (MaxPoolGradGrad, _lower_max_pool_grad_grad),
                         (AveragePoolGrad, _lower_average_pool_grad)):
    _lowering(_op_type, _lower)
