"""Cross-entropy losses: categorical (integer labels or distributions) and binary.

``crossentropy_categorical_1hot`` and ``binary_crossentropy`` are ops of their
own (with gradient ops), so the stabilize phase can recognise them applied to
a softmax or a sigmoid and substitute stable forms, gradients included; the
specialize phase expands what is left into elementwise ops and reductions.
``sigmoid_binary_crossentropy`` is built from elementwise ops directly.
"""

from __future__ import annotations

import numpy as np

from theanine.gradient import grad_undefined_for_discrete
from theanine.graph.basic import Apply
from theanine.tensor import math as tm
from theanine.tensor.basic import arange, assert_op
from theanine.tensor.elemwise import broadcast_static_shapes, dimshuffle, sum_to
from theanine.tensor.nnet.expandable import ExpandableOp
from theanine.tensor.shape import shape_i
from theanine.tensor.type import FLOAT_DTYPES, INT_DTYPES, TensorType, upcast
from theanine.tensor.variable import as_tensor_variable


def label_mask(labels, n_classes):
    """The boolean one-hot encoding of integer ``labels``: a new last axis of length
    ``n_classes`` (an int or a symbolic scalar), True at each label."""
    labels = as_tensor_variable(labels)
    classes = arange(n_classes, dtype="int64")
    labels = assert_op(labels, tm.all(tm.ge(labels, 0)), tm.all(tm.lt(labels, n_classes)),
                       message="categorical_crossentropy: a label is out of range "
                               "(labels must lie in [0, number of classes))")
    return tm.eq(dimshuffle(labels, list(range(labels.ndim)) + ["x"]), classes)


def n_classes_of(p):
    """The length of p's last axis: an int when static, else a symbolic scalar."""
    k = p.type.shape[-1]
    return k if k is not None else shape_i(p, p.ndim - 1)


def _expand_last(v):
    return dimshuffle(v, list(range(v.ndim)) + ["x"])


def values_at_labels(values, labels, n_classes=None):
    """values[..., labels] (the entry at each label along the last axis), from primitives;
    ``n_classes`` defaults to the length of values' last axis."""
    k = n_classes_of(values) if n_classes is None else n_classes
    mask = label_mask(labels, k)
    return tm.sum(tm.switch(mask, values, 0), axis=-1)


def _check_labels(p, y, opname):
    """(p, y) as tensors, with p's dtype and the ranks and static shapes checked."""
    p, y = as_tensor_variable(p), as_tensor_variable(y)
    if p.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{opname}: coding_dist must have a float dtype, got {p.dtype}")
    if p.ndim == 0:
        raise ValueError(f"{opname}: coding_dist must have at least one dimension (the classes)")
    if y.dtype not in INT_DTYPES:
        raise TypeError(f"{opname}: true_dist must hold integer labels, got dtype {y.dtype}")
    if y.ndim != p.ndim - 1:
        raise ValueError(f"{opname}: true_dist must have one dimension less than coding_dist "
                         f"({p.ndim - 1}), got {y.ndim}")
    for axis, (a, b) in enumerate(zip(p.type.shape, y.type.shape)):
        if a is not None and b is not None and a != b:
            raise ValueError(f"{opname}: coding_dist has static shape {p.type.shape} and true_dist "
                             f"{y.type.shape}: dimension {axis} differs ({a} != {b})")
    return p, y


def _picked(p, y, opname):
    """The entries of array p at integer labels y along the last axis (checked)."""
    k = p.shape[-1]
    if y.shape != p.shape[:-1]:
        raise ValueError(f"{opname}: coding_dist has shape {p.shape}, true_dist {y.shape}; "
                         f"expected true_dist of shape {p.shape[:-1]}")
    if y.size and (y.min() < 0 or y.max() >= k):
        bad = y[(y < 0) | (y >= k)].flat[0]
        raise ValueError(f"{opname}: label {bad} is out of range for {k} classes")
    idx = y.astype(np.intp)[..., None]
    return np.take_along_axis(p, idx, axis=-1)[..., 0], idx


class CrossentropyCategorical1Hot(ExpandableOp):
    """-log(coding_dist[..., label]) for integer labels along the last axis of coding_dist."""

    __props__ = ()

    def make_node(self, coding_dist, true_dist):
        p, y = _check_labels(coding_dist, true_dist, "crossentropy_categorical_1hot")
        return Apply(self, [p, y], [TensorType(p.dtype, p.type.shape[:-1])()])

    def perform(self, node, inputs, output_storage):
        picked, _ = _picked(*inputs, "crossentropy_categorical_1hot")
        with np.errstate(divide="ignore"):
            output_storage[0][0] = np.asarray(-np.log(picked), dtype=node.outputs[0].dtype)

    def expand(self, p, y):
        return [-tm.log(values_at_labels(p, y))]

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(shapes[0][:-1])]

    def L_op(self, inputs, outputs, output_grads):
        p, y = inputs
        return [CrossentropyCategorical1HotGrad()(output_grads[0], p, y), grad_undefined_for_discrete(y)]


class CrossentropyCategorical1HotGrad(ExpandableOp):
    """The gradient of crossentropy_categorical_1hot in coding_dist: -gz / coding_dist at
    each label, zero elsewhere."""

    __props__ = ()

    def make_node(self, gz, coding_dist, true_dist):
        p, y = _check_labels(coding_dist, true_dist, "CrossentropyCategorical1HotGrad")
        gz = as_tensor_variable(gz)
        if gz.ndim != y.ndim:
            raise ValueError(f"CrossentropyCategorical1HotGrad: gz must have {y.ndim} dimensions, got {gz.ndim}")
        return Apply(self, [gz, p, y], [p.type()])

    def perform(self, node, inputs, output_storage):
        gz, p, y = inputs
        picked, idx = _picked(p, y, "CrossentropyCategorical1HotGrad")
        out = np.zeros(p.shape, dtype=node.outputs[0].dtype)
        with np.errstate(divide="ignore"):
            np.put_along_axis(out, idx, (-gz / picked)[..., None], axis=-1)
        output_storage[0][0] = out

    def expand(self, gz, p, y):
        mask = label_mask(y, n_classes_of(p))
        return [tm.cast(tm.switch(mask, -_expand_last(gz) / p, 0), p.dtype)]

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def L_op(self, inputs, outputs, output_grads):
        return self.expansion_vjp(inputs, output_grads)


crossentropy_categorical_1hot = CrossentropyCategorical1Hot()


def categorical_crossentropy(coding_dist, true_dist):
    """The cross-entropy between predicted class probabilities ``coding_dist`` (classes along
    the last axis) and ``true_dist``: integer labels (one dimension less), giving
    -log(coding_dist[..., label]), or a distribution of coding_dist's shape (one-hot or
    soft targets), giving -sum(true_dist * log(coding_dist), axis=-1)."""
    p, t = as_tensor_variable(coding_dist), as_tensor_variable(true_dist)
    if t.ndim == p.ndim:
        if p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"categorical_crossentropy: coding_dist must have a float dtype, got {p.dtype}")
        broadcast_static_shapes([p.type.shape, t.type.shape], "categorical_crossentropy")
        return -tm.sum(t * tm.log(p), axis=p.ndim - 1)
    if t.ndim == p.ndim - 1:
        return crossentropy_categorical_1hot(p, t)
    raise TypeError(f"categorical_crossentropy: true_dist must have as many dimensions as "
                    f"coding_dist ({p.ndim}, a distribution) or one less ({p.ndim - 1}, integer "
                    f"labels), got {t.ndim}")


# --- binary ---------------------------------------------------------------------------------


def _broadcast_inputs(inputs, opname):
    """The inputs as tensors of one rank (leading broadcastable dimensions added), and the
    static shape they broadcast to."""
    inputs = [as_tensor_variable(x) for x in inputs]
    shape = broadcast_static_shapes([x.type.shape for x in inputs], opname)
    ndim = len(shape)
    return [x if x.ndim == ndim else dimshuffle(x, ["x"] * (ndim - x.ndim) + list(range(x.ndim)))
            for x in inputs], shape


def _binary_dtype(output, target, opname):
    if output.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{opname}: output must have a float dtype (probabilities), got {output.dtype}")
    if target.dtype not in FLOAT_DTYPES + INT_DTYPES + ("bool",):
        raise TypeError(f"{opname}: target must be a real number tensor, got dtype {target.dtype}")
    dtype = upcast(output.dtype, target.dtype)
    return dtype if dtype in FLOAT_DTYPES else "float64"


def _bce_numpy(p, t):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))


class BinaryCrossentropy(ExpandableOp):
    """-(target * log(output) + (1 - target) * log(1 - output)), elementwise with broadcasting."""

    __props__ = ()

    def make_node(self, output, target):
        (p, t), shape = _broadcast_inputs([output, target], "binary_crossentropy")
        dtype = _binary_dtype(p, t, "binary_crossentropy")
        return Apply(self, [p, t], [TensorType(dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        dtype = node.outputs[0].dtype
        p, t = (np.asarray(v, dtype=dtype) for v in inputs)
        output_storage[0][0] = np.asarray(_bce_numpy(p, t), dtype=dtype)

    def expand(self, p, t):
        dtype = upcast(p.dtype, t.dtype)
        t = tm.cast(t, dtype if dtype in FLOAT_DTYPES else "float64")
        return [-(t * tm.log(p) + (1 - t) * tm.log(1 - p))]

    def infer_shape(self, fgraph, node, shapes):
        from theanine.tensor.shape import broadcast_shape
        return [broadcast_shape(*shapes)]

    def L_op(self, inputs, outputs, output_grads):
        p, t = inputs
        (gz,) = output_grads
        gp = sum_to(BinaryCrossentropyGrad()(gz, p, t), p)
        if t.dtype not in FLOAT_DTYPES:
            return [gp, grad_undefined_for_discrete(t)]
        return [gp, sum_to(gz * (tm.log(1 - p) - tm.log(p)), t)]


class BinaryCrossentropyGrad(ExpandableOp):
    """The gradient of binary_crossentropy in its output: gz * (output - target) /
    (output * (1 - output)), elementwise with broadcasting."""

    __props__ = ()

    def make_node(self, gz, output, target):
        (gz, p, t), shape = _broadcast_inputs([gz, output, target], "BinaryCrossentropyGrad")
        dtype = upcast(gz.dtype, _binary_dtype(p, t, "BinaryCrossentropyGrad"))
        return Apply(self, [gz, p, t], [TensorType(dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        dtype = node.outputs[0].dtype
        gz, p, t = (np.asarray(v, dtype=dtype) for v in inputs)
        with np.errstate(divide="ignore", invalid="ignore"):
            output_storage[0][0] = np.asarray(gz * (p - t) / (p * (1 - p)), dtype=dtype)

    def expand(self, gz, p, t):
        dtype = upcast(gz.dtype, p.dtype, t.dtype)
        dtype = dtype if dtype in FLOAT_DTYPES else "float64"
        p, t = tm.cast(p, dtype), tm.cast(t, dtype)
        return [gz * (p - t) / (p * (1 - p))]

    def infer_shape(self, fgraph, node, shapes):
        from theanine.tensor.shape import broadcast_shape
        return [broadcast_shape(*shapes)]

    def L_op(self, inputs, outputs, output_grads):
        return self.expansion_vjp(inputs, output_grads)


_binary_crossentropy = BinaryCrossentropy()


def binary_crossentropy(output, target):
    """The binary cross-entropy of predicted probabilities ``output`` and targets ``target``
    (0/1 labels or probabilities), elementwise:
    -(target * log(output) + (1 - target) * log(1 - output)).

    Applied to ``sigmoid(x)`` it is rewritten into ``sigmoid_binary_crossentropy(x, target)``,
    which stays finite (value and gradient) for logits of any size."""
    return _binary_crossentropy(output, target)


def sigmoid_binary_crossentropy(output, target):
    """binary_crossentropy(sigmoid(output), target) from the logits ``output``, computed
    without overflow: x * (1 - t) + softplus(-x) where x > 0, softplus(x) - x * t elsewhere.
    Its gradient in the logits is sigmoid(output) - target."""
    x, t = as_tensor_variable(output), as_tensor_variable(target)
    dtype = _binary_dtype(x, t, "sigmoid_binary_crossentropy")
    x, t = tm.cast(x, dtype), tm.cast(t, dtype)
    # Each branch is finite for every finite x, so the branch not taken cannot spoil the
    # gradient (0 * inf) and there is no kink at 0.
    return tm.switch(tm.gt(x, 0), x * (1 - t) + tm.softplus(-x), tm.softplus(x) - x * t)


__all__ = ["categorical_crossentropy", "crossentropy_categorical_1hot", "CrossentropyCategorical1Hot",
           "CrossentropyCategorical1HotGrad", "binary_crossentropy", "BinaryCrossentropy",
           "BinaryCrossentropyGrad", "sigmoid_binary_crossentropy", "label_mask"]
