"""The sum of increments of one zero buffer becomes one chain of increments of it
(rewriting/canonicalize.py: ``increments_of_one_zeros``), as the gradient of several
slices of one value (an LSTM's four gates) needs: one zero buffer, each slice's gradient
added into it in turn, no sum of full-size buffers. Results match NumPy in every mode."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import scalar as ts
from theanine.tensor.basic import Alloc
from theanine.tensor.elemwise import Elemwise
from theanine.tensor.subtensor import IncSubtensor


def count(f, kind, scalar_op=None):
    return sum(1 for n in f.graph.toposort() if isinstance(n.op, kind)
               and (scalar_op is None or n.op.scalar_op == scalar_op))


def test_slices_of_one_zeros_are_incremented_in_turn(mode, rng):
    a, b, c = T.dmatrices("a", "b", "c")
    zeros = T.zeros((a.shape[0], 7))
    total = (T.inc_subtensor(zeros[:, :2], a) + T.inc_subtensor(zeros[:, 2:4], b)
             + T.inc_subtensor(zeros[:, 4:], c))
    f = theanine.function([a, b, c], total, mode=mode)
    assert count(f, Alloc) <= 1 and count(f, IncSubtensor) == 3
    assert count(f, Elemwise, ts.add) == 0
    va, vb, vc = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), rng.normal(size=(5, 3))
    np.testing.assert_array_equal(f(va, vb, vc), np.concatenate([va, vb, vc], axis=1))


def test_overlapping_and_broadcast_increments(mode, rng):
    a, b = T.dmatrix("a"), T.dvector("b")
    zeros = T.zeros((a.shape[0], 5))
    total = T.inc_subtensor(zeros[:, :3], a) + T.inc_subtensor(zeros[:, 1:], b)
    f = theanine.function([a, b], total, mode=mode)
    assert count(f, Elemwise, ts.add) == 0
    va, vb = rng.normal(size=(4, 3)), rng.normal(size=4)
    want = np.zeros((4, 5))
    want[:, :3] += va
    want[:, 1:] += vb
    np.testing.assert_allclose(f(va, vb), want, rtol=1e-15)
    np.testing.assert_allclose(f(va[:0], vb), want[:0])  # no rows


@pytest.mark.parametrize("case", ["ones", "set", "a plain operand"])
def test_other_sums_are_left_alone(mode, rng, case):
    a, b, x = T.dmatrix("a"), T.dmatrix("b"), T.dmatrix("x")
    zeros = T.zeros((3, 4))
    first = T.inc_subtensor(zeros[:, :2], a)
    if case == "ones":
        second = T.inc_subtensor(T.ones((3, 4))[:, 2:], b)
    elif case == "set":
        second = T.set_subtensor(zeros[:, 2:], b)
    else:
        second = x
    f = theanine.function([a, b, x], first + second, mode=mode, on_unused_input="ignore")
    assert count(f, Elemwise) >= 1  # the sum is still computed
    va, vb, vx = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    want = np.zeros((3, 4))
    want[:, :2] += va
    other = {"ones": np.concatenate([np.ones((3, 2)), 1 + vb], axis=1),
             "set": np.concatenate([np.zeros((3, 2)), vb], axis=1),
             "a plain operand": vx}[case]
    np.testing.assert_allclose(f(va, vb, vx), want + other, rtol=1e-15)


def test_the_gradient_of_four_gates(mode, rng):
    z = T.dmatrix("z")
    h = 3
    cost = (T.nnet.sigmoid(z[:, :h]) * T.tanh(z[:, 2 * h:3 * h])).sum() + (z[:, h:2 * h] ** 2).sum() \
        + T.exp(z[:, 3 * h:]).sum()
    f = theanine.function([z], theanine.grad(cost, z), mode=mode)
    assert count(f, Elemwise, ts.add) == 0 and count(f, Alloc) <= 1
    vz = rng.normal(size=(5, 4 * h))
    s, t = 1 / (1 + np.exp(-vz[:, :h])), np.tanh(vz[:, 2 * h:3 * h])
    want = np.concatenate([s * (1 - s) * t, 2 * vz[:, h:2 * h], s * (1 - t * t), np.exp(vz[:, 3 * h:])],
                          axis=1)
    np.testing.assert_allclose(f(vz), want, rtol=1e-12, atol=1e-14)
