"""B7: one Adam training step of a tiny "churn" network, float32.

11-6-6-1, ReLU / ReLU / sigmoid, binary cross-entropy, batch 10, Adam
(lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8) written by hand with shared
variables m, v and t in theanine and PyTensor, by hand in NumPy and JAX,
``torch.optim.Adam`` in PyTorch.  At this size the step is all overhead:
median µs per step.  Every implementation's first steps are checked against
the NumPy reference (losses and weights) before it is timed.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.common import (check_close, guarded, main, peer_rows, pytensor_function,
                                     row, theanine_impl, theanine_modes, timeit_auto)

TABLE = {"title": "B7 churn network training step: 11-6-6-1, batch 10, Adam, float32", "unit": "µs"}

SIZES = (11, 6, 6, 1)
BATCH = 10
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
CHECK_STEPS = 3


def init_params(seed=0):
    """Glorot-uniform weights, zero biases, float32: [W1, b1, W2, b2, W3, b3]."""
    rng = np.random.default_rng(seed)
    params = []
    for k, n in zip(SIZES[:-1], SIZES[1:]):
        lim = np.sqrt(6.0 / (k + n))
        params.append(rng.uniform(-lim, lim, (k, n)).astype(np.float32))
        params.append(np.zeros(n, dtype=np.float32))
    return params


def make_data(seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = (rng.uniform(size=(BATCH, 1)) < 0.3).astype(np.float32)
    return X, y


class NumpyAdam:
    """Hand-written forward, backward and Adam update (in place)."""

    def __init__(self, params):
        self.params = [p.copy() for p in params]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, X, y):
        W1, b1, W2, b2, W3, b3 = self.params
        f32 = np.float32
        a1 = X @ W1 + b1
        h1 = np.maximum(a1, 0)
        a2 = h1 @ W2 + b2
        h2 = np.maximum(a2, 0)
        p = 1 / (1 + np.exp(-(h2 @ W3 + b3)))
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        d = (p - y) / f32(y.size)
        gW3, gb3 = h2.T @ d, d.sum(axis=0)
        d = (d @ W3.T) * (a2 > 0)
        gW2, gb2 = h1.T @ d, d.sum(axis=0)
        d = (d @ W2.T) * (a1 > 0)
        gW1, gb1 = X.T @ d, d.sum(axis=0)
        self.t += 1
        c1, c2 = f32(1 - B1 ** self.t), f32(1 - B2 ** self.t)
        for q, g, m, v in zip(self.params, (gW1, gb1, gW2, gb2, gW3, gb3), self.m, self.v):
            m *= f32(B1)
            m += f32(1 - B1) * g
            v *= f32(B2)
            v += f32(1 - B2) * g * g
            q -= f32(LR) * (m / c1) / (np.sqrt(v / c2) + f32(EPS))
        return loss


def adam_updates(params, grads, shared, T, zeros_like, scalar0):
    """Adam as a list of (shared, new value) pairs, the Theano way.

    Constants are float32 tensors, so that no library upcasts the float32 updates.
    """
    c = {k: T.as_tensor_variable(np.float32(v)) for k, v in
         {"lr": LR, "b1": B1, "b2": B2, "eps": EPS, "1-b1": 1 - B1, "1-b2": 1 - B2, "1": 1}.items()}
    t = shared(scalar0)
    t1 = t + c["1"]
    c1 = c["1"] - c["b1"] ** t1
    c2 = c["1"] - c["b2"] ** t1
    updates = [(t, t1)]
    for p, g in zip(params, grads):
        m = shared(zeros_like(p.get_value()))
        v = shared(zeros_like(p.get_value()))
        m1 = c["b1"] * m + c["1-b1"] * g
        v1 = c["b2"] * v + c["1-b2"] * g * g
        step = c["lr"] * (m1 / c1) / (T.sqrt(v1 / c2) + c["eps"])
        updates += [(m, m1), (v, v1), (p, p - step)]
    return updates


def run(quick: bool) -> list[dict]:
    case = "11-6-6-1, batch 10, float32"
    target, repeat = (0.03, 5) if quick else (0.2, 7)
    init = init_params()
    X, y = make_data()
    ref = NumpyAdam(init)
    ref_losses = [ref.step(X, y) for _ in range(CHECK_STEPS)]
    rows = []

    def timed(impl, step, weights, note=""):
        """Check CHECK_STEPS steps from the initial weights against NumPy's, then time ``step``."""
        def body():
            losses = [float(step()) for _ in range(CHECK_STEPS)]
            check_close(losses, ref_losses, 1e-4, 1e-6, f"{impl} losses")
            for k, (got, want) in enumerate(zip(weights(), ref.params)):
                check_close(got, want, 1e-4, 1e-5, f"{impl} param {k} after {CHECK_STEPS} steps")
            return row(case, impl, timeit_auto(step, target_s=target, repeat=repeat), note)
        return guarded(case, impl, body)

    npm = NumpyAdam(init)
    rows.append(timed("numpy", lambda: npm.step(X, y), lambda: npm.params, "hand-written backward"))

    for mode in theanine_modes():
        impl = theanine_impl(mode)

        def body(mode=mode, impl=impl):
            import theanine
            import theanine.tensor as T
            Xs, ys = T.fmatrix("X"), T.fmatrix("y")
            ps = [theanine.shared(p.copy()) for p in init]
            cost = _cost(T, T.nnet.relu, T.nnet.sigmoid, Xs, ys, ps)
            updates = adam_updates(ps, theanine.grad(cost, ps), theanine.shared, T,
                                   np.zeros_like, np.float32(0))
            train = theanine.function([Xs, ys], cost, updates=updates, mode=mode)
            train.trust_input = True
            return timed(impl, lambda: train(X, y), lambda: [p.get_value() for p in ps],
                         "Adam via updates, trust_input")
        rows.append(guarded(case, impl, body))

    def pytensor_step(pytensor, pt):
        Xs, ys = pt.fmatrix("X"), pt.fmatrix("y")
        ps = [pytensor.shared(p.copy(), shape=p.shape) for p in init]
        cost = _cost(pt, lambda a: pt.maximum(a, 0), pt.sigmoid, Xs, ys, ps)
        def pshared(v):  # static shapes, so that updates keep the shared variables' types
            return pytensor.shared(v, shape=np.shape(v)) if np.ndim(v) else pytensor.shared(v)
        updates = adam_updates(ps, pytensor.grad(cost, ps), pshared, pt,
                               np.zeros_like, np.float32(0))
        train = pytensor_function([Xs, ys], cost, updates=updates)
        return timed("pytensor", lambda: train(X, y), lambda: [p.get_value() for p in ps],
                     "C back end, trust_input")
    rows += peer_rows(case, torch=lambda torch: _torch(torch, init, X, y, timed),
                      jax=lambda jax, jnp: _jax(jax, jnp, init, X, y, timed), pytensor=pytensor_step)
    return rows


def _cost(T, relu, sigmoid, X, y, ps):
    W1, b1, W2, b2, W3, b3 = ps
    h = relu(T.dot(X, W1) + b1)
    h = relu(T.dot(h, W2) + b2)
    p = sigmoid(T.dot(h, W3) + b3)
    return -T.mean(y * T.log(p) + (1 - y) * T.log(1 - p))


def _torch(torch, init, X, y, timed):
    F = torch.nn.functional
    ps = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.Adam(ps, lr=LR, betas=(B1, B2), eps=EPS)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        W1, b1, W2, b2, W3, b3 = ps
        h = F.relu(Xt @ W1 + b1)
        h = F.relu(h @ W2 + b2)
        loss = F.binary_cross_entropy(torch.sigmoid(h @ W3 + b3), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return timed("torch", lambda: step().item(), lambda: [p.detach().numpy() for p in ps],
                 f"eager, torch.optim.Adam, {torch.get_num_threads()} threads")


def _jax(jax, jnp, init, X, y, timed):
    def loss_fn(ps, X, y):
        W1, b1, W2, b2, W3, b3 = ps
        h = jax.nn.relu(X @ W1 + b1)
        h = jax.nn.relu(h @ W2 + b2)
        p = jax.nn.sigmoid(h @ W3 + b3)
        return -jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))

    @jax.jit
    def step(ps, ms, vs, t, X, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, y)
        t = t + 1
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        ms = [B1 * m + (1 - B1) * g for m, g in zip(ms, gs)]
        vs = [B2 * v + (1 - B2) * g * g for v, g in zip(vs, gs)]
        ps = [p - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS) for p, m, v in zip(ps, ms, vs)]
        return loss, ps, ms, vs, t

    zeros = [jnp.zeros_like(jnp.asarray(p)) for p in init]
    s = {"state": ([jnp.asarray(p) for p in init], zeros, list(zeros), jnp.float32(0))}
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def call():
        loss, *state = step(*s["state"], Xj, yj)
        s["state"] = tuple(state)
        return loss.block_until_ready()

    return timed("jax", call, lambda: [np.asarray(p) for p in s["state"][0]], "jit, Adam by hand")


if __name__ == "__main__":
    import tests.benchmarks.bench_b7_churn_step as _self
    main(_self)
