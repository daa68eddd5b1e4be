"""The compile cache under real use: racing compilers, killed writers, damaged and foreign
entries, unsafe permissions, a size cap, and its command line, with real LLVM objects and
C shared objects (``tests/test_cache.py`` checks the DiskCache itself with synthetic bytes).

Every test works in its own temporary cache directory (``THEANINE_FLAGS=cache_dir=...`` for
the processes it starts, ``config.change(cache_dir=...)`` in this one). The processes link
no shared libraries (``shared_libraries=off``), which would serve LLVM modules before the
object entries under test are read; ``tests/test_shared_lib.py`` covers that level.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import theanine
from theanine.compile import cache as C
from theanine.compile.cache import DiskCache

N_PROCS = 8
TIMEOUT = 240


def _env(cache_dir, **extra):
    env = dict(os.environ)
    env["THEANINE_FLAGS"] = f"cache_dir={cache_dir},shared_libraries=off"
    env.update(extra)
    return env


def _files(root):
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(out)


def _entries(cache_dir, kind=None):
    """(kind, key, path) of every entry file (temporary files excluded)."""
    out = []
    root = os.path.join(cache_dir, C.LAYOUT)
    for k in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if kind is not None and k != kind:
            continue
        for shard in sorted(os.listdir(os.path.join(root, k))):
            for name in sorted(os.listdir(os.path.join(root, k, shard))):
                if not name.startswith(C.TMP_PREFIX):
                    out.append((k, name, os.path.join(root, k, shard, name)))
    return out


# A worker: compiles one function shared by every worker and one of its own, in modes
# 'llvm' and 'c', checks the results, and reports what it wrote to the cache (as JSON).
_WORKER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from theanine.compile import cache as C
    writes, reads = [], []
    put, get = C.DiskCache.put, C.DiskCache.get
    def counting_put(self, kind, key, payload, _before_rename=None):
        ok = put(self, kind, key, payload, _before_rename)
        writes.append([kind, key, ok])
        return ok
    def counting_get(self, kind, key):
        value = get(self, kind, key)
        reads.append([kind, key, value is not None, self.stats["corrupt"]])
        return value
    C.DiskCache.put, C.DiskCache.get = counting_put, counting_get
    import theanine, theanine.tensor as T
    go, me = sys.argv[1], int(sys.argv[2])
    x, y = T.dvectors("x", "y")
    shared_expr = T.exp(-x * x) * y + T.sum(T.tanh(x))
    own_expr = x * (me + 1.5) - T.sqr(y) * me
    xv, yv = np.linspace(-1, 1, 7), np.arange(7.0)
    while not os.path.exists(go):
        time.sleep(0.002)
    start = time.time()
    for mode in ("llvm", "c"):
        f = theanine.function([x, y], shared_expr, mode=mode)
        g = theanine.function([x, y], own_expr, mode=mode)
        assert np.allclose(f(xv, yv), np.exp(-xv * xv) * yv + np.tanh(xv).sum()), mode
        assert np.allclose(g(xv, yv), xv * (me + 1.5) - yv ** 2 * me), mode
    print(json.dumps({"start": start, "end": time.time(), "writes": writes, "reads": reads}))
""")


def _race(cache_dir, tmp_path, n=N_PROCS):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(go), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(cache_dir)) for i in range(n)]
    time.sleep(1.0)  # let every worker import theanine and wait at the start line
    go.touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_eight_processes_compile_into_an_empty_cache_at_once(tmp_path):
    d = tmp_path / "cache"
    assert not d.exists()
    reports = _race(d, tmp_path)
    # nobody waited for anybody: the shared modules were built by more than one process
    shared_writes = {}
    for r in reports:
        for kind, key, ok in r["writes"]:
            shared_writes.setdefault((kind, key), []).append(ok)
    assert any(len(w) > 1 for w in shared_writes.values()), shared_writes
    assert all(all(w) for w in shared_writes.values())    # every write succeeded
    assert all(corrupt == 0 for r in reports for *_, corrupt in r["reads"])
    # the cache holds entries only (no lock files, no temporaries), and each one verifies
    entries = _entries(d)
    assert len(_files(d)) == len(entries)
    assert not [f for f in _files(d) if "lock" in f.lower()]
    assert {k for k, _, _ in entries} >= {"llvm", "c"}
    assert len(entries) == len(shared_writes)
    cache = DiskCache(d)
    for kind, key, _ in entries:
        assert cache.get(kind, key) is not None
    assert cache.stats["corrupt"] == 0
    # a second wave finds everything in the cache: no process writes anything
    again = _race(d, tmp_path, n=2)
    assert [r["writes"] for r in again] == [[], []]


# ------------------------------------------------------------------ damaged entries

_COMPILE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from theanine.compile import cache as C
    writes = []
    put = C.DiskCache.put
    def counting_put(self, kind, key, payload, _before_rename=None):
        writes.append([kind, key])
        return put(self, kind, key, payload, _before_rename)
    C.DiskCache.put = counting_put
    import theanine, theanine.tensor as T
    mode, ids = sys.argv[1], [int(k) for k in sys.argv[2].split(",")]
    x = T.dvector("x")
    report = {}
    for k in ids:
        del writes[:]
        f = theanine.function([x], T.exp(x) * (2 + k) + T.sum(x * x), mode=mode)
        got = f(np.arange(3.0))
        assert np.allclose(got, np.exp(np.arange(3.0)) * (2 + k) + 5.0), got
        report[k] = list(writes)
    print(json.dumps(report))
""")


def _compile(cache_dir, mode, ids=(0,), **env):
    """Compile and check functions ``ids`` in a new process: (process, {id: [[kind, key]]})."""
    proc = subprocess.run([sys.executable, "-c", _COMPILE, mode, ",".join(map(str, ids))],
                          capture_output=True, text=True, env=_env(cache_dir, **env),
                          timeout=TIMEOUT)
    report = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return proc, report


def _path(cache_dir, kind, key):
    return DiskCache(cache_dir).path(kind, key)


def _rewrite(path, blob):
    os.chmod(path, 0o600)
    with open(path, "wb") as f:
        f.write(blob)


DAMAGE = ("truncated", "garbled", "empty", "foreign-machine", "old-format")


def _damage(how, path):
    with open(path, "rb") as f:
        blob = f.read()
    size = C._HEADER.size
    if how == "truncated":
        blob = blob[:len(blob) // 2]
    elif how == "garbled":
        b = bytearray(blob)
        for k in range(size + 64, len(b), 97):
            b[k] ^= 0x5A
        blob = bytes(b)
    elif how == "empty":
        blob = b""
    elif how == "foreign-machine":  # intact, but written by another kind of machine
        blob = C._pack(blob[size:], tag=(C.MACHINE_TAG + 1) % 65536)
    elif how == "old-format":
        blob = blob[:4] + (1).to_bytes(2, "little") + blob[6:]
    _rewrite(path, blob)


@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_damaged_or_foreign_entries_are_rebuilt(tmp_path, mode):
    """One function per kind of damage: truncated, garbled, empty, written by another kind of
    machine, written in an older format. Each is a miss, rebuilt, and written again."""
    d = tmp_path / "cache"
    ids = list(range(len(DAMAGE)))
    proc, first = _compile(d, mode, ids)
    assert proc.returncode == 0, proc.stderr[-3000:]
    good = {}
    for k, how in zip(ids, DAMAGE):
        assert first[str(k)], f"function {k} wrote nothing"
        for kind, key in first[str(k)]:
            path = _path(d, kind, key)
            with open(path, "rb") as f:
                good[path] = f.read()
            _damage(how, path)
    proc, second = _compile(d, mode, ids)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert second == first                                   # every entry rebuilt and written
    for path, blob in good.items():                          # the same bytes as the first build
        with open(path, "rb") as f:
            assert f.read() == blob, path
    proc, third = _compile(d, mode, ids)
    assert proc.returncode == 0 and all(w == [] for w in third.values()), third  # all hits


def _repack(path, transform):
    """Replace an entry's payload by ``transform(payload)``, with a valid header and checksum."""
    with open(path, "rb") as f:
        payload = f.read()[C._HEADER.size:]
    _rewrite(path, C._pack(transform(payload)))


@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_intact_entries_that_do_not_load_are_rebuilt(tmp_path, mode):
    d = tmp_path / "cache"
    proc, first = _compile(d, mode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    objects = [[kind, key] for kind, key in first["0"] if kind != "graph"]
    for kind, key in objects:
        _repack(_path(d, kind, key), lambda p: p[:4] + bytes([1]) + p[5:])  # ELFCLASS32
    proc, second = _compile(d, mode)  # the graph entry still gives the source
    assert proc.returncode == 0 and second["0"] == objects, proc.stderr[-2000:]


# ------------------------------------------------------------------ killed writers

_KILLED = textwrap.dedent("""
    import os, signal, sys
    from theanine.compile import cache as C
    put = C.DiskCache.put
    def dying_put(self, kind, key, payload, _before_rename=None):
        def die(tmp):
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)   # the temporary file is complete, not renamed
        return put(self, kind, key, payload, die)
    C.DiskCache.put = dying_put
    import numpy as np
    import theanine, theanine.tensor as T
    x = T.dvector("x")
    theanine.function([x], T.exp(x) * 2 + T.sum(x * x), mode=sys.argv[1])
""")


@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_a_compiler_killed_while_writing_leaves_nothing_that_is_loaded(tmp_path, mode):
    d = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", _KILLED, mode], capture_output=True, text=True,
                          env=_env(d), timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    temp = proc.stdout.strip()
    assert os.path.basename(temp).startswith(C.TMP_PREFIX) and os.path.getsize(temp) > 0
    assert _entries(d) == []                                  # only the stray temporary file
    # a torn entry under the final name (what a non-atomic writer would leave) is a miss too
    kind = "llvm" if mode == "llvm" else "c"
    shard = os.path.basename(os.path.dirname(temp))
    with open(temp, "rb") as f:
        torn = f.read()[: os.path.getsize(temp) // 3]
    proc, second = _compile(d, mode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (entry_kind, entry_key), = [w for w in second["0"] if w[0] == kind][:1]
    assert entry_key[:2] == shard
    path = _path(d, entry_kind, entry_key)
    _rewrite(path, torn)
    proc, third = _compile(d, mode)
    assert proc.returncode == 0 and [entry_kind, entry_key] in third["0"], proc.stderr[-2000:]
    assert DiskCache(d).get(kind, entry_key) is not None
    assert DiskCache(d).info()["n_entries"] == len(_entries(d))  # the temporary is not counted


# ---------------------------------------------------------------------- permissions

@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_unsafe_permissions_are_refused_with_a_warning(tmp_path, mode):
    """An entry writable by others is ignored and rebuilt privately in its place; a cache
    directory writable by others is not used at all (nothing read, nothing written)."""
    d = tmp_path / "cache"
    proc, first = _compile(d, mode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (kind, key), = first["0"][:1]
    path = _path(d, kind, key)
    with open(path, "rb") as f:
        planted = f.read()
    os.chmod(path, 0o666)
    proc, second = _compile(d, mode, PYTHONWARNINGS="always")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CacheWarning" in proc.stderr and "ignoring compile cache entry" in proc.stderr
    assert "writable by group or others" in proc.stderr
    assert [kind, key] in second["0"]                         # compiled again and written
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as f:
        assert f.read() == planted
    before = {p: os.stat(p).st_mtime_ns for _, _, p in _entries(d)}
    os.chmod(d, 0o777)
    try:
        proc, third = _compile(d, mode, ids=(0, 1), PYTHONWARNINGS="always")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "not using the compile cache" in proc.stderr and str(d) in proc.stderr
        assert "writable by group or others" in proc.stderr
        assert {p: os.stat(p).st_mtime_ns for _, _, p in _entries(d)} == before
        assert len(_entries(d)) == len(before)                # function 1 was not cached
    finally:
        os.chmod(d, 0o700)


# ------------------------------------------------------------------ size cap and CLI

_CAPPED = textwrap.dedent("""
    import os, sys, time
    from theanine.compile.cache import DiskCache, cache_key
    d, go, me, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = DiskCache(d, max_bytes=cap)
    while not os.path.exists(go):
        time.sleep(0.002)
    for i in range(int(sys.argv[5]) if len(sys.argv) > 5 else 12):
        assert c.put("obj", cache_key("capped", me, i), bytes([me, i]) * 5000)
    print("ok", flush=True)
""")


@pytest.mark.parametrize("per_writer", [3, 12])
def test_size_cap_holds_with_many_writers(tmp_path, per_writer):
    """Eight writers share a directory capped at 10 entries, each writing fewer (3: no
    writer alone reaches the cap) or more (12) than that: the cap holds when they are done,
    and the newest entries are the ones kept."""
    d, go = tmp_path / "cache", tmp_path / "go"
    cap = 10 * (C._HEADER.size + 10_000)
    procs = [subprocess.Popen([sys.executable, "-c", _CAPPED, str(d), str(go), str(i), str(cap),
                               str(per_writer)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(d)) for i in range(N_PROCS)]
    time.sleep(0.5)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    entries = _entries(d)
    assert sum(os.path.getsize(p) for *_, p in entries) <= cap
    assert len(entries) == 10


def test_size_cap_counts_what_other_writers_added():
    """Two caches on one directory (as two processes): the first must see the second's
    entries when it writes again, not only its own."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        size = C._HEADER.size + 1000
        a, b = DiskCache(tmp, max_bytes=10 * size), DiskCache(tmp, max_bytes=10 * size)
        a.put("obj", C.cache_key("a", 0), b"a" * 1000)
        for i in range(9):
            b.put("obj", C.cache_key("b", i), b"b" * 1000)
        for i in range(1, 6):
            a.put("obj", C.cache_key("a", i), b"a" * 1000)
        assert a.info()["total_bytes"] <= 10 * size
        assert a.get("obj", C.cache_key("a", 5)) is not None  # the newest is kept


def _cli(cache_dir, *args):
    return subprocess.run([sys.executable, "-m", "theanine.cache", *args], capture_output=True,
                          text=True, env=_env(cache_dir), timeout=120)


def test_cli_on_a_cache_of_real_objects(tmp_path):
    d = tmp_path / "cache"
    for mode in ("llvm", "c"):
        assert _compile(d, mode)[0].returncode == 0
    counts = {}
    for kind, _, _ in _entries(d):
        counts[kind] = counts.get(kind, 0) + 1
    r = _cli(d, "info")
    assert r.returncode == 0, r.stderr
    assert f"entries: {sum(counts.values())} (" in r.stdout
    for kind, n in counts.items():
        assert f"{kind}: {n}" in r.stdout
    # prune to nothing, then the next compile builds and writes again
    r = _cli(d, "prune", "--max-bytes", "0")
    assert r.returncode == 0 and f"pruned {sum(counts.values())} entries" in r.stdout, r.stdout
    proc, report = _compile(d, "llvm")
    assert proc.returncode == 0 and report["0"], proc.stderr[-2000:]
    r = _cli(d, "clear")
    assert r.returncode == 0 and "cleared" in r.stdout
    assert _entries(d) == []


def test_cli_info_on_a_missing_directory_creates_nothing(tmp_path):
    d = tmp_path / "never"
    r = _cli(d, "info")
    assert r.returncode == 0, r.stderr
    assert "entries: 0" in r.stdout and str(d) in r.stdout
    assert not d.exists()
    r = _cli(d, "prune")
    assert r.returncode == 0 and not d.exists()


def test_in_process_compiles_use_config_cache_dir(tmp_path):
    import theanine.tensor as T
    x = T.dvector("x")
    with theanine.config.change(cache_dir=str(tmp_path / "here")):
        f = theanine.function([x], T.exp(x) * 3.25 - T.sum(x), mode="c")
    np.testing.assert_allclose(f(np.ones(2)), np.exp(1) * 3.25 - 2)
    assert [k for k, _, _ in _entries(tmp_path / "here")] == ["c", "graph"]  # object, graph cache
