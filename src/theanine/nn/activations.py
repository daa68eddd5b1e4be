"""Activation functions by name, as symbolic functions of a tensor."""

from __future__ import annotations

import theanine.tensor as T


def linear(x):
    """The identity."""
    return x


def leaky_relu(x):
    """max(x, 0.2 x): ReLU with a small slope for negative inputs."""
    return T.nnet.relu(x, alpha=0.2)


def softmax(x):
    """Softmax over the last axis."""
    return T.nnet.softmax(x, axis=-1)


_BY_NAME = {
    "linear": linear,
    "relu": T.nnet.relu,
    "leaky_relu": leaky_relu,
    "sigmoid": T.nnet.sigmoid,
    "tanh": T.tanh,
    "softmax": softmax,
    "softplus": T.nnet.softplus,
    "elu": T.nnet.elu,
    "selu": T.nnet.selu,
    "hard_sigmoid": T.nnet.hard_sigmoid,
}


def get(activation):
    """The activation named ``activation`` (None: linear), or ``activation`` if callable."""
    if activation is None:
        return linear
    if callable(activation):
        return activation
    try:
        return _BY_NAME[activation]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def name_of(activation):
    """The name under which ``get`` finds ``activation`` (for saving), or None."""
    if activation is None or isinstance(activation, str):
        return activation or "linear"
    for name, f in _BY_NAME.items():
        if f is activation:
            return name
    return None
