"""ifelse: results in every mode, lazy evaluation of the branches, nesting, gradients, errors."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import function, shared
from theanine.compile.executor import GraphRunner, LazyGraphRunner
from theanine.gradient import verify_grad
from theanine.graph.basic import Apply, Op
from theanine.ifelse import IfElse, ifelse


class Counted(Op):
    """2 * x, counting how many times it runs."""

    __props__ = ("tag",)

    def __init__(self, tag):
        self.tag = tag
        self.calls = 0

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        self.calls += 1
        output_storage[0][0] = inputs[0] * 2


def test_results_match_numpy(mode, rng):
    c = T.lscalar("c")
    x, y = T.dmatrix("x"), T.dvector("y")
    z = ifelse(c, T.exp(x) + y, x * y - 1)
    f = function([c, x, y], z, mode=mode)
    xv, yv = rng.normal(size=(3, 4)), rng.normal(size=4)
    np.testing.assert_allclose(f(1, xv, yv), np.exp(xv) + yv, rtol=1e-12)
    np.testing.assert_allclose(f(0, xv, yv), xv * yv - 1, rtol=1e-12)
    assert f(-3, xv, yv).shape == (3, 4)  # any non-zero value selects then_branch


def test_lists_of_branches_and_conditions_of_any_dtype(mode):
    x = T.dvector("x")
    i = T.lvector("i")
    cond = T.gt(x.sum(), 0)  # a bool scalar
    a, b = ifelse(cond, [x * 2, i + 1], [-x, i * 0])
    f = function([x, i], [a, b], mode=mode)
    got = f(np.array([1.0, 2.0]), np.array([3, 4]))
    np.testing.assert_array_equal(got[0], [2.0, 4.0])
    np.testing.assert_array_equal(got[1], [4, 5])
    got = f(np.array([-1.0, -2.0]), np.array([3, 4]))
    np.testing.assert_array_equal(got[0], [1.0, 2.0])
    np.testing.assert_array_equal(got[1], [0, 0])
    s = T.dscalar("s")
    g = function([s], ifelse(s, s + 1, s - 1), mode=mode)  # a float condition
    assert g(0.5) == 1.5 and g(0.0) == -1.0


def test_branches_of_different_static_shapes(mode):
    c = T.lscalar("c")
    a = T.tensor(dtype="float64", shape=(2, 3), name="a")
    b = T.tensor(dtype="float64", shape=(5, 3), name="b")
    z = ifelse(c, a, b)
    assert z.type.shape == (None, 3)
    f = function([c, a, b], z * 1, mode=mode)
    assert f(1, np.ones((2, 3)), np.zeros((5, 3))).shape == (2, 3)
    assert f(0, np.ones((2, 3)), np.zeros((5, 3))).shape == (5, 3)


def test_python_values_take_the_other_branch_dtype(mode):
    c = T.lscalar("c")
    x = T.fscalar("x")
    z = ifelse(c, x * 2, 0.5)
    assert z.dtype == "float32"
    f = function([c, x], z, mode=mode)
    assert f(0, 3.0) == np.float32(0.5) and f(1, 3.0) == np.float32(6.0)


def test_only_the_taken_branch_runs(mode):
    then_op, else_op = Counted("then"), Counted("else")
    c = T.lscalar("c")
    x = T.dvector("x")
    f = function([c, x], ifelse(c, then_op(x).sum(), else_op(x + 1).sum()), mode=mode)
    assert f(1, np.ones(3)) == 6.0
    assert (then_op.calls, else_op.calls) == (1, 0)
    assert f(0, np.ones(3)) == 12.0
    assert (then_op.calls, else_op.calls) == (1, 1)
    for _ in range(3):
        f(0, np.ones(3))
    assert (then_op.calls, else_op.calls) == (1, 4)


def test_untaken_branch_that_would_raise(mode):
    c = T.lscalar("c")
    x = T.dvector("x")
    i = T.lscalar("i")
    f = function([c, x, i], ifelse(c, x[i] * 2, x.sum()), mode=mode)
    assert f(0, np.arange(3.0), 10) == 3.0  # x[10] is never computed
    assert f(1, np.arange(3.0), 2) == 4.0
    with pytest.raises(IndexError):
        f(1, np.arange(3.0), 10)


def test_a_node_needed_by_both_branches_and_outside_runs_once(mode):
    shared_op = Counted("shared")
    c = T.lscalar("c")
    x = T.dvector("x")
    h = shared_op(x)
    first = ifelse(c, h.sum(), -h.sum())
    second = ifelse(c, h.max(), h.min())
    f = function([c, x], [first, second], mode=mode)
    assert f(0, np.array([1.0, 2.0])) == [-6.0, 2.0]
    assert shared_op.calls == 1


def test_a_value_read_by_a_branch_is_kept_until_the_branch_runs(mode):
    c = T.lscalar("c")
    x = T.dvector("x")
    a = T.exp(x)
    f = function([c, x], [a.sum(), ifelse(c, a * 2, x)], mode=mode)
    total, chosen = f(1, np.zeros(3))
    assert total == 3.0
    np.testing.assert_array_equal(chosen, [2.0, 2.0, 2.0])


def test_nested_ifelse(mode):
    inner_then, inner_else, outer_else = Counted("a"), Counted("b"), Counted("c")
    c1, c2 = T.lscalars("c1", "c2")
    x = T.dscalar("x")
    z = ifelse(c1, ifelse(c2, inner_then(x), inner_else(x) + 1), outer_else(x) - 1)
    f = function([c1, c2, x], z, mode=mode)
    assert f(1, 1, 3.0) == 6.0 and f(1, 0, 3.0) == 7.0 and f(0, 1, 3.0) == 5.0
    assert (inner_then.calls, inner_else.calls, outer_else.calls) == (1, 1, 1)


def test_nested_condition_computed_inside_a_branch(mode):
    c = T.lscalar("c")
    x = T.dvector("x")
    i = T.lscalar("i")
    inner = ifelse(T.gt(x[i], 0), x[i], -x[i])  # x[i] only valid when c is true
    f = function([c, x, i], ifelse(c, inner, x.sum()), mode=mode)
    assert f(1, np.array([1.0, -5.0]), 1) == 5.0
    assert f(0, np.array([1.0, -5.0]), 7) == -4.0


def test_deep_chain_of_ifelse_is_not_limited_by_recursion():
    c = T.lscalar("c")
    x = T.dscalar("x")
    acc = x
    for k in range(2000):
        acc = ifelse(T.gt(c, k), acc + 1, acc)
    f = function([c, x], acc, mode="py")
    assert f(1234, 0.0) == 1234.0
    assert f(0, 0.0) == 0.0


def test_runner_type_depends_on_lazy_nodes():
    x = T.dvector("x")
    c = T.lscalar("c")
    assert type(GraphRunner([x], [x * 2])) is GraphRunner
    runner = GraphRunner([c, x], [ifelse(c, x * 2, x)])
    assert type(runner) is LazyGraphRunner
    np.testing.assert_array_equal(runner(np.array(0), np.array([1.0, 2.0])), [[1.0, 2.0]])


@pytest.mark.parametrize("taken", [1, 0])
def test_gradient_of_each_branch(taken, mode):
    c = shared(np.int64(taken), name="c")

    def fn(x, y):
        return ifelse(c, T.exp(x) * y, T.sin(y) * x * x)

    verify_grad(fn, [np.array([0.3, -0.2]), np.array([1.5, 0.7])], mode=mode)
    x, y = T.dvectors("x", "y")
    gx, gy = theanine.grad(fn(x, y).sum(), [x, y])
    xv, yv = np.array([0.3, -0.2]), np.array([1.5, 0.7])
    got = function([x, y], [gx, gy], mode=mode)(xv, yv)
    want = [np.exp(xv) * yv, np.exp(xv)] if taken else [2 * xv * np.sin(yv), np.cos(yv) * xv * xv]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("taken", [1, 0])
def test_gradient_of_listed_branches_and_nested_ifelse(taken):
    c = shared(np.int64(taken), name="c")
    d = shared(np.int64(1 - taken), name="d")

    def fn(x, y):
        a, b = ifelse(c, [x * 2, T.tanh(y)], [ifelse(d, x ** 3, x), y * y])
        return a * b

    verify_grad(fn, [np.array([0.4, 1.1]), np.array([-0.3, 0.8])], mode="py")


def test_gradient_with_respect_to_the_condition_is_zero():
    x = T.dscalar("x")
    z = ifelse(T.gt(x, 0), x * 3, x * 5)
    g = theanine.grad(z, x)
    f = function([x], g, mode="py")
    assert f(2.0) == 3.0 and f(-2.0) == 5.0


def test_constant_condition_and_identical_branches_are_rewritten():
    x, y = T.dvectors("x", "y")
    f = function([x, y], ifelse(T.constant(0), x, y), mode="py")
    assert not any(isinstance(n.op, IfElse) for n in f.graph.toposort())
    assert any(r.rewrite == "ifelse_constant_condition" for r in f.rewrite_log)
    np.testing.assert_array_equal(f(np.ones(2), np.zeros(2)), [0.0, 0.0])
    c = T.lscalar("c")
    g = function([c, x], ifelse(c, x, x) * 2, mode="py", on_unused_input="ignore")
    assert any(r.rewrite == "ifelse_same_branches" for r in g.rewrite_log)
    np.testing.assert_array_equal(g(0, np.ones(2)), [2.0, 2.0])


def test_error_condition_must_be_a_scalar():
    x = T.dvector("x")
    with pytest.raises(TypeError, match=r"ifelse: condition must be a scalar, got Tensor\{float64, \(\?,\)\}"):
        ifelse(x, x, x)


def test_error_branch_types_must_match():
    c = T.lscalar("c")
    with pytest.raises(TypeError, match=r"then_branch and else_branch must have the same dtype.*"
                                        r"then_branch is Tensor\{float64, \(\?,\)\}, else_branch is "
                                        r"Tensor\{float32, \(\?,\)\}"):
        ifelse(c, T.dvector("a"), T.fvector("b"))
    with pytest.raises(TypeError, match=r"then_branch\[1\] is Tensor\{float64, \(\?,\)\}, "
                                        r"else_branch\[1\] is Tensor\{float64, \(\?, \?\)\}"):
        ifelse(c, [T.dscalar(), T.dvector()], [T.dscalar(), T.dmatrix()])
    with pytest.raises(ValueError, match="then_branch has 2 variables but else_branch has 1"):
        ifelse(c, [T.dscalar(), T.dscalar()], [T.dscalar()])
    with pytest.raises(TypeError, match="both be variables or both be lists"):
        ifelse(c, [T.dscalar()], T.dscalar())


def test_printing_shows_the_ifelse():
    c = T.lscalar("c")
    x = T.dvector("x")
    text = theanine.printing.debugprint(ifelse(c, x * 2, x, name="pick"), file="str")
    assert "if{pick}" in text


def test_jacobian_through_ifelse_runs_the_inner_graph_lazily():
    c = T.lscalar("c")
    x = T.dvector("x")
    jac = theanine.jacobian(ifelse(c, x ** 2, x * 3), x)  # rows computed by an inner runner
    f = function([c, x], jac, mode="py")
    np.testing.assert_allclose(f(1, np.array([1.0, 2.0])), np.diag([2.0, 4.0]))
    np.testing.assert_allclose(f(0, np.array([1.0, 2.0])), np.diag([3.0, 3.0]))
