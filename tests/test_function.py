"""theanine.function: inputs, outputs, updates, givens, shared variables, errors, config."""

import os
import subprocess
import sys

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import In, Out, function, shared


def test_call_by_position_and_by_name(mode):
    x, y = T.dscalars("x", "y")
    f = function([x, y], x - y, mode=mode)
    assert f(5.0, 3.0) == 2.0
    assert f(y=3.0, x=5.0) == 2.0
    assert f(5.0, y=3.0) == 2.0


def test_in_with_default_and_custom_name(mode):
    x, y = T.dscalars("x", "y")
    f = function([x, In(y, value=10.0, name="offset")], x + y, mode=mode)
    assert f(1.0) == 11.0
    assert f(1.0, offset=2.0) == 3.0


@pytest.mark.parametrize("call, message", [
    (lambda f: f(1.0), "missing input y"),
    (lambda f: f(1.0, 2.0, 3.0), "at most 2 arguments, got 3"),
    (lambda f: f(1.0, z=2.0), "unknown keyword argument 'z'"),
    (lambda f: f(1.0, 2.0, x=1.0), "given twice"),
])
def test_argument_count_and_keyword_errors(call, message, mode):
    x, y = T.dscalars("x", "y")
    f = function([x, y], x + y, mode=mode)
    with pytest.raises(TypeError, match=message):
        call(f)


def test_wrong_dtype_names_the_input(mode):
    x = T.fvector("x")
    f = function([x], x * 2, mode=mode)
    with pytest.raises(TypeError, match=r"input 0 \(x\).*dtype float32.*float64"):
        f(np.array([1.0, 2.0]))
    out = function([x], x * 2, mode=mode, allow_input_downcast=True)(np.array([1.0, 2.0]))
    assert out.dtype == np.float32
    assert f([1.0, 2.0]).dtype == np.float32  # Python floats are accepted for float32 inputs


def test_wrong_ndim_names_the_input(mode):
    x = T.dmatrix("x")
    f = function([x], x.sum(), mode=mode)
    with pytest.raises(TypeError, match=r"input 0 \(x\): expected 2 dimensions.*got an array with 1"):
        f(np.ones(3))


def test_wrong_static_shape(mode):
    x = T.tensor(dtype="float64", shape=(2, None), name="x")
    f = function([x], x.sum(), mode=mode)
    with pytest.raises(ValueError, match=r"expected shape \(2, \?\), got \(3, 4\)"):
        f(np.ones((3, 4)))


def test_integer_input_rejects_lossy_values(mode):
    i = T.iscalar("i")
    f = function([i], i * 2, mode=mode)
    assert f(3) == 6
    with pytest.raises(TypeError, match="cannot be represented exactly"):
        f(2.5)


def test_unused_input(mode):
    x, y = T.dscalars("x", "y")
    with pytest.raises(ValueError, match=r"input 1 \(y\) is not used"):
        function([x, y], x * 2, mode=mode)
    with pytest.warns(UserWarning, match="not used"):
        function([x, y], x * 2, mode=mode, on_unused_input="warn")
    assert function([x, y], x * 2, mode=mode, on_unused_input="ignore")(1.0, 5.0) == 2.0


def test_missing_input_is_reported():
    x, y = T.dscalars("x", "y")
    with pytest.raises(ValueError, match="needs the input y"):
        function([x], x + y)


def test_unknown_mode_and_bad_inputs():
    x = T.dscalar("x")
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        function([x], x, mode="fast")
    with pytest.raises(TypeError, match="inputs must be a list"):
        function(x, x)
    with pytest.raises(TypeError, match="shared variable"):
        function([shared(1.0)], x, on_unused_input="ignore")


def test_single_and_list_outputs(mode):
    x = T.dscalar("x")
    assert isinstance(function([x], x * 2, mode=mode)(1.0), np.ndarray)
    assert isinstance(function([x], [x * 2], mode=mode)(1.0), list)
    assert function([x], [], mode=mode, on_unused_input="ignore")(1.0) == []


def test_updates_apply_after_all_outputs(mode):
    counter = shared(np.int64(0), name="counter")
    acc = shared(np.zeros(2), name="acc")
    x = T.dvector("x")
    f = function([x], [counter * 10, acc + 0], updates=[(counter, counter + 1), (acc, acc + x)],
                 mode=mode)
    out1 = f(np.array([1.0, 2.0]))
    out2 = f(np.array([1.0, 2.0]))
    assert out1[0] == 0 and out2[0] == 10
    np.testing.assert_array_equal(out1[1], [0.0, 0.0])
    np.testing.assert_array_equal(out2[1], [1.0, 2.0])
    assert counter.get_value() == 2
    np.testing.assert_array_equal(acc.get_value(), [2.0, 4.0])


def test_updates_swap_uses_old_values(mode):
    a, b = shared(1.0, name="a"), shared(2.0, name="b")
    function([], [], updates={a: b, b: a}, mode=mode)()
    assert (a.get_value(), b.get_value()) == (2.0, 1.0)


def test_update_errors():
    w = shared(np.zeros(3), name="w")
    x = T.dvector("x")
    with pytest.raises(TypeError, match="not a shared variable"):
        function([x], [], updates=[(x, x + 1)])
    with pytest.raises(TypeError, match="dtype float32.*cast"):
        function([], [], updates=[(w, T.cast(w, "float32"))])
    with pytest.raises(ValueError, match="more than one update"):
        function([], [], updates=[(w, w + 1), (w, w + 2)])


def test_default_updates(mode):
    s = shared(0.0, name="s")
    s.default_update = s + 1
    f = function([], s * 1, mode=mode)
    f()
    f()
    assert s.get_value() == 2.0
    g = function([], s * 1, mode=mode, no_default_updates=True)
    g()
    assert s.get_value() == 2.0


def test_givens(mode):
    x, y = T.dscalars("x", "y")
    w = shared(3.0, name="w")
    z = x * w
    f = function([y], z, givens={x: y + 1, w: T.constant(10.0)}, mode=mode)
    assert f(1.0) == 20.0
    assert w.get_value() == 3.0
    with pytest.raises(TypeError, match="givens"):
        function([y], z, givens={x: T.lscalar()})


def test_shared_value_semantics():
    value = np.arange(3.0)
    s = shared(value)
    value[0] = 100.0
    assert s.get_value()[0] == 0.0  # copied on creation
    got = s.get_value()
    got[1] = 50.0
    assert s.get_value()[1] == 1.0  # get_value copies
    assert s.get_value(borrow=True) is s.get_value(borrow=True)
    b = shared(value, borrow=True)
    assert b.get_value(borrow=True) is value
    s.set_value(np.ones(5))  # shapes are free by default
    assert s.get_value().shape == (5,)
    with pytest.raises(TypeError, match="2 dimensions|1 dimensions"):
        s.set_value(np.ones((2, 2)))


def test_outputs_are_fresh_unless_borrowed(mode):
    x = T.dvector("x")
    s = shared(np.arange(3.0), name="s")
    f = function([x], [x.T, s * 1, x[::-1]], mode=mode)
    a = np.arange(3.0)
    outs = f(a)
    for out in outs:
        assert not np.may_share_memory(out, a)
        assert not np.may_share_memory(out, s.get_value(borrow=True))
    g = function([x], Out(x[::-1], borrow=True), mode=mode)
    assert np.may_share_memory(g(a), a)


def test_constant_output_is_writable(mode):
    f = function([], T.constant(np.arange(3.0)) * 1, mode=mode)
    out = f()
    out[0] = 5.0
    assert f()[0] == 0.0


def test_eval():
    x = T.dvector("x")
    np.testing.assert_array_equal((x * 2).eval({x: np.array([1.0, 2.0])}), [2.0, 4.0])
    assert T.constant(3.0).eval() == 3.0


def test_trust_input(mode):
    x = T.dvector("x")
    f = function([x], x * 2, mode=mode)
    f.trust_input = True
    np.testing.assert_array_equal(f(np.ones(2)), [2.0, 2.0])


def test_rewritten_graph_and_log_are_exposed(mode):
    x = T.dvector("x")
    f = function([x], T.log(1 + x), mode=mode)
    assert f.graph.outputs
    assert any(r.rewrite for r in f.rewrite_log)


def test_runtime_error_points_to_user_line(mode):
    x, y = T.dvectors("x", "y")
    z = x + y  # the failing expression
    f = function([x, y], z, mode=mode)
    with pytest.raises(ValueError) as info:
        f(np.ones(2), np.ones(3))
    message = str(info.value)
    assert "add" in message and "(2,)" in message and "(3,)" in message
    assert f"{__file__}" in message and "test_runtime_error_points_to_user_line" in message


def test_static_shape_error_at_build_time():
    a = T.tensor(dtype="float64", shape=(2, 3), name="a")
    b = T.tensor(dtype="float64", shape=(4, 2), name="b")
    with pytest.raises(ValueError, match=r"dot.*\(2, 3\).*\(4, 2\)") as info:
        T.dot(a, b)
    assert info.traceback[-1].path is not None
    assert any(entry.path == __file__ or str(entry.path) == __file__ for entry in info.traceback)
    with pytest.raises(ValueError, match="cannot reshape"):
        a.reshape((5,))
    with pytest.raises(ValueError, match="broadcast"):
        a + T.tensor(dtype="float64", shape=(4,))


def test_config_change_and_floatx():
    assert theanine.config.floatX in ("float64", "float32")
    with theanine.config.change(floatX="float32"):
        assert T.matrix().dtype == "float32"
        assert (T.fvector() * 2.5).dtype == "float32"
    assert T.matrix().dtype == theanine.config.floatX
    with pytest.raises(ValueError, match="floatX"):
        theanine.config.floatX = "float8"
    with pytest.raises(AttributeError, match="no setting 'flaotX'"):
        theanine.config.flaotX = "float32"


def test_theanine_flags_environment_variable(tmp_path):
    env = dict(os.environ, THEANINE_FLAGS=f"floatX=float32,mode=py,cache_dir={tmp_path}")
    code = ("import theanine, theanine.tensor as T; c = theanine.config; "
            "print(c.floatX, c.mode, c.cache_dir, T.vector().dtype)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["float32", "py", str(tmp_path), "float32"]  # the flags override the llvm default
    bad = dict(os.environ, THEANINE_FLAGS="floatX=float99")
    proc = subprocess.run([sys.executable, "-c", "import theanine"], env=bad, capture_output=True, text=True)
    assert proc.returncode != 0 and "floatX" in proc.stderr


def test_default_cache_dir_is_under_user_cache():
    assert theanine.config.cache_dir.endswith("theanine")


def test_logistic_regression_trains(mode, rng):
    """Logistic regression with shared weights and updates reaches > 95% training accuracy."""
    n, d = 400, 5
    true_w = rng.normal(size=d)
    X_val = rng.normal(size=(n, d))
    y_val = (X_val @ true_w + 0.3 > 0).astype("float64")
    X, y = T.dmatrix("X"), T.dvector("y")
    w = shared(np.zeros(d), name="w")
    b = shared(0.0, name="b")
    p = T.nnet.sigmoid(T.dot(X, w) + b)
    loss = -(y * T.log(p) + (1 - y) * T.log(1 - p)).mean() + 0.001 * (w ** 2).sum()
    gw, gb = theanine.grad(loss, [w, b])
    train = function([X, y], loss, updates=[(w, w - 0.5 * gw), (b, b - 0.5 * gb)], mode=mode)
    predict = function([X], p > 0.5, mode=mode)
    losses = [float(train(X_val, y_val)) for _ in range(200)]
    accuracy = (predict(X_val) == y_val).mean()
    assert losses[-1] < losses[0] / 3
    assert accuracy > 0.95
