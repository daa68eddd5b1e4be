"""Ops created by fusion: a reduction applied directly to an elementwise expression."""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Op
from theanine.tensor.elemwise import broadcast_static_shapes
from theanine.tensor.math import Reduce
from theanine.tensor.type import TensorType


class FusedReduce(Op):
    """``Reduce(kind, axis)(Elemwise(scalar_op)(*inputs))`` as one node: the elementwise
    values are never stored, each one is combined into its output element."""

    __props__ = ("kind", "axis", "acc_dtype", "scalar_op")

    def __init__(self, kind, axis, acc_dtype, scalar_op):
        self.kind, self.axis, self.acc_dtype, self.scalar_op = kind, tuple(axis), acc_dtype, scalar_op
        self._reduce = Reduce(kind, axis, acc_dtype)

    def __str__(self):
        return f"{self.kind.capitalize()}{{axis={list(self.axis)}}}({self.scalar_op})"

    def make_node(self, *inputs):
        shape = broadcast_static_shapes([i.type.shape for i in inputs], str(self))
        value_type = TensorType(self.scalar_op.output_dtype(*[i.dtype for i in inputs]), shape)
        out_type = self._reduce.make_node(value_type()).outputs[0].type
        return Apply(self, list(inputs), [out_type()])

    def perform(self, node, inputs, output_storage):
        with np.errstate(all="ignore"):  # nan and inf propagate silently, as in native code
            values = np.asarray(self.scalar_op.impl(*inputs))
        values = np.broadcast_to(values, np.broadcast_shapes(*[np.shape(i) for i in inputs]))
        self._reduce.perform(node, [values], output_storage)  # it reads only node.outputs
