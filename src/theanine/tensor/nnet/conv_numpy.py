"""NumPy kernels of 2-d convolution (NCHW) and its gradients, by im2col and matmul.

The input's windows are gathered into one matrix per group (im2col, a strided
view copied once), and each convolution, or gradient, is one batched matmul
over the groups. The gradient in the input scatters the columns back with one
vectorised addition per filter tap. Everything is a cross-correlation;
``filter_flip`` flips the filters on the way in (and the filter gradient on
the way out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class ConvParams:
    """Padding mode, stride, flip, dilation and groups of a convolution."""

    border_mode: object        # 'full', 'half' or a (rows, columns) pair of paddings
    subsample: tuple
    filter_flip: bool
    filter_dilation: tuple
    num_groups: int

    def effective(self, axis, k):
        """The extent of a dilated filter of size ``k`` along spatial ``axis``."""
        return (k - 1) * self.filter_dilation[axis] + 1

    def pad(self, axis, k):
        """The padding on each side along spatial ``axis`` for filters of size ``k``."""
        if self.border_mode == "full":
            return self.effective(axis, k) - 1
        if self.border_mode == "half":
            return self.effective(axis, k) // 2
        return self.border_mode[axis]

    def out_size(self, axis, n, k):
        """The output size along spatial ``axis`` for an input of size n and filters of size k
        (ints or symbolic scalars)."""
        return (n + 2 * self.pad(axis, k) - self.effective(axis, k)) // self.subsample[axis] + 1


def _check_sizes(p, h, w, kh, kw):
    """(rows, columns) of the output; ValueError when the filters do not fit."""
    ho, wo = p.out_size(0, h, kh), p.out_size(1, w, kw)
    for axis, (n, k, size) in enumerate(((h, kh, ho), (w, kw, wo))):
        if size < 1:
            raise ValueError(f"conv2d: the filters span {p.effective(axis, k)} "
                             f"{('rows', 'columns')[axis]} (with dilation), more than the "
                             f"{n + 2 * p.pad(axis, k)} of the padded input")
    return ho, wo


def _check_channels(p, n_channels, filters_channels, n_filters):
    g = p.num_groups
    if n_channels % g or n_filters % g:
        raise ValueError(f"conv2d: num_groups={g} must divide the {n_channels} input channels and "
                         f"the {n_filters} filters")
    if n_channels != filters_channels * g:
        raise ValueError(f"conv2d: the input has {n_channels} channels but the filters expect "
                         f"{filters_channels * g} (filters.shape[1]={filters_channels} * num_groups={g})")


def _columns(x, p, kh, kw, ho, wo):
    """im2col: (groups, batch * ho * wo, channels_per_group * kh * kw), a fresh array."""
    n, c = x.shape[:2]
    ph, pw = p.pad(0, kh), p.pad(1, kw)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    (sh, sw), (dh, dw) = p.subsample, p.filter_dilation
    win = sliding_window_view(x, (p.effective(0, kh), p.effective(1, kw)), axis=(2, 3))
    win = win[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]
    g = p.num_groups
    win = win.reshape(n, g, c // g, ho, wo, kh, kw)
    return win.transpose(1, 0, 3, 4, 2, 5, 6).reshape(g, n * ho * wo, (c // g) * kh * kw)


def _grad_matrix(gz, g):
    """The output gradient (batch, filters, ho, wo) as (groups, batch * ho * wo, filters_per_group)."""
    n, f, ho, wo = gz.shape
    return gz.reshape(n, g, f // g, ho, wo).transpose(1, 0, 3, 4, 2).reshape(g, n * ho * wo, f // g)


def _flip(w, p):
    return w[:, :, ::-1, ::-1] if p.filter_flip else w


def _check_output_grad(gz, n, f, ho, wo, what):
    if gz.shape != (n, f, ho, wo):
        raise ValueError(f"conv2d: the output gradient has shape {gz.shape}, but the convolution's "
                         f"output has shape {(n, f, ho, wo)} ({what})")


def conv2d(x, w, p: ConvParams):
    """The convolution of x (batch, channels, rows, columns) with filters w."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    _check_channels(p, c, cg, f)
    ho, wo = _check_sizes(p, h, wd, kh, kw)
    g = p.num_groups
    dtype = np.result_type(x, w)
    cols = _columns(x.astype(dtype, copy=False), p, kh, kw, ho, wo)
    wm = _flip(w, p).astype(dtype, copy=False).reshape(g, f // g, cg * kh * kw).transpose(0, 2, 1)
    out = np.matmul(cols, wm)  # (groups, batch * ho * wo, filters_per_group)
    return np.ascontiguousarray(out.reshape(g, n, ho, wo, f // g).transpose(1, 0, 4, 2, 3)).reshape(n, f, ho, wo)


def conv2d_grad_weights(x, gz, filter_size, p: ConvParams):
    """The gradient of conv2d in its filters, of spatial size ``filter_size``."""
    n, c, h, wd = x.shape
    kh, kw = filter_size
    f = gz.shape[1]
    g = p.num_groups
    if c % g or f % g:
        raise ValueError(f"conv2d: num_groups={g} must divide the {c} input channels and the {f} filters")
    ho, wo = _check_sizes(p, h, wd, kh, kw)
    _check_output_grad(gz, n, f, ho, wo, f"input shape {x.shape}, filter size {tuple(filter_size)}")
    dtype = np.result_type(x, gz)
    cols = _columns(x.astype(dtype, copy=False), p, kh, kw, ho, wo)
    gw = np.matmul(cols.transpose(0, 2, 1), _grad_matrix(gz.astype(dtype, copy=False), g))
    gw = gw.transpose(0, 2, 1).reshape(f, c // g, kh, kw)
    return np.ascontiguousarray(_flip(gw, p))


def conv2d_grad_inputs(w, gz, input_size, p: ConvParams):
    """The gradient of conv2d in its input, of spatial size ``input_size``."""
    f, cg, kh, kw = w.shape
    h, wd = input_size
    n = gz.shape[0]
    g = p.num_groups
    if f % g:
        raise ValueError(f"conv2d: num_groups={g} does not divide the {f} filters")
    ho, wo = _check_sizes(p, h, wd, kh, kw)
    _check_output_grad(gz, n, f, ho, wo, f"input size {tuple(input_size)}, filter shape {w.shape}")
    dtype = np.result_type(w, gz)
    wm = _flip(w, p).astype(dtype, copy=False).reshape(g, f // g, cg * kh * kw)
    cols = np.matmul(_grad_matrix(gz.astype(dtype, copy=False), g), wm)
    # (groups, batch, ho, wo, cg, kh, kw) -> (batch, groups, cg, kh, kw, ho, wo)
    cols = cols.reshape(g, n, ho, wo, cg, kh, kw).transpose(1, 0, 4, 5, 6, 2, 3)
    ph, pw = p.pad(0, kh), p.pad(1, kw)
    (sh, sw), (dh, dw) = p.subsample, p.filter_dilation
    # Rows and columns past the last window get no gradient; keep room for them.
    padded = np.zeros((n, g, cg, max(h + 2 * ph, (ho - 1) * sh + p.effective(0, kh)),
                       max(wd + 2 * pw, (wo - 1) * sw + p.effective(1, kw))), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, :, i * dh: i * dh + (ho - 1) * sh + 1: sh,
                   j * dw: j * dw + (wo - 1) * sw + 1: sw] += cols[:, :, :, i, j]
    return np.ascontiguousarray(padded[:, :, :, ph: ph + h, pw: pw + wd]).reshape(n, g * cg, h, wd)
