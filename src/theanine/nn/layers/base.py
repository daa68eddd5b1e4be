"""The layer protocol: weights made in ``build``, a symbolic ``call``, a config to save.

A layer knows its input shape without the batch axis (``input_shape``), makes
its weights as shared variables once that shape is known (``build``), and maps
a symbolic batch to a symbolic batch (``call``), in training mode or not.
``get_config`` returns the constructor arguments, so a saved model can be
rebuilt by class name (``Layer.registry``).
"""

from __future__ import annotations

import numpy as np

import theanine
from theanine.nn import initializers


class Layer:
    """Base class of the layers of ``theanine.nn``.

    ``params`` are the trainable weights, ``state`` the weights updated by
    other means (a batch norm's running statistics); both are shared
    variables, created by ``build``. Setting ``trainable = False`` freezes
    ``params``.
    """

    registry = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            Layer.registry[cls.__name__] = cls

    def __init__(self, name=None, input_shape=None, input_dim=None, trainable=True):
        if input_shape is not None and input_dim is not None:
            raise ValueError(f"{type(self).__name__}: give input_shape or input_dim, not both")
        if input_dim is not None:
            input_shape = (input_dim,)
        self.name = name
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.trainable = trainable
        self.built = False
        self.params = []
        self.state = []

    # -- what subclasses define -------------------------------------------------------------

    def build(self, input_shape, rng, dtype):
        """Create the weights for inputs of ``input_shape`` (no batch axis), drawing initial
        values from the NumPy generator ``rng``, in float ``dtype``."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        """The output shape (no batch axis; None for sizes known only at run time)."""
        return tuple(input_shape)

    def call(self, x, training):
        """The symbolic output for the symbolic batch ``x``."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {"name": self.name, "input_shape": self.input_shape, "trainable": self.trainable}

    # -- shared by every layer --------------------------------------------------------------

    def __call__(self, x, training=False):
        """The symbolic output for the symbolic batch ``x`` (the layer must be built)."""
        if not self.built:
            raise RuntimeError(f"{self.name or type(self).__name__}: build the layer (or its model) first")
        return self.call(x, training)

    def apply(self, x, training):
        """(output, updates): the output and the shared-variable updates a training step
        must apply (only layers with running state have updates)."""
        return self.call(x, training), []

    def input_dtype(self, float_dtype):
        """The dtype of the model's input when this layer comes first."""
        return float_dtype

    def add_weight(self, name, shape, initializer, rng, dtype, trainable=True):
        """A new shared variable ``<layer>/<name>`` of ``shape`` initialised by
        ``initializer`` (a name or a function ``(shape, rng, dtype) -> array``)."""
        value = initializers.get(initializer)(tuple(int(s) for s in shape), rng, dtype)
        var = theanine.shared(np.asarray(value, dtype=dtype), name=f"{self.name}/{name}")
        (self.params if trainable else self.state).append(var)
        return var

    @property
    def weights(self):
        """All weights: ``params`` then ``state``."""
        return self.params + self.state

    @property
    def trainable_params(self):
        """The weights the optimizer updates: ``params``, or none when frozen."""
        return list(self.params) if self.trainable else []

    def count_params(self):
        """The number of scalars in the weights."""
        return int(sum(w.get_value(borrow=True).size for w in self.weights))

    def get_weights(self):
        """Copies of the weights' values, as a list of arrays."""
        return [w.get_value() for w in self.weights]

    def set_weights(self, values):
        """Replace the weights' values (same order and shapes as ``get_weights``)."""
        if len(values) != len(self.weights):
            raise ValueError(f"{self.name}: expected {len(self.weights)} arrays, got {len(values)}")
        for w, v in zip(self.weights, values):
            if np.shape(v) != w.get_value(borrow=True).shape:
                raise ValueError(f"{w.name}: expected shape {w.get_value(borrow=True).shape}, "
                                 f"got {np.shape(v)}")
            w.set_value(np.asarray(v, dtype=w.dtype))

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
