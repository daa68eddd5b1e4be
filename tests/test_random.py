"""Random streams: Philox4x32-10 known answers, the documented stream layout, reproducibility
in every mode, default updates, distributions, and errors."""

import numpy as np
import pytest
from scipy import stats

import theanine
import theanine.tensor as T
from theanine import function, shared
from theanine.gradient import NullTypeGradError
from theanine.tensor.random import RandomDraw, RandomStreams, Uniform, philox4x32
from theanine.tensor.random.philox import WordStream, initial_state

# Random123 kat_vectors: rounds, counter (4 words), key (2 words), expected output
KAT = [
    (10, [0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    (10, [0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (10, [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    (7, [0, 0, 0, 0], [0, 0], [0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48]),
    (7, [0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662]),
    (7, [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A]),
]


@pytest.mark.parametrize("rounds, counter, key, expected", KAT)
def test_philox_known_answers(rounds, counter, key, expected):
    out = philox4x32(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32), rounds)
    assert out.dtype == np.uint32
    assert [int(w) for w in out] == expected


def test_philox_is_vectorised_over_counters_and_keys():
    counters = np.array([k[1] for k in KAT[:3]], dtype=np.uint32)
    keys = np.array([k[2] for k in KAT[:3]], dtype=np.uint32)
    np.testing.assert_array_equal(philox4x32(counters, keys), [k[3] for k in KAT[:3]])


#: how far a normal sample of the native back ends may be from perform's: they compute log1p,
#: cos and sin with their own math libraries (see theanine.tensor.random.expand)
NATIVE_NORMAL_TOL = {"float64": dict(rtol=1e-15, atol=1e-15),
                     "float32": dict(rtol=2.5e-7, atol=1e-7)}


def assert_same_draw(got, want, mode, normal=False):
    """``got`` (from ``mode``) equals ``want`` (from mode 'py') bit for bit; a normal sample
    of a native mode within NATIVE_NORMAL_TOL."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if normal and mode != "py":
        np.testing.assert_allclose(got, want, **NATIVE_NORMAL_TOL[str(want.dtype)])
    else:
        np.testing.assert_array_equal(got, want)


def _words_from_blocks(key, first_counter, n_blocks):
    """The word stream computed block by block from 128-bit Python counters."""
    rows = []
    for b in range(n_blocks):
        c = (first_counter + b) % (1 << 128)
        rows.append(philox4x32([(c >> (32 * i)) & 0xFFFFFFFF for i in range(4)], key))
    return np.concatenate(rows)


def _state(key, counter):
    return np.array(list(key) + [(counter >> (32 * i)) & 0xFFFFFFFF for i in range(4)],
                    dtype=np.uint32)


@pytest.mark.parametrize("counter", [0, 5, (1 << 64) - 2, (1 << 128) - 2])
def test_word_stream_reads_consecutive_counters_with_carries(counter):
    key = (0x12345678, 0x9ABCDEF0)
    stream = WordStream(_state(key, counter))
    words = np.concatenate([stream.take(3), stream.take(6), stream.take(1)])
    np.testing.assert_array_equal(words, _words_from_blocks(key, counter, 3)[:10])
    # 10 words read: 3 blocks consumed, the counter advanced by 3 (mod 2**128)
    np.testing.assert_array_equal(stream.new_state(), _state(key, (counter + 3) % (1 << 128)))


def test_initial_states_layout():
    np.testing.assert_array_equal(initial_state(0x0123456789ABCDEF, 7),
                                  [0x89ABCDEF, 0x01234567, 0, 0, 7, 0])
    np.testing.assert_array_equal(initial_state(5, (1 << 32) + 2), [5, 0, 0, 0, 2, 1])


def test_uniform_follows_the_documented_layout(mode):
    seed = 987654321
    srng = RandomStreams(seed)
    a = srng.uniform((2, 3), dtype="float32")
    b = srng.uniform((5,), low=-2.0, high=3.0, dtype="float64")
    f = function([], [a, b], mode=mode)
    key = (seed, 0)
    w0 = _words_from_blocks(key, 0, 2)  # draw 0 starts at counter (0, 0, 0, 0)
    expected_a = ((w0[:6] >> 8).astype(np.float32) * np.float32(2.0 ** -24)).reshape(2, 3)
    w1 = _words_from_blocks(key, 1 << 64, 3).astype(np.uint64)  # draw 1: counter (0, 0, 1, 0)
    u = ((w1[0:10:2] >> 5) * (1 << 26) + (w1[1:10:2] >> 6)).astype(np.float64) * 2.0 ** -53
    got_a, got_b = f()
    assert got_a.dtype == np.float32 and got_b.dtype == np.float64
    np.testing.assert_array_equal(got_a, expected_a)
    np.testing.assert_array_equal(got_b, -2.0 + 5.0 * u)
    # the next call continues each draw's stream where the last one stopped
    next_a, _ = f()
    w0_next = _words_from_blocks(key, 2, 2)
    np.testing.assert_array_equal(next_a, ((w0_next[:6] >> 8).astype(np.float32)
                                           * np.float32(2.0 ** -24)).reshape(2, 3))


def test_normal_follows_the_documented_layout(mode):
    srng = RandomStreams(3)
    z = srng.normal((5,), avg=1.0, std=2.0, dtype="float64")
    w = _words_from_blocks((3, 0), 0, 3).astype(np.uint64)
    u = ((w[0:12:2] >> 5) * (1 << 26) + (w[1:12:2] >> 6)).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2 * np.log1p(-u[0::2]))
    t = 2 * np.pi * u[1::2]
    expected = np.stack([r * np.cos(t), r * np.sin(t)], axis=1).reshape(-1)[:5]
    assert_same_draw(function([], z, mode=mode)(), 1.0 + 2.0 * expected, mode, normal=True)


def _all_draws(srng, x):
    return [
        srng.uniform(x.shape, low=-1.0, high=2.0),
        srng.uniform((3,), dtype="float32"),
        srng.normal((2, 5), avg=3.0, std=0.5),
        srng.normal((7,), dtype="float32"),
        srng.binomial(x.shape, p=0.3),
        srng.binomial((4,), n=6, p=0.5, dtype="float32"),
        srng.multinomial(n=10, pvals=[[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]),
        srng.choice((6,), a=10),
        srng.choice((4,), a=10, replace=False, p=np.full(10, 0.1)),
        srng.permutation(8, size=(2,)),
    ]


def test_same_seed_same_numbers_in_every_mode(mode):
    x = T.dmatrix("x")
    value = np.zeros((3, 4))
    reference = function([x], _all_draws(RandomStreams(2024), x), mode="py")
    f = function([x], _all_draws(RandomStreams(2024), x), mode=mode)
    for _ in range(2):
        for k, (got, want) in enumerate(zip(f(value), reference(value))):
            assert_same_draw(got, want, mode, normal=k in (2, 3))


def test_draws_without_a_native_expansion_run_through_perform():
    srng = RandomStreams(1)
    u = srng.uniform((4,))
    f = function([], [u * 2 + 1, srng.permutation(5), srng.uniform((3,), dtype="float16")], mode="llvm")
    dists = [node.op.dist for node in f.graph.toposort() if isinstance(node.op, RandomDraw)]
    assert dists == ["uniform"]  # float16; the others expand (tests/test_random_native.py)


def test_calls_give_new_numbers_through_default_updates(mode):
    srng = RandomStreams(11)
    u = srng.uniform((4,), dtype="float32")  # 4 words: one block per call
    state, new_state = srng.state_updates[0]
    assert state.default_update is new_state
    f = function([], u, mode=mode)
    first, second = f(), f()
    assert not np.array_equal(first, second)
    assert int(state.get_value()[0]) == 11 and int(state.get_value()[2]) == 2  # 2 calls, 1 block each
    frozen = function([], u, mode=mode, no_default_updates=True)
    np.testing.assert_array_equal(frozen(), frozen())


def test_seed_restarts_every_draw_and_streams_are_independent(mode):
    srng = RandomStreams(5)
    u, v = srng.uniform((6,)), srng.uniform((6,))
    f = function([], [u, v], mode=mode)
    a1, b1 = f()
    assert not np.array_equal(a1, b1)  # separate counter ranges
    f()
    srng.seed(5)
    a2, b2 = f()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    srng.seed(6)
    assert not np.array_equal(f()[0], a1)
    other = RandomStreams(5)
    np.testing.assert_array_equal(function([], other.uniform((6,)), mode=mode)(), a1)


def test_one_node_gives_the_sample_and_the_update():
    srng = RandomStreams(0)
    u = srng.uniform((3,))
    f = function([], [u, u + 1], mode="py")
    a, b = f()
    np.testing.assert_array_equal(a + 1, b)
    draws = [n for n in f.graph.toposort() if hasattr(n.op, "dist")]
    assert len(draws) == 1


def test_theano_module_names():
    from theanine.sandbox.rng_mrg import MRG_RandomStreams
    from theanine.tensor.shared_randomstreams import RandomStreams as SharedRandomStreams
    assert MRG_RandomStreams is RandomStreams and SharedRandomStreams is RandomStreams
    assert MRG_RandomStreams(1).uniform((2,)).type.shape == (2,)


# --- distributions ----------------------------------------------------------------------


def _within(sample_stat, expected, se, k=5.0):
    assert abs(sample_stat - expected) < k * se, (sample_stat, expected, se)


def _check_moments(x, mean, var):
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    _within(x.mean(), mean, np.sqrt(var / n))
    centred = (x - mean) ** 2
    _within(centred.mean(), var, centred.std() / np.sqrt(n))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_distribution(dtype):
    srng = RandomStreams(123)
    x = function([], srng.uniform((200_000,), low=-1.0, high=3.0, dtype=dtype), mode="py")()
    assert x.dtype == dtype and x.min() >= -1.0 and x.max() < 3.0
    _check_moments(x, 1.0, 16.0 / 12)
    counts, _ = np.histogram(x, bins=20, range=(-1, 3))
    assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_distribution(dtype):
    srng = RandomStreams(321)
    x = function([], srng.normal((200_001,), avg=2.0, std=3.0, dtype=dtype), mode="py")()
    assert x.dtype == dtype
    _check_moments(x, 2.0, 9.0)
    assert stats.kstest((x - 2.0) / 3.0, "norm").pvalue > 1e-4


def test_binomial_frequencies_and_symbolic_p():
    srng = RandomStreams(77)
    p = T.dvector("p")
    mask = srng.binomial((50_000, 3), p=p, dtype="float32")
    counts = srng.binomial((100_000,), n=5, p=0.3)
    m, c = function([p], [mask, counts], mode="py")(np.array([0.1, 0.5, 0.9]))
    assert m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
    for j, pj in enumerate([0.1, 0.5, 0.9]):
        _within(m[:, j].mean(), pj, np.sqrt(pj * (1 - pj) / m.shape[0]))
    assert c.dtype == np.int64 and c.min() >= 0 and c.max() <= 5
    _check_moments(c, 1.5, 5 * 0.3 * 0.7)
    freq = np.bincount(c, minlength=6)
    assert stats.chisquare(freq, 100_000 * stats.binom.pmf(np.arange(6), 5, 0.3)).pvalue > 1e-4


def test_binomial_p_zero_and_one_and_dropout():
    srng = RandomStreams(8)
    x = T.dmatrix("x")
    keep = T.dscalar("keep")
    mask = srng.binomial(x.shape, p=keep, dtype=x.dtype)
    dropped = x * mask / keep
    f = function([x, keep], dropped, mode="py")
    value = np.arange(1.0, 7.0).reshape(2, 3)
    np.testing.assert_array_equal(f(value, 1.0), value)
    g = theanine.grad(dropped.sum(), x)
    gf = function([x, keep], [mask, g], mode="py", no_default_updates=True)
    mask_value, grad_value = gf(value, 0.5)
    np.testing.assert_array_equal(grad_value, mask_value / 0.5)
    assert function([x], srng.binomial(x.shape, p=0.0), mode="py")(value).sum() == 0


def test_multinomial_counts():
    srng = RandomStreams(99)
    pvals = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    draws = srng.multinomial(size=(20_000, 2), n=7, pvals=pvals)
    out = function([], draws, mode="py")()
    assert out.shape == (20_000, 2, 3) and out.dtype == np.int64
    np.testing.assert_array_equal(out.sum(axis=-1), 7)
    assert (out[:, 1, 2] == 0).all()  # zero probability: never picked
    for row in range(2):
        for k in range(3):
            p = pvals[row, k]
            if 0 < p < 1:
                _within(out[:, row, k].mean(), 7 * p, np.sqrt(7 * p * (1 - p) / out.shape[0]))
    single = function([], srng.multinomial(pvals=pvals), mode="py")()
    assert single.shape == (2, 3) and (single.sum(axis=1) == 1).all()


def test_choice_with_and_without_replacement():
    srng = RandomStreams(4)
    a = T.dvector("a")
    p = np.array([0.1, 0.0, 0.6, 0.3])
    uniform = srng.choice((80_000,), a=5)
    weighted = srng.choice((80_000,), a=4, p=p)
    distinct = srng.choice((3, 2), a=6, replace=False)
    values = srng.choice((3,), a=a, replace=False, p=[0.5, 0.25, 0.25, 0.0])
    f = function([a], [uniform, weighted, distinct, values], mode="py")
    u, w, d, v = f(np.array([10.0, 20.0, 30.0, 40.0]))
    assert stats.chisquare(np.bincount(u, minlength=5)).pvalue > 1e-4
    freq = np.bincount(w, minlength=4)
    assert freq[1] == 0
    assert stats.chisquare(freq[p > 0], 80_000 * p[p > 0]).pvalue > 1e-4
    assert d.shape == (3, 2) and len(set(d.ravel())) == 6 and d.min() >= 0 and d.max() < 6
    assert v.dtype == np.float64 and sorted(v) == [10.0, 20.0, 30.0]  # 40 has probability 0


def test_choice_without_replacement_follows_sequential_weights():
    """Weighted sampling without replacement: P(i first, then j) = p_i p_j / (1 - p_i)."""
    srng = RandomStreams(12)
    p = np.array([0.2, 0.3, 0.5])
    f = function([], srng.choice((2,), a=3, replace=False, p=p), mode="py")
    draws = np.array([f() for _ in range(3000)])
    assert (draws[:, 0] != draws[:, 1]).all()
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    observed = [np.sum((draws[:, 0] == i) & (draws[:, 1] == j)) for i, j in pairs]
    expected = [3000 * p[i] * p[j] / (1 - p[i]) for i, j in pairs]
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_permutation_is_a_permutation():
    srng = RandomStreams(17)
    one = srng.permutation(10)
    many = srng.permutation(n=5, size=(4_000,))
    a, b = function([], [one, many], mode="py")()
    assert a.shape == (10,) and sorted(a) == list(range(10))
    assert b.shape == (4_000, 5)
    np.testing.assert_array_equal(np.sort(b, axis=1), np.tile(np.arange(5), (4_000, 1)))
    # every position is uniform over the values
    for pos in range(5):
        assert stats.chisquare(np.bincount(b[:, pos], minlength=5)).pvalue > 1e-4


# --- sizes, dtypes, errors --------------------------------------------------------------


def test_symbolic_sizes_and_static_shapes():
    srng = RandomStreams(2)
    x = T.dmatrix("x")
    n = T.lscalar("n")
    assert srng.uniform((2, 3)).type.shape == (2, 3)
    assert srng.uniform(x.shape).type.shape == (None, None)
    assert srng.normal((n, 4)).type.shape == (None, 4)
    assert srng.multinomial(size=(5,), pvals=np.full(3, 1 / 3)).type.shape == (5, 3)
    assert srng.permutation(6).type.shape == (6,)
    f = function([x, n], [srng.uniform(x.shape), srng.normal((n, 4)), srng.permutation(n)], mode="py")
    a, b, c = f(np.zeros((2, 7)), 3)
    assert a.shape == (2, 7) and b.shape == (3, 4) and sorted(c) == [0, 1, 2]


def test_size_none_takes_the_shape_of_the_parameters():
    srng = RandomStreams(2)
    avg = T.dmatrix("avg")
    z = srng.normal(avg=avg, std=T.constant(np.full(3, 1e-9)))
    out = function([avg], z, mode="py")(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(out, np.arange(6.0).reshape(2, 3), atol=1e-6)
    assert function([], srng.uniform(), mode="py")().shape == ()


def test_default_dtypes(mode):
    srng = RandomStreams(1)
    with theanine.config.change(floatX="float32"):
        assert srng.uniform((2,)).dtype == "float32"
        assert srng.normal((2,)).dtype == "float32"
        assert srng.uniform((2,), low=T.dscalar()).dtype == "float64"
    assert srng.binomial((2,)).dtype == "int64"
    assert srng.choice((2,), a=3).dtype == "int64"
    assert srng.permutation(3, dtype="int32").dtype == "int32"
    out = function([], srng.uniform((3,), dtype="float32"), mode=mode)()
    assert out.dtype == np.float32


def test_errors_are_clear():
    srng = RandomStreams(0)
    with pytest.raises(TypeError, match="seed must be an int"):
        RandomStreams(1.5)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        RandomStreams(-1)
    with pytest.raises(TypeError, match="uniform: dtype must be a float dtype"):
        srng.uniform((2,), dtype="int32")
    with pytest.raises(TypeError, match="binomial: n must be an integer, got 0.5; pass probabilities as p="):
        srng.binomial((2,), 0.5)
    with pytest.raises(ValueError, match=r"normal: avg of shape \(3,\) cannot be broadcast to the size \(2, 4\)"):
        srng.normal((2, 4), avg=T.constant(np.zeros(3)))
    with pytest.raises(ValueError, match="ndim=3 does not match size, which has 2 entries"):
        srng.uniform((2, 3), ndim=3)
    with pytest.raises(TypeError, match="multinomial: give pvals"):
        srng.multinomial((2,))
    p = T.dvector("p")
    f = function([p], srng.binomial((3,), p=p), mode="py")
    with pytest.raises(ValueError, match=r"binomial: p of shape \(2,\) cannot be broadcast to the size \(3,\)"):
        f(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"binomial: p must be in \[0, 1\]"):
        f(np.array([0.5, 1.5, 0.2]))
    g = function([], srng.choice((5,), a=3, replace=False), mode="py")
    with pytest.raises(ValueError, match="cannot take 5 samples without replacement from 3"):
        g()


def test_gradient_through_a_sample_is_undefined_in_its_parameters():
    srng = RandomStreams(0)
    mu = T.dscalar("mu")
    z = srng.normal((3,), avg=mu)
    with pytest.raises(NullTypeGradError, match="reparameterised"):
        theanine.grad(z.sum(), mu)
    eps = srng.normal((3,))
    g = theanine.grad((mu + 2.0 * eps).sum(), mu)  # the reparameterised form
    assert function([mu], g, mode="py")(0.5) == 3.0


def test_draw_inside_ifelse_advances_its_state_on_every_call(mode):
    from theanine.ifelse import ifelse
    srng = RandomStreams(9)
    c = T.lscalar("c")
    u = srng.uniform((2,), dtype="float64")  # 4 words: one block per call
    f = function([c], ifelse(c, u, T.zeros((2,), dtype="float64")), mode=mode)
    state = srng.state_updates[0][0]
    first = f(1)
    np.testing.assert_array_equal(f(0), [0.0, 0.0])
    assert int(state.get_value()[2]) == 2
    assert not np.array_equal(f(1), first)


def test_shared_state_is_a_uint32_vector():
    srng = RandomStreams(3)
    srng.uniform((2,))
    state = srng.state_updates[0][0]
    assert isinstance(state, theanine.SharedVariable)
    assert state.type.dtype == "uint32" and state.type.shape == (6,)
    assert srng.updates() == srng.state_updates
    with pytest.raises(TypeError, match="lose precision"):
        state.set_value(np.zeros(6))  # float64 values are not states
    with pytest.raises(TypeError, match="random state must be a uint32 vector of 6"):
        Uniform("float64", 1).make_node(shared(np.zeros(6)), [2], 0.0, 1.0)


def test_infer_shape_of_the_draws():
    srng = RandomStreams(0)
    n = T.lscalar("n")
    pvals = T.dmatrix("pvals")
    draws = [srng.uniform((n, 3)), srng.binomial((2, n)), srng.multinomial(pvals=pvals),
             srng.choice((n,), a=5), srng.permutation(n, size=(2,))]
    shapes = []
    for d in draws:
        node = d.owner
        in_shapes = [tuple(T.shape_i(v, a) for a in range(v.ndim)) for v in node.inputs]
        state_shape, sample_shape = node.op.infer_shape(None, node, in_shapes)
        assert len(state_shape) == 1
        shapes.append(T.stack([T.cast(s, "int64") for s in sample_shape]))
    f = function([n, pvals], draws + shapes, mode="py")
    out = f(4, np.full((3, 2), 0.5))
    for sample, shape in zip(out[:5], out[5:]):
        assert sample.shape == tuple(shape)
