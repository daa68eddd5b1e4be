"""The on-disk compile cache (theanine.compile.cache): integrity, atomicity, no lock, privacy, LRU, CLI.

Every test works in ``tmp_path``; none touches the user's real cache directory.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import theanine
from theanine.compile import cache as C
from theanine.compile.cache import DiskCache, cache_key

KIND = "obj"


def _env(cache_dir):
    env = dict(os.environ)
    env["THEANINE_FLAGS"] = f"cache_dir={cache_dir}"
    return env


def _files(root):
    """Every file under ``root``, as paths relative to it."""
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(out)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------------ basics

def test_round_trip_and_layout(tmp_path):
    c = DiskCache(tmp_path / "c")
    key = cache_key("source", "llvm", ("-O3",))
    payload = bytes(range(256)) * 10
    assert c.put(KIND, key, payload) is True
    assert c.get(KIND, key) == payload
    assert DiskCache(tmp_path / "c").get(KIND, key) == payload      # a fresh process-like object
    assert os.path.isfile(tmp_path / "c" / "v1" / KIND / key[:2] / key)
    assert c.stats["hits"] == 1 and c.stats["writes"] == 1
    assert c.put(KIND, cache_key("empty"), b"") and c.get(KIND, cache_key("empty")) == b""


def test_miss_for_unknown_key_and_kind(tmp_path):
    c = DiskCache(tmp_path / "c")
    assert c.get(KIND, cache_key("nothing")) is None
    c.put(KIND, cache_key("a"), b"x")
    assert c.get(KIND, cache_key("b")) is None
    assert c.get("other", cache_key("a")) is None
    assert c.stats["misses"] == 3
    with pytest.raises(ValueError, match="bad key"):
        c.get(KIND, "../../etc/passwd")
    with pytest.raises(ValueError, match="bad kind"):
        c.put("../x", cache_key("a"), b"x")


def test_default_directory_is_config_cache_dir(tmp_path):
    with theanine.config.change(cache_dir=str(tmp_path / "cfg")):
        c = DiskCache()
    assert c.directory == str(tmp_path / "cfg")


def test_cache_key_is_unambiguous():
    k = cache_key("ab", "c")
    assert len(k) == 64 and int(k, 16) >= 0
    assert k == cache_key("ab", "c")                       # deterministic
    distinct = [
        cache_key("ab", "c"), cache_key("a", "bc"), cache_key("abc"), cache_key(b"abc"),
        cache_key(("ab", "c")), cache_key(("ab",), "c"), cache_key("ab", ("c",)),
        cache_key(1), cache_key("1"), cache_key(b"1"), cache_key(True), cache_key(1.0),
        cache_key(None), cache_key(), cache_key(""), cache_key("", ""), cache_key(()),
        cache_key("src", "llvm", "-O3"), cache_key("src", "llvm", "-O2"),
        cache_key("src", "c", "-O3"),
    ]
    assert len(set(distinct)) == len(distinct)
    with pytest.raises(TypeError, match="cannot hash"):
        cache_key(object())


# ------------------------------------------------------------------ damaged files

def _damage_truncate(blob):
    return blob[:len(blob) - 7]


def _damage_flip_payload(blob):
    b = bytearray(blob)
    b[-100] ^= 0x01
    return bytes(b)


def _damage_wrong_magic(blob):
    return b"XXXX" + blob[4:]


def _damage_empty(blob):
    return b""


def _damage_short_header(blob):
    return blob[:10]


def _damage_trailing_garbage(blob):
    return blob + b"\0"


def _damage_wrong_version(blob):
    return blob[:4] + (99).to_bytes(2, "little") + blob[6:]


@pytest.mark.parametrize("damage", [
    _damage_truncate, _damage_flip_payload, _damage_wrong_magic, _damage_empty,
    _damage_short_header, _damage_trailing_garbage, _damage_wrong_version,
], ids=lambda f: f.__name__[len("_damage_"):])
def test_damaged_entry_is_a_miss_and_is_removed(tmp_path, damage):
    c = DiskCache(tmp_path / "c")
    key = cache_key("damaged")
    payload = os.urandom(1000)
    c.put(KIND, key, payload)
    path = c.path(KIND, key)
    with open(path, "rb") as f:
        blob = f.read()
    with open(path, "wb") as f:
        f.write(damage(blob))
    assert c.get(KIND, key) is None
    assert not os.path.exists(path)
    assert c.stats["corrupt"] == 1
    c.put(KIND, key, payload)                              # rebuilt by the caller
    assert c.get(KIND, key) == payload


def test_symlinked_entry_is_not_followed(tmp_path):
    c = DiskCache(tmp_path / "c")
    good, key = cache_key("good"), cache_key("link")
    c.put(KIND, good, b"payload")
    c.put(KIND, key, b"other")
    os.unlink(c.path(KIND, key))
    os.symlink(c.path(KIND, good), c.path(KIND, key))
    assert c.get(KIND, key) is None
    assert c.get(KIND, good) == b"payload"


# --------------------------------------------------------------- killed writers

_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from theanine.compile.cache import DiskCache
    d, kind, key, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    def hook(tmp):
        print(tmp, flush=True)          # the temp file is complete; the rename has not happened
        time.sleep(60)
    DiskCache(d).put(kind, key, b"N" * size, _before_rename=hook)
""")

_LOOPING_WRITER = textwrap.dedent("""
    import sys
    from theanine.compile.cache import DiskCache
    d, kind, key, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = DiskCache(d)
    print("ready", flush=True)
    i = 0
    while True:
        c.put(kind, key, bytes([i % 251]) * size)
        i += 1
""")


def test_writer_killed_before_rename(tmp_path):
    d = tmp_path / "c"
    c = DiskCache(d)
    old_key, fresh_key, torn_key = cache_key("old"), cache_key("fresh"), cache_key("torn")
    c.put(KIND, old_key, b"O" * 5000)

    # a writer replacing an existing entry and one writing a new entry, both killed before the rename
    temps = []
    for key in (old_key, fresh_key):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(d), KIND, key, "5000"],
                                stdout=subprocess.PIPE, text=True, env=_env(d))
        temps.append(proc.stdout.readline().strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        assert os.path.basename(temps[-1]).startswith(C.TMP_PREFIX)
        assert os.path.getsize(temps[-1]) > 5000           # the stray temp is there
    # a non-atomic writer would leave a half-written file under the final name
    c.put(KIND, torn_key, b"T" * 5000)
    with open(c.path(KIND, torn_key), "r+b") as f:
        f.truncate(2500)

    c2 = DiskCache(d)
    assert c2.get(KIND, old_key) == b"O" * 5000            # the complete old payload, never a partial new one
    assert c2.get(KIND, fresh_key) is None
    assert c2.get(KIND, torn_key) is None
    assert not os.path.exists(c2.path(KIND, torn_key))

    info = c2.info()
    assert info["n_entries"] == 1 and info["entries"] == {KIND: 1}
    assert info["total_bytes"] == os.path.getsize(c2.path(KIND, old_key))

    # prune leaves a fresh temp (it may belong to a live writer) and removes an old one
    c2.prune(1 << 30)
    assert all(os.path.exists(t) for t in temps)
    old = time.time() - C.TMP_GRACE_S - 60
    os.utime(temps[0], (old, old))
    assert c2.prune(1 << 30) == 0
    assert not os.path.exists(temps[0]) and os.path.exists(temps[1])
    assert c2.get(KIND, old_key) == b"O" * 5000
    # clear removes everything, temps included
    assert c2.clear() == 1
    assert _files(d) == []
    assert c2.put(KIND, fresh_key, b"again") and c2.get(KIND, fresh_key) == b"again"


def test_writer_killed_at_a_random_point(tmp_path):
    d = tmp_path / "c"
    key = cache_key("loop")
    size = 4 << 20
    proc = subprocess.Popen([sys.executable, "-c", _LOOPING_WRITER, str(d), KIND, key, str(size)],
                            stdout=subprocess.PIPE, text=True, env=_env(d))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    got = DiskCache(d).get(KIND, key)
    if got is not None:                                    # complete and uniform, never torn
        assert len(got) == size and got == got[:1] * size
    assert DiskCache(d).info()["n_entries"] == (0 if got is None else 1)


# ------------------------------------------------------------------ concurrency

_CONCURRENT_WORKER = textwrap.dedent("""
    import os, sys, time, hashlib
    from theanine.compile.cache import DiskCache, cache_key
    d, go, me = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def payload(name):
        seed = hashlib.sha256(name.encode()).digest()
        return seed * (200_000 // 32 + (len(name) % 7))
    c = DiskCache(d)
    while not os.path.exists(go):
        time.sleep(0.002)
    shared = cache_key("shared")
    for i in range(15):
        assert c.put("obj", shared, payload("shared")), "put failed"
        got = c.get("obj", shared)
        assert got == payload("shared"), f"shared entry read back wrong ({None if got is None else len(got)})"
        mine = cache_key("own", me, i)
        assert c.put("obj", mine, payload(f"own-{me}-{i}"))
        assert c.get("obj", mine) == payload(f"own-{me}-{i}")
    assert c.stats["corrupt"] == 0, c.stats
    print("ok", flush=True)
""")


def test_concurrent_writers_same_and_different_keys(tmp_path):
    d, go = tmp_path / "c", tmp_path / "go"
    assert not d.exists()                                  # an empty cache, created by the racers
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_WORKER, str(d), str(go), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(d))
             for i in range(8)]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    c = DiskCache(d)
    info = c.info()
    assert info["n_entries"] == 1 + 8 * 15
    # nothing but entries: no lock files, no leftover temps
    names = _files(d)
    assert len(names) == info["n_entries"]
    assert not [n for n in names if os.path.basename(n).startswith(".") or "lock" in n.lower()]
    assert c.get("obj", cache_key("shared")) is not None
    assert c.stats["corrupt"] == 0


# ------------------------------------------------------------------ permissions

def test_created_dirs_and_files_are_private(tmp_path):
    d = tmp_path / "new" / "c"
    key = cache_key("private")
    old_umask = os.umask(0)                                # privacy must not depend on the umask
    try:
        DiskCache(d).put(KIND, key, b"secret")
    finally:
        os.umask(old_umask)
    path = DiskCache(d).path(KIND, key)
    for p in (d, d / "v1", d / "v1" / KIND, d / "v1" / KIND / key[:2]):
        assert _mode(p) == 0o700, p
    assert _mode(path) == 0o600


def test_world_writable_cache_dir_is_refused(tmp_path):
    d = tmp_path / "c"
    key = cache_key("planted")
    DiskCache(d).put(KIND, key, b"good")
    os.chmod(d, 0o777)
    c = DiskCache(d)
    with pytest.warns(C.CacheWarning, match="writable by group or others") as rec:
        assert c.get(KIND, key) is None
    assert str(d) in str(rec[0].message)
    assert len(rec) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # warned once, not again
        assert c.put(KIND, cache_key("new"), b"x") is False
        assert c.get(KIND, key) is None
    assert not os.path.exists(c.path(KIND, cache_key("new")))
    assert c.info()["problem"] is not None


def test_world_writable_subdir_and_entry_are_refused(tmp_path):
    d = tmp_path / "c"
    k1, k2 = cache_key("one"), cache_key("two")
    DiskCache(d).put(KIND, k1, b"one")
    DiskCache(d).put("other", k2, b"two")
    os.chmod(DiskCache(d).path(KIND, k1), 0o666)
    with pytest.warns(C.CacheWarning, match="ignoring compile cache entry"):
        assert DiskCache(d).get(KIND, k1) is None
    os.chmod(d / "v1" / "other", 0o777)
    with pytest.warns(C.CacheWarning, match="unsafe"):
        assert DiskCache(d).get("other", k2) is None


def test_cache_dir_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "c"
    key = cache_key("theirs")
    DiskCache(d).put(KIND, key, b"x")
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)
    c = DiskCache(d)
    with pytest.warns(C.CacheWarning, match="owned by uid"):
        assert c.get(KIND, key) is None
    assert c.put(KIND, key, b"y") is False


def test_unwritable_cache_warns_once_and_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = DiskCache(blocker / "c")
    with pytest.warns(C.CacheWarning, match="cannot write the compile cache") as rec:
        assert c.put(KIND, cache_key("a"), b"x") is False
        assert c.put(KIND, cache_key("b"), b"y") is False
    assert len(rec) == 1
    assert c.get(KIND, cache_key("a")) is None


# --------------------------------------------------------------------- pruning

def _entries_with_mtimes(c, n, size):
    keys = [cache_key("lru", i) for i in range(n)]
    now = time.time()
    for i, k in enumerate(keys):
        c.put(KIND, k, bytes([i]) * size)
        t = now - 1000 + 100 * i                           # keys[0] is the oldest
        os.utime(c.path(KIND, k), (t, t))
    return keys


def test_prune_removes_least_recently_used_first(tmp_path):
    c = DiskCache(tmp_path / "c")
    keys = _entries_with_mtimes(c, 5, 1000)
    entry = os.path.getsize(c.path(KIND, keys[0]))
    assert c.prune(3 * entry) == 2
    assert [c.get(KIND, k) is not None for k in keys] == [False, False, True, True, True]
    assert c.info()["total_bytes"] <= 3 * entry


def test_get_refreshes_lru_time(tmp_path):
    c = DiskCache(tmp_path / "c")
    keys = _entries_with_mtimes(c, 4, 1000)
    entry = os.path.getsize(c.path(KIND, keys[0]))
    assert c.get(KIND, keys[0]) is not None                # the oldest becomes the newest
    c.prune(2 * entry)
    present = [os.path.exists(c.path(KIND, k)) for k in keys]
    assert present == [True, False, False, True]


def test_put_prunes_when_over_max_bytes(tmp_path):
    probe = DiskCache(tmp_path / "probe")
    probe.put(KIND, cache_key("p"), b"z" * 1000)
    entry = os.path.getsize(probe.path(KIND, cache_key("p")))
    c = DiskCache(tmp_path / "c", max_bytes=3 * entry)
    keys = []
    for i in range(6):
        keys.append(cache_key("bounded", i))
        c.put(KIND, keys[-1], bytes([i]) * 1000)
        t = time.time() - 100 + i
        os.utime(c.path(KIND, keys[-1]), (t, t))
        assert c.info()["total_bytes"] <= 3 * entry
    assert [os.path.exists(c.path(KIND, k)) for k in keys] == [False] * 3 + [True] * 3


# ------------------------------------------------------------------------- CLI

def _cli(cache_dir, *args):
    return subprocess.run([sys.executable, "-m", "theanine.cache", *args], capture_output=True,
                          text=True, env=_env(cache_dir), timeout=60)


def test_cli_info_prune_clear(tmp_path):
    d = tmp_path / "c"
    c = DiskCache(d)
    keys = _entries_with_mtimes(c, 3, 600)
    c.put("meta", cache_key("m"), b"m" * 10)
    total = c.info()["total_bytes"]

    r = _cli(d, "info")
    assert r.returncode == 0, r.stderr
    assert str(d) in r.stdout
    assert "entries: 4 (meta: 1, obj: 3)" in r.stdout
    assert f"({total} bytes)" in r.stdout

    r = _cli(d, "prune", "--max-bytes", "1K")
    assert r.returncode == 0, r.stderr
    assert "pruned" in r.stdout
    info = DiskCache(d).info()
    assert info["total_bytes"] <= 1024 and info["n_entries"] < 4
    assert not os.path.exists(c.path(KIND, keys[0]))       # the oldest went first

    r = _cli(d, "clear")
    assert r.returncode == 0, r.stderr
    assert "cleared" in r.stdout and str(d) in r.stdout
    assert DiskCache(d).info()["n_entries"] == 0
    assert d.is_dir() and not (d / "v1").exists()


def test_cli_bad_arguments(tmp_path, capsys):
    for argv in (["prune", "--max-bytes", "lots"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as e:
            C.main(["--dir", str(tmp_path), *argv])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not a size: 'lots'" in err and "invalid choice: 'frobnicate'" in err


def test_cli_reports_refused_dir(tmp_path, capsys):
    d = tmp_path / "c"
    DiskCache(d).put(KIND, cache_key("x"), b"x")
    os.chmod(d, 0o777)
    assert C.main(["--dir", str(d), "info"]) == 0
    assert "NOT USED" in capsys.readouterr().out
    assert C.main(["--dir", str(d), "prune"]) == 1


def test_parse_and_format_size():
    assert [C.parse_size(s) for s in ("1K", "500M", "2G", "1GiB", "100", "100B", "1.5k")] == \
        [1024, 500 << 20, 2 << 30, 1 << 30, 100, 100, 1536]
    with pytest.raises(ValueError):
        C.parse_size("1X")
    assert C.format_size(512) == "512 B" and C.format_size(1536) == "1.5 KiB"


def test_the_theanine_command_maintains_the_cache(tmp_path, capsys):
    from theanine.compat.__main__ import cli
    from theanine.compile.cache import DiskCache
    cache = DiskCache(str(tmp_path))
    cache.put("llvm", "ab" * 32, b"payload")
    assert cli(["cache", "--dir", str(tmp_path), "info"]) == 0
    assert "entries: 1" in capsys.readouterr().out
    assert cli(["cache", "--dir", str(tmp_path), "clear"]) == 0
    assert cache.get("llvm", "ab" * 32) is None
