"""The random ops: each takes a random state and returns (new state, sample).

A node ``op(state, size, *params)`` reads the Philox words of one draw from
``state`` (a uint32 vector, see ``philox``), samples through ``samplers``, and
outputs the state advanced past the blocks it read. ``RandomStreams`` makes the
state a shared variable whose default update is that new state.

``perform`` is the reference. Native modes rewrite uniform, normal and binomial
draws into ordinary tensor ops that compute the same numbers (``expand``, the
``native`` rewriting phase); the other draws run through ``perform`` in every mode.
"""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Op
from theanine.tensor.random import samplers
from theanine.tensor.random.philox import STATE_WORDS, WordStream
from theanine.tensor.shape import constant_entries
from theanine.tensor.type import TensorType
from theanine.tensor.variable import as_tensor_variable


class RandomDraw(Op):
    """One draw: inputs (state, size, *params), outputs (new state, sample of ``dtype``).

    ``ndim`` is the sample's number of dimensions; ``size`` is an int64 vector of
    ``ndim - extra_dims`` entries (the trailing ``extra_dims`` come from the params).
    """

    __props__ = ("dtype", "ndim")
    dist = "random"
    param_names: tuple = ()
    extra_dims = 0
    #: a draw must run at call time, never once at compile time
    no_constant_folding = True

    def __init__(self, dtype, ndim):
        self.dtype = str(np.dtype(dtype))
        self.ndim = int(ndim)

    def make_node(self, state, size, *params):
        state = as_tensor_variable(state)
        if state.dtype != "uint32" or state.ndim != 1 or state.type.shape[0] not in (None, STATE_WORDS):
            raise TypeError(f"{self.dist}: the random state must be a uint32 vector of {STATE_WORDS} "
                            f"words, got {state.type}")
        size = as_tensor_variable(size)
        n_size = self.ndim - self.extra_dims
        if size.dtype != "int64" or size.type.shape != (n_size,):
            raise TypeError(f"{self.dist}: size must be an int64 vector of length {n_size}, got {size.type}")
        if len(params) != len(self.param_names):
            raise TypeError(f"{self.dist}: expected the parameters {', '.join(self.param_names)}, "
                            f"got {len(params)} values")
        params = [as_tensor_variable(p) for p in params]
        shape = tuple(constant_entries(size)) + self.extra_static_shape(params)
        sample = TensorType(self.dtype, shape)()
        return Apply(self, [state, size] + params, [TensorType("uint32", (STATE_WORDS,))(), sample])

    def extra_static_shape(self, params) -> tuple:
        """The static sizes of the sample's trailing ``extra_dims`` dimensions."""
        return ()

    def sample_shape(self, size, params) -> tuple:
        """The sample's run-time shape."""
        return size

    def sample(self, stream, shape, params):
        raise NotImplementedError(f"{type(self).__name__}.sample")

    def perform(self, node, inputs, output_storage):
        state, size, *params = inputs
        size = tuple(int(s) for s in size)
        if any(s < 0 for s in size):
            raise ValueError(f"{self.dist}: negative dimension in size {size}")
        stream = WordStream(state)
        output_storage[1][0] = self.sample(stream, self.sample_shape(size, params), params)
        output_storage[0][0] = stream.new_state()

    def infer_shape(self, fgraph, node, shapes):
        size = node.inputs[1]
        return [(STATE_WORDS,), tuple(size[i] for i in range(self.ndim))]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType, grad_undefined
        why = "a sample is not differentiable in its parameters; write avg + std * normal(size) " \
              "(or low + (high - low) * uniform(size)) for a reparameterised gradient"
        return [DisconnectedType()(), DisconnectedType()()] + [
            grad_undefined(self, i, x, why) for i, x in enumerate(inputs[2:], start=2)]

    def connection_pattern(self, node):
        return [[True, True], [False, True]] + [[False, True] for _ in node.inputs[2:]]

    def __str__(self):
        return f"{self.dist}{{{self.dtype}}}"


class Uniform(RandomDraw):
    """Uniform on [low, high): ``low + (high - low) * u``."""

    dist = "uniform"
    param_names = ("low", "high")

    def sample(self, stream, shape, params):
        return samplers.uniform(stream, shape, self.dtype, *params)


class Normal(RandomDraw):
    """Normal with mean ``avg`` and standard deviation ``std`` (Box-Muller)."""

    dist = "normal"
    param_names = ("avg", "std")

    def sample(self, stream, shape, params):
        return samplers.normal(stream, shape, self.dtype, *params)


class Binomial(RandomDraw):
    """Successes in ``n`` trials of probability ``p`` (``p`` broadcast to the size)."""

    dist = "binomial"
    param_names = ("n", "p")

    def sample(self, stream, shape, params):
        return samplers.binomial(stream, shape, self.dtype, *params)


class Multinomial(RandomDraw):
    """Counts of ``n`` draws over the categories of each row of ``pvals`` (the last axis)."""

    dist = "multinomial"
    param_names = ("n", "pvals")
    extra_dims = 1

    def extra_static_shape(self, params):
        return (params[1].type.shape[-1],)

    def sample_shape(self, size, params):
        return size + (np.shape(params[1])[-1],)

    def sample(self, stream, shape, params):
        return samplers.multinomial(stream, shape, self.dtype, *params)

    def infer_shape(self, fgraph, node, shapes):
        size = node.inputs[1]
        return [(STATE_WORDS,), tuple(size[i] for i in range(self.ndim - 1)) + (shapes[3][-1],)]


class Choice(RandomDraw):
    """Indices in [0, n), with or without replacement, uniform or weighted by ``p``."""

    __props__ = ("dtype", "ndim", "replace", "weighted")
    dist = "choice"

    def __init__(self, dtype, ndim, replace=True, weighted=False):
        super().__init__(dtype, ndim)
        self.replace = bool(replace)
        self.weighted = bool(weighted)
        self.param_names = ("n", "p") if self.weighted else ("n",)

    def sample(self, stream, shape, params):
        n, *p = params
        return samplers.choice(stream, shape, self.dtype, n, self.replace, p[0] if p else None)


class Permutation(RandomDraw):
    """Permutations of range(n) along the last axis (one per entry of the size)."""

    dist = "permutation"
    param_names = ("n",)
    extra_dims = 1

    def extra_static_shape(self, params):
        from theanine.tensor.basic import NotScalarConstantError, get_scalar_constant_value
        try:
            return (int(get_scalar_constant_value(params[0])),)
        except NotScalarConstantError:
            return (None,)

    def sample_shape(self, size, params):
        n = int(params[0])
        if n < 0:
            raise ValueError(f"permutation: n must be >= 0, got {n}")
        return size + (n,)

    def sample(self, stream, shape, params):
        return samplers.permutation(stream, shape, self.dtype, shape[-1])

    def infer_shape(self, fgraph, node, shapes):
        size = node.inputs[1]
        return [(STATE_WORDS,), tuple(size[i] for i in range(self.ndim - 1)) + (node.inputs[2],)]
