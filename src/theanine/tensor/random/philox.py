"""Philox4x32-10, the counter-based generator behind theanine's random streams.

The reference is vectorised NumPy (uint64 products of uint32 words), so any
back end can reproduce it bit for bit from this description.

Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011; Random123) maps a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit
key ``(k0, k1)``, all uint32 words, to four uint32 words. Ten rounds of::

    hi0:lo0 = 0xD2511F53 * c0        (64-bit product of two 32-bit words)
    hi1:lo1 = 0xCD9E8D57 * c2
    (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

with the key bumped between rounds: ``k0 += 0x9E3779B9``, ``k1 += 0xBB67AE85``
(mod 2**32). The output is the final ``(c0, c1, c2, c3)``.

State layout
------------
A random state is a uint32 vector of six words ``[k0, k1, c0, c1, c2, c3]``:
the key, then the counter ``c = c0 + c1 * 2**32 + c2 * 2**64 + c3 * 2**96``.
The state of draw number ``s`` (0, 1, 2, ... in creation order) of
``RandomStreams(seed)`` starts as ``key = (seed mod 2**32, seed >> 32)`` and
``counter = (0, 0, s mod 2**32, s >> 32)``: every draw has its own counter range.

Word stream
-----------
One evaluation of a draw reads the words ``w[0], w[1], ...`` given by the
blocks ``philox(c + b, key)`` for ``b = 0, 1, 2, ...`` (``c`` the state's
counter, addition mod 2**128), each block contributing its four output words
in order, so ``w[4b + j]`` is word ``j`` of block ``b``. A draw that reads
``m`` words consumes ``ceil(m / 4)`` blocks; its new state keeps the key and
has the counter ``c + ceil(m / 4)``. Unused words of the last block are
dropped.

Unit uniforms
-------------
Uniforms in [0, 1) are made from the words in the standard way:

- float64: two words per value, ``u[i] = ((w[2i] >> 5) * 2**26 + (w[2i+1] >> 6)) * 2**-53``;
- float32: one word per value, ``u[i] = (w[i] >> 8) * 2**-24``;
- float16: one word per value, ``u[i] = (w[i] >> 21) * 2**-11``;
- for comparisons with a probability (binomial, multinomial), one word per
  value with every bit: ``u[i] = w[i] * 2**-32``, exact in float64.

How each distribution maps elements to these values is described in
``theanine.tensor.random.samplers``.
"""

from __future__ import annotations

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10
STATE_WORDS = 6
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1


def philox4x32(counter, key, rounds=ROUNDS):
    """Philox4x32 with ``rounds`` rounds: ``counter`` uint32 (..., 4), ``key`` uint32 (..., 2)
    (broadcast against each other) -> uint32 (..., 4)."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    if counter.shape[-1:] != (4,) or key.shape[-1:] != (2,):
        raise ValueError(f"philox4x32: counter must end in 4 words and key in 2, got shapes "
                         f"{counter.shape} and {key.shape}")
    c0, c1, c2, c3 = (counter[..., i].astype(np.uint64) for i in range(4))
    k0, k1 = (key[..., i].astype(np.uint64) for i in range(2))
    m0, m1 = np.uint64(M0), np.uint64(M1)
    for r in range(rounds):
        if r:
            k0 = (k0 + W0) & _MASK32
            k1 = (k1 + W1) & _MASK32
        p0 = m0 * c0
        p1 = m1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & _MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def initial_state(seed, stream):
    """The state of draw number ``stream`` of ``RandomStreams(seed)``: uint32 [k0, k1, c0..c3]."""
    seed, stream = int(seed), int(stream)
    return np.array([seed & _MASK32, seed >> 32, 0, 0, stream & _MASK32, (stream >> 32) & _MASK32],
                    dtype=np.uint32)


def check_seed(seed) -> int:
    """``seed`` as a Python int in [0, 2**64), or a clear error."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"RandomStreams: seed must be an int, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= _MASK64:
        raise ValueError(f"RandomStreams: seed must be in [0, 2**64), got {seed}")
    return seed


def _counter_value(state) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(state[2:]))


class WordStream:
    """The words of one evaluation of a draw, read in order from a state (see the module
    docstring); ``new_state()`` is the state after the blocks read so far."""

    def __init__(self, state):
        state = np.asarray(state)
        if state.shape != (STATE_WORDS,) or state.dtype != np.uint32:
            raise ValueError(f"random state must be a uint32 vector of {STATE_WORDS} words, "
                             f"got {state.dtype} of shape {state.shape}")
        self.key = state[:2].copy()
        self.counter = _counter_value(state)
        self.used = 0  # words read so far
        self._buffer = np.empty(0, dtype=np.uint32)  # the rest of the last block read

    def take(self, n) -> np.ndarray:
        """The next ``n`` words (uint32)."""
        n = int(n)
        have = self._buffer[:n]
        need = n - have.size
        self._buffer = self._buffer[have.size:]
        if need > 0:
            blocks = -(-need // 4)
            first = self.counter + self.used // 4 + (1 if self.used % 4 else 0)
            words = self._blocks(first, blocks).reshape(-1)
            have = np.concatenate([have, words[:need]])
            self._buffer = words[need:]
        self.used += n
        return have

    def _blocks(self, first, count):
        lo, hi = first & _MASK64, (first >> 64) & _MASK64
        low = np.uint64(lo) + np.arange(count, dtype=np.uint64)  # wraps mod 2**64
        high = np.uint64(hi) + (low < np.uint64(lo)).astype(np.uint64)
        counters = np.stack([low & _MASK32, low >> 32, high & _MASK32, high >> 32], axis=-1)
        return philox4x32(counters, self.key)

    def new_state(self) -> np.ndarray:
        """The state after this evaluation: same key, counter advanced by the blocks read."""
        counter = (self.counter + -(-self.used // 4)) & ((1 << 128) - 1)
        words = [(counter >> (32 * i)) & _MASK32 for i in range(4)]
        return np.array([int(self.key[0]), int(self.key[1])] + words, dtype=np.uint32)


def unit_uniform(stream, n, dtype) -> np.ndarray:
    """``n`` uniforms in [0, 1) of float ``dtype`` from the stream (the module docstring's rule)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        w = stream.take(2 * n).astype(np.uint64).reshape(n, 2)
        return ((w[:, 0] >> 5) * (1 << 26) + (w[:, 1] >> 6)).astype(np.float64) * 2.0 ** -53
    bits = {np.dtype(np.float32): 24, np.dtype(np.float16): 11}.get(dtype)
    if bits is None:
        raise TypeError(f"unit_uniform: dtype must be float16, float32 or float64, got {dtype}")
    w = stream.take(n) >> np.uint32(32 - bits)
    return w.astype(dtype) * dtype.type(2.0 ** -bits)


def unit_uniform32(stream, n) -> np.ndarray:
    """``n`` float64 values ``w * 2**-32`` in [0, 1), one word each (for probabilities)."""
    return stream.take(n).astype(np.float64) * 2.0 ** -32
