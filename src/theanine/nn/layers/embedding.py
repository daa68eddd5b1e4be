"""Embedding: integer tokens to learned vectors."""

from __future__ import annotations

from theanine.nn.layers.base import Layer
from theanine.nn.layers.core import _init_name


class Embedding(Layer):
    """Maps each integer in [0, input_dim) to a learned vector of ``output_dim`` values:
    (batch, ...) integers -> (batch, ..., output_dim). ``input_length`` declares the
    length of the input sequences when it is the first layer."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", input_length=None,
                 **kwargs):
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape, rng, dtype):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, rng, dtype)
        super().build(input_shape, rng, dtype)

    def input_dtype(self, float_dtype):
        return "int32"

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def call(self, x, training):
        return self.embeddings[x]

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _init_name(self.embeddings_initializer)}
