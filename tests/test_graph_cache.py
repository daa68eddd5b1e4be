"""The second-level compile cache (theanine/compile/graph_cache.py): a function keyed by its
graph skips rewriting and rendering in a later process, behaves exactly as a function built
without it, misses whenever anything that shapes the code differs, survives damaged entries,
and stays off for graphs it cannot key.

``f._graph_cache`` says what happened: "hit", "stored" (a miss, written), or "off: why".
Every test uses its own cache directory.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.compile import cache as C
from theanine.compile import graph_cache
from theanine.graph.basic import Apply, Op

TIMEOUT = 240


# --------------------------------------------------------------------------- two processes

# Builds a small training step (shared weights, updates, a constant), compiles it with the
# graph cache and, for comparison, without it; reports what both did, as JSON.
_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import theanine, theanine.tensor as T
    from theanine.compile import graph_cache
    mode, seed = sys.argv[1], int(sys.argv[2])
    PADDING
    def build():
        x, y = T.dmatrix("x"), T.dvector("y")
        rng = np.random.default_rng(seed)
        w = theanine.shared(rng.normal(size=3), name="w")
        b = theanine.shared(np.array(0.5), name="b")
        err = T.dot(x, w) + b - y
        cost = T.mean(err ** 2) + 0.01 * T.sum(w * w)
        gw, gb = theanine.grad(cost, [w, b])
        f = theanine.function([x, y], [cost, T.exp(-err)], updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)],
                              mode=mode)
        return f, w, b

    def describe(f, w, b):
        xv = np.arange(12.0).reshape(4, 3) / 10
        yv = np.array([1.0, -1.0, 0.5, 2.0])
        outs = [f(xv, yv) for _ in range(2)]
        traces = sorted({str(getattr(n.tag, "trace", None)) for n in f.graph.toposort()}
                        | {str(getattr(v.tag, "trace", None)) for v in f.graph.variables})
        return {"status": f._graph_cache,
                "outputs": [[o.tolist() for o in out] for out in outs],
                "w": w.get_value().tolist(), "b": float(b.get_value()),
                "source": f.source(mode), "other_source": f.source("c" if mode == "llvm" else "llvm"),
                "kernels": [str(k) for k in f.kernels], "entry": f.entry is not None,
                "fallbacks": [str(n) for n in f.fallbacks], "why_no_entry": f.why_no_entry,
                "rewrite_log": [str(r) for r in f.rewrite_log], "traces": traces,
                "graph": theanine.printing.debugprint(f.graph.outputs, file="str")}

    cached = describe(*build())
    of = graph_cache.FunctionKey.of
    graph_cache.FunctionKey.of = classmethod(lambda cls, *a: "disabled by the test")
    plain = describe(*build())
    graph_cache.FunctionKey.of = of
    print(json.dumps({"cached": cached, "plain": plain}))
""")


def _env(cache_dir):
    env = dict(os.environ)
    env["THEANINE_FLAGS"] = f"cache_dir={cache_dir}"
    return env


def _child(cache_dir, mode, seed, padding=0):
    script = _CHILD.replace("PADDING", "\n" * padding)
    proc = subprocess.run([sys.executable, "-c", script, mode, str(seed)], capture_output=True,
                          text=True, env=_env(cache_dir), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_a_second_process_hits_and_behaves_as_without_the_cache(tmp_path, mode):
    first = _child(tmp_path / "cache", mode, seed=1)
    assert first["cached"]["status"] == "stored"
    # another process, other shared values, the graph built on other lines
    second = _child(tmp_path / "cache", mode, seed=2, padding=7)
    assert second["cached"]["status"] == "hit"
    for run in (first, second):
        cached, plain = run["cached"], run["plain"]
        assert plain["status"] == "off: disabled by the test"
        for field in cached:
            if field != "status":
                assert cached[field] == plain[field], field
    # the updates went to the second process's shared variables, from its own values
    assert second["cached"]["w"] != first["cached"]["w"]
    assert second["cached"]["outputs"] != first["cached"]["outputs"]
    assert first["cached"]["source"] == second["cached"]["source"]
    # creation traces are the second process's lines, not the first's
    assert first["cached"]["traces"] != second["cached"]["traces"]


# --------------------------------------------------------------------------- misses

@pytest.fixture
def cache_dir(tmp_path):
    with theanine.config.change(cache_dir=str(tmp_path / "cache")):
        yield tmp_path / "cache"


def _status(*args, **kwargs):
    return theanine.function(*args, **kwargs)._graph_cache


def _variants():
    """name -> function(): compiles one variant of a base function and returns it."""
    x, y, xf = T.dvector("x"), T.dvector("y"), T.fvector("x")
    m = T.dmatrix("m")
    a = theanine.shared(np.zeros(3), name="a")
    c = theanine.shared(np.zeros(3), name="c")
    base = x * 2.0 + T.sum(m, axis=0)
    return {
        "base": lambda: theanine.function([x, m], base, mode="llvm"),
        "constant value": lambda: theanine.function([x, m], x * 3.0 + T.sum(m, axis=0), mode="llvm"),
        "dtype": lambda: theanine.function([xf, m], xf * 2.0 + T.sum(m, axis=0), mode="llvm"),
        "op parameter": lambda: theanine.function([x, m], x * 2.0 + T.sum(m, axis=1), mode="llvm"),
        "mode": lambda: theanine.function([x, m], base, mode="c"),
        "borrowed output": lambda: theanine.function([x, m], theanine.Out(base, borrow=True), mode="llvm"),
        "list of outputs": lambda: theanine.function([x, m], [base], mode="llvm"),
        "update a": lambda: theanine.function([x, m], base, updates=[(a, a + x)], mode="llvm"),
        "update c": lambda: theanine.function([x, m], base, updates=[(c, a + x)], mode="llvm",
                                              on_unused_input="ignore"),
        "givens": lambda: theanine.function([x, y], x * 2.0 + T.sum(m, axis=0), mode="llvm",
                                            givens={m: T.outer(y, y)}),
    }


def test_each_difference_is_a_miss_and_the_same_graph_a_hit(cache_dir):
    variants = _variants()
    statuses = {name: make()._graph_cache for name, make in variants.items()}
    assert statuses == {name: "stored" for name in variants}
    again = _variants()  # new variables, the same graphs
    assert {name: make()._graph_cache for name, make in again.items()} == \
        {name: "hit" for name in variants}


def test_floatx_is_part_of_the_key(cache_dir):
    x = T.dvector("x")
    assert _status([x], x + 1.5, mode="llvm") == "stored"
    with theanine.config.change(floatX="float32"):
        assert _status([x], x + 1.5, mode="llvm") == "stored"
        assert _status([x], x + 1.5, mode="llvm") == "hit"
    assert _status([x], x + 1.5, mode="llvm") == "hit"


def test_a_hit_uses_this_process_shared_values_and_applies_its_updates(cache_dir):
    def step(start):
        x = T.dvector("x")
        s = theanine.shared(np.array(start), name="s")
        f = theanine.function([x], T.sum(x) * s, updates=[(s, s + 1.0)], mode="llvm")
        return f, s
    f1, s1 = step(2.0)
    f2, s2 = step(10.0)
    assert (f1._graph_cache, f2._graph_cache) == ("stored", "hit")
    assert f2(np.ones(3)) == 30.0 and f2(np.ones(3)) == 33.0
    assert s2.get_value() == 12.0 and s1.get_value() == 2.0
    assert f1(np.ones(3)) == 6.0 and s1.get_value() == 3.0


# --------------------------------------------------------------------------- damaged entries

def _graph_entries(cache_dir):
    root = os.path.join(cache_dir, C.LAYOUT, graph_cache.KIND)
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names
            if not n.startswith(C.TMP_PREFIX)]


def _write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)


DAMAGE = {
    "truncated": lambda blob: blob[:len(blob) // 2],
    "garbled": lambda blob: blob[:C._HEADER.size + 40] + bytes(b ^ 0x5A for b in blob[C._HEADER.size + 40:]),
    # intact by its checksum, but not a pickle this process can read
    "not a pickle": lambda blob: C._pack(b"\x80\x05not a pickle at all"),
    "a pickle of something else": lambda blob: C._pack(pickle.dumps(("outputs", [], "", None))),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_entry_is_not_used_and_is_rebuilt(cache_dir, how):
    x = T.dvector("x")
    assert _status([x], T.exp(x) * 2.5, mode="llvm") == "stored"
    [path] = _graph_entries(cache_dir)
    with open(path, "rb") as f:
        good = f.read()
    _write(path, DAMAGE[how](good))
    f = theanine.function([x], T.exp(x) * 2.5, mode="llvm")
    assert f._graph_cache == "stored"
    np.testing.assert_allclose(f(np.arange(3.0)), np.exp(np.arange(3.0)) * 2.5)
    with open(path, "rb") as f_:
        assert f_.read() == good  # rebuilt: the same bytes as the first build
    assert _status([x], T.exp(x) * 2.5, mode="llvm") == "hit"


# --------------------------------------------------------------------------- graphs not keyed

class _Twice(Op):
    """An op defined outside theanine: its code is not in the library fingerprint."""

    def make_node(self, x):
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2


def test_an_op_defined_outside_theanine_is_not_keyed(cache_dir):
    x = T.dvector("x")
    f = theanine.function([x], _Twice()(x) + 1.0, mode="llvm")
    assert f._graph_cache.startswith("off: the op _Twice is defined outside theanine")
    np.testing.assert_array_equal(f(np.arange(3.0)), np.arange(3.0) * 2 + 1)
    assert _graph_entries(cache_dir) == []


def test_an_op_holding_an_inner_graph_is_not_keyed(cache_dir):
    x = T.dvector("x")
    out, _ = theanine.scan(lambda v, acc: acc + v, sequences=[x], outputs_info=[T.constant(0.0)])
    f = theanine.function([x], out[-1], mode="c")
    assert f._graph_cache.startswith("off: the op ") and "defines its own equality" in f._graph_cache
    assert f(np.arange(4.0)) == 6.0


def test_a_rewrite_registered_outside_theanine_turns_it_off(cache_dir, monkeypatch):
    from theanine.rewriting import rewrite_db
    from theanine.rewriting.engine import LocalRewrite
    noop = LocalRewrite("test_graph_cache_noop", lambda fgraph, node: None, ("canonicalize",))
    monkeypatch.setattr(rewrite_db, "rewrites", rewrite_db.rewrites + [noop])
    x = T.dvector("x")
    f = theanine.function([x], x * 4.0, mode="llvm")
    assert f._graph_cache.startswith("off: the rewrite 'test_graph_cache_noop'")
    np.testing.assert_array_equal(f(np.ones(2)), [4.0, 4.0])


def test_the_reference_mode_is_not_keyed(cache_dir):
    x = T.dvector("x")
    assert _status([x], x + 1, mode="py") == "off: mode 'py' does not use the graph cache"


# --------------------------------------------------------------------------- pieces

def test_a_long_chain_of_nodes_is_stored_and_loaded(cache_dir):
    from theanine.compile.native import RenderedProgram
    from theanine.graph.fg import FunctionGraph
    x = T.dvector("x")
    y = x
    for _ in range(3000):  # deeper than pickle could recurse
        y = T.sin(y)
    key = graph_cache.FunctionKey.of("llvm", [x], [y], 1, [], [False], True)
    rendered = RenderedProgram("llvm", "", [], [], None, None, {}, [], [], "no entry")
    assert key.store(FunctionGraph([x], [y]), rendered) == "stored"
    graph, loaded = key.load()
    assert graph.inputs == [x] and len(graph.apply_nodes) == 3000 and loaded == rendered
    assert graph.outputs[0].owner.op == y.owner.op and graph.outputs[0] is not y


def test_ops_pickle_without_their_process_specific_hash():
    op = T.sum(T.dmatrix(), axis=0).owner.op
    hash(op)
    assert "_cached_hash" in op.__dict__
    copy = pickle.loads(pickle.dumps(op))
    assert "_cached_hash" not in copy.__dict__ and copy == op and hash(copy) == hash(op)


def test_the_library_fingerprint_is_computed_once_per_process():
    assert graph_cache.library_fingerprint() == graph_cache.library_fingerprint()
    assert graph_cache.library_fingerprint.cache_info().hits >= 1
