"""A scan's step that multiplies by a non-sequence's transpose reads a contiguous copy made
before the loop (rewriting/scan_invariants.py): the step graph loses the transpose, the
scan gains the copy as a non-sequence, and every result stays what mode 'FAST_COMPILE'
(which runs no such rewrite) gives."""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.scan_module import Scan, scan
from theanine.tensor.elemwise import DimShuffle
from theanine.tensor.math import Dot


def scans(f):
    return [n for n in f.graph.toposort() if isinstance(n.op, Scan)]


def transposed_inputs_feeding_products(op):
    """Inner non-sequences whose transpose a product of the step reads."""
    step = op.fgraph
    found = []
    for inner in step.inputs[op.n_seqs + op.n_states:]:
        for client, _ in step.clients.get(inner, {}):
            if client != "output" and isinstance(client.op, DimShuffle) \
                    and tuple(client.op.new_order) == (1, 0) \
                    and any(c != "output" and isinstance(c.op, Dot)
                            for c, _ in step.clients.get(client.outputs[0], {})):
                found.append(inner)
    return found


def rnn_gradients(x, h0, W):
    hs, _ = scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0,
                 non_sequences=[W])
    cost = (hs[-1] ** 2).sum() + hs.mean()
    return [cost] + theanine.grad(cost, [h0, W])


def rnn_values(rng, dtype="float64"):
    return [rng.normal(size=(7, 3, 5)).astype(dtype), rng.normal(size=(3, 5)).astype(dtype),
            (0.4 * rng.normal(size=(5, 5))).astype(dtype)]


def test_the_backward_step_reads_a_copy_made_before_the_loop(mode, rng):
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    f = theanine.function([x, h0, W], rnn_gradients(x, h0, W), mode=mode)
    backward = [n for n in scans(f) if n.op.name == "grad_of_scan"]
    assert backward and all(transposed_inputs_feeding_products(n.op) == [] for n in backward)
    moved = backward[0].inputs[-1]  # the copy, a non-sequence of its own
    assert moved.owner is not None and moved.type.ndim == 2
    values = rnn_values(rng)
    reference = theanine.function([x, h0, W], rnn_gradients(x, h0, W), mode="FAST_COMPILE")(*values)
    for got, want in zip(f(*values), reference):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    verify_grad(lambda x, h0, W: rnn_gradients(x, h0, W)[0], values, mode=mode)


def test_float32_and_a_non_square_weight(mode, rng):
    x, h0, U = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("U")

    def cost(x, h0, U):  # h (3x5) . U (5x4) . U.T (4x5): U and U.T both in the forward step
        hs, _ = scan(lambda xt, h, U: T.tanh(xt + T.dot(T.dot(h, U), U.T)), sequences=x,
                     outputs_info=h0, non_sequences=[U])
        return (hs ** 2).sum()
    outs = [cost(x, h0, U)] + theanine.grad(cost(x, h0, U), [x, U])
    f = theanine.function([x, h0, U], outs, mode=mode)
    assert all(transposed_inputs_feeding_products(n.op) == [] for n in scans(f))
    values = [rng.normal(size=(6, 3, 5)).astype("float32"), rng.normal(size=(3, 5)).astype("float32"),
              (0.3 * rng.normal(size=(5, 4))).astype("float32")]
    want = theanine.function([x, h0, U], outs, mode="FAST_COMPILE")(*values)
    for got, w in zip(f(*values), want):
        np.testing.assert_allclose(got, w, rtol=2e-4, atol=1e-5)


def test_a_weight_given_as_a_transpose_is_used_as_it_is(mode, rng):
    x, h0, V = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("V")
    outs = rnn_gradients(x, h0, V.T)
    f = theanine.function([x, h0, V], outs, mode=mode)
    backward = [n for n in scans(f) if n.op.name == "grad_of_scan"]
    assert backward and transposed_inputs_feeding_products(backward[0].op) == []
    values = rnn_values(rng)
    want = theanine.function([x, h0, V], outs, mode="FAST_COMPILE")(*values)
    for got, w in zip(f(*values), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [0, 1])
def test_zero_and_one_steps(mode, rng, steps):
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    hs, _ = scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W.T)), sequences=x, outputs_info=h0,
                 non_sequences=[W])
    outs = [hs.sum()] + theanine.grad(hs.sum() + h0.sum(), [h0, W])
    f = theanine.function([x, h0, W], outs, mode=mode)
    assert all(transposed_inputs_feeding_products(n.op) == [] for n in scans(f))
    values = [rng.normal(size=(steps, 2, 4)), rng.normal(size=(2, 4)), rng.normal(size=(4, 4))]
    want = theanine.function([x, h0, W], outs, mode="FAST_COMPILE")(*values)
    for got, w in zip(f(*values), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
