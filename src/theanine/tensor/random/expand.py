"""A random draw as a graph of ordinary tensor ops, so that native back ends run it.

``expand_draw(node)`` rebuilds a ``Uniform``, ``Normal`` or ``Binomial`` node from
integer and float elementwise ops, an ``arange``, reshapes and views; the
fusion rewrite turns the elementwise chains into kernels. It follows
``philox`` and ``samplers`` step for step:

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
- New state: the key, and the counter advanced by the blocks read (``ceil(words / 4)``).
- Checks: negative sizes, parameters that do not broadcast to the size, and
  binomial's ``n < 0`` or ``p`` outside [0, 1] raise ValueError (``Assert`` nodes).

Uniform and binomial give the reference's numbers bit for bit. Normal needs
``log1p``, ``cos`` and ``sin`` in float64, which the native back ends compute with
their own implementations (``codegen.vecmath`` and libm; CUDA's libdevice), not
NumPy's: a float64 normal is within rtol=1e-15, atol=1e-15 of ``perform`` (measured
on 2**21 samples in llvm and c: 3.4% of them differ, by 2 ulp at most), and a float32
normal is rounded from the float64 value, so it is identical unless that value lies
within those ulp of a float32 rounding boundary (none in the same 2**21 samples;
one float32 ulp otherwise). Other draws (multinomial, choice, permutation, and
float16 samples) are left as they are: they run through ``perform``.
"""

from __future__ import annotations

import numpy as np

import theanine.tensor as T
from theanine.tensor.basic import NotScalarConstantError, get_scalar_constant_value
from theanine.tensor.random import op as rop
from theanine.tensor.random.philox import M0, M1, ROUNDS, W0, W1
from theanine.tensor.shape import MakeVector, Shape, constant_entries
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


def _binomial(op, size, n, state, trials, p):
    p = T.cast(p, "float64")
    one_trial = _constant(trials) == 1
    trials = T.assert_op(trials, T.ge(trials, 0),
                         message="binomial: the number of trials n must be >= 0")
    p_value = _constant_array(p)
    if p_value is None or not np.all((p_value >= 0) & (p_value <= 1)):
        # every entry of p is used unless the sample is empty (perform checks the broadcast p)
        p_ok = T.or_(T.eq(n, 0), T.all(T.and_(T.ge(p, 0), T.le(p, 1))))
        p = T.assert_op(p, p_ok, message="binomial: p must be in [0, 1]")
    if one_trial:
        index = _element_index(n, size)
    else:  # trial t of element i reads word t * n + i
        index = _element_index(trials * n, T.concatenate([T.stack([trials]), size]))
    (word,) = stream_words(state, index, 1)
    success = T.lt(T.cast(word, "float64") * 2.0 ** -32, p)
    count = success if one_trial else T.sum(success, axis=0, dtype="int64")
    return T.cast(count, op.dtype), _blocks(trials * n)


_SAMPLERS = {rop.Uniform: _uniform, rop.Normal: _normal, rop.Binomial: _binomial}


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


def _checked_shape(sample, size, params, dist):
    """``sample``, checked at run time to have the shape ``size`` where a parameter of unknown
    static shape could have broadcast it to a bigger one (``perform`` raises there)."""
    static = constant_entries(size)
    for p in params:
        dims = p.type.shape
        offset = len(static) - len(dims)
        if any(d != 1 and static[offset + k] is None for k, d in enumerate(dims)):
            same = T.all(T.eq(T.shape(sample), size))
            return T.assert_op(sample, same,
                               message=f"{dist}: a parameter cannot be broadcast to the size")
    return sample


def expand_draw(node):
    """[new state, sample] computing ``node`` (a Uniform, Normal or Binomial draw) with
    ordinary tensor ops, the same numbers as its ``perform``; None for other draws."""
    op = node.op
    sampler = _SAMPLERS.get(type(op))
    if sampler is None or op.dtype not in _DTYPES:
        return None
    state, size, *params = node.inputs
    size = _checked_size(size, op.dist)
    n = T.prod(size, dtype="int64") if op.ndim else T.constant(np.int64(1))
    sample, n_blocks = sampler(op, size, n, state, *params)
    sample = _checked_shape(sample, size, params, op.dist)
    return [advanced_state(state, n_blocks), sample]
