"""HostCall: a node without a native step runs inside the whole-function entry by calling
back into Python, so the rest of the function stays native (modes 'llvm' and 'c')."""

import sys

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import shared
from theanine.graph import Apply, Op
from test_schedule import bails, compiled, entry_only, target  # noqa: F401 (target: both entries)


class Pair(Op):
    """Python-only: (x + 1, x as it came: the very array of its input)."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type(), x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] + 1
        output_storage[1][0] = inputs[0]


class Loose(Op):
    """Python-only, stores a Python float and an int32 array for float64 outputs."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [T.dscalar(), T.TensorType("float64", (None,))()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = float(inputs[0].sum())
        output_storage[1][0] = np.arange(3, dtype=np.int32)


class Picky(Op):
    """Python-only: raises for negative sums, else copies."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        if inputs[0].sum() < 0:
            raise ValueError("picky: the sum is negative")
        output_storage[0][0] = inputs[0].copy()


class PyRepeat(Op):
    """Python-only numpy.repeat(x, repeats, axis)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def make_node(self, x, repeats):
        x, repeats = T.as_tensor_variable(x), T.as_tensor_variable(repeats)
        ndim = 1 if self.axis is None else x.ndim
        return Apply(self, [x, repeats], [T.TensorType(x.dtype, (None,) * ndim)()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.repeat(inputs[0], inputs[1], axis=self.axis)


def test_views_constants_and_shapes_are_passed_as_arrays(rng):
    x = T.dmatrix("x")
    y = PyRepeat(1)(T.exp(x).T[1:, ::2], x.shape[0])  # a strided view, a size from a shape
    z = PyRepeat(None)(x[0, :3], T.constant(np.array([2, 0, 1])))  # a constant
    f = entry_only(compiled([x], [y * 2, z]))
    assert [type(n.op).__name__ for n in f.fallbacks] == ["PyRepeat", "PyRepeat"]
    for a in (rng.normal(size=(3, 5)), np.asfortranarray(rng.normal(size=(2, 7)))):
        got = f(a)
        np.testing.assert_allclose(got[0], 2 * np.repeat(np.exp(a).T[1:, ::2], a.shape[0], axis=1))
        np.testing.assert_allclose(got[1], np.repeat(a[0, :3], [2, 0, 1]))


def test_an_output_that_is_the_input_itself_is_returned_as_a_copy(rng):
    x = T.dvector("x")
    plus, same = Pair()(T.exp(x))
    f = entry_only(compiled([x], [plus * 3, same]))
    a = rng.normal(size=6)
    got = f(a)
    np.testing.assert_allclose(got[0], 3 * (np.exp(a) + 1))
    np.testing.assert_allclose(got[1], np.exp(a))
    assert got[1].flags.writeable and got[1].flags.owndata
    again = f(a)
    assert not np.shares_memory(got[1], again[1])


def test_values_python_stores_are_converted_as_on_the_node_path(rng):
    x = T.dvector("x")
    total, counts = Loose()(x * 2)
    f = entry_only(compiled([x], [total + 1, counts * 0.5]))
    got = f(np.ones(4))
    assert got[0].dtype == np.float64 and got[0] == 9.0
    np.testing.assert_array_equal(got[1], [0.0, 0.5, 1.0])


def test_an_error_in_python_hands_the_call_to_the_node_path_which_raises_it(rng):
    x = T.dvector("x")
    f = compiled([x], Picky()(x * 2) + 1)
    counter = bails(f)
    np.testing.assert_allclose(f(np.ones(3)), np.full(3, 3.0))
    assert counter.calls == 0
    with pytest.raises(ValueError, match="picky: the sum is negative"):
        f(-np.ones(3))
    assert counter.calls == 1


@pytest.mark.parametrize("python_step", [False, True], ids=["native-step", "python-step"])
def test_updates_through_a_scan(rng, python_step):
    """A scan runs as a native loop inside the entry; one whose step holds a node without a
    native step is called into Python whole."""
    W = shared(rng.normal(size=(4, 4)), name="W")
    x = T.dmatrix("x")
    wrap = Picky() if python_step else (lambda v: v)
    hs, _ = theanine.scan(lambda row, h: wrap(T.tanh(row + T.dot(h, W))), sequences=x,
                          outputs_info=T.zeros((4,), dtype="float64"))
    cost = T.sum(hs[-1] ** 2)
    updates = [(W, W - 0.1 * theanine.grad(cost, W))] if not python_step else []
    f = entry_only(compiled([x], cost, updates=updates))
    assert {type(n.op).__name__ for n in f.fallbacks} == ({"Scan"} if python_step else set())
    ref = theanine.function([x], [cost] + [u - p for p, u in updates], mode="py")
    a = np.abs(rng.normal(size=(5, 4)))
    for _ in range(2):
        want = ref(a)
        before = W.get_value()
        np.testing.assert_allclose(f(a), want[0], rtol=1e-12)
        np.testing.assert_allclose(W.get_value() - before, want[1] if updates else 0, atol=1e-12)


def test_a_reshaped_copy_handed_to_python_outlives_the_entry(rng):
    x = T.dmatrix("x")
    plus, same = Pair()(x.T.reshape((-1,)))  # the reshape copies (x.T is not contiguous)
    f = entry_only(compiled([x], [plus, same]))
    a = rng.normal(size=(3, 4))
    got = f(a)
    np.testing.assert_allclose(got[0], a.T.reshape(-1) + 1)
    np.testing.assert_allclose(got[1], a.T.reshape(-1))


def test_repeated_calls_leak_no_references(rng):
    x = T.dmatrix("x")
    plus, same = Pair()(x[:, 1:].T)
    f = entry_only(compiled([x], [plus.sum(), T.repeat(same, 2, axis=0) * 2]))
    a = rng.normal(size=(5, 6))
    descr, sentinel = np.dtype("float64"), NotImplemented
    f(a)
    counts = sys.getrefcount(a), sys.getrefcount(descr), sys.getrefcount(sentinel)
    for _ in range(2000):
        f(a)
    assert (sys.getrefcount(a), sys.getrefcount(descr), sys.getrefcount(sentinel)) == counts
