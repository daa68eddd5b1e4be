"""SimpleRNN, LSTM and GRU over (batch, time, features) sequences, built on theanine.scan.

The input projection of every time step is one matrix product made before the
loop; each step of the scan adds only the recurrent product h . U. Gates are
laid out along the last axis of the kernels in Keras' order.
"""

from __future__ import annotations

import numpy as np

import theanine
import theanine.tensor as T
from theanine.nn import activations, initializers
from theanine.nn.layers.base import Layer
from theanine.nn.layers.core import _init_name


class _Recurrent(Layer):
    gates = 1

    def __init__(self, units, activation="tanh", return_sequences=False, go_backwards=False,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng, dtype):
        if len(input_shape) != 2 or input_shape[1] is None:
            raise ValueError(f"{self.name}: input_shape must be (time steps, features) with known "
                             f"features, got {input_shape}")
        n = self.gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[1], n), self.kernel_initializer, rng, dtype)
        recurrent = initializers_per_gate(self.recurrent_initializer, self.units, self.gates)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, n), recurrent, rng, dtype)
        self.bias = self.add_weight("bias", (n,), self.bias_initializer, rng, dtype)
        super().build(input_shape, rng, dtype)

    def compute_output_shape(self, input_shape):
        steps = input_shape[0]
        return (steps, self.units) if self.return_sequences else (self.units,)

    def initial_states(self, x):
        """The zero states, one (batch, units) matrix per state."""
        return [T.zeros((x.shape[0], self.units), dtype=self.kernel.dtype)]

    def step(self, projected, *states_and_kernel):
        """One time step: (the new states), the hidden state first."""
        raise NotImplementedError

    def call(self, x, training):
        projected = T.dot(x.dimshuffle(1, 0, 2), self.kernel) + self.bias   # (time, batch, gates*units)
        states = self.initial_states(x)
        outputs, _ = theanine.scan(self.step, sequences=[projected], outputs_info=states,
                                   non_sequences=[self.recurrent_kernel],
                                   go_backwards=self.go_backwards, return_list=True,
                                   name=self.name)
        h = outputs[0]
        return h.dimshuffle(1, 0, 2) if self.return_sequences else h[-1]

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.name_of(self.activation),
                "return_sequences": self.return_sequences, "go_backwards": self.go_backwards,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "recurrent_initializer": _init_name(self.recurrent_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


def initializers_per_gate(init, units, gates):
    """``init`` applied to each gate's (units, units) block separately, so an orthogonal
    recurrent kernel is orthogonal per gate."""
    fn = initializers.get(init)

    def per_gate(shape, rng, dtype):
        return np.concatenate([fn((units, units), rng, dtype) for _ in range(gates)], axis=1)
    return per_gate


class SimpleRNN(_Recurrent):
    """A fully connected recurrent layer: h_t = activation(x_t W + h_{t-1} U + b). Returns
    the last h (or every h with ``return_sequences``)."""

    def step(self, projected, h, U):
        return [self.activation(projected + T.dot(h, U))]


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997) with gates i, f, c, o:
    c_t = f * c_{t-1} + i * tanh(.), h_t = o * tanh(c_t). The forget gate's bias starts
    at 1 (``unit_forget_bias``)."""

    gates = 4

    def __init__(self, units, recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        if self.unit_forget_bias:
            b = self.bias.get_value()
            b[self.units:2 * self.units] = 1.0
            self.bias.set_value(b)

    def initial_states(self, x):
        return super().initial_states(x) * 2   # h and c

    def step(self, projected, h, c, U):
        n, gate = self.units, self.recurrent_activation
        z = projected + T.dot(h, U)
        i, f = gate(z[:, :n]), gate(z[:, n:2 * n])
        candidate, o = self.activation(z[:, 2 * n:3 * n]), gate(z[:, 3 * n:])
        c = f * c + i * candidate
        return [o * self.activation(c), c]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.name_of(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., 2014) with gates z (update) and r (reset):
    h_t = z * h_{t-1} + (1 - z) * tanh(x_t W_h + (r * h_{t-1}) U_h + b_h)."""

    gates = 3

    def __init__(self, units, recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)

    def step(self, projected, h, U):
        n, gate = self.units, self.recurrent_activation
        zr = projected[:, :2 * n] + T.dot(h, U[:, :2 * n])
        z, r = gate(zr[:, :n]), gate(zr[:, n:])
        candidate = self.activation(projected[:, 2 * n:] + T.dot(r * h, U[:, 2 * n:]))
        return [z * h + (1 - z) * candidate]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.name_of(self.recurrent_activation)}
