"""Elemwise (a scalar op mapped over broadcast arrays), DimShuffle and SumTo."""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Op, Variable
from theanine.tensor.type import TensorType, upcast
from theanine.tensor.variable import as_tensor_variable


def broadcast_static_shapes(shapes, opname="Elemwise") -> tuple:
    """The static shape NumPy broadcasting gives; ValueError when it is known to fail."""
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(ndim):
        dims = [s[axis] for s in padded]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            pretty = ", ".join(str(tuple("?" if d is None else d for d in s)) for s in shapes)
            raise ValueError(f"{opname}: shapes {pretty} cannot be broadcast together "
                             f"(dimension {axis} has sizes {sorted(known)})")
        if known:
            out.append(known.pop())
        elif all(d == 1 for d in dims):
            out.append(1)
        else:
            out.append(None)
    return tuple(out)


class Elemwise(Op):
    """Applies ``scalar_op`` elementwise, with NumPy broadcasting.

    Inputs of lower rank are first given leading broadcastable dimensions
    (a DimShuffle), so every input of the node has the output's rank.
    """

    __props__ = ("scalar_op",)

    def __init__(self, scalar_op, name=None):
        self.scalar_op = scalar_op
        self.name = name or scalar_op.name

    def __str__(self):
        return self.name

    def make_node(self, *inputs):
        if len(inputs) != self.scalar_op.nin:
            raise TypeError(f"{self.name}: expected {self.scalar_op.nin} inputs, got {len(inputs)}")
        positions = self.scalar_op.dtype_inputs or range(len(inputs))
        tensors = [inputs[i] for i in positions if isinstance(inputs[i], Variable)]
        like = None
        if tensors:
            like = upcast(*[as_tensor_variable(t).dtype for t in tensors])
        inputs = [as_tensor_variable(x, dtype_like=like) for x in inputs]
        dtypes = [x.dtype for x in inputs]
        self.scalar_op.check_dtypes(*dtypes)
        out_dtype = self.scalar_op.output_dtype(*dtypes)
        # checked before padding, so an error names the shapes the user wrote
        shape = broadcast_static_shapes([x.type.shape for x in inputs], self.name)
        ndim = len(shape)
        inputs = [x if x.ndim == ndim else dimshuffle(x, ["x"] * (ndim - x.ndim) + list(range(x.ndim)))
                  for x in inputs]
        return Apply(self, inputs, [TensorType(out_dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        if self.scalar_op.dtype_rule == "float":
            # integers are converted first: NumPy would compute 1/x of ints in ints, and
            # exp(int8) or int8 / int8 in float16, then the result is widened
            out_dtype = node.outputs[0].dtype
            inputs = [np.asarray(x, dtype=out_dtype) if np.asarray(x).dtype.kind in "biu" else x
                      for x in inputs]
        with np.errstate(all="ignore"):  # nan and inf propagate silently, as in native code
            out = self.scalar_op.impl(*inputs)
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        from theanine.tensor.shape import broadcast_shape
        return [broadcast_shape(*shapes)]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        gz = output_grads[0]
        z = outputs[0]
        grads = self.scalar_op.grad(inputs, z, gz)
        result = []
        for x, g in zip(inputs, grads):
            if g is None or isinstance(getattr(g, "type", None), DisconnectedType):
                result.append(g)
                continue
            g = as_tensor_variable(g)
            if getattr(g.type, "is_null", False):
                result.append(g)
                continue
            others_broadcast = all(all(d == 1 for d in o.type.shape) for o in inputs if o is not x)
            result.append(g if others_broadcast else sum_to(g, x))  # else x may have been broadcast
        return result



class DimShuffle(Op):
    """Permutes dimensions, inserts broadcastable ones ('x'), drops size-1 ones.

    ``new_order`` is Theano's pattern: ``(1, 'x', 0)`` turns (a, b) into (b, 1, a).
    An input dimension missing from the pattern must have size 1.
    """

    __props__ = ("input_ndim", "new_order")

    def __init__(self, input_ndim, new_order):
        self.input_ndim = int(input_ndim)
        self.new_order = tuple(new_order)
        kept = [d for d in self.new_order if d != "x"]
        for d in kept:
            if not isinstance(d, (int, np.integer)) or not 0 <= d < self.input_ndim:
                raise ValueError(f"DimShuffle: pattern {self.new_order} names dimension {d!r}, "
                                 f"but the input has {self.input_ndim} dimensions")
        if len(set(kept)) != len(kept):
            raise ValueError(f"DimShuffle: pattern {self.new_order} repeats a dimension")
        self.drop = tuple(d for d in range(self.input_ndim) if d not in kept)
        self.perm = tuple(kept)

    def __str__(self):
        return f"DimShuffle{{{','.join(map(str, self.new_order))}}}"

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.ndim != self.input_ndim:
            raise TypeError(f"{self}: expected an input with {self.input_ndim} dimensions, got {x.ndim}")
        for d in self.drop:
            if x.type.shape[d] not in (1, None):
                raise ValueError(f"{self}: cannot drop dimension {d} of {x} "
                                 f"(its size is {x.type.shape[d]}, not 1)")
        shape = tuple(1 if d == "x" else x.type.shape[d] for d in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        for d in self.drop:
            if x.shape[d] != 1:
                raise ValueError(f"{self}: dimension {d} has size {x.shape[d]}; only size-1 "
                                 "dimensions can be dropped")
        y = np.transpose(x, self.perm + self.drop) if self.input_ndim else x
        y = y.reshape(tuple(1 if d == "x" else x.shape[d] for d in self.new_order))
        output_storage[0][0] = y

    def infer_shape(self, fgraph, node, shapes):
        (xs,) = shapes
        return [tuple(1 if d == "x" else xs[d] for d in self.new_order)]

    def L_op(self, inputs, outputs, output_grads):
        (gz,) = output_grads
        # Sum away the inserted axes; axis k of what is left is input dimension perm[k].
        inserted = [i for i, d in enumerate(self.new_order) if d == "x"]
        g = gz.sum(axis=inserted) if inserted else gz
        order = [self.perm.index(d) if d in self.perm else "x" for d in range(self.input_ndim)]
        return [dimshuffle(g, order)]



def dimshuffle(x, pattern):
    """``x`` with its dimensions rearranged by a Theano pattern (see DimShuffle)."""
    x = as_tensor_variable(x)
    pattern = tuple(pattern)
    if pattern == tuple(range(x.ndim)):
        return x
    return DimShuffle(x.ndim, pattern)(x)


class SumTo(Op):
    """sum_to(g, x): g summed over the axes along which x was broadcast to g's shape.

    This is the adjoint of broadcasting: the gradient of ``x`` after it was
    broadcast in an elementwise op. x's values are not read, only its shape.
    """

    __props__ = ()

    def make_node(self, g, x):
        g, x = as_tensor_variable(g), as_tensor_variable(x)
        if g.ndim != x.ndim:
            raise TypeError(f"SumTo: ranks differ ({g.ndim} vs {x.ndim})")
        return Apply(self, [g, x], [TensorType(g.dtype, x.type.shape)()])

    def perform(self, node, inputs, output_storage):
        g, x = inputs
        axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, x.shape)) if b == 1 and a != 1)
        out = g.sum(axis=axes, keepdims=True, dtype=g.dtype) if axes else g
        if out.shape != x.shape:
            raise ValueError(f"SumTo: cannot reduce shape {g.shape} to {x.shape}")
        output_storage[0][0] = np.asarray(out)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.tensor.basic import zeros_like
        g, x = inputs
        gz = output_grads[0]
        from theanine.tensor.math import second
        return [second(g, gz), zeros_like(x)]


class SumToShape(Op):
    """sum_to_shape(g, *dims): g summed over the axes where ``dims`` (integer scalars, one
    per dimension of g) is 1 and g's size is not; as ``SumTo`` with ``x``'s sizes given
    instead of ``x``, so that what computes ``x`` need not run."""

    __props__ = ()

    def make_node(self, g, *dims):
        g = as_tensor_variable(g)
        dims = [as_tensor_variable(d) for d in dims]
        if len(dims) != g.ndim or any(d.ndim != 0 or d.dtype not in _INT_DTYPES for d in dims):
            raise TypeError(f"SumToShape: expected {g.ndim} integer scalars for the sizes of {g.type}, "
                            f"got {[str(d.type) for d in dims]}")
        shape = tuple(_constant_size(d) for d in dims)
        return Apply(self, [g, *dims], [TensorType(g.dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        g, *dims = inputs
        shape = tuple(int(d) for d in dims)
        axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
        out = g.sum(axis=axes, keepdims=True, dtype=g.dtype) if axes else g
        if out.shape != shape:
            raise ValueError(f"SumTo: cannot reduce shape {g.shape} to {shape}")
        output_storage[0][0] = np.asarray(out)

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(node.inputs[1:])]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import DisconnectedType
        from theanine.tensor.math import second
        return [second(inputs[0], output_grads[0])] + [DisconnectedType()() for _ in inputs[1:]]


_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _constant_size(d):
    from theanine.graph.basic import Constant
    return int(d.data) if isinstance(d, Constant) else None


def sum_to(g, x):
    """``g`` reduced to ``x``'s shape where ``x`` was broadcast (identity when shapes agree)."""
    needs = [i for i, (a, b) in enumerate(zip(g.type.shape, x.type.shape)) if b == 1 and a != 1]
    if needs:
        g = g.sum(axis=needs, keepdims=True)
    if any(b is None and a != 1 for a, b in zip(g.type.shape, x.type.shape)):
        # x may be size 1 at run time along these axes: reduce there if so
        return SumTo()(g, x)
    return g


def _table_scalar_op(name):
    """The scalar op called ``name`` in the scalar table (how pickles refer to one)."""
    from theanine.scalar import basic
    return getattr(basic, name)


def _register_table_pickling():
    """Let graphs holding table ops pickle: each table op is the one instance of a class
    made at import time, which pickle cannot find by name; refer to the instance instead."""
    import copyreg

    from theanine.scalar import basic
    for attr, op in list(vars(basic).items()):
        cls = type(op)
        if isinstance(op, basic.ScalarOp) and getattr(basic, cls.__name__, None) is not cls \
                and cls not in copyreg.dispatch_table:
            copyreg.pickle(cls, lambda _op, attr=attr: (_table_scalar_op, (attr,)))


_register_table_pickling()
