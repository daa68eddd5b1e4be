"""RandomStreams: symbolic random draws with Theano's names.

Each draw gets its own random state, a shared variable (Philox key and
counter, see ``philox``) whose ``default_update`` is the state after the
draw, so a compiled function gives new numbers on every call without being
passed updates, and the same seed gives the same numbers in every mode.
"""

from __future__ import annotations

import numpy as np

from theanine.compile.sharedvalue import shared
from theanine.configparser import config
from theanine.graph.basic import Variable
from theanine.tensor.random import op as rop
from theanine.tensor.random.philox import STATE_WORDS, check_seed, initial_state
from theanine.tensor.shape import as_shape_vector, broadcast_shape, shape_i
from theanine.tensor.type import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, upcast
from theanine.tensor.variable import as_tensor_variable

#: Theano's default seed for MRG_RandomStreams
DEFAULT_SEED = 12345


class RandomStreams:
    """A source of symbolic random draws (``uniform``, ``normal``, ``binomial``,
    ``multinomial``, ``choice``, ``permutation``), reproducible from ``seed``.

    ``seed`` is an int in [0, 2**64), or None for one taken from the operating
    system. ``state_updates`` lists the (state, new state) pair of every draw;
    ``seed(s)`` restarts every draw made so far from seed ``s``.
    """

    def __init__(self, seed=DEFAULT_SEED):
        self._seed = _entropy_seed() if seed is None else check_seed(seed)
        self.state_updates = []

    def seed(self, seed=None):
        """Restart every draw of this stream from ``seed`` (None: a fresh one from the OS)."""
        self._seed = _entropy_seed() if seed is None else check_seed(seed)
        for k, (state, _) in enumerate(self.state_updates):
            state.set_value(initial_state(self._seed, k))

    def updates(self):
        """The (state, new state) update pairs of all draws (applied by default anyway)."""
        return list(self.state_updates)

    def _draw(self, op, size, params):
        k = len(self.state_updates)
        state = shared(initial_state(self._seed, k), name=f"random_state_{k}", shape=(STATE_WORDS,))
        new_state, sample = op.make_node(state, size, *params).outputs
        state.default_update = new_state
        self.state_updates.append((state, new_state))
        return sample

    def uniform(self, size=None, low=0.0, high=1.0, ndim=None, dtype=None):
        """Uniform samples on [low, high) of shape ``size`` (dtype: floatX, or wider params')."""
        dtype = _float_dtype("uniform", dtype, low, high)
        low, high = (_param(v, dtype) for v in (low, high))
        size = _size("uniform", size, ndim, {"low": low, "high": high})
        return self._draw(rop.Uniform(dtype, size.type.shape[0]), size, [low, high])

    def normal(self, size=None, avg=0.0, std=1.0, ndim=None, dtype=None):
        """Normal samples with mean ``avg`` and standard deviation ``std`` of shape ``size``."""
        dtype = _float_dtype("normal", dtype, avg, std)
        avg, std = (_param(v, dtype) for v in (avg, std))
        size = _size("normal", size, ndim, {"avg": avg, "std": std})
        return self._draw(rop.Normal(dtype, size.type.shape[0]), size, [avg, std])

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64"):
        """Successes in ``n`` trials of probability ``p`` (broadcast to ``size``); with n=1 and a
        float dtype, a dropout mask: ``binomial(x.shape, p=keep, dtype=x.dtype)``."""
        dtype = _any_dtype("binomial", dtype)
        n = _trials("binomial", n)
        p = _param(p, "float64")
        size = _size("binomial", size, ndim, {"p": p})
        return self._draw(rop.Binomial(dtype, size.type.shape[0]), size, [n, p])

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64"):
        """Counts of ``n`` draws from the categorical distribution of each row of ``pvals``
        (its last axis). The result has the shape ``size + (k,)`` with ``pvals`` broadcast to
        it; without ``size``, the shape of ``pvals`` (one draw per row)."""
        if pvals is None:
            raise TypeError("multinomial: give pvals, the category probabilities (last axis)")
        dtype = _any_dtype("multinomial", dtype)
        n = _trials("multinomial", n)
        pvals = _param(pvals, "float64")
        if pvals.ndim == 0:
            raise TypeError("multinomial: pvals must have at least one dimension (the categories)")
        batch = pvals.type.shape[:-1]
        if size is None:
            size = tuple(s if s is not None else shape_i(pvals, a) for a, s in enumerate(batch))
        size = _size_vector("multinomial", size, None if ndim is None else ndim - 1)
        _check_broadcast("multinomial", "pvals", pvals, size, trailing=1)
        return self._draw(rop.Multinomial(dtype, size.type.shape[0] + 1), size, [n, pvals])

    def choice(self, size=(), a=2, replace=True, p=None, ndim=None, dtype="int64"):
        """Samples from ``a`` (an int n: from range(n); a vector: from its entries), with or
        without replacement, uniform or with probabilities ``p``; shape ``size`` (None: ())."""
        if not isinstance(a, Variable) and np.ndim(a) == 0:
            n = _trials("choice", a)
            values = None
        else:
            values = as_tensor_variable(a)
            if values.ndim == 0:
                if values.dtype not in INT_DTYPES:
                    raise TypeError(f"choice: a must be an int or a vector, got {values.type}")
                n, values = _trials("choice", values), None
            elif values.ndim == 1:
                n = shape_i(values, 0)
            else:
                raise TypeError(f"choice: a must be an int or a vector, got {values.ndim} dimensions")
        dtype = _any_dtype("choice", dtype)
        size = _size_vector("choice", () if size is None else size, ndim)
        params = [n]
        if p is not None:
            p = _param(p, "float64")
            if p.ndim != 1:
                raise TypeError(f"choice: p must be a vector of probabilities, got {p.type}")
            params.append(p)
        op = rop.Choice("int64" if values is not None else dtype, size.type.shape[0],
                        replace=replace, weighted=p is not None)
        idx = self._draw(op, size, params)
        return idx if values is None else values[idx]

    def permutation(self, n, size=None, ndim=None, dtype="int64"):
        """Random permutations of range(n): one vector (``size`` None), or one per entry of
        ``size`` along a last axis of length n (Theano's ``permutation(size=..., n=...)``)."""
        n = _trials("permutation", n)
        dtype = _any_dtype("permutation", dtype)
        size = _size_vector("permutation", () if size is None else size,
                            None if ndim is None else ndim - 1)
        return self._draw(rop.Permutation(dtype, size.type.shape[0] + 1), size, [n])


def _entropy_seed():
    return int(np.random.SeedSequence().entropy) & ((1 << 64) - 1)


def _float_dtype(dist, dtype, *params):
    if dtype is None:
        floats = [v.dtype for v in params if isinstance(v, Variable) and v.dtype in FLOAT_DTYPES]
        return upcast(config.floatX, *floats)
    dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{dist}: dtype must be a float dtype ({', '.join(FLOAT_DTYPES)}), got {dtype}")
    return dtype


def _any_dtype(dist, dtype):
    dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
    if dtype not in ALL_DTYPES or dtype.startswith("complex"):
        raise TypeError(f"{dist}: unsupported dtype {dtype}")
    return dtype


def _param(value, dtype):
    """A parameter as a tensor; Python and NumPy values become constants of ``dtype``."""
    if isinstance(value, Variable):
        return as_tensor_variable(value)
    return as_tensor_variable(np.asarray(value, dtype=dtype))


def _trials(dist, n):
    """A number of trials (or of candidates) as an int64 scalar."""
    if isinstance(n, Variable):
        n = as_tensor_variable(n)
        if n.ndim != 0 or n.dtype not in INT_DTYPES:
            raise TypeError(f"{dist}: n must be an integer scalar, got {n.type}")
        from theanine.tensor.math import cast
        return n if n.dtype == "int64" else cast(n, "int64")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        hint = "; pass probabilities as p=..." if isinstance(n, float) else ""
        raise TypeError(f"{dist}: n must be an integer, got {n!r}{hint}")
    if n < 0:
        raise ValueError(f"{dist}: n must be >= 0, got {n}")
    return as_tensor_variable(np.int64(n))


def _size_vector(dist, size, ndim):
    vec = as_shape_vector(size, dist)
    length = vec.type.shape[0]
    if length is None:
        raise TypeError(f"{dist}: the number of entries of size must be known when the graph is "
                        f"built, got {vec.type}")
    if ndim is not None and ndim != length:
        raise ValueError(f"{dist}: ndim={ndim} does not match size, which has {length} entries")
    return vec


def _check_broadcast(dist, name, param, size, trailing=0):
    """Build-time check that ``param`` (minus ``trailing`` axes) broadcasts to ``size``."""
    from theanine.tensor.shape import constant_entries
    dims = param.type.shape[:param.ndim - trailing]
    target = constant_entries(size)
    if len(dims) > len(target):
        raise ValueError(f"{dist}: {name} has {len(dims)} dimensions, more than size ({len(target)})")
    for d, t in zip(reversed(dims), reversed(target)):
        if d is not None and t is not None and d not in (1, t):
            raise ValueError(f"{dist}: {name} of shape {param.type.shape} cannot be broadcast to "
                             f"the size {tuple(target)}")


def _size(dist, size, ndim, params):
    """The size vector: given, or (None) the broadcast shape of the params."""
    if size is None:
        shapes = [tuple(s if s is not None else shape_i(v, a) for a, s in enumerate(v.type.shape))
                  for v in params.values()]
        size = broadcast_shape(*shapes) if shapes else ()
    vec = _size_vector(dist, size, ndim)
    for name, v in params.items():
        _check_broadcast(dist, name, v, vec)
    return vec
