"""BatchNorm: normalises each feature (or channel) with the batch's statistics while
training and with running averages of them afterwards."""

from __future__ import annotations

import theanine.tensor as T
from theanine.nn.layers.base import Layer
from theanine.tensor.nnet import bn


class BatchNorm(Layer):
    """Batch normalization (Ioffe and Szegedy, 2015) over every axis but ``axis`` (1: the
    features of (batch, features) or the channels of NCHW images), followed by a learned
    scale (gamma) and shift (beta). Running means and variances are updated with
    running = momentum * running + (1 - momentum) * batch statistic at each training
    step, and used at prediction."""

    def __init__(self, axis=1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if axis < 1:
            raise ValueError(f"BatchNorm: axis must be a feature axis (>= 1; 0 is the batch), got {axis}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = center, scale

    def build(self, input_shape, rng, dtype):
        size = input_shape[self.axis - 1]
        if size is None:
            raise ValueError(f"{self.name}: the size of axis {self.axis} must be known")
        shape = (size,)
        self.gamma = self.add_weight("gamma", shape, "ones", rng, dtype, trainable=self.scale)
        self.beta = self.add_weight("beta", shape, "zeros", rng, dtype, trainable=self.center)
        self.running_mean = self.add_weight("running_mean", shape, "zeros", rng, dtype, trainable=False)
        self.running_var = self.add_weight("running_var", shape, "ones", rng, dtype, trainable=False)
        super().build(input_shape, rng, dtype)

    def _axes(self, x):
        return tuple(a for a in range(x.ndim) if a != self.axis)

    def apply(self, x, training):
        if not training:
            return self.call(x, training), []
        out, _, _, new_mean, new_var = bn.batch_normalization_train(
            x, self.gamma, self.beta, axes=self._axes(x), epsilon=self.epsilon,
            running_average_factor=1.0 - self.momentum,
            running_mean=self.running_mean, running_var=self.running_var)
        return out, [(self.running_mean, T.cast(new_mean, self.running_mean.dtype)),
                     (self.running_var, T.cast(new_var, self.running_var.dtype))]

    def call(self, x, training):
        if training:
            return self.apply(x, training)[0]
        return bn.batch_normalization_test(x, self.gamma, self.beta, self.running_mean,
                                           self.running_var, axes=self._axes(x), epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
