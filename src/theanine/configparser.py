"""theanine.config: global settings, overridable by THEANINE_FLAGS.

``THEANINE_FLAGS="floatX=float32,mode=py,cache_dir=/some/dir"`` sets values at
import time; code can assign attributes (``theanine.config.floatX = "float32"``)
or use ``with config.change(floatX="float32"): ...``.
"""

from __future__ import annotations

import contextlib
import os

_VALID = {
    "floatX": ("float64", "float32", "float16"),
    "mode": ("llvm", "c", "py", "FAST_COMPILE", "FAST_RUN"),
    "malloc_tuning": ("on", "off"),
    "shared_libraries": ("on", "off"),
}


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "theanine")


class Config:
    """Holds theanine's settings; each attribute is documented in ``describe()``."""

    _docs = {
        "floatX": "default float dtype of T.scalar/vector/matrix... and of Python floats",
        "mode": "default compilation mode of theanine.function",
        "cache_dir": "directory of the on-disk compile cache",
        "cxx": "C compiler command used by the C back end",
        "cflags": "flags passed to the C compiler",
        "compute_test_value": "unused; accepted for compatibility with Theano scripts",
        "malloc_tuning": "'on': when native code first loads, glibc's malloc keeps freed memory "
                         "for reuse and large results reuse dead results' blocks (see theanine.compile.memory); "
                         "'off': neither",
        "shared_libraries": "'on': the LLVM back end's object code is also linked into shared libraries "
                            "in the cache, which later processes load without LLVM "
                            "(see theanine.codegen.shared_lib); 'off': every process uses the JIT",
    }

    def __init__(self):
        object.__setattr__(self, "_values", {
            "floatX": "float64",
            "mode": "llvm",
            "cache_dir": _default_cache_dir(),
            "cxx": "cc",
            "cflags": "-O3 -march=native",
            "compute_test_value": "off",
            "malloc_tuning": "on",
            "shared_libraries": "on",
        })
        self._apply_flags(os.environ.get("THEANINE_FLAGS", ""))

    def _apply_flags(self, flags: str):
        for item in flags.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"THEANINE_FLAGS: expected name=value, got {item!r}")
            name, value = (s.strip() for s in item.split("=", 1))
            setattr(self, name, value)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"theanine.config has no setting {name!r}; "
                             f"known: {', '.join(sorted(values))}")

    def __setattr__(self, name, value):
        if name not in self._values:
            raise AttributeError(f"theanine.config has no setting {name!r}; "
                                 f"known: {', '.join(sorted(self._values))}")
        if name in _VALID and value not in _VALID[name]:
            raise ValueError(f"theanine.config.{name}: expected one of {_VALID[name]}, got {value!r}")
        self._values[name] = value

    @contextlib.contextmanager
    def change(self, **settings):
        """Temporarily change settings inside a ``with`` block."""
        old = {k: getattr(self, k) for k in settings}
        try:
            for k, v in settings.items():
                setattr(self, k, v)
            yield self
        finally:
            for k, v in old.items():
                self._values[k] = v

    def describe(self) -> str:
        """One line per setting: name = value  # meaning."""
        return "\n".join(f"{k} = {v!r}  # {self._docs.get(k, '')}" for k, v in self._values.items())

    def __repr__(self):
        return f"Config({self._values})"


config = Config()
