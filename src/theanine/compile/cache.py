"""The on-disk compile cache: content-addressed, atomic, checked, lock-free, private.

Native back ends store their artifacts (object code, shared libraries, pickled
metadata) here as bytes, under a key that hashes everything that determines
them (rendered source, target, compiler identity, flags): see :func:`cache_key`.

Design, in the spirit of numba and CuPy rather than Theano's locked compile dir:

- *Content-addressed*: ``<dir>/v1/<kind>/<key[:2]>/<key>``. Equal keys mean
  equal content, so two processes writing the same key write the same bytes.
- *Atomic*: an entry is written to a temporary file in its final directory,
  fsync-ed, then ``os.replace``-d into place. Readers see the old file, the new
  file, or nothing, never a torn one. A writer killed mid-way leaves only a
  stray ``.tmp-*`` file, which readers never look at and ``prune``/``clear``
  remove.
- *Checked*: each file starts with a header (magic, format version, a tag of
  the kind of machine that wrote it, payload length, SHA-256 of the payload).
  Anything that does not verify, or was written by another kind of machine
  (another architecture, OS or pointer size: a cache directory shared or
  copied between machines), is a miss, is deleted, and gets rebuilt by the
  caller.
- *No lock*: there is nothing to wait for; the last rename wins.
- *Private*: directories are 0o700 and files 0o600. A cache directory (or
  entry) writable by group/other or owned by another user is refused with a
  warning, so nobody else can plant code that we would then load and run.

``python -m theanine.cache info|clear|prune`` inspects and maintains the cache.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import warnings

__all__ = ["cache_key", "DiskCache", "CacheWarning", "parse_size", "format_size", "main"]

#: the layout version: the name of the tree under the cache directory
LAYOUT = "v1"
#: the first bytes of every entry file
MAGIC = b"THNC"
#: the version of the entry file format (header layout)
FORMAT_VERSION = 2
# magic, format version, machine tag, payload length, SHA-256 of the payload
_HEADER = struct.Struct("<4sHHQ32s")
#: prefix of the temporary files that become entries by renaming
TMP_PREFIX = ".tmp-"
#: stray temporary files older than this (seconds) are removed by ``prune``
TMP_GRACE_S = 3600.0
#: default byte budget of ``python -m theanine.cache prune``
DEFAULT_PRUNE_BYTES = 1 << 30

_KIND_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_KEY_RE = re.compile(r"^[0-9a-f]{8,128}$")
_HAS_UIDS = hasattr(os, "getuid")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class CacheWarning(UserWarning):
    """Warned when the cache cannot be used (unsafe or unwritable directory)."""


# --------------------------------------------------------------------------- keys

def _encode(part, out: list) -> None:
    # every part is tag + length + bytes, so concatenations cannot collide
    if isinstance(part, bool):
        data, tag = (b"1" if part else b"0"), b"?"
    elif isinstance(part, int):
        data, tag = str(part).encode(), b"i"
    elif isinstance(part, str):
        data, tag = part.encode("utf-8", "surrogatepass"), b"s"
    elif isinstance(part, (bytes, bytearray, memoryview)):
        data, tag = bytes(part), b"b"
    elif isinstance(part, float):
        data, tag = repr(part).encode(), b"f"
    elif part is None:
        data, tag = b"", b"n"
    elif isinstance(part, (tuple, list)):
        out.append(b"t" + len(part).to_bytes(8, "little"))
        for p in part:
            _encode(p, out)
        return
    else:
        raise TypeError(f"cache_key: cannot hash a {type(part).__name__} "
                        f"(use str, bytes, int, float, bool, None or tuples of them)")
    out.append(tag + len(data).to_bytes(8, "little") + data)


def cache_key(*parts) -> str:
    """SHA-256 hex digest of ``parts`` (str, bytes, int, float, bool, None, tuples).

    Each part is encoded with a type tag and its length, so ``("ab", "c")``,
    ``("a", "bc")``, ``("abc",)`` and ``(b"abc",)`` all give different keys.
    """
    out: list = [b"theanine-cache-key\x00" + str(len(parts)).encode() + b"\x00"]
    for p in parts:
        _encode(p, out)
    return hashlib.sha256(b"".join(out)).hexdigest()


# ------------------------------------------------------------------ entry files

def machine_tag() -> int:
    """16 bits naming this kind of machine (OS, architecture, byte order, pointer size):
    entries written by another kind are not loaded here."""
    import platform
    ident = f"{sys.platform}|{platform.machine()}|{sys.byteorder}|{struct.calcsize('P')}"
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:2], "little")


#: the tag written into, and required of, every entry on this machine
MACHINE_TAG = machine_tag()


def _pack(payload: bytes, tag: int | None = None) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, MACHINE_TAG if tag is None else tag, len(payload),
                        hashlib.sha256(payload).digest()) + payload


def _unpack(blob: bytes):
    """The payload of an entry file's bytes, or None when it does not verify (or was
    written by another kind of machine)."""
    if len(blob) < _HEADER.size:
        return None
    magic, version, tag, length, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC or version != FORMAT_VERSION or tag != MACHINE_TAG \
            or length != len(blob) - _HEADER.size:
        return None
    payload = blob[_HEADER.size:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


def _write_atomic(path: str, blob: bytes, _before_rename=None) -> None:
    """Write ``blob`` to ``path`` atomically: temp file in the same dir, fsync, rename.

    ``_before_rename(tmp_path)`` is a test hook called after the temporary
    file is complete and before the rename. Raises OSError on failure, after
    removing its temporary file.
    """
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=os.path.dirname(path))
    try:
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if _before_rename is not None:
            _before_rename(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _unsafe_reason(st) -> str | None:
    """Why a file/dir with this stat must not be trusted, or None."""
    if _HAS_UIDS and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return (f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):#o}); "
                f"fix with chmod go-w")
    return None


# ------------------------------------------------------------------- the cache

class DiskCache:
    """A directory of compiled artifacts, keyed by :func:`cache_key` digests.

    ``directory`` defaults to ``theanine.config.cache_dir`` (read now);
    ``max_bytes``, when given, bounds the cache: after each write, ``put`` prunes the
    least recently used entries (whoever wrote them) while the directory holds more.
    ``stats`` counts hits, misses,
    corrupt entries dropped and writes made by this object.
    """

    def __init__(self, directory=None, max_bytes=None):
        if directory is None:
            from theanine.configparser import config
            directory = config.cache_dir
        self.directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.stats = {"hits": 0, "misses": 0, "corrupt": 0, "writes": 0}
        self._refused = None          # reason the cache is not used at all
        self._root_ok = False         # the root exists and was checked
        self._safe_dirs: set = set()  # directories already checked
        self._write_failed = False    # put gave up after a failed write
        self._warned: set = set()

    def __repr__(self):
        return f"DiskCache({self.directory!r}, max_bytes={self.max_bytes})"

    # -- paths and checks

    @property
    def root(self) -> str:
        """The directory holding this layout's entries (``<directory>/v1``)."""
        return os.path.join(self.directory, LAYOUT)

    def path(self, kind: str, key: str) -> str:
        """The file an entry of ``kind`` and ``key`` lives in."""
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise ValueError(f"DiskCache: bad kind {kind!r} (letters, digits, _ . -)")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"DiskCache: bad key {key!r} (expected a lowercase hex digest, "
                             f"see theanine.compile.cache.cache_key)")
        return os.path.join(self.root, kind, key[:2], key)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, CacheWarning, stacklevel=3)

    def _refuse(self, where: str, reason: str) -> None:
        self._refused = f"{where}: {reason}"
        self._warn(f"theanine: not using the compile cache at {self.directory} because "
                   f"{where} is unsafe: {reason}. Compiled code will not be cached.")

    def _check_dir(self, path: str) -> bool:
        """True if ``path`` is a safe directory or does not exist; refuses the cache if unsafe."""
        if path in self._safe_dirs:
            return True
        try:
            st = os.lstat(path)
        except OSError:
            return True   # missing or unreachable: nothing there to trust; writes will fail and warn
        if path == self.directory and stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)   # the configured directory may be a symlink; its target counts
            except OSError as e:
                self._refuse(path, f"it is a dangling link ({e.strerror})")
                return False
        if not stat.S_ISDIR(st.st_mode):
            self._refuse(path, "it is not a directory")
            return False
        reason = _unsafe_reason(st)
        if reason is not None:
            self._refuse(path, reason)
            return False
        self._safe_dirs.add(path)
        return True

    def _usable(self, entry_path: str | None = None) -> bool:
        """Check the directories from the cache dir down to ``entry_path``'s."""
        if self._refused is not None:
            return False
        dirs = [self.directory, self.root]
        if entry_path is not None:
            shard = os.path.dirname(entry_path)
            dirs += [os.path.dirname(shard), shard]
        return all(self._check_dir(d) for d in dirs)

    def _mkdir_private(self, path: str) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return
        os.chmod(path, 0o700)

    def _ensure_dirs(self, entry_path: str) -> None:
        parent = os.path.dirname(self.directory)
        if parent:
            os.makedirs(parent, exist_ok=True)
        shard = os.path.dirname(entry_path)
        for d in (self.directory, self.root, os.path.dirname(shard), shard):
            if d not in self._safe_dirs:
                self._mkdir_private(d)
                if not self._check_dir(d):
                    raise _Refused()

    # -- the two operations

    def get(self, kind: str, key: str):
        """The payload stored under (``kind``, ``key``), or None.

        Only an intact entry is returned: a truncated, garbled, wrong-magic,
        wrong-version or other-machine file is a miss and is deleted. A hit refreshes the
        file's mtime, which ``prune`` uses as the last-use time.
        """
        path = self.path(kind, key)
        if not self._usable(path):
            self.stats["misses"] += 1
            return None
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY)
        except OSError as e:
            if e.errno == errno.ELOOP or os.path.islink(path):
                self._drop(path, None)   # entries are never symlinks: a damaged entry
            self.stats["misses"] += 1
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                reason = "it is not a regular file"
            else:
                reason = _unsafe_reason(st)
            if reason is not None:
                self._warn(f"theanine: ignoring compile cache entry {path} because {reason}.")
                self.stats["misses"] += 1
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                blob = f.read()
        except OSError:
            blob = b""
            st = None
        finally:
            os.close(fd)
        payload = _unpack(blob)
        if payload is None:
            self._drop(path, st)
            self.stats["misses"] += 1
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        self.stats["hits"] += 1
        return payload

    def _drop(self, path: str, st) -> None:
        """Delete a damaged entry (best effort) unless another process already replaced it."""
        self.stats["corrupt"] += 1
        try:
            if st is not None:
                now = os.lstat(path)
                if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                    return
            os.unlink(path)
        except OSError:
            pass

    def put(self, kind: str, key: str, payload, _before_rename=None) -> bool:
        """Store ``payload`` (bytes) under (``kind``, ``key``); True if it was written.

        Never raises for file-system trouble: an unwritable or unsafe cache
        directory gives one warning, and later calls do nothing.
        """
        path = self.path(kind, key)
        payload = bytes(payload)
        if self._write_failed or not self._usable(path):
            return False
        try:
            self._ensure_dirs(path)
            _write_atomic(path, _pack(payload), _before_rename)
        except _Refused:
            return False
        except OSError as e:
            self._write_failed = True
            self._warn(f"theanine: cannot write the compile cache at {self.directory} "
                       f"({e.strerror or e}); going on without caching.")
            return False
        self.stats["writes"] += 1
        if self.max_bytes is not None:
            # measure the directory after every write: other processes write to it too, so
            # a count of this object's own writes would let the total grow past the cap
            self.prune(self.max_bytes)
        return True

    # -- maintenance

    def _walk(self):
        """Yield (kind, path, stat, is_temp) for every file under the layout tree."""
        try:
            kinds = sorted(os.listdir(self.root))
        except OSError:
            return
        for kind in kinds:
            kdir = os.path.join(self.root, kind)
            try:
                shards = sorted(os.listdir(kdir))
            except OSError:
                continue
            for shard in shards:
                sdir = os.path.join(kdir, shard)
                try:
                    names = os.listdir(sdir)
                except OSError:
                    continue
                for name in names:
                    p = os.path.join(sdir, name)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    if name.startswith(TMP_PREFIX):
                        yield kind, p, st, True
                    elif _KEY_RE.match(name) and name[:2] == shard:
                        yield kind, p, st, False

    def _scan(self):
        entries = [(k, p, st) for k, p, st, tmp in self._walk() if not tmp]
        return entries, sum(st.st_size for _, _, st in entries)

    def info(self) -> dict:
        """A summary: ``directory``, ``entries`` per kind, ``n_entries``, ``total_bytes``, ``problem``.

        Temporary files left by interrupted writers are not counted.
        ``problem`` is None when the cache is usable, else why it is refused.
        """
        self._usable()
        per_kind: dict = {}
        total = 0
        for kind, _, st, tmp in self._walk():
            if tmp:
                continue
            per_kind[kind] = per_kind.get(kind, 0) + 1
            total += st.st_size
        return {"directory": self.directory, "entries": per_kind,
                "n_entries": sum(per_kind.values()), "total_bytes": total,
                "problem": self._refused}

    def clear(self) -> int:
        """Remove every entry (the whole ``v1`` tree, temporary files included); returns the count.

        The cache directory itself is kept. A directory owned by another user
        is left alone.
        """
        try:
            st = os.stat(self.directory)
        except OSError:
            return 0
        if _HAS_UIDS and st.st_uid != os.getuid():
            self._warn(f"theanine: not clearing {self.directory}: it is owned by uid "
                       f"{st.st_uid}, not by this user.")
            return 0
        n = sum(1 for *_, tmp in self._walk() if not tmp)
        if os.path.isdir(self.root) and not os.path.islink(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        elif os.path.lexists(self.root):
            try:
                os.unlink(self.root)
            except OSError:
                pass
        self._safe_dirs.clear()
        return n

    def prune(self, max_bytes: int) -> int:
        """Delete least-recently-used entries (oldest mtime first) until at most ``max_bytes`` remain.

        Also removes temporary files older than ``TMP_GRACE_S`` seconds (left
        by killed writers). Returns the number of entries removed.
        """
        if not self._usable():
            return 0
        now = time.time()
        entries = []
        for _, p, st, tmp in self._walk():
            if tmp:
                if now - st.st_mtime > TMP_GRACE_S:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
            else:
                entries.append((st.st_mtime, p, st.st_size))
        total = sum(e[2] for e in entries)
        entries.sort()
        removed = 0
        for _, p, size in entries:
            if total <= max_bytes:
                break
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError:
                continue
            total -= size
            removed += 1
        return removed


class _Refused(Exception):
    """Internal: a directory on the way to an entry turned out unsafe."""


# ------------------------------------------------------------------------- CLI

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Parse a byte count such as ``1048576``, ``500M``, ``1K``, ``2GiB`` or ``1.5g`` (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtKMGT])(?:i?[bB])?|[bB])?\s*", str(text))
    if m is None:
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 500M, 1K, 2G)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def format_size(n: int) -> str:
    """A byte count for humans: ``512 B``, ``1.5 KiB``, ``2.0 GiB``."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024.0
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None) -> int:
    """Command line: ``python -m theanine.cache {info,clear,prune [--max-bytes N]} [--dir DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m theanine.cache",
        description="Inspect and maintain theanine's on-disk compile cache "
                    "(directory: theanine.config.cache_dir, set by THEANINE_FLAGS=cache_dir=...).")
    parser.add_argument("--dir", default=None, help="cache directory (default: config.cache_dir)")
    sub = parser.add_subparsers(dest="command", metavar="{info,clear,prune}")
    sub.required = True
    p_info = sub.add_parser("info", help="print the directory, entries and size")
    p_clear = sub.add_parser("clear", help="remove every entry")
    p_prune = sub.add_parser("prune", help="remove least recently used entries down to a size")
    p_prune.add_argument("--max-bytes", type=_size_arg, default=DEFAULT_PRUNE_BYTES,
                         metavar="SIZE",
                         help="size to prune down to, e.g. 500M, 1G, 1K (default 1G)")
    for p in (p_info, p_clear, p_prune):
        p.add_argument("--dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)   # problems are printed below instead
        cache = DiskCache(args.dir)
        if args.command == "info":
            info = cache.info()
            print(f"theanine compile cache: {info['directory']}")
            if info["problem"]:
                print(f"  NOT USED: {info['problem']}")
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(info["entries"].items()))
            print(f"  entries: {info['n_entries']}" + (f" ({kinds})" if kinds else ""))
            print(f"  size: {format_size(info['total_bytes'])} ({info['total_bytes']} bytes)")
        elif args.command == "clear":
            before = cache.info()["total_bytes"]
            n = cache.clear()
            print(f"cleared {n} entries ({format_size(before)}) from {cache.directory}")
        else:
            n = cache.prune(args.max_bytes)
            info = cache.info()
            if info["problem"]:
                print(f"not pruning {cache.directory}: {info['problem']}", file=sys.stderr)
                return 1
            print(f"pruned {n} entries; {info['n_entries']} entries, "
                  f"{format_size(info['total_bytes'])} left (limit {format_size(args.max_bytes)}) "
                  f"in {cache.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
