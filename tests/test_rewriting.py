"""The rewrite passes: each rewrite fires, keeps the numbers, and its identity holds.

For each rewrite a test compiles an expression, checks in ``f.rewrite_log``
that the rewrite fired and in ``f.graph`` that the replaced op is gone, and
compares the result with NumPy. Algebraic identities are proved with SymPy;
stabilize tests also show the naive form failing where the rewritten one is
right. Then merge, constant folding and the engine itself.
"""

import numpy as np
import pytest
import sympy as sp
from scipy.special import logsumexp
from sympy.codegen.cfunctions import expm1 as sp_expm1
from sympy.codegen.cfunctions import log1p as sp_log1p

import theanine
import theanine.tensor as T
from theanine import scalar as ts
from theanine.compile.executor import GraphRunner
from theanine.graph.basic import Constant
from theanine.graph.fg import FunctionGraph
from theanine.rewriting import LocalRewrite, RewriteDB, apply_to_equilibrium, rewrite_graph
from theanine.rewriting.canonicalize import is_constant_value
from theanine.rewriting.engine import ApplyBudgetExceeded
from theanine.tensor.basic import Alloc
from theanine.tensor.elemwise import DimShuffle, Elemwise, SumTo
from theanine.tensor.math import Reduce
from theanine.tensor.shape import Reshape, Shape, SpecifyShape
from theanine.tensor.subtensor import Subtensor

#: SymPy's view of the scalar functions involved
X = sp.Symbol("x", real=True)


def sp_sigmoid(t):
    return 1 / (1 + sp.exp(-t))


def sp_softplus(t):
    return sp.log(1 + sp.exp(t))


def proves(lhs, rhs) -> bool:
    """Whether SymPy shows lhs == rhs for every real x."""
    return sp.simplify(sp.expand_log(lhs - rhs, force=True)) == 0


def compile_fn(inputs, output):
    return theanine.function(inputs, output, mode="py")


def fired(f):
    return {r.rewrite for r in f.rewrite_log}


def scalar_ops(f):
    """The scalar ops of the Elemwise nodes of the compiled graph."""
    return [n.op.scalar_op for n in f.graph.toposort() if isinstance(n.op, Elemwise)]


def op_types(f):
    return [type(n.op) for n in f.graph.toposort()]


#: values that exercise the corners of IEEE arithmetic
SPECIAL = np.array([0.0, -0.0, 1.5, -2.25, 1e-310, 3e300, -np.inf, np.inf, np.nan, -np.nan])


# --- canonicalize: arithmetic ------------------------------------------------------------

ARITHMETIC = [
    # (rewrite, expression, what it computes in NumPy, the identity as SymPy lhs and rhs, op removed)
    ("mul_by_one", lambda x: x * 1, lambda v: v * 1, X * 1, X, ts.mul),
    ("mul_by_one", lambda x: 1.0 * x, lambda v: 1.0 * v, 1 * X, X, ts.mul),
    ("add_zero", lambda x: x + 0, lambda v: v + 0, X + 0, X, ts.add),
    ("add_zero", lambda x: 0.0 + x, lambda v: 0.0 + v, 0 + X, X, ts.add),
    ("sub_zero", lambda x: x - 0, lambda v: v - 0, X - 0, X, ts.sub),
    ("div_by_one", lambda x: x / 1, lambda v: v / 1, X / 1, X, ts.true_div),
    ("pow_one", lambda x: x ** 1, lambda v: v ** 1, X ** 1, X, ts.pow_),
    ("neg_neg", lambda x: -(-x), lambda v: -(-v), -(-X), X, ts.neg),
]


@pytest.mark.parametrize("name, build, reference, lhs, rhs, removed", ARITHMETIC,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ARITHMETIC)])
def test_arithmetic_identity(name, build, reference, lhs, rhs, removed):
    assert proves(lhs, rhs)
    x = T.vector("x")
    f = compile_fn([x], build(x))
    assert name in fired(f)
    assert removed not in scalar_ops(f)
    with np.errstate(all="ignore"):
        out, expected = f(SPECIAL), reference(SPECIAL)
    np.testing.assert_array_equal(out, expected)
    if name != "add_zero":  # which keeps -0.0 where -0.0 + 0 is +0.0 (equal, as checked above)
        assert out.tobytes() == expected.tobytes()


def test_identity_keeps_the_dtype_of_the_result():
    """int8 * 1.0 is a float: the rewrite gives cast(x), not x."""
    x = T.vector("x", dtype="int8")
    f = compile_fn([x], x * 1.0)
    assert "mul_by_one" in fired(f)
    assert scalar_ops(f) == [ts.Cast("float64")]
    out = f(np.array([-128, 0, 127], dtype="int8"))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [-128.0, 0.0, 127.0])


def test_identity_not_applied_when_the_constant_broadcasts():
    """x * ones(3) with x of shape (1,) has shape (3,): it is not x."""
    x = T.tensor(shape=(1,), name="x")
    f = compile_fn([x], x * np.ones(3))
    assert "mul_by_one" not in fired(f)
    np.testing.assert_array_equal(f(np.array([2.0])), [2.0, 2.0, 2.0])


def test_remove_tensor_copy():
    x = T.vector("x")
    f = compile_fn([x], T.tensor_copy(x))
    assert "remove_tensor_copy" in fired(f)
    assert ts.identity not in scalar_ops(f)
    v = np.array([1.0, 2.0])
    out = f(v)
    np.testing.assert_array_equal(out, v)
    assert not np.shares_memory(out, v)  # the function still returns its own array


# --- canonicalize: casts -------------------------------------------------------------------


def test_remove_same_dtype_cast():
    x = T.vector("x")
    f = compile_fn([x], Elemwise(ts.Cast("float64"))(x))
    assert "remove_same_dtype_cast" in fired(f)
    assert f.graph.apply_nodes == set()
    np.testing.assert_array_equal(f(SPECIAL), SPECIAL)


def test_merge_lossless_casts():
    x = T.vector("x", dtype="int16")
    f = compile_fn([x], T.cast(T.cast(x, "int32"), "float64"))
    assert "merge_lossless_casts" in fired(f)
    assert scalar_ops(f) == [ts.Cast("float64")]
    v = np.array([-32768, -1, 0, 32767], dtype="int16")
    np.testing.assert_array_equal(f(v), v.astype("int32").astype("float64"))


def test_widening_float_casts_round_trip_to_nothing():
    """float32 -> float64 -> float32 is exact: the two casts disappear."""
    x = T.vector("x", dtype="float32")
    f = compile_fn([x], T.cast(T.cast(x, "float64"), "float32"))
    assert "merge_lossless_casts" in fired(f)
    assert f.graph.apply_nodes == set()
    v = np.array([1e-40, 3.4e38, np.nan], dtype="float32")
    np.testing.assert_array_equal(f(v), v)


@pytest.mark.parametrize("dtype, via, values", [("float64", "float32", [0.1, 1e-300]),
                                                ("int64", "float64", [2 ** 60 + 1, 3])])
def test_lossy_casts_are_kept(dtype, via, values):
    """cast(cast(x, narrower), dtype) rounds: it is not cast(x, dtype)."""
    x = T.vector("x", dtype=dtype)
    f = compile_fn([x], T.cast(T.cast(x, via), dtype))
    assert "merge_lossless_casts" not in fired(f)
    v = np.array(values, dtype=dtype)
    np.testing.assert_array_equal(f(v), v.astype(via).astype(dtype))
    assert not np.array_equal(f(v), v)


# --- canonicalize: shapes ------------------------------------------------------------------


def test_double_transpose_becomes_identity():
    m = T.matrix("m")
    f = compile_fn([m], m.T.T)
    assert "merge_dimshuffles" in fired(f)
    assert DimShuffle not in op_types(f)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), v)


def test_merge_dimshuffles():
    t = T.tensor3("t")
    y = t.dimshuffle(2, "x", 0, 1).dimshuffle(3, 1, 0, 2)
    f = compile_fn([t], y)
    assert "merge_dimshuffles" in fired(f)
    (node,) = f.graph.toposort()
    assert node.op.new_order == (1, "x", 2, 0)
    v = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(f(v), np.transpose(v, (2, 0, 1))[:, None].transpose(3, 1, 0, 2))


@pytest.mark.parametrize("build", [lambda c: DimShuffle(2, (0, 1))(c), lambda c: c.dimshuffle(0)
                                   .dimshuffle(0, "x")], ids=["range", "drop-and-restore"])
def test_remove_identity_dimshuffle(build):
    c = T.col("c")
    f = compile_fn([c], build(c))
    assert "remove_identity_dimshuffle" in fired(f)
    assert f.graph.apply_nodes == set()
    v = np.arange(3.0).reshape(3, 1)
    np.testing.assert_array_equal(f(v), v)


def test_merge_reshapes():
    m = T.matrix("m")
    f = compile_fn([m], m.reshape((-1,)).reshape((2, -1)))
    assert "merge_reshapes" in fired(f)
    assert op_types(f) == [Reshape]
    v = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(f(v), v.reshape(2, 3))


@pytest.mark.parametrize("static", [False, True])
def test_remove_noop_reshape(static):
    m = T.tensor(shape=(2, 3) if static else (None, None), name="m")
    f = compile_fn([m], m.reshape((2, 3)) if static else m.reshape(m.shape))
    assert "remove_noop_reshape" in fired(f)
    assert f.graph.apply_nodes == set()
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), v)


def test_remove_noop_specify_shape():
    m = T.tensor(shape=(2, 3), name="m")
    f = compile_fn([m], T.specify_shape(m, (2, None)))
    assert "remove_noop_specify_shape" in fired(f)
    assert SpecifyShape not in op_types(f)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), v)


def test_remove_noop_sum_to():
    g = T.tensor(shape=(2, 3), name="g")
    f = compile_fn([g], SumTo()(T.exp(g), g))
    assert "remove_noop_sum_to" in fired(f)
    assert SumTo not in op_types(f)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), np.exp(v))


def test_sum_to_that_reduces_is_kept():
    g, x = T.matrix("g"), T.tensor(shape=(None, 1), name="x")
    f = compile_fn([g, x], SumTo()(g, x))
    assert "remove_noop_sum_to" not in fired(f)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v, np.zeros((2, 1))), v.sum(axis=1, keepdims=True))


def test_static_shape():
    m = T.tensor(shape=(2, 3), name="m")
    f = compile_fn([m], Shape()(m))
    assert "static_shape" in fired(f)
    assert f.graph.apply_nodes == set()
    out = f(np.zeros((2, 3)))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2, 3])


def test_static_shape_i():
    m = T.tensor(shape=(None, 3), name="m")
    f = compile_fn([m], m.shape[-1] * m.shape[0])
    assert "static_shape_i" in fired(f)
    (index,) = [n for n in f.graph.toposort() if isinstance(n.op, Subtensor)]  # only shape(m)[0] is left
    assert is_constant_value(index.inputs[1], 0)
    assert f(np.zeros((5, 3))) == 15


@pytest.mark.parametrize("dims", ["static", "symbolic"])
def test_remove_noop_alloc(dims):
    m = T.tensor(shape=(2, 3) if dims == "static" else (None, None), name="m")
    f = compile_fn([m], T.alloc(m, 2, 3) if dims == "static" else T.alloc(m, m.shape[0], m.shape[1]))
    assert "remove_noop_alloc" in fired(f)
    assert Alloc not in op_types(f)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), v)


def test_alloc_that_broadcasts_is_kept():
    r = T.row("r")
    f = compile_fn([r], T.alloc(r, 2, r.shape[1]))
    assert "remove_noop_alloc" not in fired(f)
    np.testing.assert_array_equal(f(np.array([[1.0, 2.0]])), [[1.0, 2.0], [1.0, 2.0]])


# --- stabilize -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [lambda x: T.log(1 + x), lambda x: T.log(x + 1)], ids=["1+x", "x+1"])
def test_log_one_plus(build):
    assert proves(sp.log(1 + X), sp_log1p(X).rewrite(sp.log))
    x = T.vector("x")
    f = compile_fn([x], build(x))
    assert "log_one_plus" in fired(f)
    assert scalar_ops(f) == [ts.log1p]
    v = np.array([1e-20, -0.5, 3.0])
    assert np.log(1 + v[0]) == 0.0  # the naive form loses x entirely
    np.testing.assert_array_equal(f(v), np.log1p(v))
    assert f(v)[0] == 1e-20


def test_exp_minus_one():
    assert proves(sp.exp(X) - 1, sp_expm1(X).rewrite(sp.exp))
    x = T.vector("x")
    f = compile_fn([x], T.exp(x) - 1)
    assert "exp_minus_one" in fired(f)
    assert scalar_ops(f) == [ts.expm1]
    v = np.array([1e-20, -3.0, 2.0])
    assert np.exp(v[0]) - 1 == 0.0
    np.testing.assert_array_equal(f(v), np.expm1(v))


def test_log_sigmoid():
    assert proves(sp.log(sp_sigmoid(X)), -sp_softplus(-X))
    x = T.vector("x")
    f = compile_fn([x], T.log(T.sigmoid(x)))
    assert "log_sigmoid" in fired(f)
    assert ts.log not in scalar_ops(f) and ts.sigmoid not in scalar_ops(f)
    v = np.array([-800.0, -1.0, 0.0, 2.0, 800.0])
    with np.errstate(over="ignore", divide="ignore"):
        assert np.log(1 / (1 + np.exp(800.0))) == -np.inf  # the naive form
    out = f(v)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, -np.logaddexp(0, -v), rtol=1e-15)
    assert out[0] == -800.0


def test_one_minus_sigmoid():
    assert proves(1 - sp_sigmoid(X), sp_sigmoid(-X))
    x = T.vector("x")
    f = compile_fn([x], 1 - T.sigmoid(x))
    assert "one_minus_sigmoid" in fired(f)
    assert ts.sub not in scalar_ops(f)
    v = np.array([40.0, 0.0, -3.0])
    naive = 1 - 1 / (1 + np.exp(-v))
    assert naive[0] == 0.0  # cancellation: all digits lost
    out = f(v)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(v)), rtol=1e-15)
    assert out[0] > 0


def test_log_one_minus_sigmoid():
    """log(1 - sigmoid(x)) -> log(sigmoid(-x)) -> -softplus(x), by two rewrites."""
    assert proves(sp.log(1 - sp_sigmoid(X)), -sp_softplus(X))
    x = T.vector("x")
    f = compile_fn([x], T.log(1 - T.sigmoid(x)))
    assert {"one_minus_sigmoid", "log_sigmoid"} <= fired(f)
    assert scalar_ops(f) == [ts.softplus, ts.neg]
    v = np.array([800.0, 1.0, -30.0])
    out = f(v)
    np.testing.assert_allclose(out, -np.logaddexp(0, v), rtol=1e-15)
    assert out[0] == -800.0


@pytest.mark.parametrize("axis, keepdims", [(1, False), (0, True), (None, False)])
def test_log_sum_exp(axis, keepdims):
    xs = sp.symbols("x1:4", real=True)
    m = sp.Symbol("m", real=True)
    assert proves(sp.log(sum(map(sp.exp, xs))), m + sp.log(sum(sp.exp(v - m) for v in xs)))
    x = T.matrix("x")
    f = compile_fn([x], T.log(T.sum(T.exp(x), axis=axis, keepdims=keepdims)))
    assert "log_sum_exp" in fired(f)
    assert any(isinstance(n.op, Reduce) and n.op.kind == "max" for n in f.graph.toposort())
    v = np.array([[1000.0, 1000.0, -np.inf], [-1000.0, 0.0, 1.0]])
    with np.errstate(over="ignore"):
        assert np.isinf(np.log(np.sum(np.exp(v)))).any()  # the naive form overflows
    np.testing.assert_allclose(f(v), logsumexp(v, axis=axis, keepdims=keepdims), rtol=1e-15)


@pytest.mark.parametrize("name, build, reference", [
    ("log_sigmoid", lambda x: T.log(T.sigmoid(x)), lambda v: -np.logaddexp(0, -v)),
    ("one_minus_sigmoid", lambda x: 1 - T.sigmoid(x), lambda v: 1 / (1 + np.exp(v))),
    ("log_sum_exp", lambda x: T.log(T.sum(T.exp(x))), logsumexp),
], ids=["log_sigmoid", "one_minus_sigmoid", "log_sum_exp"])
def test_stable_forms_of_unsigned_integers_do_not_wrap_around(name, build, reference):
    """-x and x - max(x) are computed in floats: in uint8 they would wrap around."""
    x = T.vector("x", dtype="uint8")
    f = compile_fn([x], build(x))
    assert name in fired(f)
    v = np.array([0, 5, 255], dtype="uint8")
    np.testing.assert_allclose(f(v), reference(v.astype("float64")), rtol=1e-6)


def test_log_sum_exp_does_not_rewrite_its_own_result():
    """logsumexp contains log(sum(exp(x - max))): rewriting that again would never end."""
    x = T.vector("x")
    f = compile_fn([x], T.log(T.sum(T.exp(x))))
    assert [r.rewrite for r in f.rewrite_log].count("log_sum_exp") == 1


# --- specialize ------------------------------------------------------------------------------

POWERS = [
    # (rewrite, exponent, the op it introduces, the SymPy form)
    ("pow_two_to_sqr", 2, ts.sqr, X * X),
    ("pow_half_to_sqrt", 0.5, ts.sqrt, sp.sqrt(X)),
    ("pow_minus_one_to_reciprocal", -1, ts.reciprocal, 1 / X),
]


@pytest.mark.parametrize("name, exponent, op, form", POWERS, ids=[p[0] for p in POWERS])
def test_special_powers(name, exponent, op, form):
    assert proves(X ** sp.nsimplify(exponent), form)
    x = T.vector("x")
    f = compile_fn([x], x ** exponent)
    assert name in fired(f)
    assert scalar_ops(f) == [op]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(f(SPECIAL), np.power(SPECIAL, float(exponent)))


def test_integer_power_minus_one_is_not_a_reciprocal():
    x = T.vector("x", dtype="int64")
    f = compile_fn([x], x ** -1)
    assert "pow_minus_one_to_reciprocal" not in fired(f)
    assert ts.pow_ in scalar_ops(f)


def test_div_by_power_of_two():
    c = sp.Symbol("c", nonzero=True)
    assert proves(X / c, X * (1 / c))
    x = T.vector("x", dtype="float32")
    f = compile_fn([x], x / 4)
    assert "div_by_power_of_two" in fired(f)
    assert scalar_ops(f) == [ts.mul]
    v = np.array([1e-45, 3.3e38, 0.1, -0.0, np.inf, np.nan], dtype="float32")
    out = f(v)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, v / np.float32(4))
    assert np.signbit(out[3])


@pytest.mark.parametrize("c", [3.0, 0.0, 2.0 ** -1074])
def test_div_by_other_constants_is_kept(c):
    """1/3 is inexact, 1/0 is inf, 2**1074 overflows: x / c stays a division."""
    x = T.vector("x")
    f = compile_fn([x], x / c)
    assert "div_by_power_of_two" not in fired(f)
    assert ts.true_div in scalar_ops(f)


# --- merge, constant folding ------------------------------------------------------------------


def test_merge_duplicate_subexpressions():
    x = T.vector("x")
    f = compile_fn([x], T.exp(x) * T.sin(x) + T.exp(x) * T.sin(x))
    assert "merge" in fired(f)
    assert sorted(op.name for op in scalar_ops(f)) == ["add", "exp", "mul", "sin"]
    v = np.array([0.5, 2.0])
    np.testing.assert_allclose(f(v), 2 * np.exp(v) * np.sin(v))


def test_merge_constants_equal_by_value():
    x = T.scalar("x")
    f = compile_fn([x], (x + T.constant(2.0)) * T.constant(2.0) + (x + T.constant(2.0)))
    constants = {id(i) for n in f.graph.toposort() for i in n.inputs if isinstance(i, Constant)}
    assert len(constants) == 1
    assert sorted(op.name for op in scalar_ops(f)) == ["add", "add", "mul"]
    assert f(1.0) == 9.0


def test_constant_folding():
    f = compile_fn([], T.constant(2.0) * 3.0)
    assert "constant_folding" in fired(f)
    assert f.graph.apply_nodes == set()
    assert f() == 6.0


def test_constant_folding_inside_a_graph():
    x = T.vector("x")
    f = compile_fn([x], x + T.exp(T.constant(0.0)) * 3.0)
    (node,) = f.graph.toposort()
    assert is_constant_value(node.inputs[1], 3.0)
    np.testing.assert_array_equal(f(np.array([1.0])), [4.0])


# --- the engine ---------------------------------------------------------------------------------


def test_engine_stops_on_rewrites_that_undo_each_other():
    def neg_to_mul(fgraph, node):
        return [node.inputs[0] * -1.0]

    def mul_to_neg(fgraph, node):
        return [-node.inputs[0]] if is_constant_value(node.inputs[1], -1) else None

    db = RewriteDB()
    db.register(LocalRewrite("neg_to_mul", neg_to_mul, ("_ping_pong",), (Elemwise(ts.neg),)))
    db.register(LocalRewrite("mul_to_neg", mul_to_neg, ("_ping_pong",), (Elemwise(ts.mul),)))
    x = T.scalar("x")
    fg = FunctionGraph([x], [-x])
    with pytest.warns(ApplyBudgetExceeded, match="stopped after"):
        applied = apply_to_equilibrium(fg, db.query("_ping_pong"), "_ping_pong")
    assert applied > 2
    assert {r.rewrite for r in fg.rewrite_log} == {"neg_to_mul", "mul_to_neg"}
    assert GraphRunner(fg.inputs, fg.outputs)(np.asarray(3.0))[0] == -3.0


def test_rewriting_a_chain_of_100000_nodes():
    """No recursion and no quadratic step: 50,000 `+ 1.0` and 50,000 `* 1.0`, alternating."""
    x = T.scalar("x")
    y = x
    for k in range(100_000):
        y = y * 1.0 if k % 2 else y + 1.0
    fg = FunctionGraph([x], [y])
    assert len(fg.apply_nodes) == 100_000
    rewrite_graph(fg)
    assert len(fg.apply_nodes) == 50_000
    assert {n.op.scalar_op for n in fg.apply_nodes} == {ts.add}
    assert len({id(n.inputs[1]) for n in fg.apply_nodes}) == 1  # 100,000 constants merged
    assert GraphRunner(fg.inputs, fg.outputs)(np.asarray(0.5))[0] == 50_000.5


@pytest.mark.parametrize("n", [3, 5, 10, 16])
def test_pow_small_integer_to_mul(n, mode):
    """x ** n -> products by squaring: fires, and stays within a few ulp of NumPy's power."""
    x = T.dvector("x")
    f = theanine.function([x], x ** n, mode=mode)
    assert "pow_small_integer_to_mul" in [r.rewrite for r in f.rewrite_log]
    ops = [getattr(nd.op, "scalar_op", None) for nd in f.graph.toposort()]
    names = [name for op in ops for name in
             (op.name for op in getattr(op, "ops", [op])) if op is not None]
    assert "pow" not in names
    # squaring: bit_length - 1 squares and popcount - 1 multiplications
    assert names.count("sqr") == n.bit_length() - 1
    assert names.count("mul") == bin(n).count("1") - 1
    a = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(f(a), a ** n, rtol=8 * np.finfo(float).eps * n, atol=0)


def test_pow_large_or_fractional_exponent_stays_pow(mode):
    x = T.dvector("x")
    for e in (17, 2.5):
        f = theanine.function([x], x ** e, mode=mode)
        assert "pow_small_integer_to_mul" not in [r.rewrite for r in f.rewrite_log]


# --- native lowering of core ops (rewriting.lower_ops) ------------------------------------

def _lowering_cases():
    """(rewrite, which ops it removes, inputs, output, argument values)."""
    from theanine.gradient import ScalarGradOp, zero_grad
    from theanine.tensor.basic import ARange, Eye, Repeat, Split
    from theanine.tensor.math import Dot, MatMul
    from theanine.tensor.subtensor import IncSubtensor

    def kind(op_type):
        return lambda op: isinstance(op, op_type)

    def not_on_leading_axes(op_type):  # the native gather and scatter index leading axes
        return lambda op: isinstance(op, op_type) and op.is_advanced and op.idx_list != (("a",),)

    x, t, iv, n = T.dmatrix("x"), T.dtensor3("t"), T.lvector("iv"), T.lscalar("n")
    a, b = T.lmatrix("a"), T.lmatrix("b")
    xv, tv = np.arange(12.0).reshape(3, 4), np.arange(24.0).reshape(2, 3, 4)
    return [
        ("remove_gradient_op", kind(ScalarGradOp), [x], zero_grad(x) * 2, [xv]),
        ("lower_eye", kind(Eye), [n], T.eye(n, n + 1, 1), [3]),
        ("lower_float_arange", lambda op: isinstance(op, ARange) and op.dtype == "float64", [n],
         T.arange(0.5, n, 0.25), [3]),
        ("lower_split", kind(Split), [x, iv], T.split(x, iv, 2, axis=1)[1], [xv, np.array([1, 3])]),
        ("lower_repeat", kind(Repeat), [x, n], T.repeat(x, n, axis=1), [xv, 2]),
        ("lower_repeat", kind(Repeat), [x, iv], T.repeat(x, iv, axis=0), [xv, np.array([2, 0, 1])]),
        ("lower_advanced_subtensor", not_on_leading_axes(Subtensor), [t, iv], t[1:, iv, ::-1],
         [tv, np.array([2, -3])]),
        ("lower_advanced_inc_subtensor", not_on_leading_axes(IncSubtensor), [t, iv],
         T.inc_subtensor(t[:, iv], 1.0), [tv, np.array([0, 0])]),
        ("lower_dot", kind(Dot), [a, b], T.dot(a, b), [np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)]),
        ("lower_matmul", kind(MatMul), [t, x], T.matmul(t, x.T), [tv, xv]),
    ]


@pytest.mark.parametrize("case", range(len(_lowering_cases())))
def test_native_lowering_of_core_ops(case):
    """In the native modes each op becomes ops with native steps: the rewrite fires, the op
    is gone, nothing runs in Python, and the values are the reference's. Mode 'py' keeps it."""
    name, removed, inputs, output, values = _lowering_cases()[case]
    ref = theanine.function(inputs, output, mode="py")
    assert name not in fired(ref)
    want = ref(*values)
    for mode in ("llvm", "c"):
        f = theanine.function(inputs, output, mode=mode)
        assert name in fired(f) and f.fallbacks == []
        assert not [n for n in f.graph.toposort() if removed(n.op)]
        np.testing.assert_array_equal(f(*values), want)


def test_native_lowering_covers_data_dependent_and_general_batched_ops():
    x, t = T.dmatrix("x"), T.dtensor3("t")
    f = theanine.function([x, t], [x[x > 0], T.nonzero(x)[0], T.matmul(t, t)], mode="llvm")
    assert f.fallbacks == []
    xv, tv = np.array([[1.0, -2.0], [0.0, 3.0]]), np.arange(18.0).reshape(2, 3, 3)
    for got, want in zip(f(xv, tv), [xv[xv > 0], np.nonzero(xv)[0], np.matmul(tv, tv)]):
        np.testing.assert_array_equal(got, want)
