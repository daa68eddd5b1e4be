"""NumPy samplers: one draw of each distribution from a Philox word stream.

Each sampler reads the words of one draw (``philox.WordStream``) and returns
the sample. Elements are numbered in C order of the output; ``u``, ``u53`` and
``u32`` are the unit uniforms of ``theanine.tensor.random.philox`` (``u`` at
the output's float precision: two words per value for float64, one word
otherwise; ``u53`` always two words; ``u32`` one word, all 32 bits), indexed
in the order they are read:

- uniform(low, high): element i is ``low + (high - low) * u[i]``, computed in
  the output dtype.
- normal(avg, std): Box-Muller on pairs. With ``r = sqrt(-2 log(1 - u[2j]))``
  and ``t = 2 pi u[2j+1]`` (in float64), element 2j is ``r cos t`` and element
  2j+1 is ``r sin t`` (the last sine is dropped for an odd count); each is
  rounded to the output dtype, then ``avg + std * z`` is computed in it.
- binomial(n, p): trial t of element i (N elements) succeeds when
  ``u32[t * N + i] < p``; the element counts its successes.
- multinomial(n, pvals): trial t of row r (R rows of k probabilities) reads
  ``u32[t * R + r]`` and picks the number of partial sums ``p_0 + ... + p_j``
  (j < k - 1) that are <= it; the row counts its picks. No word is read when
  k is 0.
- choice(a, p) with replacement: element i is ``floor(u53[i] * n)`` (at most
  n - 1) without ``p``; with ``p`` the number of partial sums
  ``p_0 + ... + p_j`` that are <= ``u53[i]`` times the last of them (the first
  index whose partial sum exceeds it), at most the last index of non-zero ``p``.
- choice(a, p) without replacement (m elements): candidate j gets the key
  ``u53[j]`` (without ``p``: the m smallest keys, ascending) or
  ``log(1 - u53[j]) / p[j]``, or -inf where ``p[j]`` is 0 (with ``p``: the m
  largest, descending; weighted sampling without replacement by Efraimidis and
  Spirakis); ties keep the lower index first.
- permutation(n): row r's keys are ``u53[r * n + j]``; the row is their
  stable argsort.
"""

from __future__ import annotations

import numpy as np

from theanine.tensor.random.philox import unit_uniform, unit_uniform32

#: trials are drawn in chunks of about this many words (bounded memory, same word order)
_CHUNK_WORDS = 1 << 22


def _broadcast(name, value, shape, dist):
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise ValueError(f"{dist}: {name} of shape {np.shape(value)} cannot be broadcast to the "
                         f"size {tuple(shape)}") from None


def uniform(stream, shape, dtype, low, high):
    """Uniform on [low, high) of ``shape``, in ``dtype``."""
    dtype = np.dtype(dtype)
    low = _broadcast("low", np.asarray(low, dtype=dtype), shape, "uniform")
    high = _broadcast("high", np.asarray(high, dtype=dtype), shape, "uniform")
    u = unit_uniform(stream, int(np.prod(shape)), dtype).reshape(shape)
    return (low + (high - low) * u).astype(dtype, copy=False)


def standard_normal(stream, n, dtype):
    """``n`` standard normal values (Box-Muller), rounded to ``dtype``."""
    pairs = -(-n // 2)
    u = unit_uniform(stream, 2 * pairs, dtype).astype(np.float64).reshape(pairs, 2)
    r = np.sqrt(-2.0 * np.log1p(-u[:, 0]))
    t = 2.0 * np.pi * u[:, 1]
    z = np.stack([r * np.cos(t), r * np.sin(t)], axis=1).reshape(-1)[:n]
    return z.astype(dtype)


def normal(stream, shape, dtype, avg, std):
    """Normal with mean ``avg`` and standard deviation ``std`` of ``shape``, in ``dtype``."""
    dtype = np.dtype(dtype)
    avg = _broadcast("avg", np.asarray(avg, dtype=dtype), shape, "normal")
    std = _broadcast("std", np.asarray(std, dtype=dtype), shape, "normal")
    z = standard_normal(stream, int(np.prod(shape)), dtype).reshape(shape)
    return (avg + std * z).astype(dtype, copy=False)


def _trial_chunks(n_trials, per_trial):
    """(first trial, trial count) chunks of about _CHUNK_WORDS words."""
    step = max(1, _CHUNK_WORDS // max(per_trial, 1))
    return [(t, min(step, n_trials - t)) for t in range(0, n_trials, step)]


def _check_trials(n, dist):
    n = int(n)
    if n < 0:
        raise ValueError(f"{dist}: the number of trials n must be >= 0, got {n}")
    return n


def binomial(stream, shape, dtype, n, p):
    """Counts of successes in ``n`` trials of probability ``p`` (broadcast to ``shape``)."""
    n = _check_trials(n, "binomial")
    p = _broadcast("p", np.asarray(p, dtype=np.float64), shape, "binomial").reshape(-1)
    if np.any(~((p >= 0) & (p <= 1))):
        raise ValueError("binomial: p must be in [0, 1]")
    count = np.zeros(p.size, dtype=np.int64)
    for _, trials in _trial_chunks(n, p.size):
        u = unit_uniform32(stream, trials * p.size).reshape(trials, p.size)
        count += (u < p).sum(axis=0)
    return count.reshape(shape).astype(dtype)


def multinomial(stream, shape, dtype, n, pvals):
    """Counts over the last axis of ``shape`` from ``n`` draws of each row of ``pvals``."""
    n = _check_trials(n, "multinomial")
    pvals = _broadcast("pvals", np.asarray(pvals, dtype=np.float64), shape, "multinomial")
    k = shape[-1]
    rows = pvals.reshape(int(np.prod(shape[:-1])), k)  # (no -1: k may be 0)
    if np.any(~(rows >= 0)):
        raise ValueError("multinomial: pvals must be non-negative")
    cdf = np.cumsum(rows[:, :-1], axis=1)
    if cdf.size and np.any(cdf[:, -1] > 1 + 1e-5):
        raise ValueError("multinomial: the probabilities of a row (all but the last) sum to more "
                         "than 1")
    n_rows = rows.shape[0]
    count = np.zeros(n_rows * k, dtype=np.int64)
    if k and n_rows:
        offsets = np.arange(n_rows) * k
        for _, trials in _trial_chunks(n, n_rows * k):
            u = unit_uniform32(stream, trials * n_rows).reshape(trials, n_rows)
            picks = (u[:, :, None] >= cdf[None]).sum(axis=2)
            count += np.bincount((picks + offsets).reshape(-1), minlength=n_rows * k)
    return count.reshape(shape).astype(dtype)


def _check_p(p, n):
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"choice: p must have one probability per candidate ({n}), got shape {p.shape}")
    if np.any(~(p >= 0)):
        raise ValueError("choice: probabilities p must be non-negative")
    if abs(p.sum() - 1) > 1e-5:
        raise ValueError(f"choice: probabilities p do not sum to 1 (they sum to {p.sum()})")
    return p


def choice(stream, shape, dtype, n, replace, p=None):
    """Indices in [0, n) of ``shape``, with or without replacement, uniform or weighted by ``p``."""
    n = int(n)
    m = int(np.prod(shape))
    if n <= 0 and m:
        raise ValueError(f"choice: cannot choose from an empty population (n = {n})")
    if p is not None:
        p = _check_p(p, n)
    if replace:
        u = unit_uniform(stream, m, np.float64)
        if p is None:
            idx = np.minimum((u * n).astype(np.int64), n - 1)
        else:
            cdf = np.cumsum(p)
            idx = np.searchsorted(cdf, u * cdf[-1], side="right")
            idx = np.minimum(idx, np.flatnonzero(p)[-1])
        return idx.reshape(shape).astype(dtype)
    available = n if p is None else int(np.count_nonzero(p))
    if m > available:
        raise ValueError(f"choice: cannot take {m} samples without replacement from "
                         f"{available} candidates" + (" of non-zero probability" if p is not None else ""))
    u = unit_uniform(stream, n, np.float64)
    if p is None:
        order = np.argsort(u, kind="stable")
    else:
        keys = np.full(n, -np.inf)
        keys[p > 0] = np.log1p(-u[p > 0]) / p[p > 0]
        order = np.argsort(-keys, kind="stable")
    return order[:m].reshape(shape).astype(dtype)


def permutation(stream, shape, dtype, n):
    """Permutations of range(n) along the last axis of ``shape`` (= batch + (n,))."""
    rows = int(np.prod(shape[:-1]))
    u = unit_uniform(stream, rows * n, np.float64).reshape(rows, n)
    return np.argsort(u, axis=1, kind="stable").reshape(shape).astype(dtype)
