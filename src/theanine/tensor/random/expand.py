"""A random draw as a graph of ordinary tensor ops, so that native back ends run it.

``expand_draw(node)`` rebuilds a ``Uniform``, ``Normal``, ``Binomial``, ``Multinomial``,
``Choice`` or ``Permutation`` node from integer and float elementwise ops, an ``arange``,
reshapes and views, and for the categorical draws a ``cumsum`` and sums of comparisons; the
fusion rewrite turns the elementwise chains into kernels. It follows ``philox`` and
``samplers`` step for step:

- Words: Philox is counter based, so word w of the stream is word ``w % 4`` of
  block ``philox(c + w // 4, key)`` (the 128-bit counter sum carried from the low to
  the high 64 bits). Philox4x32-10 runs on uint64 values below 2**32 (each round's
  32 x 32-bit product fits in 64 bits; ``>> 32`` and ``& 0xFFFFFFFF`` split it).
- Samplers: each element of the sample computes the block its words lie in from its
  own index (an ``arange`` reshaped to the size) and applies the distribution's
  arithmetic, in the dtypes and order of operations NumPy uses; the whole draw is
  one elementwise kernel (a sum over trials for binomial with n > 1). A block is
  computed once per element that reads it (up to four times), which keeps the
  kernel free of intermediate arrays: fusion makes single-output kernels.
- Categorical draws: a multinomial row's partial sums (``cumsum``) bound each category's
  interval, and a trial's uniform marks the category whose interval holds it (one-hot,
  summed over the trials); a weighted choice counts the partial sums at most its uniform
  times the total (``searchsorted``, as a sum of comparisons over the candidates). The
  uniforms are an array of their own there, read by every category or candidate.
- New state: the key, and the counter advanced by the blocks read (``ceil(words / 4)``).
- Checks: negative sizes, parameters that do not broadcast to the size, and the
  parameters ``perform`` rejects (binomial's and multinomial's ``n < 0``, ``p`` outside
  [0, 1], negative probabilities, probabilities not summing to 1, an empty population to
  choose from) raise ValueError (``Assert`` nodes).

Uniform, binomial, multinomial and choice give the reference's numbers bit for bit. Normal needs
``log1p``, ``cos`` and ``sin`` in float64, which the native back ends compute with
their own implementations (``codegen.vecmath`` and libm; CUDA's libdevice), not
NumPy's: a float64 normal is within rtol=1e-15, atol=1e-15 of ``perform`` (measured
on 2**21 samples in llvm and c: 3.4% of them differ, by 2 ulp at most), and a float32
normal is rounded from the float64 value, so it is identical unless that value lies
within those ulp of a float32 rounding boundary (none in the same 2**21 samples;
one float32 ulp otherwise).

Permutations and choices without replacement sort keys made of those uniforms
(``tensor.sort.ArgSort``, a native step): a permutation row is the stable argsort of its
uniforms, a choice the first m of the candidates' keys sorted (weighted: the keys
``log1p(-u) / p``, whose log1p is the back end's, so near-equal keys could in principle
order differently from ``perform``). float16 samples are left to ``perform``.
"""

from __future__ import annotations

import numpy as np

import theanine.tensor as T
from theanine.tensor.basic import NotScalarConstantError, get_scalar_constant_value
from theanine.tensor.random import op as rop
from theanine.tensor.random.philox import M0, M1, ROUNDS, W0, W1
from theanine.tensor.shape import MakeVector, Shape, constant_entries
from theanine.tensor.sort import ArgSort
from theanine.tensor.subtensor import Subtensor
from theanine.tensor.variable import TensorConstant

_LOW32 = np.uint64(0xFFFFFFFF)
#: the sample dtypes the expansion produces (others stay on ``perform``)
_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float32", "float64")


def philox_rounds(counter, key, rounds=ROUNDS):
    """Philox4x32 (``philox.philox4x32``) on uint64 tensors holding 32-bit words:
    ``counter`` four of them, ``key`` two (broadcast together) -> four uint64 tensors."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0 = (k0 + W0) & _LOW32
            k1 = (k1 + W1) & _LOW32
        p0 = c0 * M0
        p1 = c2 * M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _LOW32, (p0 >> 32) ^ c3 ^ k1, p0 & _LOW32
    return c0, c1, c2, c3


def _state_words(state, ndim):
    """The six state words as uint64 tensors of shape (1,) * ndim: views of the state, so that
    the arithmetic on them joins the kernel they are broadcast into (a 0-d value feeding a
    bigger kernel would be computed by a kernel of its own)."""
    return [T.cast(T.reshape(state[k:k + 1], (1,) * ndim), "uint64") for k in range(6)]


def _counter(words):
    """The 128-bit counter of the state ``words`` as (low, high) 64-bit halves."""
    return words[2] | (words[3] << 32), words[4] | (words[5] << 32)


def _add_to_counter(low, high, step):
    """(low, high) + step (uint64, broadcast) modulo 2**128, as four 32-bit words (uint64)."""
    new_low = low + step  # wraps modulo 2**64; the carry is whether it did
    new_high = high + T.cast(T.lt(new_low, low), "uint64")
    return new_low & _LOW32, new_low >> 32, new_high & _LOW32, new_high >> 32


def _pick(index, values):
    """``values[index]`` elementwise, for an integer tensor ``index`` and a list ``values``."""
    out = values[-1]
    for k in range(len(values) - 2, -1, -1):
        out = T.switch(T.eq(index, k), values[k], out)
    return out


def stream_words(state, index, count=1):
    """Words ``count * index`` to ``count * index + count - 1`` of the state's word stream, as
    ``count`` uint32 tensors shaped like ``index`` (non-negative integers). ``count`` is 1, 2
    or 4, so that the words lie in one Philox block, computed for each element of ``index``:
    no intermediate array, and one kernel with whatever consumes the words."""
    index = T.cast(index, "uint64")
    words = _state_words(state, index.ndim)
    low, high = _counter(words)
    if count == 4:
        block = philox_rounds(_add_to_counter(low, high, index), words[:2])
        return [T.cast(w, "uint32") for w in block]
    shift = {1: 2, 2: 1}[count]  # log2 of the blocks' number of groups of ``count`` words
    block = philox_rounds(_add_to_counter(low, high, index >> shift), words[:2])
    first = (index & ((1 << shift) - 1)) * count
    return [T.cast(_pick(first + k, block), "uint32") for k in range(count)]


def advanced_state(state, n_blocks):
    """The state after reading ``n_blocks`` blocks: the same key, the counter plus ``n_blocks``.

    One elementwise kernel over a (1, 6) view of the state; its words are views of that
    view, so that they are not the very nodes a draw's words kernel reads (shared nodes
    would become kernels of their own)."""
    row = state.dimshuffle("x", 0)
    words = [T.cast(row[:, k:k + 1], "uint64") for k in range(6)]
    counter = _add_to_counter(*_counter(words), T.cast(n_blocks, "uint64"))
    new = _pick(np.arange(6, dtype="uint8").reshape(1, 6), words[:2] + list(counter))
    return T.cast(new, "uint32")[0]


def _blocks(n_words):
    """The number of Philox blocks that ``n_words`` words take."""
    return (n_words + 3) // 4


def _element_index(n, shape):
    """0, 1, ..., n - 1 (int64) in ``shape`` (a shape vector of n elements), in C order."""
    return T.reshape(T.arange(n, dtype="int64"), shape)


def _words_per_uniform(dtype):
    return 2 if dtype == "float64" else 1


def unit_uniform(words, dtype):
    """The uniform in [0, 1) of ``dtype`` that ``words`` make (``philox.unit_uniform``: two
    words for float64, one for float32)."""
    if dtype == "float64":
        first, second = (T.cast(w, "uint64") for w in words)
        return T.cast((first >> 5) * np.uint64(1 << 26) + (second >> 6), "float64") * 2.0 ** -53
    return T.cast(words[0] >> 8, "float32") * np.float32(2.0 ** -24)


def _uniform(op, size, n, state, low, high):
    dtype, k = op.dtype, _words_per_uniform(op.dtype)
    u = unit_uniform(stream_words(state, _element_index(n, size), k), dtype)
    low, high = T.cast(low, dtype), T.cast(high, dtype)
    return low + (high - low) * u, _blocks(k * n)


def _normal(op, size, n, state, avg, std):
    # element i is the cosine (even i) or the sine (odd i) of pair i // 2; both computed,
    # so that the whole draw stays one elementwise kernel
    dtype, k = op.dtype, _words_per_uniform(op.dtype)
    i = _element_index(n, size)
    words = stream_words(state, i >> 1, 2 * k)
    u0, u1 = (T.cast(unit_uniform(words[j:j + k], dtype), "float64") for j in (0, k))
    r = T.sqrt(-2.0 * T.log1p(-u0))
    t = (2.0 * np.pi) * u1
    z = T.cast(T.switch(T.eq(i & 1, 0), r * T.cos(t), r * T.sin(t)), dtype)
    return T.cast(avg, dtype) + T.cast(std, dtype) * z, _blocks(2 * k * ((n + 1) // 2))


def probability_uniform(word):
    """The float64 uniform ``word * 2**-32`` in [0, 1) of a uint32 word (``philox.unit_uniform32``,
    compared with probabilities)."""
    return T.cast(word, "float64") * 2.0 ** -32


def _checked_trials(trials, dist):
    """``trials``, checked at run time to be >= 0."""
    return T.assert_op(trials, T.ge(trials, 0),
                       message=f"{dist}: the number of trials n must be >= 0")


def _trial_index(trials, n, shape, one_trial):
    """The word index of each trial of each element (C order in ``shape``, n elements): word
    ``t * n + i`` for trial t of element i, in ``shape`` with a leading trials axis unless
    ``one_trial``."""
    if one_trial:
        return _element_index(n, shape)
    return _element_index(trials * n, T.concatenate([T.stack([trials]), shape]))


def _binomial(op, size, n, state, trials, p):
    p = T.cast(p, "float64")
    one_trial = _constant(trials) == 1
    trials = _checked_trials(trials, "binomial")
    p_value = _constant_array(p)
    if p_value is None or not np.all((p_value >= 0) & (p_value <= 1)):
        # every entry of p is used unless the sample is empty (perform checks the broadcast p)
        p_ok = T.or_(T.eq(n, 0), T.all(T.and_(T.ge(p, 0), T.le(p, 1))))
        p = T.assert_op(p, p_ok, message="binomial: p must be in [0, 1]")
    (word,) = stream_words(state, _trial_index(trials, n, size, one_trial), 1)
    success = T.lt(probability_uniform(word), p)
    count = success if one_trial else T.sum(success, axis=0, dtype="int64")
    return T.cast(count, op.dtype), _blocks(trials * n)


#: how far above 1 the probabilities of a multinomial row but the last may sum (samplers)
_SUM_SLACK = 1e-5


def _valid_pvals(value) -> bool:
    """Whether the multinomial probabilities ``value`` pass ``samplers.multinomial``'s checks."""
    if not np.all(value >= 0):
        return False
    return value.shape[-1] < 2 or bool(np.all(np.cumsum(value[..., :-1], axis=-1) <= 1 + _SUM_SLACK))


def _category_bounds(pvals):
    """(lower, upper), shaped like ``pvals``: with ``cdf`` the partial sums of a row, category
    c is picked by a uniform u when ``lower[c] <= u < upper[c]``, ``lower`` being
    (-inf, cdf[0], ..., cdf[k - 2]) and ``upper`` (cdf[0], ..., cdf[k - 2], inf).

    It is the category ``samplers.multinomial`` picks, the number of the ``cdf[j]`` (j < k - 1)
    that are <= u: non-negative terms make the partial sums non-decreasing in floating point
    too, so those are the first ones."""
    k = pvals.shape[-1]
    cdf = T.cumsum(pvals, axis=-1)  # its first k - 1 entries are the cumsum of pvals[..., :-1]
    upper = T.switch(T.eq(T.arange(k, dtype="int64"), k - 1), np.inf, cdf)
    lower = T.concatenate([T.full_like(cdf[..., :1], -np.inf), upper[..., :-1]], axis=-1)
    return lower, upper


def _checked_bounds(pvals, n_rows):
    """``_category_bounds`` of ``pvals`` (float64), checked at run time as perform checks them
    (unless ``pvals`` is a constant that passes): no negative probability, no row whose
    probabilities but the last sum to more than 1 (by a slack), unless there are no rows."""
    value = _constant_array(pvals)
    if value is not None and _valid_pvals(value):
        return _category_bounds(pvals)
    no_rows = T.eq(n_rows, 0)
    pvals = T.assert_op(pvals, T.or_(no_rows, T.all(T.ge(pvals, 0))),
                        message="multinomial: pvals must be non-negative")
    lower, upper = _category_bounds(pvals)
    # the partial sums are non-decreasing: all are below the bound when the last (if any) is
    sums_ok = T.or_(no_rows, T.all(T.le(lower[..., -1:], 1 + _SUM_SLACK)))
    lower = T.assert_op(lower, sums_ok, message="multinomial: the probabilities of a row (all but "
                                                "the last) sum to more than 1")
    return lower, upper


def _multinomial(op, size, n, state, trials, pvals):
    """Counts over the categories of ``n`` rows: trial t of row r reads word ``t * n + r``; its
    uniform picks one category (``_category_bounds``), and a row counts its picks over the
    trials (a leading axis, summed; none for one trial). No word is read without categories."""
    one_trial = _constant(trials) == 1
    trials = _checked_trials(trials, "multinomial")
    lower, upper = _checked_bounds(T.cast(pvals, "float64"), n)
    (word,) = stream_words(state, _trial_index(trials, n, size, one_trial), 1)
    # the view of an added axis ends the uniforms' kernel: an array read by the categories'
    # kernel, rather than the Philox rounds computed again for each category
    u = T.shape_padright(probability_uniform(word))
    picked = T.and_(T.ge(u, lower), T.lt(u, upper))
    count = picked if one_trial else T.sum(picked, axis=0, dtype="int64")
    words = trials * n
    k = pvals.type.shape[-1]
    if k is None:
        words = T.switch(T.eq(pvals.shape[-1], 0), 0, words)
    elif k == 0:
        words = T.constant(np.int64(0))
    return T.cast(count, op.dtype), _blocks(words)


def _valid_choice_p(value, n) -> bool:
    """Whether the choice probabilities ``value`` pass ``samplers.choice``'s checks for n
    candidates (an int, or None where n is not a constant)."""
    return (n is not None and value.shape == (n,) and bool(np.all(value >= 0))
            and abs(value.sum() - 1) <= 1e-5)


def _checked_p(p, n):
    """``p`` (float64), checked at run time as perform checks it (unless it is a constant that
    passes): one probability per candidate, none negative, summing to 1 (by a slack)."""
    value = _constant_array(p)
    if value is not None and _valid_choice_p(value, _constant(n)):
        return p
    p = T.assert_op(p, T.eq(T.shape(p)[0], n),
                    message="choice: p must have one probability per candidate")
    p = T.assert_op(p, T.all(T.ge(p, 0)), message="choice: probabilities p must be non-negative")
    return T.assert_op(p, T.le(abs(T.sum(p) - 1.0), 1e-5),
                       message="choice: probabilities p do not sum to 1")


def _weighted_index(u, p):
    """For each uniform u, the first index whose partial sum of ``p`` exceeds ``u * sum``
    (``searchsorted(cdf, u * cdf[-1], side='right')``: the number of partial sums <= it),
    capped at the last index of non-zero probability (``u * sum`` may round up to the sum)."""
    cdf = T.cumsum(p)
    target = T.shape_padright(u * cdf[-1])
    index = T.sum(T.le(cdf, target), axis=-1, dtype="int64")
    nonzero_positions = T.arange(T.shape(p)[0], dtype="int64") * T.neq(p, 0)
    return T.minimum(index, T.max(nonzero_positions))


def _choice(op, size, m, state, n, p=None):
    """``m`` indices in [0, n) with replacement: element i's float64 uniform (words 2i, 2i + 1)
    times n, truncated, or its weighted index (``_weighted_index``)."""
    n = T.assert_op(n, T.or_(T.gt(n, 0), T.eq(m, 0)),
                    message="choice: cannot choose from an empty population")
    u = unit_uniform(stream_words(state, _element_index(m, size), 2), "float64")
    if p is None:
        index = T.minimum(T.cast(u * T.cast(n, "float64"), "int64"), n - 1)
    else:
        index = _weighted_index(u, _checked_p(T.cast(p, "float64"), n))
    return T.cast(index, op.dtype), _blocks(2 * m)


def _choice_without_replacement(op, size, m, state, n, p=None):
    """``m`` distinct indices in [0, n): candidate j's key is its float64 uniform (words 2j,
    2j + 1), or ``log1p(-u) / p[j]`` (-inf where p[j] is 0) with ``p``; the first m positions
    of the stable ascending sort of the keys (of the negated keys with ``p``)."""
    n = T.assert_op(n, T.or_(T.gt(n, 0), T.eq(m, 0)),
                    message="choice: cannot choose from an empty population")
    u = unit_uniform(stream_words(state, T.arange(n, dtype="int64"), 2), "float64")
    if p is None:
        keys, available = u, n
    else:
        p = _checked_p(T.cast(p, "float64"), n)
        positive = T.gt(p, 0)
        keys = -T.switch(positive, T.log1p(-u) / T.switch(positive, p, 1.0), -np.inf)
        available = T.sum(positive, dtype="int64")
    m = T.assert_op(m, T.le(m, available),
                    message="choice: cannot take more samples without replacement than there are "
                            "candidates (of non-zero probability)")
    order = ArgSort()(keys)[:m]
    return T.cast(T.reshape(order, size, ndim=op.ndim), op.dtype), _blocks(2 * n)


def _permutation(op, size, rows, state, n):
    """One permutation of range(n) per entry of the size: row r's keys are the float64
    uniforms of words 2(r n + j), 2(r n + j) + 1; the row is their stable argsort."""
    n = T.assert_op(n, T.ge(n, 0), message="permutation: n must be >= 0")
    count = rows * n
    shape = T.concatenate([T.cast(size, "int64"), T.stack([T.cast(n, "int64")])])
    u = unit_uniform(stream_words(state, _element_index(count, shape), 2), "float64")
    return T.cast(ArgSort()(u), op.dtype), _blocks(2 * count)


_SAMPLERS = {rop.Uniform: _uniform, rop.Normal: _normal, rop.Binomial: _binomial,
             rop.Multinomial: _multinomial, rop.Choice: _choice, rop.Permutation: _permutation}


def _constant(var):
    try:
        return get_scalar_constant_value(var)
    except NotScalarConstantError:
        return None


def _constant_array(var):
    return var.data if isinstance(var, TensorConstant) else None


def _widening_cast(node) -> bool:
    """Whether ``node`` converts integers to int64 (keeping every value)."""
    return (getattr(getattr(node.op, "scalar_op", None), "ir", "") == "cast"
            and node.outputs[0].dtype == "int64"
            and node.inputs[0].dtype in ("int8", "uint8", "int16", "uint16", "int32", "uint32",
                                         "int64"))


def _nonnegative(var) -> bool:
    """Whether ``var`` (an integer scalar or vector) is known to have no negative entry:
    a constant, a shape, an entry of a shape, or a vector or cast of such."""
    data = _constant_array(var)
    if data is not None:
        return bool(np.all(data >= 0))
    node = var.owner
    if node is None:
        return False
    if isinstance(node.op, Shape):
        return True
    if isinstance(node.op, MakeVector) or _widening_cast(node):
        return all(_nonnegative(v) for v in node.inputs)
    if isinstance(node.op, Subtensor):
        return _nonnegative(node.inputs[0])
    return False


def _checked_size(size, dist):
    """``size``, checked at run time to have no negative entry unless that is known."""
    if _nonnegative(size):
        return size
    return T.assert_op(size, T.all(T.ge(size, 0)), message=f"{dist}: negative dimension in size")


def _checked_shape(sample, size, params, dist, trailing=0):
    """``sample``, checked at run time to have the shape ``size`` (followed by ``trailing``
    dimensions of its own) where a parameter of unknown static shape could have broadcast it
    to a bigger one (``perform`` raises there): along a size entry that is unknown or 1."""
    static = constant_entries(size)
    for p in params:
        dims = p.type.shape[:p.ndim - trailing]
        offset = len(static) - len(dims)
        if any(d != 1 and static[offset + k] in (None, 1) for k, d in enumerate(dims)):
            same = T.all(T.eq(T.shape(sample)[:len(static)], size))
            return T.assert_op(sample, same,
                               message=f"{dist}: a parameter cannot be broadcast to the size")
    return sample


def _expandable(op) -> bool:
    """Whether ``expand_draw`` rebuilds draws of ``op``."""
    return type(op) in _SAMPLERS and op.dtype in _DTYPES


def expand_draw(node):
    """[new state, sample] computing ``node`` with ordinary tensor ops, the same numbers as its
    ``perform``; None for the draws left to ``perform`` (see the module docstring)."""
    op = node.op
    if not _expandable(op):
        return None
    state, size, *params = node.inputs
    size = _checked_size(size, op.dist)
    n = T.prod(size, dtype="int64") if op.ndim > op.extra_dims else T.constant(np.int64(1))
    sampler = _SAMPLERS[type(op)]
    if isinstance(op, rop.Choice) and not op.replace:
        sampler = _choice_without_replacement
    sample, n_blocks = sampler(op, size, n, state, *params)
    # choice's probabilities are per candidate, not broadcast to the size
    broadcast = [] if isinstance(op, rop.Choice) else params
    sample = _checked_shape(sample, size, broadcast, op.dist, trailing=op.extra_dims)
    return [advanced_state(state, n_blocks), sample]
