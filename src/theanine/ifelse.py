"""Lazy conditionals: ``ifelse(condition, then_branch, else_branch)``.

Unlike ``T.switch``, which computes both branches and selects elementwise,
``ifelse`` evaluates the scalar condition first and then only the branch it
selects: ``IfElse`` is a lazy op (see ``theanine.compile.executor``), so the
nodes that only the other branch needs do not run.
"""

from __future__ import annotations

import numpy as np

from theanine.graph.basic import Apply, Constant, Op, Variable
from theanine.rewriting.engine import register_rewrite
from theanine.tensor.type import TensorType
from theanine.tensor.variable import as_tensor_variable


class IfElse(Op):
    """``IfElse(n_outs)(condition, *then_values, *else_values)``: the ``n_outs`` then-values
    when the scalar condition is non-zero, else the else-values.

    Lazy: the executor computes ``condition`` first, asks ``choose`` which inputs
    are needed, and evaluates only those.
    """

    __props__ = ("n_outs",)
    lazy = True

    def __init__(self, n_outs, name=None):
        self.n_outs = int(n_outs)
        self.name = name
        self._then = tuple(range(1, 1 + self.n_outs))
        self._else = tuple(range(1 + self.n_outs, 1 + 2 * self.n_outs))

    def __str__(self):
        return f"if{{{self.name}}}" if self.name else "if"

    def make_node(self, condition, *branches):
        if len(branches) != 2 * self.n_outs:
            raise TypeError(f"IfElse: expected {2 * self.n_outs} branch values, got {len(branches)}")
        condition = _condition(condition)
        then_vals, else_vals = branches[:self.n_outs], branches[self.n_outs:]
        outputs = [_joined_type(t, e, k if self.n_outs > 1 else None)()
                   for k, (t, e) in enumerate(zip(then_vals, else_vals))]
        return Apply(self, [condition, *then_vals, *else_vals], outputs)

    def choose(self, node, condition):
        """The positions of the inputs needed when the condition has the value ``condition``
        (anything NumPy reads as a scalar: a device array's value is read from the device)."""
        return self._then if bool(np.asarray(condition)) else self._else

    def perform(self, node, inputs, output_storage):
        for k, p in enumerate(self.choose(node, inputs[0])):
            output_storage[k][0] = inputs[p]

    def connection_pattern(self, node):
        n = self.n_outs
        return [[True] * n] + [[k == j for j in range(n)] for k in range(n)] * 2

    def L_op(self, inputs, outputs, output_grads):
        """The gradient of each branch value is the output's gradient when its branch is
        taken and zero otherwise (the condition is piecewise constant: zero gradient)."""
        from theanine.configparser import config
        from theanine.tensor.basic import zeros_like
        condition = inputs[0]
        then_vals, else_vals = inputs[1:1 + self.n_outs], inputs[1 + self.n_outs:]
        grads = list(output_grads)
        zeros_then = [zeros_like(t, dtype=g.dtype) for t, g in zip(then_vals, grads)]
        zeros_else = [zeros_like(e, dtype=g.dtype) for e, g in zip(else_vals, grads)]
        op = IfElse(self.n_outs)
        then_grads = _as_list(op(condition, *grads, *zeros_then))
        else_grads = _as_list(op(condition, *zeros_else, *grads))
        return [zeros_like(condition, dtype=config.floatX)] + then_grads + else_grads


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _condition(condition):
    condition = as_tensor_variable(condition)
    if condition.ndim != 0:
        raise TypeError(f"ifelse: condition must be a scalar, got {condition.type} "
                        f"({condition.ndim} dimensions); reduce it first, e.g. T.any(condition)")
    if condition.dtype.startswith("complex"):
        raise TypeError(f"ifelse: condition must be a boolean, integer or float scalar, "
                        f"got {condition.type}")
    return condition


def _joined_type(then_val, else_val, index):
    """The output type of a branch pair: same dtype and ndim, static sizes where they agree."""
    if then_val.type == else_val.type:
        return then_val.type
    where = "" if index is None else f"[{index}]"
    if then_val.dtype != else_val.dtype or then_val.ndim != else_val.ndim:
        raise TypeError(
            f"ifelse: then_branch{where} and else_branch{where} must have the same dtype and number "
            f"of dimensions: then_branch{where} is {then_val.type}, else_branch{where} is "
            f"{else_val.type} (cast one, e.g. T.cast(x, '{then_val.dtype}'))")
    shape = tuple(a if a == b else None for a, b in zip(then_val.type.shape, else_val.type.shape))
    return TensorType(then_val.dtype, shape)


def _branch_values(then_branch, else_branch):
    """Both branches as equal-length lists of tensors; plain values take the other side's dtype."""
    single = not isinstance(then_branch, (list, tuple))
    if single != (not isinstance(else_branch, (list, tuple))):
        raise TypeError("ifelse: then_branch and else_branch must both be variables or both be "
                        f"lists, got {type(then_branch).__name__} and {type(else_branch).__name__}")
    thens = [then_branch] if single else list(then_branch)
    elses = [else_branch] if single else list(else_branch)
    if len(thens) != len(elses):
        raise ValueError(f"ifelse: then_branch has {len(thens)} variables but else_branch has "
                         f"{len(elses)}; they must correspond one to one")
    if not thens:
        raise ValueError("ifelse: the branches are empty")
    pairs = []
    for t, e in zip(thens, elses):
        if isinstance(t, Variable) and not isinstance(e, Variable):
            t = as_tensor_variable(t)
            e = as_tensor_variable(e, dtype_like=t.dtype)
        elif isinstance(e, Variable) and not isinstance(t, Variable):
            e = as_tensor_variable(e)
            t = as_tensor_variable(t, dtype_like=e.dtype)
        pairs.append((as_tensor_variable(t), as_tensor_variable(e)))
    return single, [t for t, _ in pairs], [e for _, e in pairs]


def ifelse(condition, then_branch, else_branch, name=None):
    """``then_branch`` if the scalar ``condition`` is non-zero, else ``else_branch``,
    evaluating only the branch that is taken.

    The branches are variables or lists of variables, paired one to one with the
    same dtype and number of dimensions; returns a variable, or a list for lists.
    """
    single, thens, elses = _branch_values(then_branch, else_branch)
    outs = IfElse(len(thens), name=name).make_node(condition, *thens, *elses).outputs
    for out in outs:
        out.name = name
    return outs[0] if single else list(outs)


@register_rewrite("canonicalize", tracks=(IfElse,))
def ifelse_constant_condition(fgraph, node):
    """ifelse(c, a, b) -> a when c is a non-zero constant, b when it is zero."""
    condition = node.inputs[0]
    if not isinstance(condition, Constant):
        return None
    return [node.inputs[p] for p in node.op.choose(node, condition.data)]


@register_rewrite("canonicalize", tracks=(IfElse,))
def ifelse_same_branches(fgraph, node):
    """ifelse(c, a, a) -> a."""
    n = node.op.n_outs
    if all(t is e for t, e in zip(node.inputs[1:1 + n], node.inputs[1 + n:])):
        return list(node.inputs[1:1 + n])
    return None


__all__ = ["ifelse", "IfElse"]
