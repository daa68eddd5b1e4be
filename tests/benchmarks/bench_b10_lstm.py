"""B10: one SGD training step of a 2-layer LSTM character language model, float32.

Vocabulary 64 (one-hot inputs), sequence 32, batch 16, hidden 128 in both
layers, a dense softmax over the 64 characters at every position,
cross-entropy against the next character (mean over the 32 x 16 positions),
SGD with learning rate 0.01.  Median ms per step.

The cell is PyTorch's: gates i, f, g, o in that order in the 4*128 columns,
``c = f*c + i*g``, ``h = o*tanh(c)``, states starting at zero.  Every
implementation runs the layers one after the other and computes each layer's
input projections ``x_t Wx + b`` for all steps in one GEMM before its loop,
as ``nn.LSTM`` does on the CPU.  theanine and PyTensor write the cell by hand
inside ``scan`` (one scan per layer), JAX inside ``jax.lax.scan``, PyTorch
uses ``torch.nn.LSTM(num_layers=2)`` (its second biases ``bias_hh_l*`` frozen
at zero, so that it has the same parameters as the others), NumPy a
hand-written BPTT loop.  Three steps of every implementation are checked
against NumPy's (losses, weights and the weights' changes) before it is timed.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.bench_b8_cnn import check_params
from tests.benchmarks.common import (check_close, guarded, main, peer_rows, pytensor_function,
                                     row, theanine_impl, theanine_modes, timeit_auto)

TABLE = {"title": "B10 2-layer LSTM language-model step: float32, vocabulary 64, seq 32, batch 16, "
                  "hidden 128, SGD", "unit": "ms"}

VOCAB, SEQ, BATCH, N_HID, LAYERS = 64, 32, 16, 128, 2
LR = 0.01
CHECK_STEPS = 3
NAMES = ["Wx1", "Wh1", "b1", "Wx2", "Wh2", "b2", "Wy", "by"]


def init_params(seed=0):
    """float32 [Wx1 (64, 512), Wh1 (128, 512), b1 (512), Wx2 (128, 512), Wh2, b2, Wy (128, 64),
    by (64)], uniform in +-1/sqrt(128) like PyTorch's default."""
    rng = np.random.default_rng(seed)
    lim = 1 / np.sqrt(N_HID)
    H4 = 4 * N_HID
    shapes = [(VOCAB, H4), (N_HID, H4), (H4,), (N_HID, H4), (N_HID, H4), (H4,),
              (N_HID, VOCAB), (VOCAB,)]
    return [rng.uniform(-lim, lim, s).astype(np.float32) for s in shapes]


def make_data(seed=1):
    """(one-hot inputs (32, 16, 64) float32, next-character targets (32 * 16,) int32)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, VOCAB, (SEQ + 1, BATCH))
    X = np.eye(VOCAB, dtype=np.float32)[codes[:-1]]
    y = codes[1:].reshape(-1).astype(np.int32)
    return X, y


# --------------------------------------------------------------------------- NumPy reference


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm_fwd(X, Wx, Wh, b):
    S, B, _ = X.shape
    H = Wh.shape[0]
    xw = (X.reshape(S * B, -1) @ Wx + b).reshape(S, B, 4 * H)
    hs = np.zeros((S + 1, B, H), dtype=X.dtype)
    cs = np.zeros((S + 1, B, H), dtype=X.dtype)
    acts = np.empty_like(xw)                      # i, f, g, o after their nonlinearities
    for t in range(S):
        z = xw[t] + hs[t] @ Wh
        a = acts[t]
        a[:, :2 * H] = _sigmoid(z[:, :2 * H])
        a[:, 2 * H:3 * H] = np.tanh(z[:, 2 * H:3 * H])
        a[:, 3 * H:] = _sigmoid(z[:, 3 * H:])
        cs[t + 1] = a[:, H:2 * H] * cs[t] + a[:, :H] * a[:, 2 * H:3 * H]
        hs[t + 1] = a[:, 3 * H:] * np.tanh(cs[t + 1])
    return hs, cs, acts


def _lstm_bwd(dH, X, Wx, Wh, hs, cs, acts, need_input):
    """Gradients (Wx, Wh, b, and the layer's input when asked) from dH = dloss/dh_t."""
    S, B, H = dH.shape
    dz = np.empty_like(acts)
    dh_next = np.zeros((B, H), dtype=dH.dtype)
    dc_next = np.zeros((B, H), dtype=dH.dtype)
    for t in range(S - 1, -1, -1):
        i, f, g, o = (acts[t][:, k * H:(k + 1) * H] for k in range(4))
        tc = np.tanh(cs[t + 1])
        dh = dH[t] + dh_next
        dc = dh * o * (1 - tc * tc) + dc_next
        d = dz[t]
        d[:, :H] = dc * g * i * (1 - i)
        d[:, H:2 * H] = dc * cs[t] * f * (1 - f)
        d[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        d[:, 3 * H:] = dh * tc * o * (1 - o)
        dc_next = dc * f
        dh_next = d @ Wh.T
    dz2 = dz.reshape(S * B, 4 * H)
    gWx = X.reshape(S * B, -1).T @ dz2
    gWh = hs[:-1].reshape(S * B, H).T @ dz2
    gb = dz2.sum(axis=0)
    dX = (dz2 @ Wx.T).reshape(S, B, -1) if need_input else None
    return gWx, gWh, gb, dX


def numpy_step(params, X, y, lr=LR):
    """Forward and BPTT by hand; updates ``params`` in place, returns the loss."""
    Wx1, Wh1, b1, Wx2, Wh2, b2, Wy, by = params
    S, B, _ = X.shape
    H = Wh1.shape[0]
    hs1, cs1, acts1 = _lstm_fwd(X, Wx1, Wh1, b1)
    X2 = hs1[1:]
    hs2, cs2, acts2 = _lstm_fwd(X2, Wx2, Wh2, b2)
    h = hs2[1:].reshape(S * B, H)
    logits = h @ Wy + by
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(S * B)
    loss = -np.mean(logits[rows, y] - m[:, 0] - np.log(s[:, 0]))
    d = e / s
    d[rows, y] -= 1
    d /= np.float32(S * B)
    gWy, gby = h.T @ d, d.sum(axis=0)
    dH2 = (d @ Wy.T).reshape(S, B, H)
    gWx2, gWh2, gb2, dH1 = _lstm_bwd(dH2, X2, Wx2, Wh2, hs2, cs2, acts2, True)
    gWx1, gWh1, gb1, _ = _lstm_bwd(dH1, X, Wx1, Wh1, hs1, cs1, acts1, False)
    lr = np.float32(lr)
    for p, g in zip(params, (gWx1, gWh1, gb1, gWx2, gWh2, gb2, gWy, gby)):
        p -= lr * g
    return loss


# --------------------------------------------------------------------------- benchmark


def run(quick: bool) -> list[dict]:
    case = f"V {VOCAB}, seq {SEQ}, batch {BATCH}, 2x{N_HID}, float32"
    target, repeat = (0.05, 5) if quick else (0.3, 7)
    init = init_params()
    X, y = make_data()
    ref = [p.copy() for p in init]
    ref_losses = [numpy_step(ref, X, y) for _ in range(CHECK_STEPS)]
    rows = []

    def timed(impl, step, weights, note=""):
        """Check CHECK_STEPS steps from the initial weights against NumPy's, then time ``step``."""
        def body():
            losses = [float(step()) for _ in range(CHECK_STEPS)]
            check_close(losses, ref_losses, 1e-4, 1e-5, f"{impl} losses")
            check_params(impl, weights(), ref, init, CHECK_STEPS)
            return row(case, impl, timeit_auto(step, target_s=target, repeat=repeat), note)
        return guarded(case, impl, body)

    params = [p.copy() for p in init]
    rows.append(timed("numpy", lambda: numpy_step(params, X, y), lambda: params,
                      "hand-written BPTT loop"))

    for mode in theanine_modes():
        impl = theanine_impl(mode)
        rows.append(guarded(case, impl, lambda mode=mode, impl=impl:
                            _theanine(mode, impl, init, X, y, timed)))

    rows += peer_rows(case, torch=lambda torch: _torch(torch, init, X, y, timed),
                      jax=lambda jax, jnp: _jax(jax, jnp, init, X, y, timed),
                      pytensor=lambda pytensor, pt: _pytensor(pytensor, pt, init, X, y, timed))
    return rows


def _lstm_layer(T, scan, zeros, sigmoid, X, n_in, Wx, Wh, b):
    """One LSTM layer over X (seq, batch, n_in) with the Theano API: its hidden states (seq, batch, H)."""
    H = N_HID
    S, B = X.shape[0], X.shape[1]
    xw = (T.dot(X.reshape((S * B, n_in)), Wx) + b).reshape((S, B, 4 * H))

    def cell(xw_t, h, c, Wh):
        z = xw_t + T.dot(h, Wh)
        i = sigmoid(z[:, :H])
        f = sigmoid(z[:, H:2 * H])
        g = T.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        return [o * T.tanh(c), c]

    h0 = zeros((B, H), dtype="float32")
    hs, _ = scan(cell, sequences=xw, outputs_info=[h0, h0], non_sequences=[Wh])
    return hs


def _logits(T, scan, zeros, sigmoid, X, ps):
    Wx1, Wh1, b1, Wx2, Wh2, b2, Wy, by = ps
    h = _lstm_layer(T, scan, zeros, sigmoid, X, VOCAB, Wx1, Wh1, b1)
    h = _lstm_layer(T, scan, zeros, sigmoid, h, N_HID, Wx2, Wh2, b2)
    return T.dot(h.reshape((X.shape[0] * X.shape[1], N_HID)), Wy) + by


def _theanine(mode, impl, init, X, y, timed):
    import theanine
    import theanine.tensor as T

    def scan(*a, **kw):
        return theanine.scan(*a, **kw)[0]

    Xs, ys = T.ftensor3("X"), T.ivector("y")
    ps = [theanine.shared(p.copy(), name=nm) for p, nm in zip(init, NAMES)]
    logits = _logits(T, scan, T.zeros, T.nnet.sigmoid, Xs, ps)
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), ys))
    grads = theanine.grad(cost, ps)
    train = theanine.function([Xs, ys], cost, updates=[(p, p - LR * g) for p, g in zip(ps, grads)],
                              mode=mode)
    train.trust_input = True
    return timed(impl, lambda: train(X, y), lambda: [p.get_value() for p in ps],
                 "cell by hand in theanine.scan; nnet.softmax; updates, trust_input")


def _pytensor(pytensor, pt, init, X, y, timed):
    import inspect

    def scan(*a, **kw):
        if "return_updates" in inspect.signature(pytensor.scan).parameters:
            return pytensor.scan(*a, return_updates=False, **kw)
        return pytensor.scan(*a, **kw)[0]

    Xs, ys = pt.ftensor3("X"), pt.ivector("y")
    ps = [pytensor.shared(p.copy(), shape=p.shape) for p in init]
    logits = _logits(pt, scan, pt.zeros, pt.sigmoid, Xs, ps)
    logp = logits - pt.logsumexp(logits, axis=1, keepdims=True)
    cost = -pt.mean(logp[pt.arange(ys.shape[0]), ys])
    grads = pytensor.grad(cost, ps)
    train = pytensor_function([Xs, ys], cost,
                              updates=[(p, p - np.float32(LR) * g) for p, g in zip(ps, grads)])
    return timed("pytensor", lambda: train(X, y), lambda: [p.get_value() for p in ps],
                 "cell by hand in pytensor.scan, C back end, trust_input")


def _torch(torch, init, X, y, timed):
    F = torch.nn.functional
    lstm = torch.nn.LSTM(VOCAB, N_HID, num_layers=LAYERS)
    with torch.no_grad():
        for layer in range(LAYERS):
            Wx, Wh, b = init[3 * layer:3 * layer + 3]
            getattr(lstm, f"weight_ih_l{layer}").copy_(torch.from_numpy(Wx.T.copy()))
            getattr(lstm, f"weight_hh_l{layer}").copy_(torch.from_numpy(Wh.T.copy()))
            getattr(lstm, f"bias_ih_l{layer}").copy_(torch.from_numpy(b))
            getattr(lstm, f"bias_hh_l{layer}").zero_()
    ps = []
    for layer in range(LAYERS):
        getattr(lstm, f"bias_hh_l{layer}").requires_grad_(False)
        ps += [getattr(lstm, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih")]
    ps += [torch.tensor(init[6], requires_grad=True), torch.tensor(init[7], requires_grad=True)]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def step():
        out, _ = lstm(Xt)
        loss = F.cross_entropy(out.reshape(-1, N_HID) @ ps[6] + ps[7], yt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            torch._foreach_add_(ps, grads, alpha=-LR)
        return loss

    def weights():
        w = [p.detach().numpy() for p in ps]
        return [w[0].T, w[1].T, w[2], w[3].T, w[4].T, w[5], w[6], w[7]]
    return timed("torch", lambda: step().item(), weights,
                 f"eager, nn.LSTM(num_layers=2) (bias_hh frozen at 0), {torch.get_num_threads()} threads")


def _jax(jax, jnp, init, X, y, timed):
    H = N_HID

    def layer(X, Wx, Wh, b):
        S, B, _ = X.shape
        xw = (X.reshape(S * B, -1) @ Wx + b).reshape(S, B, 4 * H)

        def cell(carry, xw_t):
            h, c = carry
            z = xw_t + h @ Wh
            i = jax.nn.sigmoid(z[:, :H])
            f = jax.nn.sigmoid(z[:, H:2 * H])
            g = jnp.tanh(z[:, 2 * H:3 * H])
            o = jax.nn.sigmoid(z[:, 3 * H:])
            c = f * c + i * g
            h = o * jnp.tanh(c)
            return (h, c), h
        h0 = jnp.zeros((B, H), dtype=X.dtype)
        _, hs = jax.lax.scan(cell, (h0, h0), xw)
        return hs

    def loss_fn(ps, X, y):
        Wx1, Wh1, b1, Wx2, Wh2, b2, Wy, by = ps
        h = layer(layer(X, Wx1, Wh1, b1), Wx2, Wh2, b2)
        logp = jax.nn.log_softmax(h.reshape(-1, H) @ Wy + by, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(ps, X, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, y)
        return loss, [p - LR * g for p, g in zip(ps, gs)]

    s = {"ps": [jnp.asarray(p) for p in init]}
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def call():
        loss, s["ps"] = step(s["ps"], Xj, yj)
        return loss.block_until_ready()

    return timed("jax", call, lambda: [np.asarray(p) for p in s["ps"]], "jit, cell by hand in lax.scan")


if __name__ == "__main__":
    import tests.benchmarks.bench_b10_lstm as _self
    main(_self)
