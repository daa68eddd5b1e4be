"""Random draws in the native back ends.

The ``native`` rewriting phase expands uniform, normal, binomial, multinomial, choice and
permutation draws into ordinary tensor ops (theanine.tensor.random.expand), so a
function with draws runs as one native entry and gives mode 'py''s numbers call after call:
bit for bit, except normal samples,
which are within test_random.NATIVE_NORMAL_TOL (the back ends' log1p, cos and sin are
not NumPy's). The random states advance exactly as ``perform`` advances them.
"""

import numpy as np
import pytest
from scipy import stats

import theanine
import theanine.tensor as T
from theanine.codegen import nvcc
from theanine.compile.cuda_program import ENTRY_MARKER
from theanine.tensor.random import RandomDraw, RandomStreams
from theanine.tensor.random.expand import philox_rounds

from test_cuda_mode import device  # noqa: F401  (a fixture: the emulated device, or a GPU)
from test_random import KAT, assert_same_draw

NATIVE = ["llvm", "c"]
#: static sizes: several elements, an odd count (normal drops a sine), size 1, empty, 0-d
SIZES = [(7,), (2, 3), (1,), (1, 1), (0,), (3, 0), ()]
KINDS = ["uniform", "normal", "binomial"]


def _draw(srng, kind, size, dtype):
    if kind == "uniform":
        return srng.uniform(size, low=-1.5, high=2.0, dtype=dtype)
    if kind == "normal":
        return srng.normal(size, avg=0.5, std=3.0, dtype=dtype)
    return srng.binomial(size, p=0.3, dtype=dtype)


def _build(mode, kind, dtype, seed=2025):
    """A function of n drawing ``kind`` in every size of SIZES and in the symbolic (n, 2)."""
    srng = RandomStreams(seed)
    n = T.lscalar("n")
    draws = [_draw(srng, kind, size, dtype) for size in SIZES + [(n, 2)]]
    f = theanine.function([n], draws, mode=mode)
    return f, [state for state, _ in srng.state_updates]


def _check_native(f):
    assert f.entry is not None, f.why_no_entry
    assert f.fallbacks == []
    assert not any(isinstance(node.op, RandomDraw) for node in f.graph.toposort())


def _same_calls(f, ref, states, ref_states, mode, args_list, normal=()):
    """Each call of ``f`` and ``ref`` gives the same draws and leaves the same states;
    ``normal``: the positions of normal samples among the outputs (True: all of them)."""
    for args in args_list:
        for k, (got, want) in enumerate(zip(f(*args), ref(*args))):
            assert_same_draw(got, want, mode, normal is True or k in normal)
        for state, ref_state in zip(states, ref_states):
            np.testing.assert_array_equal(state.get_value(), ref_state.get_value())


@pytest.mark.parametrize("rounds", [10, 7])
@pytest.mark.parametrize("mode", ["py"] + NATIVE)
def test_symbolic_philox_gives_the_known_answers(mode, rounds):
    counter, key = T.matrix(dtype="uint64"), T.matrix(dtype="uint64")
    block = philox_rounds([counter[:, i] for i in range(4)], [key[:, 0], key[:, 1]], rounds)
    f = theanine.function([counter, key], list(block), mode=mode)
    cases = [case for case in KAT if case[0] == rounds]
    counters = np.array([c for _, c, _, _ in cases], "uint64")
    got = f(counters, np.array([k for _, _, k, _ in cases], "uint64"))
    np.testing.assert_array_equal(np.stack(got, axis=1), [want for *_, want in cases])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", NATIVE)
def test_draws_match_py_call_after_call(mode, kind, dtype):
    f, states = _build(mode, kind, dtype)
    ref, ref_states = _build("py", kind, dtype)
    _check_native(f)
    # n = 3, then 1, then 0: every call reads new words and advances every state
    normal = True if kind == "normal" else ()
    _same_calls(f, ref, states, ref_states, mode, [(3,), (1,), (0,)], normal)


@pytest.mark.parametrize("mode", NATIVE)
def test_parameters_broadcast_and_trials(mode):
    def build(mode):
        srng = RandomStreams(77)
        low, avg = T.dvector("low"), T.fmatrix("avg")
        p, k = T.dvector("p"), T.lscalar("k")
        draws = [srng.uniform((3, 4), low=low, high=low + 2.0),
                 srng.uniform((5,), low=T.cast(low[0], "float32"), dtype="float32"),
                 srng.normal((2, 3), avg=avg, std=2.0, dtype="float32"),
                 srng.normal(avg=T.cast(avg, "float64")),  # size None: the parameter's shape
                 srng.binomial((5, 3), p=p),
                 srng.binomial((2, 3), n=4, p=p, dtype="int8"),
                 srng.binomial((3,), n=k, p=0.6, dtype="float64")]
        f = theanine.function([low, avg, p, k], draws, mode=mode)
        return f, [state for state, _ in srng.state_updates]

    f, states = build(mode)
    ref, ref_states = build("py")
    _check_native(f)
    args = [(np.arange(4.0), np.ones((2, 3), "float32"), np.array([0.0, 0.5, 1.0]), 3),
            (np.arange(4.0), np.ones((1, 1), "float32"), np.array([0.2, 0.9, 0.4]), 0)]
    _same_calls(f, ref, states, ref_states, mode, args, normal=(2, 3))


@pytest.mark.parametrize("mode", NATIVE)
def test_dropout_has_a_native_entry_and_matches_py(mode, rng):
    def build(mode):
        srng = RandomStreams(1234)
        x = T.fmatrix("x")
        keep = 0.8
        mask = srng.binomial(x.shape, p=keep, dtype=x.dtype)
        return theanine.function([x], x * mask / keep, mode=mode)

    f, ref = build(mode), build("py")
    _check_native(f)
    for shape in [(16, 33), (16, 33), (1, 5), (0, 4)]:
        x = rng.standard_normal(shape).astype("float32")
        got, want = f(x), ref(x)
        np.testing.assert_array_equal(got, want)
        if shape == (16, 33):
            assert 0.1 < np.mean(got == 0) < 0.3  # about 1 - keep of the inputs are dropped


@pytest.mark.parametrize("mode", NATIVE)
def test_counters_carry_into_the_high_words(mode):
    """States whose 64-bit and 128-bit counter halves overflow during the draw."""
    def build(mode):
        srng = RandomStreams(1)
        draws = [srng.uniform((9,), dtype="float32"), srng.uniform((5,)), srng.normal((3,)),
                 srng.binomial((6,), n=2, p=0.5),
                 srng.multinomial(size=(7,), n=3, pvals=[0.25, 0.5, 0.25]),
                 srng.choice((5,), a=4, p=[0.1, 0.2, 0.3, 0.4])]
        ends = [[0xFFFFFFFF] * 4, [0xFFFFFFFE, 0xFFFFFFFF, 3, 0], [0xFFFFFFFF, 0xFFFFFFFF, 7, 7],
                [0xFFFFFFFD, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF],
                [0xFFFFFFFB, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], [0xFFFFFFFF, 0xFFFFFFFF, 0, 1]]
        for (state, _), counter in zip(srng.state_updates, ends):
            state.set_value(np.array([0x12345678, 0x9ABCDEF0] + counter, "uint32"))
        return theanine.function([], draws, mode=mode), [s for s, _ in srng.state_updates]

    (f, states), (ref, ref_states) = build(mode), build("py")
    _check_native(f)
    _same_calls(f, ref, states, ref_states, mode, [(), ()], normal=(2,))


@pytest.mark.parametrize("mode", NATIVE)
def test_invalid_draws_raise_as_in_py(mode):
    srng = RandomStreams(0)
    size, p, k = T.tensor(dtype="int64", shape=(1,)), T.dvector("p"), T.lscalar("k")
    low = T.dvector("low")
    f = theanine.function([size, p, k, low], [srng.binomial(size, n=k, p=p),
                                              srng.uniform(size, low=low)], mode=mode)
    _check_native(f)
    ok = (np.array([3]), np.full(3, 0.5), 2, np.zeros(3))
    assert [a.shape for a in f(*ok)] == [(3,), (3,)]
    cases = [((np.array([-1]),) + ok[1:], "negative dimension in size"),
             (ok[:1] + (np.array([0.5, 1.5, 0.5]),) + ok[2:], r"p must be in \[0, 1\]"),
             (ok[:2] + (-1,) + ok[3:], "number of trials n must be >= 0"),
             (ok[:3] + (np.zeros(2),), "cannot be broadcast"),
             ((np.array([1]), np.full(1, 0.5), 2, np.zeros(3)), "cannot be broadcast")]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            f(*args)
    # an empty draw reads no probability, as in perform
    assert f(np.array([0]), np.array([]), 2, np.zeros(0))[0].shape == (0,)


def test_rewrite_is_logged_and_py_keeps_perform():
    srng = RandomStreams(3)
    u = srng.uniform((4,))
    native = theanine.function([], u, mode="llvm")
    assert any(r.rewrite == "expand_random_draw" for r in native.rewrite_log)
    reference = theanine.function([], u, mode="py")
    assert [type(n.op).__name__ for n in reference.graph.toposort()] == ["Uniform"]


@pytest.mark.parametrize("mode", NATIVE)
def test_float16_draws_stay_on_perform(mode):
    def build(mode):
        srng = RandomStreams(8)
        draws = [srng.uniform((3,), dtype="float16"), srng.multinomial(pvals=[[0.5, 0.5]], dtype="float16")]
        return theanine.function([], draws, mode=mode)

    f, ref = build(mode), build("py")
    left = {n.op.dist for n in f.graph.toposort() if isinstance(n.op, RandomDraw)}
    assert left == {"uniform", "multinomial"}
    for _ in range(2):
        for got, want in zip(f(), ref()):
            assert_same_draw(got, want, mode)


@pytest.mark.parametrize("mode", NATIVE)
def test_permutations_and_choices_without_replacement_are_native(mode):
    """Sorts of keys (tensor.sort.ArgSort, a native step): the same numbers as perform,
    call after call, and the same states."""
    def build(mode):
        srng = RandomStreams(8)
        n, m = T.lscalar("n"), T.lscalar("m")
        draws = [srng.choice((3,), a=6, replace=False), srng.permutation(4),
                 srng.permutation(size=(2, 3), n=n, dtype="int32"),
                 srng.choice((m,), a=n, replace=False),
                 srng.choice((2, 2), a=5, replace=False, p=[0.1, 0.0, 0.3, 0.4, 0.2]),
                 srng.choice((m,), a=n, replace=False, p=T.ones((n,)) / T.cast(n, "float64"))]
        f = theanine.function([n, m], draws, mode=mode)
        return f, [state for state, _ in srng.state_updates]

    (f, states), (ref, ref_states) = build(mode), build("py")
    _check_native(f)
    assert f._native.host_nodes == []
    _same_calls(f, ref, states, ref_states, mode, [(7, 3), (7, 7), (1, 1), (9, 0)])
    perms = f(50, 50)
    assert sorted(perms[2].reshape(-1, 50)[0].tolist()) == list(range(50))
    assert sorted(perms[3].tolist()) == list(range(50))


@pytest.mark.parametrize("mode", NATIVE)
def test_invalid_permutations_and_choices_raise_as_in_py(mode):
    srng = RandomStreams(3)
    n, m = T.lscalar("n"), T.lscalar("m")
    f = theanine.function([n, m], [srng.permutation(n), srng.choice((m,), a=n, replace=False),
                                   srng.choice((m,), a=3, replace=False, p=[0.5, 0.0, 0.5])], mode=mode)
    _check_native(f)
    assert [len(x) for x in f(3, 2)] == [3, 2, 2]
    for args, message in [((-1, 0), "n must be >= 0"), ((3, 4), "without replacement"),
                          ((4, 3), "without replacement"), ((0, 1), "empty population")]:
        with pytest.raises(ValueError, match=message):
            f(*args)


# --- multinomial and choice ----------------------------------------------------------------


def _categorical_draws(srng, pvals, pvals32, trials, weights, values):
    """Multinomial and choice draws with awkward shapes: symbolic and constant probabilities,
    one and several trials, size-1 rows, a single category, zero probabilities, empty sizes."""
    return [
        srng.multinomial(pvals=pvals),
        srng.multinomial(pvals=pvals, n=3, dtype="int8"),
        srng.multinomial(pvals=pvals, n=trials),
        srng.multinomial(pvals=pvals32, dtype="float64"),
        srng.multinomial(size=(2, 3), pvals=[0.0, 0.25, 0.0, 0.75]),
        srng.multinomial(size=(2, 3), n=2, pvals=[[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]),
        srng.multinomial(size=(4,), n=2, pvals=[[0.5, 0.5, 0.0]], dtype="bool"),
        srng.multinomial(size=(), n=5, pvals=[0.2, 0.3, 0.5]),
        srng.multinomial(size=(3,), pvals=[1.0]),
        srng.multinomial(size=(0,), n=2, pvals=[0.5, 0.5]),
        srng.choice((7,), a=5),
        srng.choice((2, 3), a=trials + 1, dtype="int32"),
        srng.choice((), a=3),
        srng.choice((4,), a=1),
        srng.choice((0,), a=4),
        srng.choice((9,), a=5, p=[0.0, 0.3, 0.0, 0.7, 0.0]),
        srng.choice((3, 2), a=4, p=weights, dtype="float64"),
        srng.choice((5,), a=values, p=weights),
        srng.choice((6,), a=values),
    ]


def _build_categorical(mode, seed=31):
    srng = RandomStreams(seed)
    pvals, pvals32 = T.dmatrix("pvals"), T.fmatrix("pvals32")
    trials, weights, values = T.lscalar("trials"), T.dvector("weights"), T.dvector("values")
    inputs = [pvals, pvals32, trials, weights, values]
    f = theanine.function(inputs, _categorical_draws(srng, *inputs), mode=mode)
    return f, [state for state, _ in srng.state_updates]


def _categorical_args(rng):
    """Arguments for _build_categorical: random rows, rows with zeros, a single category,
    no rows, no categories; 0 to 4 trials; weights with zeros."""
    def rows(r, k):
        p = rng.random((r, k))
        p[rng.random((r, k)) < 0.3] = 0.0
        p[:, -1] += 1e-3  # no all-zero row
        return p / p.sum(axis=1, keepdims=True)

    weights = np.array([0.0, 0.5, 0.0, 0.5])
    values = np.array([10.0, 20.0, 30.0, 40.0])
    return [(rows(6, 5), rows(4, 3).astype("float32"), 4, np.array([0.1, 0.2, 0.3, 0.4]), values),
            (rows(1, 1), rows(1, 2).astype("float32"), 0, weights, values),
            (rows(50, 2), rows(3, 1).astype("float32"), 1, weights, values),
            (np.zeros((0, 3)), np.zeros((2, 0), "float32"), 2, weights, values),
            (rows(3, 7), rows(5, 4).astype("float32"), 3, np.array([0.0, 0.0, 0.0, 1.0]), values)]


@pytest.mark.parametrize("mode", NATIVE)
def test_multinomial_and_choice_match_py_call_after_call(mode, rng):
    f, states = _build_categorical(mode)
    ref, ref_states = _build_categorical("py")
    _check_native(f)
    _same_calls(f, ref, states, ref_states, mode, _categorical_args(rng))


@pytest.mark.parametrize("mode", ["py"] + NATIVE)
def test_categorical_draws_give_new_numbers_each_call(mode):
    srng = RandomStreams(4)
    pvals = T.dmatrix("pvals")
    draws = [srng.multinomial(pvals=pvals), srng.multinomial(size=(20,), n=3, pvals=[0.5, 0.5]),
             srng.choice((20,), a=10), srng.choice((20,), a=3, p=[0.2, 0.3, 0.5])]
    f = theanine.function([pvals], draws, mode=mode)
    value = np.full((20, 4), 0.25)
    first, second = f(value), f(value)
    for a, b in zip(first, second):
        assert not np.array_equal(a, b)
    # blocks after two calls: 20 rows of one word (5 a call), 3 trials of 20 rows (15),
    # 20 indices of two words (10)
    assert [int(s.get_value()[2]) for s, _ in srng.state_updates] == [10, 30, 20, 20]


def test_multinomial_without_categories_reads_no_words():
    srng = RandomStreams(4)
    pvals = T.dmatrix("pvals")
    f = theanine.function([pvals], srng.multinomial(pvals=pvals, n=2), mode="py")
    assert f(np.zeros((3, 0))).shape == (3, 0)
    np.testing.assert_array_equal(srng.state_updates[0][0].get_value()[2:], 0)


@pytest.mark.parametrize("mode", NATIVE)
def test_invalid_categorical_draws_raise_as_in_py(mode):
    def build(mode):
        srng = RandomStreams(0)
        pvals, trials = T.dmatrix("pvals"), T.lscalar("trials")
        p, n, m = T.dvector("p"), T.lscalar("n"), T.lscalar("m")
        draws = [srng.multinomial(pvals=pvals, n=trials), srng.multinomial(size=(1,), pvals=pvals),
                 srng.multinomial(size=(2,), pvals=pvals),
                 srng.choice((m,), a=n), srng.choice((m,), a=n, p=p)]
        return theanine.function([pvals, trials, p, n, m], draws, mode=mode)

    f, ref = build(mode), build("py")
    _check_native(f)
    ok = (np.array([[0.25, 0.75]]), 2, np.full(3, 1 / 3), 3, 4)
    for got, want in zip(f(*ok), ref(*ok)):
        np.testing.assert_array_equal(got, want)
    cases = [((np.array([[0.5, -0.1]]),) + ok[1:], "pvals must be non-negative"),
             ((np.array([[np.nan, 0.5]]),) + ok[1:], "pvals must be non-negative"),
             ((np.array([[0.7, 0.4, 0.0]]),) + ok[1:],
              r"probabilities of a row \(all but the last\) sum to more than 1"),
             (ok[:1] + (-1,) + ok[2:], "number of trials n must be >= 0"),
             ((np.full((2, 2), 0.5),) + ok[1:], "cannot be broadcast"),  # to the size (1,)
             ((np.full((3, 2), 0.5),) + ok[1:], "cannot be broadcast"),  # to (1,) and (2,)
             (ok[:3] + (0, 4), "cannot choose from an empty population"),
             (ok[:2] + (np.full(4, 0.25),) + ok[3:], "p must have one probability per candidate"),
             (ok[:2] + (np.array([0.5, -0.5, 1.0]),) + ok[3:], "p must be non-negative"),
             (ok[:2] + (np.array([0.5, 0.2, 0.2]),) + ok[3:], "p do not sum to 1")]
    for args, message in cases:
        for g in (ref, f):
            with pytest.raises(ValueError, match=message):
                g(*args)


@pytest.mark.parametrize("mode", NATIVE)
def test_empty_categorical_draws_check_what_perform_checks(mode):
    """No rows read no probabilities, and no samples need no population, as in perform; the
    probabilities of a choice are checked all the same."""
    def build(mode):
        srng = RandomStreams(0)
        pvals, p, n = T.dvector("pvals"), T.dvector("p"), T.lscalar("n")
        draws = [srng.multinomial(size=(0, 2), pvals=pvals), srng.choice((0,), a=n),
                 srng.choice((0,), a=3, p=p)]
        return theanine.function([pvals, p, n], draws, mode=mode)

    f, ref = build(mode), build("py")
    _check_native(f)
    args = (np.array([-1.0, 2.0]), np.full(3, 1 / 3), 0)
    for got, want in zip(f(*args), ref(*args)):
        assert got.shape == want.shape and got.shape[0] == 0
    for g in (ref, f):
        with pytest.raises(ValueError, match="p must have one probability per candidate"):
            g(args[0], np.array([0.5, 0.5]), 0)


def test_invalid_categorical_draws_fail_when_the_graph_is_built():
    srng = RandomStreams(0)
    with pytest.raises(TypeError, match="multinomial: pvals must have at least one dimension"):
        srng.multinomial(pvals=T.dscalar())
    with pytest.raises(ValueError, match="multinomial: pvals has 2 dimensions, more than size"):
        srng.multinomial(size=(3,), pvals=T.dtensor3())
    with pytest.raises(ValueError, match=r"multinomial: pvals of shape \(2, 3\) cannot be broadcast"):
        srng.multinomial(size=(4,), pvals=np.full((2, 3), 1 / 3))
    with pytest.raises(TypeError, match="multinomial: n must be an integer"):
        srng.multinomial(pvals=np.full((2, 3), 1 / 3), n=1.5)
    with pytest.raises(TypeError, match="choice: p must be a vector of probabilities"):
        srng.choice((3,), a=3, p=T.dmatrix())
    with pytest.raises(TypeError, match="choice: a must be an int or a vector"):
        srng.choice((3,), a=T.dmatrix())
    with pytest.raises(ValueError, match="choice: n must be >= 0"):
        srng.choice((3,), a=-1)


@pytest.mark.parametrize("mode", NATIVE)
def test_categorical_frequencies(mode):
    def build(mode):
        srng = RandomStreams(2718)
        draws = [srng.multinomial(size=(20_000, 3), pvals=pvals),
                 srng.multinomial(size=(20_000,), n=4, pvals=pvals[0]),
                 srng.choice((20_000,), a=7), srng.choice((20_000,), a=5, p=p)]
        return theanine.function([], draws, mode=mode)

    pvals = np.array([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]])
    p = np.array([0.05, 0.0, 0.45, 0.2, 0.3])
    f = build(mode)
    _check_native(f)
    draws = f()
    for got, want in zip(draws, build("py")()):
        np.testing.assert_array_equal(got, want)
    one_hot, counts, uniform, weighted = draws
    np.testing.assert_array_equal(one_hot.sum(axis=-1), 1)
    np.testing.assert_array_equal(counts.sum(axis=-1), 4)
    for observed, trials, probs in [(one_hot[:, 0], 1, pvals[0]), (one_hot[:, 1], 1, pvals[1]),
                                    (one_hot[:, 2], 1, pvals[2]), (counts, 4, pvals[0])]:
        mean = observed.mean(axis=0)
        se = np.sqrt(trials * probs * (1 - probs) / observed.shape[0])
        assert np.all(np.abs(mean - trials * probs) <= 5 * se + 1e-12), (mean, trials * probs)
    assert stats.chisquare(np.bincount(uniform, minlength=7)).pvalue > 1e-4
    freq = np.bincount(weighted, minlength=5)
    assert freq[1] == 0
    assert stats.chisquare(freq[p > 0], 20_000 * p[p > 0]).pvalue > 1e-4


def _cuda_source_function():
    srng = RandomStreams(5)
    x = T.fmatrix("x")
    n = T.lscalar("n")
    draws = [x * srng.binomial(x.shape, p=0.7, dtype="float32"), srng.uniform((n, 5)),
             srng.normal((7,), dtype="float32"), srng.binomial((4,), n=3, p=0.25)]
    return theanine.function([x, n], draws, mode="llvm")


def test_cuda_source_renders_the_draws():
    text = _cuda_source_function().source("cuda")
    assert text.count("__global__") >= 4 and "3528531795" in text  # Philox's multiplier M0


@pytest.mark.skipif(not nvcc.available(), reason="nvcc is not installed")
def test_cuda_source_of_the_draws_compiles():
    ptx = nvcc.compile_check(_cuda_source_function().source("cuda").split(ENTRY_MARKER)[0], arch="sm_80",
                             output="ptx").decode()
    assert ".entry " in ptx


def test_draws_in_cuda_mode_match_py(device):
    def build(mode):
        srng = RandomStreams(6)
        x = T.fmatrix("x")
        draws = [x * srng.binomial(x.shape, p=0.7, dtype="float32"), srng.uniform((3, 5)),
                 srng.normal((7,), dtype="float64"), srng.binomial((4,), n=3, p=0.25),
                 srng.multinomial(pvals=x / x.sum(axis=1, keepdims=True), n=2),
                 srng.choice((6,), a=4, p=[0.1, 0.0, 0.6, 0.3])]
        f = theanine.function([x], draws, mode=mode)
        return f, [state for state, _ in srng.state_updates]

    (f, states), (ref, ref_states) = build("cuda"), build("py")
    assert not any(isinstance(node.op, RandomDraw) for node in f.graph.toposort())
    x = np.ones((3, 4), "float32")
    _same_calls(f, ref, states, ref_states, "cuda", [(x,), (x,)], normal=(2,))
