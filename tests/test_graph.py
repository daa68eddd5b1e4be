"""The graph core: ops as values, user-defined ops, FunctionGraph, deep graphs."""

import sys

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.graph import Apply, FunctionGraph, Op, ancestors, clone_replace, toposort
from theanine.tensor.type import TensorType


class DoubleOp(Op):
    """A user-defined op, written exactly as in Theano's documentation."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2

    def infer_shape(self, fgraph, node, input_shapes):
        return input_shapes

    def grad(self, inputs, output_grads):
        return [output_grads[0] * 2]


class ScaleOp(Op):
    __props__ = ("factor",)

    def __init__(self, factor):
        self.factor = factor

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * self.factor


def test_props_give_equality_and_hash():
    assert ScaleOp(2) == ScaleOp(2) and hash(ScaleOp(2)) == hash(ScaleOp(2))
    assert ScaleOp(2) != ScaleOp(3)
    assert ScaleOp(2) != DoubleOp()
    assert "factor=2" in str(ScaleOp(2))


def test_user_defined_op_runs_and_differentiates(mode):
    x = T.dmatrix("x")
    y = DoubleOp()(x)
    f = theanine.function([x], [y, theanine.grad(y.sum(), x)], mode=mode)
    a = np.arange(6.0).reshape(2, 3)
    out, g = f(a)
    np.testing.assert_array_equal(out, 2 * a)
    np.testing.assert_array_equal(g, np.full_like(a, 2.0))
    theanine.verify_grad(DoubleOp(), [a])
    assert theanine.Op is Op


def test_op_without_grad_says_so():
    x = T.dvector("x")
    with pytest.raises(theanine.gradient.NullTypeGradError, match="ScaleOp.*not implemented"):
        theanine.grad(ScaleOp(3)(x).sum(), x)


def test_equal_user_ops_merge(mode):
    x = T.dvector("x")
    f = theanine.function([x], ScaleOp(2)(x) + ScaleOp(2)(x), mode=mode)
    assert sum(isinstance(n.op, ScaleOp) for n in f.graph.toposort()) == 1
    np.testing.assert_array_equal(f([1.0, 2.0]), [4.0, 8.0])


def test_tensor_type_is_a_value():
    assert TensorType("float64", (None, 3)) == TensorType("float64", (None, 3))
    assert len({TensorType("float32", (2,)), TensorType("float32", (2,))}) == 1
    assert TensorType("float64", (None, 1)).broadcastable == (False, True)
    with pytest.raises(TypeError, match="unsupported dtype"):
        TensorType("float128x", (None,))
    with pytest.raises(TypeError, match="shape entries"):
        TensorType("float64", (-1,))


def test_function_graph_clients_and_replace():
    x, y = T.dvectors("x", "y")
    a = x + y
    b = T.exp(a)
    fg = FunctionGraph([x, y], [b * a])
    assert {c[0].op.name for c in fg.clients[a] if c[0] != "output"} == {"exp", "mul"}
    new = x - y
    fg.replace(a, new, reason="test")
    assert all(node.inputs[0] is not a for node in fg.apply_nodes)
    assert fg.rewrite_log[-1].rewrite == "test"
    assert a.owner not in fg.apply_nodes  # pruned
    out = theanine.compile.executor.GraphRunner(fg.inputs, fg.outputs)(np.array([3.0]), np.array([1.0]))
    np.testing.assert_allclose(out[0], np.exp(2.0) * 2.0)


def test_function_graph_rejects_missing_input():
    x, y = T.dscalars("x", "y")
    with pytest.raises(ValueError, match="needs the input y"):
        FunctionGraph([x], [x + y])


def test_replace_type_mismatch_is_an_error():
    x = T.dvector("x")
    fg = FunctionGraph([x], [T.exp(x)])
    with pytest.raises(TypeError, match="has type"):
        fg.replace(fg.outputs[0], T.lvector("i"), reason="bad")


def test_clone_replace():
    x, y = T.dscalars("x", "y")
    z = T.exp(x) + 1
    z2 = clone_replace(z, {x: y})
    assert x not in ancestors([z2])
    assert theanine.function([y], z2)(0.0) == 2.0


def test_deep_chain_without_recursion_limit():
    """A 20,000-node chain (20 times Python's default recursion limit) builds,
    differentiates, rewrites and runs."""
    n = 20_000
    limit = sys.getrecursionlimit()
    x = T.dscalar("x")
    y = x
    for _ in range(n):
        y = T.sin(y)
    assert len(toposort([y])) == n
    g = theanine.grad(y, x)
    f = theanine.function([x], [y, g], mode="py")
    value, grad = f(0.5)
    expected = 0.5
    d = 1.0
    for _ in range(n):
        d *= np.cos(expected)
        expected = np.sin(expected)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, d, rtol=1e-8)
    assert sys.getrecursionlimit() == limit
