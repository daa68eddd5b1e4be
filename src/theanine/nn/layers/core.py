"""Dense, Activation, Flatten, Reshape and Dropout."""

from __future__ import annotations

import numpy as np

import theanine.tensor as T
from theanine.nn import activations
from theanine.nn.layers.base import Layer
from theanine.tensor.random import RandomStreams


class Dense(Layer):
    """A fully connected layer: activation(x . kernel + bias), over the last axis of x."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Dense: units must be positive, got {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape, rng, dtype):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the size of the last input axis must be known")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer, rng, dtype)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer, rng, dtype)
        super().build(input_shape, rng, dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training):
        y = T.dot(x, self.kernel)
        return self.activation(y + self.bias if self.use_bias else y)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.name_of(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


class Activation(Layer):
    """An activation function on its own: relu, sigmoid, tanh, softmax, ..."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.name_of(self.activation)}


class Flatten(Layer):
    """Flattens every axis but the batch axis: (batch, a, b, ...) -> (batch, a * b * ...)."""

    def compute_output_shape(self, input_shape):
        return (None if None in input_shape else int(np.prod(input_shape)),)

    def call(self, x, training):
        return x.flatten(2)


class Reshape(Layer):
    """Reshapes each example to ``target_shape`` (the batch axis is kept)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)

    def compute_output_shape(self, input_shape):
        return self.target_shape

    def call(self, x, training):
        return x.reshape((x.shape[0],) + self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """While training, zeroes each input with probability ``rate`` and scales the rest by
    1 / (1 - rate) (inverted dropout); at prediction and evaluation it is the identity."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate, self.seed = float(rate), seed

    def build(self, input_shape, rng, dtype):
        seed = self.seed if self.seed is not None else int(rng.integers(2 ** 63))
        self.streams = RandomStreams(seed)
        super().build(input_shape, rng, dtype)

    def call(self, x, training):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = self.streams.binomial(x.shape, p=keep, dtype=x.dtype)
        return x * mask * np.asarray(1.0 / keep, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _init_name(init):
    return init if isinstance(init, str) else getattr(init, "__name__", None)
