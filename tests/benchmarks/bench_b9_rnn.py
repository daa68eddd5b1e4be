"""B9: one SGD training step of a tanh RNN, float32, with back-propagation through time.

Sequence 50, batch 32, input 64, hidden 128: ``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``
from ``h_0 = 0``; a linear readout (128 -> 10) of the last hidden state,
mean squared error against a random target, SGD with learning rate 0.01.
Median ms per step.

Every implementation computes the input projections ``x_t Wx + b`` of all
steps in one GEMM before the loop, as PyTorch's ``nn.RNN`` does on the CPU;
the loop holds only ``tanh(. + h Wh)``.  theanine uses ``theanine.scan``,
PyTensor ``pytensor.scan``, JAX ``jax.lax.scan``, PyTorch ``torch.nn.RNN``
(its second bias ``bias_hh_l0`` frozen at zero, so that it has the same
parameters as the others), NumPy a hand-written BPTT loop.  Three steps of
every implementation are checked against NumPy's (losses, weights and the
weights' changes) before it is timed.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.bench_b8_cnn import check_params
from tests.benchmarks.common import (check_close, guarded, main, peer_rows, pytensor_function,
                                     row, theanine_impl, theanine_modes, timeit_auto)

TABLE = {"title": "B9 tanh RNN training step: float32, seq 50, batch 32, 64 -> 128 -> 10, MSE, SGD",
         "unit": "ms"}

SEQ, BATCH, N_IN, N_HID, N_OUT = 50, 32, 64, 128, 10
LR = 0.01
CHECK_STEPS = 3


def init_params(seed=0):
    """float32 [Wx (64, 128), Wh (128, 128), b (128), Wo (128, 10), bo (10)],
    uniform in +-1/sqrt(128) like PyTorch's default."""
    rng = np.random.default_rng(seed)
    lim = 1 / np.sqrt(N_HID)
    shapes = [(N_IN, N_HID), (N_HID, N_HID), (N_HID,), (N_HID, N_OUT), (N_OUT,)]
    return [rng.uniform(-lim, lim, s).astype(np.float32) for s in shapes]


def make_data(seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((SEQ, BATCH, N_IN)).astype(np.float32)
    target = rng.standard_normal((BATCH, N_OUT)).astype(np.float32)
    return X, target


# --------------------------------------------------------------------------- NumPy reference


def numpy_step(params, X, target, lr=LR):
    """Forward over the sequence and BPTT by hand; updates ``params`` in place, returns the loss."""
    Wx, Wh, b, Wo, bo = params
    S, B, _ = X.shape
    H = Wh.shape[0]
    xw = (X.reshape(S * B, -1) @ Wx).reshape(S, B, H) + b
    hs = np.zeros((S + 1, B, H), dtype=X.dtype)
    for t in range(S):
        hs[t + 1] = np.tanh(xw[t] + hs[t] @ Wh)
    diff = hs[S] @ Wo + bo - target
    loss = np.mean(diff * diff)
    dout = diff * np.float32(2 / diff.size)
    gWo, gbo = hs[S].T @ dout, dout.sum(axis=0)
    dh = dout @ Wo.T
    da = np.empty_like(xw)
    for t in range(S - 1, -1, -1):
        da[t] = dh * (1 - hs[t + 1] * hs[t + 1])
        dh = da[t] @ Wh.T
    da2 = da.reshape(S * B, H)
    gWh = hs[:-1].reshape(S * B, H).T @ da2
    gWx = X.reshape(S * B, -1).T @ da2
    gb = da2.sum(axis=0)
    lr = np.float32(lr)
    for p, g in zip(params, (gWx, gWh, gb, gWo, gbo)):
        p -= lr * g
    return loss


# --------------------------------------------------------------------------- benchmark


def run(quick: bool) -> list[dict]:
    case = f"seq {SEQ}, batch {BATCH}, {N_IN}-{N_HID}-{N_OUT}, float32"
    target_s, repeat = (0.05, 5) if quick else (0.3, 7)
    init = init_params()
    X, tgt = make_data()
    ref = [p.copy() for p in init]
    ref_losses = [numpy_step(ref, X, tgt) for _ in range(CHECK_STEPS)]
    rows = []

    def timed(impl, step, weights, note=""):
        """Check CHECK_STEPS steps from the initial weights against NumPy's, then time ``step``."""
        def body():
            losses = [float(step()) for _ in range(CHECK_STEPS)]
            check_close(losses, ref_losses, 1e-4, 1e-6, f"{impl} losses")
            check_params(impl, weights(), ref, init, CHECK_STEPS)
            return row(case, impl, timeit_auto(step, target_s=target_s, repeat=repeat), note)
        return guarded(case, impl, body)

    params = [p.copy() for p in init]
    rows.append(timed("numpy", lambda: numpy_step(params, X, tgt), lambda: params,
                      "hand-written BPTT loop"))

    for mode in theanine_modes():
        impl = theanine_impl(mode)
        rows.append(guarded(case, impl, lambda mode=mode, impl=impl:
                            _theanine(mode, impl, init, X, tgt, timed)))

    rows += peer_rows(case, torch=lambda torch: _torch(torch, init, X, tgt, timed),
                      jax=lambda jax, jnp: _jax(jax, jnp, init, X, tgt, timed),
                      pytensor=lambda pytensor, pt: _pytensor(pytensor, pt, init, X, tgt, timed))
    return rows


def _graph(T, scan, zeros, X, target, ps):
    """The cost, shared by theanine and PyTensor (same Theano API)."""
    Wx, Wh, b, Wo, bo = ps
    S, B = X.shape[0], X.shape[1]
    xw = T.dot(X.reshape((S * B, N_IN)), Wx).reshape((S, B, N_HID)) + b
    hs = scan(lambda xw_t, h, Wh: T.tanh(xw_t + T.dot(h, Wh)),
              sequences=xw, outputs_info=zeros((B, N_HID), dtype="float32"), non_sequences=[Wh])
    diff = T.dot(hs[-1], Wo) + bo - target
    return T.mean(diff * diff)


def _theanine(mode, impl, init, X, tgt, timed):
    import theanine
    import theanine.tensor as T

    def scan(*a, **kw):
        return theanine.scan(*a, **kw)[0]

    Xs, ts = T.ftensor3("X"), T.fmatrix("target")
    ps = [theanine.shared(p.copy(), name=nm) for p, nm in zip(init, ["Wx", "Wh", "b", "Wo", "bo"])]
    cost = _graph(T, scan, T.zeros, Xs, ts, ps)
    grads = theanine.grad(cost, ps)
    train = theanine.function([Xs, ts], cost, updates=[(p, p - LR * g) for p, g in zip(ps, grads)],
                              mode=mode)
    train.trust_input = True
    return timed(impl, lambda: train(X, tgt), lambda: [p.get_value() for p in ps],
                 "theanine.scan; updates, trust_input")


def _pytensor(pytensor, pt, init, X, tgt, timed):
    import inspect

    def scan(*a, **kw):
        if "return_updates" in inspect.signature(pytensor.scan).parameters:
            return pytensor.scan(*a, return_updates=False, **kw)
        return pytensor.scan(*a, **kw)[0]

    Xs, ts = pt.ftensor3("X"), pt.fmatrix("target")
    ps = [pytensor.shared(p.copy(), shape=p.shape) for p in init]
    cost = _graph(pt, scan, pt.zeros, Xs, ts, ps)
    grads = pytensor.grad(cost, ps)
    train = pytensor_function([Xs, ts], cost,
                              updates=[(p, p - np.float32(LR) * g) for p, g in zip(ps, grads)])
    return timed("pytensor", lambda: train(X, tgt), lambda: [p.get_value() for p in ps],
                 "pytensor.scan, C back end, trust_input")


def _torch(torch, init, X, tgt, timed):
    F = torch.nn.functional
    Wx, Wh, b, Wo, bo = init
    rnn = torch.nn.RNN(N_IN, N_HID, nonlinearity="tanh", bias=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(Wx.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(Wh.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
    rnn.bias_hh_l0.requires_grad_(False)
    ps = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0,
          torch.tensor(Wo, requires_grad=True), torch.tensor(bo, requires_grad=True)]
    Xt, tt = torch.from_numpy(X), torch.from_numpy(tgt)

    def step():
        _, h_n = rnn(Xt)
        loss = F.mse_loss(h_n[0] @ ps[3] + ps[4], tt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            torch._foreach_add_(ps, grads, alpha=-LR)
        return loss

    def weights():
        w = [p.detach().numpy() for p in ps]
        return [w[0].T, w[1].T, w[2], w[3], w[4]]
    return timed("torch", lambda: step().item(), weights,
                 f"eager, nn.RNN (bias_hh frozen at 0), {torch.get_num_threads()} threads")


def _jax(jax, jnp, init, X, tgt, timed):
    def loss_fn(ps, X, target):
        Wx, Wh, b, Wo, bo = ps
        S, B, _ = X.shape
        xw = (X.reshape(S * B, -1) @ Wx).reshape(S, B, N_HID) + b

        def cell(h, xw_t):
            h = jnp.tanh(xw_t + h @ Wh)
            return h, None
        h, _ = jax.lax.scan(cell, jnp.zeros((B, N_HID), dtype=X.dtype), xw)
        diff = h @ Wo + bo - target
        return jnp.mean(diff * diff)

    @jax.jit
    def step(ps, X, target):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, target)
        return loss, [p - LR * g for p, g in zip(ps, gs)]

    s = {"ps": [jnp.asarray(p) for p in init]}
    Xj, tj = jnp.asarray(X), jnp.asarray(tgt)

    def call():
        loss, s["ps"] = step(s["ps"], Xj, tj)
        return loss.block_until_ready()

    return timed("jax", call, lambda: [np.asarray(p) for p in s["ps"]], "jit, lax.scan")


if __name__ == "__main__":
    import tests.benchmarks.bench_b9_rnn as _self
    main(_self)
