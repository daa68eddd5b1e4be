"""B8: one SGD training step of a small LeNet-style CNN, float32.

Batch 64x1x28x28: conv 5x5 1->8, ReLU, max-pool 2, conv 5x5 8->16, ReLU,
max-pool 2, flatten (256), dense 256->10, softmax cross-entropy on integer
labels, SGD with learning rate 0.01 (through ``updates`` in theanine and
PyTensor, by hand in NumPy, JAX and PyTorch).  Median ms per step.

theanine's ``conv2d`` is Theano's: a true convolution (the filters are
flipped).  PyTorch's and JAX's convolutions are cross-correlations, so they
(and the NumPy reference, written the same way) hold the flipped filters
``W[:, :, ::-1, ::-1]`` of the same initial weights: every implementation
computes the same function, and the check flips their filters back before
comparing.  Three steps of every implementation are checked against the NumPy
reference (losses and weights) before it is timed.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tests.benchmarks.common import (check_close, guarded, main, peer_rows, pytensor_function,
                                     row, theanine_impl, theanine_modes, timeit_auto)

TABLE = {"title": "B8 CNN training step: float32 64x1x28x28, conv5x5(8)-pool-conv5x5(16)-pool-dense(10), SGD",
         "unit": "ms"}

BATCH, IN_C, IN_HW = 64, 1, 28
K1, K2, KS, N_OUT = 8, 16, 5, 10
FLAT = K2 * 4 * 4            # 28 -conv-> 24 -pool-> 12 -conv-> 8 -pool-> 4
LR = 0.01
CHECK_STEPS = 3
FILTER_PARAMS = (0, 2)      # indices of the two filter banks in the parameter list


def init_params(seed=0):
    """He-initialised weights, zero biases, float32: [W1, b1, W2, b2, W3, b3].

    W1 and W2 are theanine (Theano) filters: conv2d flips them.
    """
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return [he((K1, IN_C, KS, KS), IN_C * KS * KS), np.zeros(K1, np.float32),
            he((K2, K1, KS, KS), K1 * KS * KS), np.zeros(K2, np.float32),
            he((FLAT, N_OUT), FLAT), np.zeros(N_OUT, np.float32)]


def make_data(seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH, IN_C, IN_HW, IN_HW)).astype(np.float32)
    y = rng.integers(0, N_OUT, BATCH).astype(np.int32)
    return X, y


def flip_filters(params):
    """Copies of the parameters with the filter banks flipped (true convolution <-> cross-correlation)."""
    return [np.ascontiguousarray(p[:, :, ::-1, ::-1]) if k in FILTER_PARAMS else p.copy()
            for k, p in enumerate(params)]


def check_params(impl, got, want, init, steps):
    """Weights after ``steps`` steps close to the reference's, and so are the changes from ``init``.

    The second check is the one that sees a wrong gradient: after a few small SGD steps
    the weights are still close to their initial values whatever the gradient was.
    """
    for k, (g, w, p0) in enumerate(zip(got, want, init)):
        check_close(g, w, 1e-3, 2e-5, f"{impl} param {k} after {steps} steps")
        dw = np.asarray(w, np.float64) - p0
        check_close(np.asarray(g, np.float64) - p0, dw, 2e-2, 2e-2 * np.abs(dw).max() + 1e-7,
                    f"{impl} param {k}: change after {steps} steps")


# --------------------------------------------------------------------------- NumPy reference


def _xcorr(x, w):
    """Valid cross-correlation by im2col: (output NCHW, the im2col matrix)."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    cols = sliding_window_view(x, (kh, kw), axis=(2, 3))           # (n, c, oh, ow, kh, kw)
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    out = cols @ w.reshape(k, -1).T
    return out.reshape(n, oh, ow, k).transpose(0, 3, 1, 2), cols


def _xcorr_grads(dout, cols, w, x_shape, need_input):
    """Gradients of ``_xcorr`` in the filters and (when asked) in the input, by col2im."""
    n, k, oh, ow = dout.shape
    _, c, kh, kw = w.shape
    d = dout.transpose(0, 2, 3, 1).reshape(-1, k)
    gw = (d.T @ cols).reshape(w.shape)
    gb = d.sum(axis=0)
    if not need_input:
        return gw, gb, None
    dcols = (d @ w.reshape(k, -1)).reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for u in range(kh):
        for v in range(kw):
            dx[:, :, u:u + oh, v:v + ow] += dcols[..., u, v]
    return gw, gb, dx


def _pool_fwd(h):
    n, c, hh, ww = h.shape
    r = h.reshape(n, c, hh // 2, 2, ww // 2, 2)
    m = r.max(axis=(3, 5))
    return m, r


def _pool_bwd(dm, r, m):
    mask = r == m[:, :, :, None, :, None]
    return (mask * dm[:, :, :, None, :, None]).reshape(r.shape[0], r.shape[1], r.shape[2] * 2, -1)


def numpy_step(params, X, y, lr=LR):
    """Forward and backward by hand (im2col); ``params`` hold cross-correlation filters
    (``flip_filters`` of the theanine ones) and are updated in place. Returns the loss."""
    W1, b1, W2, b2, W3, b3 = params
    n = X.shape[0]
    c1, cols1 = _xcorr(X, W1)
    a1 = c1 + b1[:, None, None]
    p1, r1 = _pool_fwd(np.maximum(a1, 0))
    c2, cols2 = _xcorr(p1, W2)
    a2 = c2 + b2[:, None, None]
    p2, r2 = _pool_fwd(np.maximum(a2, 0))
    f = p2.reshape(n, -1)
    logits = f @ W3 + b3
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -np.mean(logits[rows, y] - m[:, 0] - np.log(s[:, 0]))
    d = e / s
    d[rows, y] -= 1
    d /= np.float32(n)
    gW3, gb3 = f.T @ d, d.sum(axis=0)
    d = (d @ W3.T).reshape(p2.shape)
    d = _pool_bwd(d, r2, p2) * (a2 > 0)
    gW2, gb2, d = _xcorr_grads(d, cols2, W2, p1.shape, True)
    d = _pool_bwd(d, r1, p1) * (a1 > 0)
    gW1, gb1, _ = _xcorr_grads(d, cols1, W1, X.shape, False)
    lr = np.float32(lr)
    for p, g in zip(params, (gW1, gb1, gW2, gb2, gW3, gb3)):
        p -= lr * g
    return loss


# --------------------------------------------------------------------------- benchmark


def run(quick: bool) -> list[dict]:
    case = "64x1x28x28, float32"
    target, repeat = (0.05, 5) if quick else (0.3, 7)
    init = init_params()
    X, y = make_data()
    ref = flip_filters(init)
    ref_losses = [numpy_step(ref, X, y) for _ in range(CHECK_STEPS)]
    ref = flip_filters(ref)      # back to theanine's filters, for the checks
    rows = []

    def timed(impl, step, weights, note=""):
        """Check CHECK_STEPS steps from the initial weights against NumPy's, then time ``step``.

        ``weights()`` returns the current parameters with theanine's (flipped) filters.
        """
        def body():
            losses = [float(step()) for _ in range(CHECK_STEPS)]
            check_close(losses, ref_losses, 1e-4, 1e-5, f"{impl} losses")
            check_params(impl, weights(), ref, init, CHECK_STEPS)
            return row(case, impl, timeit_auto(step, target_s=target, repeat=repeat), note)
        return guarded(case, impl, body)

    params = flip_filters(init)
    rows.append(timed("numpy", lambda: numpy_step(params, X, y), lambda: flip_filters(params),
                      "im2col + BLAS, hand-written backward"))

    for mode in theanine_modes():
        impl = theanine_impl(mode)
        rows.append(guarded(case, impl, lambda mode=mode, impl=impl:
                            _theanine(mode, impl, init, X, y, timed)))

    rows += peer_rows(case, torch=lambda torch: _torch(torch, init, X, y, timed),
                      jax=lambda jax, jnp: _jax(jax, jnp, init, X, y, timed),
                      pytensor=lambda pytensor, pt: _pytensor(pytensor, pt, init, X, y, timed))
    return rows


def _theanine(mode, impl, init, X, y, timed):
    import theanine
    import theanine.tensor as T
    from theanine.tensor.signal.pool import pool_2d

    Xs, ys = T.ftensor4("X"), T.ivector("y")
    ps = [theanine.shared(p.copy(), name=nm) for p, nm in zip(init, ["W1", "b1", "W2", "b2", "W3", "b3"])]
    W1, b1, W2, b2, W3, b3 = ps
    h = T.nnet.conv2d(Xs, W1, input_shape=(BATCH, IN_C, IN_HW, IN_HW), filter_shape=W1.get_value().shape)
    h = pool_2d(T.nnet.relu(h + b1.dimshuffle("x", 0, "x", "x")), (2, 2), ignore_border=True)
    h = T.nnet.conv2d(h, W2, filter_shape=W2.get_value().shape)
    h = pool_2d(T.nnet.relu(h + b2.dimshuffle("x", 0, "x", "x")), (2, 2), ignore_border=True)
    logits = T.dot(h.flatten(2), W3) + b3
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), ys))
    grads = theanine.grad(cost, ps)
    train = theanine.function([Xs, ys], cost, updates=[(p, p - LR * g) for p, g in zip(ps, grads)],
                              mode=mode)
    train.trust_input = True
    return timed(impl, lambda: train(X, y), lambda: [p.get_value() for p in ps],
                 "nnet.conv2d, pool_2d, nnet.softmax; updates, trust_input")


def _torch(torch, init, X, y, timed):
    F = torch.nn.functional
    ps = [torch.tensor(p, requires_grad=True) for p in flip_filters(init)]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def step():
        W1, b1, W2, b2, W3, b3 = ps
        h = F.max_pool2d(F.relu(F.conv2d(Xt, W1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W2, b2)), 2)
        loss = F.cross_entropy(h.flatten(1) @ W3 + b3, yt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            torch._foreach_add_(ps, grads, alpha=-LR)
        return loss

    return timed("torch", lambda: step().item(),
                 lambda: flip_filters([p.detach().numpy() for p in ps]),
                 f"eager, F.conv2d on flipped filters, {torch.get_num_threads()} threads")


def _jax(jax, jnp, init, X, y, timed):
    lax = jax.lax
    dn = ("NCHW", "OIHW", "NCHW")

    def pool(h):
        return lax.reduce_window(h, np.float32(-np.inf), lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(ps, X, y):
        W1, b1, W2, b2, W3, b3 = ps
        h = lax.conv_general_dilated(X, W1, (1, 1), "VALID", dimension_numbers=dn)
        h = pool(jax.nn.relu(h + b1[:, None, None]))
        h = lax.conv_general_dilated(h, W2, (1, 1), "VALID", dimension_numbers=dn)
        h = pool(jax.nn.relu(h + b2[:, None, None]))
        logp = jax.nn.log_softmax(h.reshape(h.shape[0], -1) @ W3 + b3, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(ps, X, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, y)
        return loss, [p - LR * g for p, g in zip(ps, gs)]

    s = {"ps": [jnp.asarray(p) for p in flip_filters(init)]}
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def call():
        loss, s["ps"] = step(s["ps"], Xj, yj)
        return loss.block_until_ready()

    return timed("jax", call, lambda: flip_filters([np.asarray(p) for p in s["ps"]]),
                 "jit, lax.conv_general_dilated on flipped filters")


def _pytensor_conv(pt, x, w, x_shape, w_shape):
    """theanine's (Theano's) valid conv2d by im2col: cross-correlation with the flipped filters."""
    n, c, h, wd = x_shape
    k, _, kh, kw = w_shape
    oh, ow = h - kh + 1, wd - kw + 1
    patches = pt.stack([x[:, :, u:u + oh, v:v + ow] for u in range(kh) for v in range(kw)], axis=2)
    cols = patches.dimshuffle(0, 3, 4, 1, 2).reshape((n * oh * ow, c * kh * kw))
    wmat = w[:, :, ::-1, ::-1].reshape((k, c * kh * kw))
    return pt.dot(cols, wmat.T).reshape((n, oh, ow, k)).dimshuffle(0, 3, 1, 2)


def _pytensor(pytensor, pt, init, X, y, timed):
    def pool(h, shape):
        n, c, hh, ww = shape
        return h.reshape((n, c, hh // 2, 2, ww // 2, 2)).max(axis=(3, 5))

    Xs, ys = pt.ftensor4("X"), pt.ivector("y")
    ps = [pytensor.shared(p.copy(), shape=p.shape) for p in init]
    W1, b1, W2, b2, W3, b3 = ps
    o1 = IN_HW - KS + 1
    h = _pytensor_conv(pt, Xs, W1, (BATCH, IN_C, IN_HW, IN_HW), init[0].shape)
    h = pool(pt.maximum(h + b1.dimshuffle("x", 0, "x", "x"), 0), (BATCH, K1, o1, o1))
    o2 = o1 // 2 - KS + 1
    h = _pytensor_conv(pt, h, W2, (BATCH, K1, o1 // 2, o1 // 2), init[2].shape)
    h = pool(pt.maximum(h + b2.dimshuffle("x", 0, "x", "x"), 0), (BATCH, K2, o2, o2))
    logits = pt.dot(h.reshape((BATCH, FLAT)), W3) + b3
    logp = logits - pt.logsumexp(logits, axis=1, keepdims=True)
    cost = -pt.mean(logp[pt.arange(BATCH), ys])
    grads = pytensor.grad(cost, ps)
    train = pytensor_function([Xs, ys], cost,
                              updates=[(p, p - np.float32(LR) * g) for p, g in zip(ps, grads)])
    return timed("pytensor", lambda: train(X, y), lambda: [p.get_value() for p in ps],
                 f"C back end, trust_input; no conv2d in PyTensor {pytensor.__version__}: "
                 "im2col by hand (stacked slices + dot), reshape-max pooling")


if __name__ == "__main__":
    import tests.benchmarks.bench_b8_cnn as _self
    main(_self)
