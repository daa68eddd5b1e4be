"""B3: one SGD training step of an MLP, float32, 784-256-256-10.

ReLU hidden layers, softmax cross-entropy on integer labels, batch 128,
SGD with learning rate 0.01 applied through ``updates`` (theanine, PyTensor)
or in place (NumPy, PyTorch).  Median ms per step and GFLOP/s, counting
2*M*N*K for each GEMM of the forward and backward passes (the gradient with
respect to the input batch is not computed).  Random data and initial weights
from a fixed seed, the same for every implementation; each implementation's
first step is checked against the NumPy reference (loss and updated weights)
before it is timed.

``build_theanine_step``, ``jax_step_fn`` and ``build_pytensor_step`` are also
used by B6 (compile time).
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.common import (check_close, guarded, main, peer_rows, pytensor_function,
                                     row, theanine_impl, theanine_modes, timeit_auto)

TABLE = {"title": "B3 MLP training step: float32 784-256-256-10, batch 128, SGD",
         "unit": "ms", "extra": ["GFLOP/s"]}

SIZES = (784, 256, 256, 10)
BATCH = 128
LR = 0.01


def gemm_flops(batch=BATCH, sizes=SIZES):
    """2*M*N*K per GEMM: forward, weight gradients, and input gradients of all layers but the first."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    fwd = sum(2 * batch * k * n for k, n in layers)
    grad_w = fwd
    grad_in = sum(2 * batch * k * n for k, n in layers[1:])
    return fwd + grad_w + grad_in


def init_params(seed=0, sizes=SIZES):
    """He-initialised weights and zero biases, float32: [W1, b1, W2, b2, W3, b3]."""
    rng = np.random.default_rng(seed)
    params = []
    for k, n in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32))
        params.append(np.zeros(n, dtype=np.float32))
    return params


def make_data(seed=1, batch=BATCH, sizes=SIZES):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch).astype(np.int32)
    return X, y


# --------------------------------------------------------------------------- NumPy reference


def numpy_step(params, X, y, lr=LR):
    """Hand-written forward and backward pass; updates ``params`` in place, returns the loss."""
    W1, b1, W2, b2, W3, b3 = params
    n = X.shape[0]
    lr = np.float32(lr)
    a1 = X @ W1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ W2 + b2
    h2 = np.maximum(a2, 0)
    logits = h2 @ W3 + b3
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -np.mean(logits[rows, y] - m[:, 0] - np.log(s[:, 0]))
    d = e / s
    d[rows, y] -= 1
    d /= np.float32(n)
    gW3, gb3 = h2.T @ d, d.sum(axis=0)
    d = (d @ W3.T) * (a2 > 0)
    gW2, gb2 = h1.T @ d, d.sum(axis=0)
    d = (d @ W2.T) * (a1 > 0)
    gW1, gb1 = X.T @ d, d.sum(axis=0)
    for p, g in zip(params, (gW1, gb1, gW2, gb2, gW3, gb3)):
        p -= lr * g
    return loss


# --------------------------------------------------------------------------- theanine


def theanine_cost(T, X, y, Ws):
    """Mean softmax cross-entropy of the MLP; T.nnet's softmax when it exists, else log-sum-exp."""
    W1, b1, W2, b2, W3, b3 = Ws
    h1 = T.nnet.relu(T.dot(X, W1) + b1)
    h2 = T.nnet.relu(T.dot(h1, W2) + b2)
    logits = T.dot(h2, W3) + b3
    nnet = T.nnet
    if hasattr(nnet, "softmax") and hasattr(nnet, "categorical_crossentropy"):
        return T.mean(nnet.categorical_crossentropy(nnet.softmax(logits), y)), "nnet.softmax"
    logp = logits - T.logsumexp(logits, axis=1, keepdims=True)
    return -T.mean(logp[T.arange(X.shape[0]), y]), "log-sum-exp"


def build_theanine_step(params, mode, lr=LR):
    """(train, shared variables, cost form): ``train(X, y)`` returns the loss and updates the weights."""
    import theanine
    import theanine.tensor as T
    X = T.fmatrix("X")
    y = T.ivector("y")
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    shared = [theanine.shared(p.copy(), name=nm) for p, nm in zip(params, names)]
    cost, form = theanine_cost(T, X, y, shared)
    grads = theanine.grad(cost, shared)
    updates = [(p, p - lr * g) for p, g in zip(shared, grads)]
    train = theanine.function([X, y], cost, updates=updates, mode=mode)
    train.trust_input = True
    return train, shared, form


# --------------------------------------------------------------------------- benchmark


def run(quick: bool) -> list[dict]:
    case = f"784-256-256-10, batch {BATCH}, float32"
    flops = gemm_flops()
    target, repeat = (0.05, 5) if quick else (0.3, 7)
    init = init_params()
    X, y = make_data()
    ref = [p.copy() for p in init]
    ref_loss = numpy_step(ref, X, y)
    rows = []

    def timed(impl, first_step, step, note=""):
        """``first_step() -> (loss, params)`` from the initial weights, checked; then time ``step``."""
        def body():
            loss, new = first_step()
            check_close(loss, ref_loss, 1e-4, 1e-5, f"{impl} loss")
            for k, (got, want) in enumerate(zip(new, ref)):
                check_close(got, want, 1e-3, 2e-5, f"{impl} param {k} after one step")
            t = timeit_auto(step, target_s=target, repeat=repeat)
            return row(case, impl, t, note, **{"GFLOP/s": flops / t / 1e9})
        return guarded(case, impl, body)

    params = [p.copy() for p in init]
    rows.append(timed("numpy", lambda: (numpy_step(params, X, y), params),
                      lambda: numpy_step(params, X, y), "hand-written backward"))

    for mode in theanine_modes():
        impl = theanine_impl(mode)

        def body(mode=mode, impl=impl):
            train, shared, form = build_theanine_step(init, mode)

            def first():
                loss = train(X, y)
                return loss, [s.get_value() for s in shared]
            return timed(impl, first, lambda: train(X, y), f"updates, trust_input, {form}")
        rows.append(guarded(case, impl, body))

    rows += peer_rows(case, torch=lambda torch: _torch(torch, init, X, y, timed),
                      jax=lambda jax, jnp: _jax(jax, jnp, init, X, y, timed),
                      pytensor=lambda pytensor, pt: _pytensor(pytensor, pt, init, X, y, timed))
    return rows


def _torch(torch, init, X, y, timed):
    F = torch.nn.functional
    ps = [torch.tensor(p, requires_grad=True) for p in init]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def step():
        W1, b1, W2, b2, W3, b3 = ps
        h = F.relu(Xt @ W1 + b1)
        h = F.relu(h @ W2 + b2)
        loss = F.cross_entropy(h @ W3 + b3, yt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            torch._foreach_add_(ps, grads, alpha=-LR)
        return loss

    def first():
        loss = step()
        return loss.item(), [p.detach().numpy() for p in ps]
    return timed("torch", first, step, f"eager, {torch.get_num_threads()} threads")


def jax_step_fn(jax, jnp, lr=LR):
    """The jitted JAX step: ``step(params, X, y) -> (loss, new params)``."""
    def loss_fn(ps, X, y):
        W1, b1, W2, b2, W3, b3 = ps
        h = jax.nn.relu(X @ W1 + b1)
        h = jax.nn.relu(h @ W2 + b2)
        logp = jax.nn.log_softmax(h @ W3 + b3, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(ps, X, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, y)
        return loss, [p - lr * g for p, g in zip(ps, gs)]
    return step


def build_pytensor_step(pytensor, pt, params, lr=LR):
    """(train, shared variables) for PyTensor's C back end, the same graph as theanine's."""
    Xs, ys = pt.fmatrix("X"), pt.ivector("y")
    shared = [pytensor.shared(p.copy()) for p in params]
    W1, b1, W2, b2, W3, b3 = shared
    h = pt.maximum(pt.dot(Xs, W1) + b1, 0)
    h = pt.maximum(pt.dot(h, W2) + b2, 0)
    logits = pt.dot(h, W3) + b3
    logp = logits - pt.logsumexp(logits, axis=1, keepdims=True)
    cost = -pt.mean(logp[pt.arange(Xs.shape[0]), ys])
    grads = pytensor.grad(cost, shared)
    updates = [(p, p - np.float32(lr) * g) for p, g in zip(shared, grads)]
    return pytensor_function([Xs, ys], cost, updates=updates), shared


def _jax(jax, jnp, init, X, y, timed):
    step = jax_step_fn(jax, jnp)
    state = {"ps": [jnp.asarray(p) for p in init]}
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def call():
        loss, state["ps"] = step(state["ps"], Xj, yj)
        return loss.block_until_ready()

    def first():
        loss = call()
        return float(loss), [np.asarray(p) for p in state["ps"]]
    return timed("jax", first, call, "jit")


def _pytensor(pytensor, pt, init, X, y, timed):
    train, shared = build_pytensor_step(pytensor, pt, init)

    def first():
        loss = train(X, y)
        return loss, [s.get_value() for s in shared]
    return timed("pytensor", first, lambda: train(X, y), "C back end, trust_input")


if __name__ == "__main__":
    import tests.benchmarks.bench_b3_mlp as _self
    main(_self)
