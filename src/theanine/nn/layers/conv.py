"""Conv2D, MaxPool2D and AveragePooling2D on NCHW batches: (batch, channels, rows, columns)."""

from __future__ import annotations

import theanine.tensor as T
from theanine.nn import activations
from theanine.nn.layers.base import Layer
from theanine.nn.layers.core import _init_name
from theanine.tensor.signal.pool import pool_2d


def _pair(value, what, layer):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{layer}: {what} must be a positive int or a pair of them, got {value!r}")
    return pair


def _padding(padding, layer):
    if padding not in ("valid", "same"):
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {padding!r}")
    return padding


def _size(n, k, s, padding):
    """Output size along one axis: 'valid' windows fit inside, 'same' gives ceil(n / s)."""
    if n is None:
        return None
    return (n - 1) // s + 1 if padding == "same" else (n - k) // s + 1


class Conv2D(Layer):
    """2-d convolution (cross-correlation, as in Keras) of ``filters`` kernels of
    ``kernel_size``, with ``strides``, 'valid' or 'same' padding ('same' needs odd kernel
    sizes), a bias per filter and an activation."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _pair(strides, "strides", "Conv2D")
        self.padding = _padding(padding, "Conv2D")
        if padding == "same" and not all(k % 2 for k in self.kernel_size):
            raise ValueError(f"Conv2D: padding='same' needs odd kernel sizes, got {self.kernel_size}")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape, rng, dtype):
        if len(input_shape) != 3 or input_shape[0] is None:
            raise ValueError(f"{self.name}: input_shape must be (channels, rows, columns) with "
                             f"known channels, got {input_shape}")
        self.kernel = self.add_weight("kernel", (self.filters, input_shape[0]) + self.kernel_size,
                                      self.kernel_initializer, rng, dtype)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer, rng, dtype)
        super().build(input_shape, rng, dtype)

    def compute_output_shape(self, input_shape):
        _, h, w = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (self.filters, _size(h, kh, sh, self.padding), _size(w, kw, sw, self.padding))

    def call(self, x, training):
        y = T.nnet.conv2d(x, self.kernel, border_mode="half" if self.padding == "same" else "valid",
                          subsample=self.strides, filter_flip=False)
        if self.use_bias:
            y = y + self.bias.dimshuffle("x", 0, "x", "x")
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "activation": activations.name_of(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


class _Pool2D(Layer):
    mode = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.pool_size = _pair(pool_size, "pool_size", name)
        self.strides = self.pool_size if strides is None else _pair(strides, "strides", name)
        self.padding = _padding(padding, name)
        if padding == "same" and any(s < p for s, p in zip(self.strides, self.pool_size)):
            raise ValueError(f"{name}: padding='same' needs strides at least the pool size")

    def compute_output_shape(self, input_shape):
        *lead, h, w = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        return tuple(lead) + (_size(h, ph, sh, self.padding), _size(w, pw, sw, self.padding))

    def call(self, x, training):
        # ignore_border=False keeps the partial windows at the edges, which is 'same' here
        return pool_2d(x, self.pool_size, ignore_border=self.padding == "valid",
                       stride=self.strides, mode=self.mode)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class MaxPool2D(_Pool2D):
    """The maximum over each ``pool_size`` window of the last two axes, moved by ``strides``
    (default: the pool size)."""

    mode = "max"


class AveragePooling2D(_Pool2D):
    """The mean over each ``pool_size`` window of the last two axes (windows cut by the
    border average only what they cover)."""

    mode = "average_exc_pad"


MaxPooling2D = MaxPool2D
