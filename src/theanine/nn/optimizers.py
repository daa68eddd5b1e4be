"""Gradient-descent optimizers in Theano's style: ``opt(params, grads) -> updates``.

Each optimizer returns a list of (shared variable, new value) pairs to pass
to ``theanine.function(..., updates=...)``, including the updates of its own
state (momenta, running averages), which it keeps in new shared variables.
Called without ``params`` and ``grads`` it returns the optimizer configured
with the given hyper-parameters, for ``Sequential.compile``::

    updates = adam(params, grads, lr=1e-3)          # Theano style
    model.compile(optimizer=sgd(lr=0.1, momentum=0.9), loss="mse")
    model.compile(optimizer="adam", loss="mse")     # by name, default settings

The update rules are those of Keras; each docstring gives its formula.
"""

from __future__ import annotations

import functools

import numpy as np

import theanine
import theanine.tensor as T


def _configured(fn, params, grads, settings):
    """``fn`` with its hyper-parameters bound, when called without params and grads."""
    if params is None and grads is None:
        return functools.partial(fn, **settings)
    if params is None or grads is None:
        raise TypeError(f"{fn.__name__}: give both params and grads, or neither")
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise ValueError(f"{fn.__name__}: {len(params)} params but {len(grads)} grads")
    return None


def _const(value, like):
    """``value`` as a constant of ``like``'s dtype (keeps float32 parameters float32)."""
    return T.constant(np.asarray(value, dtype=like.dtype))


def _slot(param, name, fill=0.0):
    """A shared variable shaped like ``param``, for an optimizer's per-parameter state."""
    value = param.get_value(borrow=True)
    return theanine.shared(np.full(value.shape, fill, dtype=value.dtype),
                           name=f"{param.name or 'param'}_{name}")


def _update(param, value):
    return param, T.cast(value, param.dtype)


def sgd(params=None, grads=None, lr=0.01, momentum=0.0, nesterov=False):
    """Stochastic gradient descent: p -= lr * g; with momentum m, the velocity
    v = m * v - lr * g, then p += v (nesterov: p += m * v - lr * g)."""
    settings = dict(lr=lr, momentum=momentum, nesterov=nesterov)
    configured = _configured(sgd, params, grads, settings)
    if configured:
        return configured
    updates = []
    for p, g in zip(params, grads):
        step = -_const(lr, p) * g
        if momentum:
            v = _slot(p, "velocity")
            new_v = _const(momentum, p) * v + step
            updates.append(_update(v, new_v))
            step = _const(momentum, p) * new_v + step if nesterov else new_v
        updates.append(_update(p, p + step))
    return updates


def adagrad(params=None, grads=None, lr=0.01, epsilon=1e-7):
    """Adagrad: a += g**2, p -= lr * g / (sqrt(a) + epsilon)."""
    configured = _configured(adagrad, params, grads, dict(lr=lr, epsilon=epsilon))
    if configured:
        return configured
    updates = []
    for p, g in zip(params, grads):
        a = _slot(p, "accumulator")
        new_a = a + T.sqr(g)
        updates += [_update(a, new_a),
                    _update(p, p - _const(lr, p) * g / (T.sqrt(new_a) + _const(epsilon, p)))]
    return updates


def rmsprop(params=None, grads=None, lr=0.001, rho=0.9, epsilon=1e-7):
    """RMSprop: a = rho * a + (1 - rho) * g**2, p -= lr * g / (sqrt(a) + epsilon)."""
    configured = _configured(rmsprop, params, grads, dict(lr=lr, rho=rho, epsilon=epsilon))
    if configured:
        return configured
    updates = []
    for p, g in zip(params, grads):
        a = _slot(p, "mean_square")
        new_a = _const(rho, p) * a + _const(1 - rho, p) * T.sqr(g)
        updates += [_update(a, new_a),
                    _update(p, p - _const(lr, p) * g / (T.sqrt(new_a) + _const(epsilon, p)))]
    return updates


def adam(params=None, grads=None, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam (Kingma and Ba, 2014): at step t, m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g**2,
    p -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)."""
    settings = dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    configured = _configured(adam, params, grads, settings)
    if configured:
        return configured
    if not params:
        return []
    dtype = params[0].dtype
    t = theanine.shared(np.asarray(0.0, dtype=dtype), name="adam_step")
    new_t = t + 1
    updates = [_update(t, new_t)]
    b1, b2 = _const(beta_1, t), _const(beta_2, t)
    rate = _const(lr, t) * T.sqrt(1 - b2 ** new_t) / (1 - b1 ** new_t)
    for p, g in zip(params, grads):
        m, v = _slot(p, "m"), _slot(p, "v")
        new_m = _const(beta_1, p) * m + _const(1 - beta_1, p) * g
        new_v = _const(beta_2, p) * v + _const(1 - beta_2, p) * T.sqr(g)
        step = T.cast(rate, p.dtype) * new_m / (T.sqrt(new_v) + _const(epsilon, p))
        updates += [_update(m, new_m), _update(v, new_v), _update(p, p - step)]
    return updates


_BY_NAME = {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


def get(optimizer):
    """The optimizer named ``optimizer`` with its default settings, or ``optimizer`` itself
    if callable (a function ``(params, grads) -> updates``)."""
    if callable(optimizer):
        return optimizer
    try:
        return _BY_NAME[str(optimizer).lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(sorted(_BY_NAME))}") from None
