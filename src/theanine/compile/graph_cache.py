"""The second level of the compile cache: a function's rewritten graph and rendered program,
keyed by the graph the user gave.

The first level (``DiskCache`` as codegen/jit.py and codegen/cc.py use it) stores object
code under a hash of the rendered source, so a warm process runs no compiler; but it still
rewrites the graph and renders it to learn that source. This level keys the function
itself. ``FunctionKey.of`` hashes the graph as ``theanine.function`` holds it just before
rewriting (givens substituted, default updates added): every node in topological order
with its op (class and the parameters that define it), the positions of its inputs and
the types and names of its outputs; inputs and shared variables by position, type and
name, never by value; constants by type, shape and bytes. With it go how the function is
called (mode, number of arguments and outputs, which shared variable each update writes,
borrowed outputs, a single output), the configuration, the registered rewrites, the Python
and NumPy versions, and a fingerprint of theanine's own source files, so a changed
compiler never reuses an entry.

A hit gives back the rewritten ``FunctionGraph`` and the rendered program
(``native.RenderedProgram``) without rewriting or rendering; the native code then comes
from the first level. Entries are pickles in the ``DiskCache`` (kind ``graph``), which
checks them before they are read (a damaged entry is a miss, deleted, and rebuilt) and
keeps them private to the user. A pickle refers to the graph's inputs by position, so
loading it puts this process's input and shared variables (with their storage) in the
graph; creation traces (``tag.trace``, which error messages quote) refer to positions in
the keyed graph and come back as this process's traces.

A graph that cannot be keyed reliably does not use this level: an op or a type defined
outside theanine, an op with its own notion of equality or holding an inner graph (Scan),
parameters that are not plain data (callables, variables), a rewrite registered outside
theanine. ``FunctionKey.of`` then returns the reason instead of a key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import pickle
import sys

import numpy as np

from theanine.compile.cache import DiskCache, cache_key
from theanine.configparser import config
from theanine.graph.basic import Constant, Op, Type, Variable, new_auto_name, user_frame
from theanine.graph.fg import FunctionGraph
from theanine.graph.traversal import toposort
from theanine.scalar.basic import ScalarOp

__all__ = ["FunctionKey", "KIND", "MODES", "library_fingerprint"]

#: the DiskCache kind of second-level entries
KIND = "graph"
#: the version of the key's and the payload's layout
FORMAT = 1
#: the modes whose functions use this level
MODES = ("llvm", "c")

_PLAIN = (type(None), bool, int, float, str)


class Unkeyable(Exception):
    """Part of a graph has no reliable key; the message says which."""


def _ours(cls) -> bool:
    module = getattr(cls, "__module__", None) or ""
    return module == "theanine" or module.startswith("theanine.")


def _plain(value) -> bool:
    """Whether ``value`` is None, a bool, int, float or str, or a tuple of such values."""
    return type(value) in _PLAIN or (type(value) is tuple and all(_plain(v) for v in value))


def _extras(obj, props) -> tuple:
    """The plain instance attributes of ``obj`` besides ``props`` (names, derived tuples),
    sorted; other attributes (NumPy functions, caches) follow from the class and props."""
    return tuple((k, v) for k, v in sorted(getattr(obj, "__dict__", {}).items())
                 if k not in props and k != "_cached_hash" and _plain(v))


def _array(a) -> tuple:
    dtype = a.dtype
    if dtype.hasobject:
        raise Unkeyable("an array of Python objects")
    kind = dtype.str if dtype.names is None and dtype.subdtype is None else repr(dtype.descr)
    return ("array", kind, a.shape, hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())


class _Encoder:
    """Graph parts as nested tuples of str, int, float, bool and None, whose ``repr`` is
    canonical; Unkeyable for anything else."""

    def __init__(self):
        self._ops = {}    # id -> key, for the ops of one graph (alive meanwhile)
        self._types = {}  # type -> key (types are values: equal types, one key)

    def value(self, x):
        t = type(x)
        if t in _PLAIN:
            return x
        if t is tuple or t is list:
            return (t.__name__,) + tuple(self.value(v) for v in x)
        if t is dict:
            return ("dict",) + tuple(sorted(((self.value(k), self.value(v)) for k, v in x.items()),
                                            key=repr))
        if t is set or t is frozenset:
            return ("set",) + tuple(sorted((self.value(v) for v in x), key=repr))
        if t is slice:
            return ("slice", self.value(x.start), self.value(x.stop), self.value(x.step))
        if t is bytes:
            return ("bytes", x.hex())
        if t is np.ndarray:
            return _array(x)
        if isinstance(x, np.generic):
            return ("scalar", x.dtype.str, x.tobytes().hex())
        if isinstance(x, np.dtype):
            return ("dtype", str(x), x.str)
        if isinstance(x, Op):
            return self.op(x)
        if isinstance(x, ScalarOp):
            return self.scalar_op(x)
        if isinstance(x, Type):
            return self.type(x)
        if dataclasses.is_dataclass(x) and _ours(t):
            return ("data", t.__module__, t.__qualname__) + tuple(
                self.value(getattr(x, f.name)) for f in dataclasses.fields(x))
        raise Unkeyable(f"cannot key a {t.__module__}.{t.__qualname__} ({x!r:.80})")

    def op(self, op):
        key = self._ops.get(id(op))
        if key is None:
            cls = type(op)
            if not _ours(cls):
                raise Unkeyable(f"the op {op} is defined outside theanine "
                                f"({cls.__module__}.{cls.__qualname__})")
            if cls.__eq__ is not Op.__eq__ or cls.__hash__ is not Op.__hash__:
                raise Unkeyable(f"the op {op} defines its own equality")
            if getattr(op, "make_thunk", None) is not None:
                raise Unkeyable(f"the op {op} holds an inner graph")
            key = self._ops[id(op)] = ("op", cls.__module__, cls.__qualname__,
                                       self.value(op._props()), _extras(op, cls.__props__))
        return key

    def scalar_op(self, op):
        cls = type(op)
        if not _ours(cls):
            raise Unkeyable(f"the scalar op {op} is defined outside theanine "
                            f"({cls.__module__}.{cls.__qualname__})")
        if cls.__eq__ is not ScalarOp.__eq__ or cls.__hash__ is not ScalarOp.__hash__:
            raise Unkeyable(f"the scalar op {op} defines its own equality")
        return ("scalar_op", cls.__module__, cls.__qualname__, self.value(op._params()),
                _extras(op, ()))

    def type(self, t):
        key = self._types.get(t)
        if key is None:
            cls = type(t)
            if not _ours(cls):
                raise Unkeyable(f"the type {t} is defined outside theanine")
            key = self._types[t] = ("type", cls.__module__, cls.__qualname__,
                                    self.value(dict(vars(t))))
        return key


def _trace(x):
    return getattr(getattr(x, "tag", None), "trace", None)


def _structure(inputs, outputs) -> tuple:
    """(a canonical description of the graph from ``inputs`` to ``outputs``, the creation
    traces of its inputs, nodes, node outputs and constants in the order described)."""
    enc = _Encoder()
    refs, traces, parts = {}, [], []
    for k, v in enumerate(inputs):
        cls = type(v)
        refs[id(v)] = ("in", k)
        parts.append((cls.__module__, cls.__qualname__, enc.type(v.type), v.name))
        traces.append(_trace(v))

    def ref(v):
        r = refs.get(id(v))
        if r is None:
            if not isinstance(v, Constant) or not _ours(type(v)):
                raise Unkeyable(f"{v} is neither an input nor a constant")
            r = refs[id(v)] = ("const", len(parts))
            parts.append(("const", type(v).__qualname__, enc.type(v.type), enc.value(v.data), v.name))
            traces.append(_trace(v))
        return r

    for n, node in enumerate(toposort(outputs, blockers=inputs)):
        args = tuple(ref(v) for v in node.inputs)
        outs = []
        for j, v in enumerate(node.outputs):
            refs[id(v)] = (n, j)
            outs.append((type(v).__qualname__, enc.type(v.type), v.name))
        parts.append((enc.op(node.op), args, tuple(outs)))
        traces.append(_trace(node))
        traces.extend(_trace(v) for v in node.outputs)
    parts.append(("outputs",) + tuple(ref(v) for v in outputs))
    return tuple(parts), traces


@functools.cache
def library_fingerprint() -> str:
    """A digest of theanine's Python sources (the package and its code generators): each
    file's path, size and modification time, read once per process. That is how Python
    itself decides whether a module's compiled bytecode is stale; hashing the contents
    instead costs about three times as much (2 ms against 0.7 ms here)."""
    import theanine
    import theanine.codegen
    roots = list(dict.fromkeys([os.path.dirname(theanine.__file__), *theanine.codegen.__path__]))
    files = []
    for r, root in enumerate(roots):
        folders = [(root, "")]
        while folders:
            folder, rel = folders.pop()
            for entry in os.scandir(folder):
                if entry.name.endswith(".py") and entry.is_file():
                    st = entry.stat()
                    files.append((r, rel + entry.name, st.st_size, st.st_mtime_ns))
                elif entry.is_dir() and entry.name != "__pycache__":
                    folders.append((entry.path, rel + entry.name + "/"))
    return hashlib.sha256(repr(sorted(files)).encode()).hexdigest()


def _environment() -> tuple:
    """What, besides theanine's code, the rendered source depends on: the Python and NumPy
    builds, the NumPy field offsets the entries read (the C API addresses in
    ``pyentry.LAYOUT`` differ per process and stay out of the code) and the width of the
    BLAS integers (read for every key: it follows the BLAS in use)."""
    from theanine.codegen import blas, pyentry
    layout = pyentry.LAYOUT
    offsets = None if layout is None else tuple(sorted((k, v) for k, v in layout.items() if k.islower()))
    return (sys.version, np.__version__, offsets, blas.int_bits())


def _settings() -> tuple:
    """The configuration but the cache directory and the default mode (the mode is keyed as given)."""
    return tuple(sorted((k, repr(v)) for k, v in config._values.items() if k not in ("cache_dir", "mode")))


def _rewrites() -> tuple:
    """The registered rewrites; Unkeyable when one comes from outside theanine (its code
    is not in the library fingerprint)."""
    from theanine.rewriting import rewrite_db
    out = []
    for r in rewrite_db.rewrites:
        module = getattr(r.fn, "__module__", None) or ""
        if not (module == "theanine" or module.startswith("theanine.")):
            raise Unkeyable(f"the rewrite {r.name!r} is registered outside theanine ({module})")
        out.append((r.name, tuple(r.tags), module))
    return tuple(out)


class FunctionKey:
    """The second-level key of one function (``key``, a hex digest) and what loading or
    storing its entry needs: this process's graph ``inputs`` and creation ``traces``."""

    def __init__(self, key, inputs, traces):
        self.key = key
        self.inputs = list(inputs)
        self.traces = traces
        self.compile_trace = user_frame()  # what FunctionGraph records as the compile call

    @classmethod
    def of(cls, mode, inputs, outputs, n_args, updated, borrowed, single):
        """The key of the function computing ``outputs`` (its results, then the new values
        of the shared variables at positions ``updated`` of ``inputs``) from ``inputs``
        (``n_args`` arguments, then shared variables); ``borrowed``: the Out borrow flags;
        ``single``: whether it returns its one output itself. A string saying why when the
        function does not use this level."""
        if mode not in MODES:
            return f"mode {mode!r} does not use the graph cache"
        try:
            structure, traces = _structure(inputs, outputs)
            parts = (FORMAT, library_fingerprint(), _environment(), _settings(), _rewrites(), mode,
                     n_args, len(outputs) - len(updated), tuple(updated), tuple(borrowed),
                     bool(single), structure)
        except Unkeyable as exc:
            return str(exc)
        except (RecursionError, TypeError, ValueError, AttributeError) as exc:
            return f"the graph could not be keyed ({type(exc).__name__}: {exc})"
        return cls(cache_key("theanine-function", repr(parts)), inputs, traces)

    def load(self, cache=None):
        """(rewritten FunctionGraph, RenderedProgram) stored under this key, or None."""
        payload = (cache or DiskCache()).get(KIND, self.key)
        if payload is None:
            return None
        from theanine.compile.native import RenderedProgram
        try:
            _, outputs, rewrite_log, phase, rendered = _Unpickler(io.BytesIO(payload), self).load()
            if not isinstance(rendered, RenderedProgram):
                return None
            graph = FunctionGraph(self.inputs, outputs)
        except Exception:  # noqa: BLE001 - an entry this process cannot read is a miss
            return None
        graph.rewrite_log, graph.phase = rewrite_log, phase
        return graph, rendered

    def store(self, graph, rendered, cache=None) -> str:
        """Store ``graph`` (rewritten, over ``inputs``) and its ``rendered`` program;
        'stored', or why not. The graph is stored as its outputs and rewrite log, and the
        FunctionGraph rebuilt on loading: its sets of nodes and variables would pickle in
        an order that differs from process to process, and equal keys should store equal
        bytes. The nodes go first, in topological order, so that pickling never recurses
        along a long chain of nodes (each finds its inputs' nodes already pickled)."""
        buffer = io.BytesIO()
        try:
            _Pickler(buffer, self).dump((graph.toposort(), graph.outputs, graph.rewrite_log,
                                         graph.phase, rendered))
        except Exception as exc:  # noqa: BLE001 - whatever does not pickle is not stored
            return f"not stored ({type(exc).__name__}: {exc})"
        if not (cache or DiskCache()).put(KIND, self.key, buffer.getvalue()):
            return "not stored (the cache directory is not usable)"
        return "stored"


def _canonical_dtype(dtype) -> bool:
    return dtype.kind in "biufc" and dtype.isnative and dtype == np.dtype(dtype.name)


class _Pickler(pickle.Pickler):
    """Pickles a graph with its inputs by position, its creation traces by position in the
    keyed graph, its variables without their process-specific ``auto_name`` (a fresh one is
    given on loading), and NumPy arrays and dtypes such that they load with NumPy's own
    dtype objects (plain pickles give equal copies, which native entries do not take)."""

    def __init__(self, file, fkey):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._inputs = {id(v): k for k, v in enumerate(fkey.inputs)}
        self._traces = {}
        for k, t in [(-1, fkey.compile_trace)] + list(enumerate(fkey.traces)):
            if _is_trace(t):
                self._traces[t] = k

    def persistent_id(self, obj):
        k = self._inputs.get(id(obj))
        if k is not None:
            return ("input", k)
        t = type(obj)
        if t is tuple:
            k = self._traces.get(obj) if _is_trace(obj) else None
            return None if k is None else ("trace", k)
        if t is np.ndarray and _canonical_dtype(obj.dtype):
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
            return ("array", obj.dtype.name, obj.shape, order, obj.flags.writeable,
                    obj.tobytes(order=order))
        if isinstance(obj, np.dtype) and _canonical_dtype(obj):
            return ("dtype", obj.name)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Variable) and type(obj).__reduce_ex__ is object.__reduce_ex__:
            state = dict(obj.__dict__)
            state.pop("auto_name", None)
            return _new_variable, (type(obj),), state
        return NotImplemented


def _new_variable(cls):
    """An empty ``cls`` with a fresh ``auto_name`` (unpickling sets the rest)."""
    variable = cls.__new__(cls)
    variable.auto_name = new_auto_name()
    return variable


def _is_trace(t) -> bool:
    return (type(t) is tuple and len(t) == 3 and type(t[0]) is str and type(t[1]) is int
            and type(t[2]) is str)


class _Unpickler(pickle.Unpickler):
    """Loads what ``_Pickler`` wrote, with the inputs and traces of ``fkey``."""

    def __init__(self, file, fkey):
        super().__init__(file)
        self._fkey = fkey

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "input":
            return self._fkey.inputs[pid[1]]
        if kind == "trace":
            return self._fkey.compile_trace if pid[1] == -1 else self._fkey.traces[pid[1]]
        if kind == "array":
            _, name, shape, order, writeable, data = pid
            array = np.frombuffer(data, dtype=np.dtype(name)).reshape(shape, order=order).copy(order=order)
            array.flags.writeable = writeable
            return array
        if kind == "dtype":
            return np.dtype(pid[1])
        raise pickle.UnpicklingError(f"graph cache: unknown persistent id {kind!r}")
