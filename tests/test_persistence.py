"""Pickling graphs and compiled functions, within a process and across processes.

- A graph (variables, constants, shared variables, every kind of node, gradients) pickles;
  the copy prints the same, its ops are equal to the originals (so the merge rewrite still
  recognises them), and it compiles to a function giving the same results, here and in
  another process.
- A compiled function pickles and unpickles in another process, gives the same results and
  updates (its own copies of) its shared variables; a native one recompiles from the
  on-disk cache: the process that unpickles it must not run LLVM's optimiser or the
  C compiler (both are made to fail there).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.printing import debugprint

TIMEOUT = 240


def _expressions():
    """Named expressions covering the kinds of node: elementwise (fusable), reductions,
    dot, indexing with a symbolic bound, shape ops, constants, a shared variable, a gradient."""
    x, y = T.dmatrix("x"), T.dvector("y")
    i = T.lscalar("i")
    w = theanine.shared(np.linspace(-1, 1, 3), name="w")
    cost = T.sum(T.tanh(T.dot(x, w)) ** 2) + T.mean(y)
    exprs = {
        "elementwise": T.exp(-x * x) * y[:3] + T.sigmoid(x) - 0.5,
        "reductions": [T.sum(x, axis=0), T.max(x, axis=1), T.prod(x + 2), T.any(x > 0)],
        "dot": T.dot(x, y[:3]) + T.dot(x.T, x).sum(),
        "indexing": x[i:, ::-1].reshape((-1,)) * 2,
        "shapes": T.concatenate([x.flatten(), y]).dimshuffle("x", 0) + T.constant(np.float64(1)),
        "gradient": theanine.grad(cost, [x, w]),
        "comparisons": T.switch(T.gt(x, 0), x, T.cast(T.floor(x), "float64")),
    }
    return [x, y, i], exprs, w


def _values():
    rng = np.random.default_rng(7)
    return [rng.normal(size=(4, 3)), rng.normal(size=5), np.int64(1)]


def _flat(exprs):
    out = []
    for e in exprs.values():
        out += list(e) if isinstance(e, (list, tuple)) else [e]
    return out


def _run(inputs, outputs, mode):
    f = theanine.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    return f(*_values())


def test_graphs_pickle_and_compile_to_the_same_function():
    inputs, exprs, w = _expressions()
    outputs = _flat(exprs)
    blob = pickle.dumps((inputs, outputs, w))
    inputs2, outputs2, w2 = pickle.loads(blob)
    assert debugprint(outputs2, file="str") == debugprint(outputs, file="str")
    for a, b in zip(outputs, outputs2):
        if a.owner is not None:
            assert a.owner.op == b.owner.op and hash(a.owner.op) == hash(b.owner.op)
    np.testing.assert_array_equal(w2.get_value(), w.get_value())
    for mode in ("py", "llvm"):
        want = _run(inputs, outputs, mode)
        got = _run(inputs2, outputs2, mode)
        for g, v in zip(got, want):
            np.testing.assert_allclose(g, v, rtol=1e-13)


def test_an_unpickled_graph_merges_with_the_original():
    x, y = T.dvectors("x", "y")
    e = T.exp(x) * y + 1
    copy = pickle.loads(pickle.dumps(e))
    # the copy's ops are the table's own instances (not look-alike copies)
    node, cnode = e.owner, copy.owner
    while node is not None:
        assert cnode.op == node.op
        if hasattr(node.op, "scalar_op"):
            assert cnode.op.scalar_op is node.op.scalar_op
        node = node.inputs[0].owner
        cnode = cnode.inputs[0].owner


_EVAL_PICKLED_GRAPH = textwrap.dedent("""
    import pickle, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import theanine
    from test_persistence import _values
    with open({path!r}, "rb") as f:
        inputs, outputs, w = pickle.load(f)
    got = theanine.function(inputs, outputs, mode="llvm", on_unused_input="ignore")(*_values())
    with open({out!r}, "wb") as f:
        pickle.dump([np.asarray(g) for g in got], f)
""")


def test_graphs_pickle_across_processes(tmp_path):
    inputs, exprs, w = _expressions()
    outputs = _flat(exprs)
    path, out = tmp_path / "graph.pkl", tmp_path / "results.pkl"
    with open(path, "wb") as f:
        pickle.dump((inputs, outputs, w), f)
    script = _EVAL_PICKLED_GRAPH.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                        path=str(path), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, "rb") as f:
        got = pickle.load(f)
    want = _run(inputs, outputs, "py")
    assert len(got) == len(want)
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-12)


# ---------------------------------------------------------------- compiled functions

# Process A compiles a training step into an empty cache and pickles it with its results;
# process B unpickles it (with LLVM's optimiser and the C compiler made to fail) and runs it.
_PICKLE_FUNCTION = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import theanine, theanine.tensor as T
    mode, path = sys.argv[1], sys.argv[2]
    X, t = T.dmatrix("X"), T.dvector("t")
    w = theanine.shared(np.zeros(3), name="w")
    b = theanine.shared(0.0, name="b")
    p = T.nnet.sigmoid(T.dot(X, w) + b)
    cost = -T.mean(t * T.log(p) + (1 - t) * T.log(1 - p))
    gw, gb = theanine.grad(cost, [w, b])
    train = theanine.function([X, t], [cost, p], mode=mode,
                              updates=[(w, w - 0.5 * gw), (b, b - 0.5 * gb)])
    rng = np.random.default_rng(3)
    Xv, tv = rng.normal(size=(8, 3)), (rng.random(8) > 0.5).astype("float64")
    train(Xv, tv)                       # one step before pickling: the state travels too
    blob = pickle.dumps((train, w, b))
    expected = [train(Xv, tv) for _ in range(3)]
    with open(path, "wb") as f:
        pickle.dump((blob, Xv, tv, expected, w.get_value()), f)
""")

_UNPICKLE_FUNCTION = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    from theanine.codegen import cc, jit
    def forbidden(*args, **kwargs):
        raise AssertionError("compiled again instead of loading from the cache")
    jit.optimize = forbidden
    cc.build = forbidden
    path = sys.argv[1]
    with open(path, "rb") as f:
        blob, Xv, tv, expected, w_after = pickle.load(f)
    train, w, b = pickle.loads(blob)
    for want in expected:
        got = train(Xv, tv)
        for g, v in zip(got, want):
            np.testing.assert_allclose(g, v, rtol=1e-12)
    np.testing.assert_allclose(w.get_value(), w_after, rtol=1e-12)
    print("ok", train.mode)
""")


def _pickle_round_trip(tmp_path, mode):
    env = dict(os.environ, THEANINE_FLAGS=f"cache_dir={tmp_path / 'cache'}")
    path = tmp_path / "function.pkl"
    a = subprocess.run([sys.executable, "-c", _PICKLE_FUNCTION, mode, str(path)],
                       capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert a.returncode == 0, a.stderr[-3000:]
    b = subprocess.run([sys.executable, "-c", _UNPICKLE_FUNCTION, str(path)],
                       capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert b.returncode == 0, b.stderr[-3000:]
    assert b.stdout.split() == ["ok", mode]


def test_a_reference_function_pickles_across_processes(tmp_path):
    _pickle_round_trip(tmp_path, "py")


@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_a_native_function_pickles_and_reloads_from_the_cache(tmp_path, mode):
    _pickle_round_trip(tmp_path, mode)


def test_the_forbidden_compilers_are_really_forbidden(tmp_path):
    """The check above means something: with an empty cache, the unpickling process would
    have to compile, and does fail (shown here by compiling a new function there)."""
    script = _UNPICKLE_FUNCTION.split("path = sys.argv[1]")[0] + textwrap.dedent("""
        import theanine, theanine.tensor as T
        x = T.dvector("x")
        for mode in ("llvm", "c"):
            try:
                theanine.function([x], T.exp(x) * 7.125, mode=mode)
            except AssertionError as e:
                print(mode, "refused")
    """)
    env = dict(os.environ, THEANINE_FLAGS=f"cache_dir={tmp_path / 'empty'}")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["llvm", "refused", "c", "refused"]
