"""Bad input to compiled functions, in every back end (modes 'py', 'llvm', 'c').

Each case either raises a clear error, or computes the right result; none crashes
the process, writes into an argument, or leaves the function unusable.

=====================================  ==============================================
case                                   expected
=====================================  ==============================================
wrong dtype (f64 into f32, float into  TypeError naming the function, the input and the
int, int64 into int32, complex)        dtypes; ``allow_input_downcast=True`` accepts it
not numbers (str, bytes, None, dict,   TypeError naming the input (numeric strings are
object, ragged lists, a variable)      not numbers)
ndarray subclasses (np.matrix)         read as plain arrays (not as 2-d matrices)
wrong number of dimensions             TypeError with both ranks and the shape
wrong static size                      ValueError with the expected and actual shapes
too many / too few arguments           TypeError with the counts / the missing name
unknown keyword, input given twice     TypeError listing the input names
nan, +inf, -inf anywhere               propagate as NumPy does; no exception and no
                                       warning, even with warnings turned into errors
integer index out of range             IndexError naming the op (Subtensor), the index
                                       and the size; the next call works
gather (x[iv], take) out of range      IndexError naming the op and the index
allocation too large (10**13 elements, MemoryError (ValueError where the size does not
a 10**7 x 10**7 outer product)         fit in an integer, never "cannot be broadcast");
                                       the process and the function survive
negative size                          ValueError naming alloc
inputs aliasing each other             right results; arguments unchanged
outputs and ``borrow``                 outputs never alias arguments, shared values or
                                       each other; ``Out(borrow=True)`` may, and feeding
                                       a borrowed output back in as the next argument
                                       is right; an input aliasing a shared variable
                                       updated by the call reads the old value
negative steps, odd layouts            right results for reversed, strided, Fortran,
(misaligned, byte-swapped, stride 0)   misaligned, byte-swapped and broadcast inputs
shapes that do not match at run time   ValueError naming the op, the shapes, and the
(elementwise, fused, dot, reshape)     file and line where the expression was created
max of an empty axis                   ValueError naming Max
integer // 0, % 0, INT_MIN // -1       0, 0, INT_MIN (NumPy's results; no crash)
integer ** negative integer            ValueError naming pow
=====================================  ==============================================
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import In, Out, shared


def here() -> int:
    """The line number of the caller (where an expression is created)."""
    return inspect.currentframe().f_back.f_lineno


THIS_FILE = os.path.abspath(__file__)


def fn(inputs, outputs, mode, **kwargs):
    return theanine.function(inputs, outputs, mode=mode, **kwargs)


# ---------------------------------------------------------------- argument checking

@pytest.mark.parametrize("declared, value, words", [
    ("float32", np.ones(3), ["float32", "float64"]),
    ("int32", np.ones(3), ["int32", "float64"]),
    ("int32", np.ones(3, "int64"), ["int32", "int64"]),
    ("float64", np.ones(3, "complex128"), ["float64", "complex128"]),
    ("float32", np.array([1, 2]), ["float32", "int64"]),
    ("int64", [1.5, 2.0], ["int64", "1.5"]),
])
def test_wrong_dtype(mode, declared, value, words):
    x = T.tensor(dtype=declared, shape=(None,), name="x")
    f = fn([x], x * 2, mode, name="double")
    with pytest.raises(TypeError) as info:
        f(value)
    message = str(info.value)
    for w in ["double", "input 0 (x)"] + words:
        assert w in message, message
    if np.asarray(value).dtype.kind != "c":
        g = fn([x], x * 2, mode, allow_input_downcast=True)
        np.testing.assert_array_equal(g(value), (np.asarray(value).astype(declared) * 2).astype(declared))


@pytest.mark.parametrize("value", ["abc", b"ab", ["1.5", "2"], None, {}, [[1.0, 2.0], [3.0]],
                                   np.array([1.0, "a"], dtype=object), np.array(["1", "2"])],
                         ids=["str", "bytes", "numeric-strings", "None", "dict", "ragged", "object",
                              "str-array"])
def test_values_that_are_not_numbers(mode, value):
    x, y = T.dvector("x"), T.dvector("y")
    f = fn([x, y], x + y, mode)
    with pytest.raises(TypeError, match=r"input 0 \(x\): expected a numeric array"):
        f(value, np.ones(2))
    np.testing.assert_array_equal(f(np.ones(2), np.ones(2)), [2.0, 2.0])


def test_array_subclasses_are_read_as_plain_arrays(mode):
    """np.matrix keeps two dimensions when indexed or reduced and multiplies as matrices:
    its values are used as a plain array's."""
    x = T.dmatrix("x")
    f = fn([x], [T.sum(x, axis=0), x[0], x * x, T.dot(x, x.T)], mode)
    base = np.array([[1.0, 2.0], [3.0, 4.0]])

    class Tagged(np.ndarray):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.matrix(base)
    for value in (matrix, base.view(Tagged)):
        got = f(value)
        for g, w in zip(got, [base.sum(axis=0), base[0], base * base, base @ base.T]):
            assert type(g) is np.ndarray
            np.testing.assert_array_equal(g, w)


def test_a_symbolic_variable_is_not_a_value(mode):
    x = T.dvector("x")
    f = fn([x], x + 1, mode)
    with pytest.raises(TypeError, match=r"input 0 \(x\).*TensorVariable"):
        f(x)


def test_wrong_number_of_dimensions(mode):
    x = T.dvector("x")
    f = fn([x], x + 1, mode)
    for value, got in [(np.ones((3, 1)), "2 (shape (3, 1))"), (1.0, "0 (shape ())"),
                       (np.ones((1, 1, 1)), "3")]:
        with pytest.raises(TypeError, match=r"input 0 \(x\): expected 1 dimensions") as info:
            f(value)
        assert got in str(info.value)


def test_wrong_static_size(mode):
    s = T.TensorType("float64", (3, None))("s")
    f = fn([s], s + 1, mode)
    with pytest.raises(ValueError, match=r"input 0 \(s\): expected shape \(3, \?\), got \(4, 2\)"):
        f(np.ones((4, 2)))
    b = T.TensorType("float64", (1, None))("b")
    g = fn([b], b * 2, mode)
    with pytest.raises(ValueError, match=r"dimension 0 must be 1"):
        g(np.ones((2, 3)))
    np.testing.assert_array_equal(g(np.ones((1, 3))), np.full((1, 3), 2.0))


def test_wrong_number_of_arguments(mode):
    x, y = T.dvectors("x", "y")
    f = fn([x, y], x * y, mode, name="product")
    with pytest.raises(TypeError, match="product: expected at most 2 arguments, got 3"):
        f(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=r"product: missing input y \(expected 2 arguments, got 1\)"):
        f(np.ones(2))
    with pytest.raises(TypeError, match="missing input x"):
        f()
    np.testing.assert_array_equal(f(np.ones(2), np.full(2, 3.0)), [3.0, 3.0])


def test_keywords(mode):
    x, y = T.dvectors("x", "y")
    f = fn([x, y], x - y, mode)
    with pytest.raises(TypeError, match="unknown keyword argument 'z'; input names: x, y"):
        f(np.ones(2), z=np.ones(2))
    with pytest.raises(TypeError, match="input 'x' given twice"):
        f(np.ones(2), np.ones(2), x=np.ones(2))
    np.testing.assert_array_equal(f(y=np.ones(2), x=np.full(2, 3.0)), [2.0, 2.0])
    anonymous = fn([T.dvector()], T.constant(1.0), mode, on_unused_input="ignore")
    with pytest.raises(TypeError, match="the inputs have no names"):
        anonymous(np.ones(2), z=1)
    with_default = fn([x, In(y, value=np.full(2, 5.0))], x - y, mode)
    np.testing.assert_array_equal(with_default(np.ones(2)), [-4.0, -4.0])


# ------------------------------------------------------------------ nan and inf

def test_nan_and_inf_propagate_silently(mode):
    m, v = T.dmatrix("m"), T.dvector("v")
    outputs = {
        "sum": T.sum(m), "max0": T.max(m, axis=0), "min": T.min(m), "prod1": T.prod(m, axis=1),
        "mean": T.mean(m), "dot": T.dot(m, v), "gram": T.dot(m, m.T), "exp": T.exp(m),
        "log": T.log(m), "div0": m / 0, "diff": m - m, "sqrt": T.sqrt(m), "times0": m * 0,
        "fused": T.sum(T.exp(m) * v - T.log(m), axis=1), "lt": T.lt(m, v), "isnan": T.isnan(m),
        "maximum": T.maximum(m, v), "tanh": T.tanh(m), "sigmoid": T.sigmoid(m),
        "softplus": T.softplus(m), "clip": T.clip(m, -1.0, 1.0), "pow": m ** v,
    }
    mv = np.array([[np.nan, np.inf, 1.0], [-np.inf, 1.0, -0.0], [2.0, np.inf, -np.inf]])
    vv = np.array([1.0, np.nan, -np.inf])
    with np.errstate(all="ignore"):
        want = {
            "sum": np.sum(mv), "max0": np.max(mv, axis=0), "min": np.min(mv),
            "prod1": np.prod(mv, axis=1), "mean": np.mean(mv), "dot": mv @ vv, "gram": mv @ mv.T,
            "exp": np.exp(mv), "log": np.log(mv), "div0": mv / 0, "diff": mv - mv,
            "sqrt": np.sqrt(mv), "times0": mv * 0,
            "fused": np.sum(np.exp(mv) * vv - np.log(mv), axis=1), "lt": mv < vv,
            "isnan": np.isnan(mv), "maximum": np.maximum(mv, vv), "tanh": np.tanh(mv),
            "sigmoid": 1 / (1 + np.exp(-mv)), "softplus": np.logaddexp(0, mv),
            "clip": np.clip(mv, -1, 1), "pow": mv ** vv,
        }
    f = fn([m, v], list(outputs.values()), mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a RuntimeWarning
        got = f(mv, vv)
    for name, g in zip(outputs, got):
        w = np.asarray(want[name])
        assert g.shape == w.shape, name
        if w.dtype.kind == "f":
            assert np.array_equal(np.isnan(g), np.isnan(w)), (name, g, w)
            np.testing.assert_allclose(g, w, rtol=1e-12, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)


# -------------------------------------------------------------- indices in range

def test_integer_index_out_of_range(mode):
    x, i = T.dvector("x"), T.lscalar("i")
    line = here(); f = fn([x, i], x[i] * 2, mode)  # noqa: E702
    xv = np.arange(3.0)
    for bad in (3, 5, -4, np.iinfo(np.int64).max, np.iinfo(np.int64).min):
        for value in (bad, np.array(bad), np.int64(bad)):
            with pytest.raises(IndexError) as info:
                f(xv, value)
            message = str(info.value)
            assert "Subtensor" in message and f"index {bad} is out of bounds" in message
            assert "size 3" in message and f"{THIS_FILE}:{line}" in message
    assert f(xv, -3) == 0.0 and f(xv, np.array(2)) == 4.0


def test_integer_index_out_of_range_in_a_matrix_and_a_slice(mode):
    m, i, j = T.dmatrix("m"), T.iscalar("i"), T.lscalar("j")
    f = fn([m, i, j], T.sum(m[i, j:] + 1), mode)
    mv = np.arange(12.0).reshape(3, 4)
    with pytest.raises(IndexError, match=r"Subtensor.*index 7 is out of bounds for axis 0 with size 3"):
        f(mv, np.int32(7), 0)
    assert f(mv, np.int32(-1), 100) == 0.0  # slices clip, integers do not
    assert f(mv, np.int32(1), -2) == 6.0 + 7.0 + 2


def test_constant_index_out_of_range_is_found_when_the_graph_is_built():
    s = T.TensorType("float64", (3,))("s")
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 3"):
        s[5]


@pytest.mark.parametrize("how", ["getitem", "take", "take-axis", "inc"])
def test_gather_index_out_of_range(mode, how):
    m, iv = T.dmatrix("m"), T.lvector("iv")
    expr = {"getitem": lambda: m[iv] * 2, "take": lambda: T.take(m, iv, axis=0) + 1,
            "take-axis": lambda: T.take(m, iv, axis=1) + 1,
            "inc": lambda: T.inc_subtensor(m[iv], 1.0)}[how]
    f = fn([m, iv], expr(), mode)
    mv = np.arange(6.0).reshape(2, 3)
    size = 3 if how == "take-axis" else 2
    for bad in ([0, size], [-size - 1], [10 ** 12]):
        with pytest.raises(IndexError, match=r"(Subtensor|Take|take).*out of bounds") as info:
            f(mv, np.array(bad))
        assert f"index {[b for b in bad if not -size <= b < size][0]}" in str(info.value)
    assert f(mv, np.array([size - 1, -size])).shape[:1] in ((2,), (mv.shape[0],))


# -------------------------------------------------------------------- allocation

def test_allocation_too_large_raises_memory_error(mode):
    n = T.lscalar("n")
    f = fn([n], T.alloc(np.float64(1.5), n), mode)
    with pytest.raises(MemoryError):
        f(10 ** 13)
    np.testing.assert_array_equal(f(3), [1.5, 1.5, 1.5])       # the function still works
    g = fn([n], T.zeros((n, n)) + 1, mode)
    with pytest.raises(MemoryError):
        g(10 ** 7)
    np.testing.assert_array_equal(g(2), np.ones((2, 2)))
    with pytest.raises((MemoryError, ValueError)):          # 2**64 elements: not even a size
        g(2 ** 32)


def test_outer_product_too_large_raises_memory_error(mode):
    x, y = T.dvectors("x", "y")
    f = fn([x, y], x[:, None] * y[None, :] + 1, mode)
    huge = np.broadcast_to(np.ones(1), (10 ** 7,))             # stride 0: 8 bytes of memory
    with pytest.raises(MemoryError):
        f(huge, huge)
    np.testing.assert_array_equal(f(np.ones(2), np.full(3, 2.0)), np.full((2, 3), 3.0))


@pytest.mark.parametrize("mode", ["py", "llvm", "c"])
def test_a_result_too_large_to_index_is_not_called_a_shape_mismatch(mode):
    x, y = T.dvectors("x", "y")
    f = fn([x, y], x[:, None] + y[None, :], mode)
    huge = np.broadcast_to(np.zeros(1), (2 ** 32,))          # 2**64 elements together
    with pytest.raises((ValueError, MemoryError)) as info:
        f(huge, huge)
    assert "cannot be broadcast" not in str(info.value)


def test_negative_size(mode):
    n = T.lscalar("n")
    f = fn([n], T.alloc(np.float64(0.0), n, 2) + 1, mode)
    with pytest.raises(ValueError, match="alloc: negative dimension"):
        f(-1)
    assert f(0).shape == (0, 2)


# ---------------------------------------------------------------------- aliasing

def test_inputs_aliasing_each_other(mode):
    x, y = T.dvectors("x", "y")
    f = fn([x, y], [x + y, x * 2, T.sum(x * y)], mode)
    v = np.arange(6.0)
    keep = v.copy()
    got = f(v, v)
    np.testing.assert_array_equal(got[0], 2 * keep)
    np.testing.assert_array_equal(got[1], 2 * keep)
    assert got[2] == np.sum(keep * keep)
    got = f(v[1:], v[:-1])                                     # overlapping views
    np.testing.assert_array_equal(got[0], keep[1:] + keep[:-1])
    np.testing.assert_array_equal(v, keep)
    for out in got[:2]:
        assert not np.may_share_memory(out, v)


def test_outputs_never_alias_without_borrow(mode):
    x = T.dvector("x")
    s = shared(np.arange(3.0), name="s")
    f = fn([x], [x, x * 1, s, x[::-1], x.T, s + 0, T.constant(np.arange(3.0))], mode)
    v = np.arange(3.0) + 10
    outs = f(v)
    for k, out in enumerate(outs):
        assert not np.may_share_memory(out, v), k
        assert not np.may_share_memory(out, s.get_value(borrow=True)), k
        for other in outs[k + 1:]:
            assert not np.may_share_memory(out, other), k
    outs[0][0] = -1.0                                           # writing an output changes nothing
    outs[2][0] = -1.0
    np.testing.assert_array_equal(v, np.arange(3.0) + 10)
    np.testing.assert_array_equal(s.get_value(), np.arange(3.0))
    np.testing.assert_array_equal(f(v)[6], np.arange(3.0))      # constants are not mutable


def test_borrowed_outputs(mode):
    x = T.dvector("x")
    f = fn([x], Out(x, borrow=True), mode)
    v = np.ones(3)
    np.testing.assert_array_equal(f(v), v)                      # may be v itself
    g = fn([x], Out(x * 2, borrow=True), mode)
    first = g(np.ones(3))
    second = g(np.full(3, 5.0))
    np.testing.assert_array_equal(second, np.full(3, 10.0))
    # a borrowed output may be a buffer the next call reuses; otherwise it keeps its value
    assert np.may_share_memory(first, second) or np.array_equal(first, np.full(3, 2.0))


@pytest.mark.parametrize("n", [5, 300_000])
def test_feeding_a_borrowed_output_back_in(mode, n):
    """``v = f(v)`` with a borrowed output: the next call reads the buffer it may write."""
    x = T.dvector("x")
    f = fn([x], Out(T.tanh(x) * 0.5 + x[::-1] * 0.25 + T.sum(x) * 1e-6, borrow=True), mode)
    v = np.linspace(-1, 1, n)
    for _ in range(4):
        want = np.tanh(v) * 0.5 + v[::-1] * 0.25 + v.sum() * 1e-6
        v = f(v)
        np.testing.assert_allclose(v, want, rtol=1e-12, atol=1e-15)


def test_input_aliasing_an_updated_shared_variable(mode):
    w = shared(np.arange(4.0), name="w", borrow=True)
    x = T.dvector("x")
    f = fn([x], T.sum(x * w), mode, updates=[(w, w * 2 + x)])
    storage = w.get_value(borrow=True)
    got = f(storage)                                            # x is w's own buffer
    assert got == np.sum(np.arange(4.0) ** 2)
    np.testing.assert_array_equal(w.get_value(), np.arange(4.0) * 3)
    got = f(w.get_value(borrow=True)[::-1])
    assert got == np.sum(np.arange(4.0)[::-1] * 3 * np.arange(4.0) * 3)


# ---------------------------------------------------------- steps and layouts

def test_negative_steps(mode):
    x = T.dvector("x")
    m = T.dmatrix("m")
    f = fn([x, m], [x[::-1] * 2, x[::-2] + x[-1::-2], T.sum(x[7:1:-3]), m[::-1, ::-2] * 1,
                    T.sum(m[::-1], axis=0), x[-100:100:-1] + 1], mode)
    xv = np.arange(10.0)
    mv = np.arange(20.0).reshape(4, 5)
    for xa, ma in [(xv, mv), (xv[::-1], mv[::-1, ::-1]), (xv[::2], np.asfortranarray(mv))]:
        got = f(xa, ma)
        want = [xa[::-1] * 2, xa[::-2] + xa[-1::-2], np.sum(xa[7:1:-3]), ma[::-1, ::-2] * 1,
                np.sum(ma[::-1], axis=0), xa[-100:100:-1] + 1]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def _misaligned(a):
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("layout", ["misaligned", "byteswapped", "fortran", "broadcast", "readonly"])
def test_unusual_layouts(mode, layout):
    x, y = T.dmatrices("x", "y")
    f = fn([x, y], [T.exp(x) * y + 1, T.sum(x * y, axis=0), T.dot(x, y.T)], mode)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 9))
    other = rng.normal(size=(5, 9))
    value = {"misaligned": lambda: _misaligned(base),
             "byteswapped": lambda: base.astype(base.dtype.newbyteorder()),
             "fortran": lambda: np.asfortranarray(base),
             "broadcast": lambda: np.broadcast_to(base[:1], base.shape),
             "readonly": lambda: base.copy()}[layout]()
    if layout == "readonly":
        value.flags.writeable = False
    ref = np.array(value, dtype="float64")
    got = f(value, other)
    np.testing.assert_allclose(got[0], np.exp(ref) * other + 1, rtol=1e-14)
    np.testing.assert_allclose(got[1], np.sum(ref * other, axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[2], ref @ other.T, rtol=1e-12)


# ------------------------------------------------------------ run-time shapes

def test_elementwise_shapes_that_do_not_match(mode):
    x, y = T.dvectors("x", "y")
    line = here(); z = T.exp(x) * y + 1  # noqa: E702
    f = fn([x, y], z, mode)
    for n, k in [(3, 4), (300_000, 300_001)]:
        with pytest.raises(ValueError) as info:
            f(np.ones(n), np.ones(k))
        message = str(info.value)
        assert f"({n},)" in message and f"({k},)" in message
        assert "mul" in message
        assert f"{THIS_FILE}:{line}" in message, message
    np.testing.assert_allclose(f(np.zeros(2), np.ones(2)), [2.0, 2.0])


def test_dot_and_reshape_shapes_that_do_not_match(mode):
    m, v = T.dmatrix("m"), T.dvector("v")
    line = here(); d = T.dot(m, v)  # noqa: E702
    f = fn([m, v], d, mode)
    with pytest.raises(ValueError, match=r"dot: shapes \(2, 3\) and \(4,\) are not aligned") as info:
        f(np.ones((2, 3)), np.ones(4))
    assert f"{THIS_FILE}:{line}" in str(info.value)
    line = here(); r = T.reshape(v, (2, 3)) * 2  # noqa: E702
    g = fn([v], r, mode)
    with pytest.raises(ValueError, match=r"cannot reshape an array of shape \(5,\)") as info:
        g(np.ones(5))
    assert "Reshape" in str(info.value) and f"{THIS_FILE}:{line}" in str(info.value)


def test_max_of_an_empty_axis(mode):
    m = T.dmatrix("m")
    f = fn([m], T.max(m, axis=0) + 1, mode)
    with pytest.raises(ValueError, match=r"Max\{axis=\[0\]\}: cannot take the max over an empty"):
        f(np.zeros((0, 3)))
    assert f(np.zeros((3, 0))).shape == (0,)


# ----------------------------------------------------------------- integer edges

@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_division_by_zero_and_overflow(mode, dtype):
    i, j = T.tensor(dtype=dtype, shape=(None,)), T.tensor(dtype=dtype, shape=(None,))
    f = fn([i, j], [i // j, i % j, -i, abs(i), i * j], mode)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    a = np.array([7, -7, 0, lo, lo, hi, lo, 5] * 9, dtype=dtype)   # long enough to vectorise
    b = np.array([0, 0, 0, -1, 0, -1, 1, 2] * 9, dtype=dtype)
    got = f(a, b)
    with np.errstate(all="ignore"):
        want = [np.floor_divide(a, b), np.mod(a, b), -a, np.abs(a), a * b]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_integer_to_a_negative_power(mode):
    i, j = T.lvectors("i", "j")
    f = fn([i, j], i ** j, mode)
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        f(np.array([2, 2]), np.array([1, -1]))
    np.testing.assert_array_equal(f(np.array([2, 3]), np.array([3, 2])), [8, 9])
