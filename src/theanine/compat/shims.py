"""Theano's own signatures for the few functions whose theanine counterparts differ.

Each shim translates the Theano call into a theanine one and nothing more.
"""

from __future__ import annotations

from theanine.configparser import config as theanine_config
from theanine.printing import to_dot
from theanine.tensor.nnet.conv import conv2d as _conv2d
from theanine.tensor.random.streams import RandomStreams
from theanine.tensor.signal.pool import pool_2d as _pool_2d


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max", ds=None,
            st=None, padding=None):
    """Theano's pool_2d: also takes the old names ds (window), st (stride) and padding, and
    ignore_border defaults to False as in Theano."""
    ws = ws if ws is not None else ds
    if ws is None:
        raise TypeError("pool_2d: give the window size ws (or Theano's older ds)")
    stride = stride if stride is not None else st
    pad = padding if padding is not None else pad
    return _pool_2d(input, ws, ignore_border=bool(ignore_border), stride=stride, pad=tuple(pad), mode=mode)


def max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
    """theano.tensor.signal.downsample.max_pool_2d, the old name of pool_2d."""
    return pool_2d(input, ds, ignore_border=ignore_border, stride=st, pad=padding, mode=mode)


def conv2d_old(input, filters, filter_shape=None, image_shape=None, border_mode="valid",
               subsample=(1, 1), **kwargs):
    """theano.tensor.nnet.conv.conv2d, the old interface: image_shape is the input's shape."""
    return _conv2d(input, filters, input_shape=image_shape, filter_shape=filter_shape,
                   border_mode=border_mode, subsample=subsample)


class MRG_RandomStreams(RandomStreams):
    """theano.sandbox.rng_mrg.MRG_RandomStreams: theanine's streams, taking (and ignoring)
    Theano's ``nstreams`` argument. The numbers differ from Theano's MRG31k3p generator."""

    def uniform(self, size=None, low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None):
        return super().uniform(size, low, high, ndim, dtype)

    def normal(self, size=None, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
               truncate=False):
        if truncate:
            raise NotImplementedError("MRG_RandomStreams.normal: truncate=True is not supported")
        return super().normal(size, avg, std, ndim, dtype)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None):
        return super().binomial(size, n, p, ndim, dtype)

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64", nstreams=None):
        return super().multinomial(size, n, pvals, ndim, dtype)


def pydotprint(fct, outfile=None, format="png", **kwargs):
    """theano.printing.pydotprint: the graph drawn by Graphviz's dot into ``outfile``
    (default 'graph.<format>'); Theano's styling options are accepted and ignored."""
    outfile = outfile or f"graph.{format}"
    to_dot(fct, file=outfile, format=format)
    return outfile


class TheanoConfig:
    """theano.config: theanine's settings (floatX, mode, ...), plus Theano's other settings
    (device, optimizer, ...), which are kept but have no effect."""

    THEANO_ONLY = {
        "device": "cpu",
        "force_device": False,
        "optimizer": "fast_run",
        "linker": "cvm",
        "allow_gc": True,
        "exception_verbosity": "low",
        "warn_float64": "ignore",
        "on_unused_input": "raise",
        "openmp": False,
        "deterministic": "default",
        "print_active_device": True,
        "traceback__limit": 8,
    }

    def __init__(self):
        object.__setattr__(self, "_extra", dict(self.THEANO_ONLY))

    def __getattr__(self, name):
        try:
            return getattr(theanine_config, name)
        except AttributeError:
            extra = object.__getattribute__(self, "_extra")
            if name in extra:
                return extra[name]
            raise AttributeError(f"theano.config has no setting {name!r} under theanine") from None

    def __setattr__(self, name, value):
        try:
            setattr(theanine_config, name, _theanine_value(name, value))
        except AttributeError:
            self._extra[name] = value

    def apply_flags(self, flags):
        """Apply a THEANO_FLAGS string ('floatX=float32,device=cpu,...')."""
        for item in filter(None, (s.strip() for s in flags.split(","))):
            name, _, value = item.partition("=")
            setattr(self, name.strip().replace(".", "__"), value.strip())


def _theanine_value(name, value):
    """Theano's mode names that mean the same thing in theanine."""
    if name == "mode" and value in ("Mode", "FAST_RUN"):
        return "FAST_RUN"
    if name == "mode" and value in ("DebugMode", "DEBUG_MODE"):
        return "py"
    return value
