"""Weight initializers: functions ``(shape, rng, dtype) -> numpy array`` chosen by name.

Fan-in and fan-out follow Keras: for a matrix (inputs, units) they are its two
sizes; for convolution filters (filters, channels, rows, columns) each is
multiplied by the receptive field rows * columns.
"""

from __future__ import annotations

import numpy as np


def fans(shape):
    """(fan_in, fan_out) of a weight of ``shape``."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def zeros(shape, rng, dtype):
    """All zeros."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng, dtype):
    """All ones."""
    return np.ones(shape, dtype=dtype)


def uniform(shape, rng, dtype, limit=0.05):
    """Uniform on [-limit, limit) (Keras' RandomUniform: limit 0.05)."""
    return rng.uniform(-limit, limit, shape).astype(dtype)


def normal(shape, rng, dtype, stddev=0.05):
    """Normal with mean 0 and standard deviation ``stddev`` (Keras' RandomNormal)."""
    return rng.normal(0.0, stddev, shape).astype(dtype)


def glorot_uniform(shape, rng, dtype):
    """Uniform on [-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = fans(shape)
    return uniform(shape, rng, dtype, limit=np.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(shape, rng, dtype):
    """Normal with standard deviation sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return normal(shape, rng, dtype, stddev=np.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(shape, rng, dtype):
    """Uniform on [-l, l) with l = sqrt(6 / fan_in) (He et al., 2015), for ReLU layers."""
    return uniform(shape, rng, dtype, limit=np.sqrt(6.0 / fans(shape)[0]))


def he_normal(shape, rng, dtype):
    """Normal with standard deviation sqrt(2 / fan_in), for ReLU layers."""
    return normal(shape, rng, dtype, stddev=np.sqrt(2.0 / fans(shape)[0]))


def orthogonal(shape, rng, dtype):
    """A matrix with orthonormal rows or columns (the QR factor of a normal matrix), for
    recurrent weights; higher ranks are flattened to (shape[0], rest)."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the factorisation unique, hence the distribution uniform
    q = q if rows >= cols else q.T
    return q.reshape(shape).astype(dtype)


_BY_NAME = {f.__name__: f for f in (zeros, ones, uniform, normal, glorot_uniform, glorot_normal,
                                    he_uniform, he_normal, orthogonal)}
_BY_NAME.update(random_uniform=uniform, random_normal=normal)


def get(init):
    """The initializer named ``init`` (see ``names()``), or ``init`` itself if callable."""
    if callable(init):
        return init
    try:
        return _BY_NAME[init]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initializer {init!r}; known: {', '.join(names())}") from None


def names():
    """The initializer names ``get`` accepts."""
    return sorted(_BY_NAME)
