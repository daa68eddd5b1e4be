"""theanine.function: from symbolic inputs and outputs to a callable."""

from __future__ import annotations

import numpy as np

from theanine.compile.executor import GraphRunner
from theanine.compile.graph_cache import FunctionKey
from theanine.compile.sharedvalue import SharedVariable
from theanine.configparser import config
from theanine.graph.basic import Constant, Variable
from theanine.graph.fg import FunctionGraph
from theanine.graph.traversal import ancestors, clone_graph, graph_inputs
from theanine.rewriting import NATIVE_MODES

MODES = {
    "py": "the NumPy reference executor, with all rewrites",
    "llvm": "native kernels through LLVM for fused elementwise nodes; other nodes via perform",
    "c": "the same kernels rendered as C and built with the system compiler",
    "cuda": "the same kernels as CUDA C on an NVIDIA GPU (nvcc, cuBLAS); other nodes via perform",
    "FAST_RUN": "Theano's name for the optimising native mode: 'llvm'",
    "FAST_COMPILE": "the reference executor with only merge and constant folding",
}


class In:
    """An input with options: a default ``value``, a keyword ``name``, ``borrow`` (no copy)."""

    def __init__(self, variable, name=None, value=None, borrow=False, mutable=False,
                 allow_downcast=None):
        if not isinstance(variable, Variable):
            raise TypeError(f"In: variable must be a symbolic variable, got {type(variable).__name__}")
        self.variable = variable
        self.name = name if name is not None else variable.name
        self.value = value
        self.borrow = borrow
        self.allow_downcast = allow_downcast


class Out:
    """An output with options: ``borrow=True`` allows returning internal storage without a copy."""

    def __init__(self, variable, borrow=False):
        self.variable = variable
        self.borrow = borrow


def _normalize_updates(updates):
    if updates is None:
        return []
    if isinstance(updates, dict):
        pairs = list(updates.items())
    else:
        pairs = [tuple(p) for p in updates]
    from theanine.tensor.variable import as_tensor_variable
    out = []
    seen = set()
    for k, (var, expr) in enumerate(pairs):
        if not isinstance(var, SharedVariable):
            raise TypeError(f"function: updates[{k}] targets {var}, which is not a shared variable "
                            "(only theanine.shared variables can be updated)")
        if var in seen:
            raise ValueError(f"function: shared variable {var} has more than one update")
        seen.add(var)
        expr = as_tensor_variable(expr)
        if expr.type != var.type:
            if expr.dtype != var.dtype:
                raise TypeError(
                    f"function: the update of {var} has dtype {expr.dtype}, but {var} is {var.dtype}; "
                    f"cast the update expression, e.g. T.cast(expr, '{var.dtype}')")
            if expr.ndim != var.ndim:
                raise TypeError(f"function: the update of {var} has {expr.ndim} dimensions, "
                                f"but {var} has {var.ndim}")
            converted = var.type.convert_variable(expr)
            if converted is None:
                from theanine.tensor.shape import specify_shape
                converted = specify_shape(expr, var.type.shape)
            expr = converted
        out.append((var, expr))
    return out


def _normalize_givens(givens):
    if givens is None:
        return {}
    pairs = list(givens.items()) if isinstance(givens, dict) else [tuple(p) for p in givens]
    from theanine.tensor.variable import as_tensor_variable
    out = {}
    for old, new in pairs:
        if not isinstance(old, Variable):
            raise TypeError(f"function: givens keys must be symbolic variables, got {old!r}")
        new = as_tensor_variable(new) if not isinstance(new, Variable) else new
        if old.type != new.type:
            if getattr(old, "dtype", None) != getattr(new, "dtype", None) or old.ndim != new.ndim:
                raise TypeError(f"function: givens replaces {old} ({old.type}) with {new} ({new.type}); "
                                "the dtype and number of dimensions must match")
        out[old] = new
    return out


class Function:
    """A compiled function. Call it with input values, by position or by input name.

    Attributes: ``graph`` (the rewritten FunctionGraph), ``rewrite_log`` (which
    rewrite replaced what), ``inputs``/``outputs`` (the symbolic ones),
    ``trust_input`` (skip input checks when True), ``mode``.

    ``_graph_cache`` (for debugging and tests) says how the second-level compile cache
    (``compile/graph_cache.py``) served this function: ``"hit"`` (the rewritten graph and
    rendered program came from the cache), ``"stored"`` (a miss, now stored), ``"not
    stored (why)"``, or ``"off: why"`` (the function is not keyed: mode, ops, rewrites).
    """

    def __init__(self, inputs, outputs, mode, updates, givens, no_default_updates, name,
                 allow_input_downcast, on_unused_input):
        self.name = name
        self.mode = mode
        self.trust_input = False
        self.allow_input_downcast = allow_input_downcast
        self._ins = [i if isinstance(i, In) else In(i) for i in inputs]
        in_vars = [i.variable for i in self._ins]
        for k, v in enumerate(in_vars):
            if isinstance(v, Constant):
                raise TypeError(f"function: input {k} ({v}) is a constant; inputs must be variables")
            if isinstance(v, SharedVariable):
                raise TypeError(f"function: input {k} is the shared variable {v}; shared variables are "
                                "implicit inputs — use givens to substitute a value for one")
            if in_vars.index(v) != k:
                raise ValueError(f"function: the variable {v} is given twice in the inputs list")
        self._single = not isinstance(outputs, (list, tuple))
        outs = [outputs] if self._single else list(outputs)
        self._outs = [o if isinstance(o, Out) else Out(o) for o in outs]
        from theanine.tensor.variable import as_tensor_variable
        out_vars = [as_tensor_variable(o.variable) for o in self._outs]
        updates = _normalize_updates(updates)
        givens = _normalize_givens(givens)
        for v in givens:
            if v in in_vars:
                raise ValueError(f"function: {v} is both an input and replaced in givens")

        # Default updates of shared variables the graph uses.
        explicit = {u for u, _ in updates}
        if no_default_updates is not True:
            skip = set(no_default_updates or [])
            roots = out_vars + [e for _, e in updates]
            for v in ancestors(roots):
                if isinstance(v, SharedVariable) and v.default_update is not None \
                        and v not in explicit and v not in skip:
                    updates.append((v, as_tensor_variable(v.default_update)))
                    explicit.add(v)

        # Copy the graph, substituting givens and cutting at the inputs.
        roots = out_vars + [e for _, e in updates]
        _, new_roots, memo = clone_graph(in_vars, roots, replace=givens, copy_inputs=True)
        new_inputs = [memo[v] for v in in_vars]
        used = set(ancestors(new_roots, blockers=new_inputs))
        for k, (v, nv) in enumerate(zip(in_vars, new_inputs)):
            if nv not in used and on_unused_input != "ignore":
                msg = (f"function: input {k} ({v}) is not used to compute the outputs; pass "
                       f"on_unused_input='ignore' (or 'warn') to allow this")
                if on_unused_input == "raise":
                    raise ValueError(msg)
                import warnings
                warnings.warn(msg, stacklevel=3)
        shared_inputs = [v for v in graph_inputs(new_roots, blockers=new_inputs)
                         if isinstance(v, SharedVariable)]
        for v, _ in updates:
            if v not in shared_inputs:
                shared_inputs.append(v)
        self._shared = shared_inputs
        self._update_targets = [v for v, _ in updates]
        self._n_out = len(out_vars)
        self._n_args = len(self._ins)
        self._build(new_inputs + shared_inputs, new_roots)
        self._names = {}
        for k, i in enumerate(self._ins):
            if i.name:
                self._names.setdefault(i.name, k)
        self.inputs = in_vars
        self.outputs = out_vars

    def _build(self, inputs, outputs):
        """Rewrite the graph from ``inputs`` (the arguments, then the shared variables) to
        ``outputs`` (the results, then the updates) and link it; or, when an earlier process
        stored them in the second-level compile cache (``graph_cache``), take the rewritten
        graph and its rendered program from there. A miss stores them."""
        from theanine.rewriting import rewrite_graph
        position = {id(v): k for k, v in enumerate(inputs)}
        key = FunctionKey.of(self.mode, inputs, outputs, self._n_args,
                             [position[id(v)] for v in self._update_targets],
                             [o.borrow for o in self._outs], self._single)
        cached = key.load() if isinstance(key, FunctionKey) else None
        if cached is not None:
            self.graph, rendered = cached
            self._link(rendered)
            self._graph_cache = "hit"
        else:
            self.graph = rewrite_graph(FunctionGraph(inputs, outputs), self.mode)
            self._link()
            self._graph_cache = f"off: {key}" if not isinstance(key, FunctionKey) else \
                key.store(self.graph, self._native.rendered)
        self.rewrite_log = self.graph.rewrite_log

    def _link(self, rendered=None):
        """Build what runs the rewritten graph: native code for its mode (from the disk cache
        when it is there; ``rendered``: the graph's RenderedProgram, when it is known), the
        node-by-node runner and the whole-function entry."""
        mode = self.mode
        self._native = None
        interface = self._interface()
        if mode == "cuda":
            from theanine.compile.cuda_program import CudaProgram
            self._native = CudaProgram(self.graph, interface=interface)
        elif mode in NATIVE_MODES:
            from theanine.compile.native import NativeProgram
            self._native = NativeProgram(self.graph, target=mode, interface=interface, rendered=rendered)
        self._runner = None
        self._entry = self._native.entry if self._native is not None else None
        if self._entry is not None and any(self._outs[k].borrow for k in self._native.copied_outputs
                                            if k < len(self._outs)):
            self._entry = None  # a borrowed view must come back as a view
        if self._entry is None or mode != "cuda":
            self._node_runner()   # (mode 'cuda' builds it when its entry first hands a call over)

    def _node_runner(self) -> GraphRunner:
        """The runner of the node-by-node path (built on first use)."""
        if self._runner is None:
            thunks = dict(self._native.thunks) if self._native is not None else {}
            for node in self.graph.toposort():  # ops holding inner graphs compile them for this mode
                make_thunk = getattr(node.op, "make_thunk", None)
                if make_thunk is not None and node not in thunks:
                    thunks[node] = make_thunk(node, self.mode)
            self._runner = GraphRunner(self.graph.inputs, self.graph.outputs, self.graph.toposort(), thunks)
        return self._runner

    def _interface(self) -> dict:
        """How the native entries call the graph (see NativeProgram)."""
        return {"n_args": len(self._ins), "containers": [v.container for v in self._shared],
                "n_outputs": self._n_out, "updated": [v.container for v in self._update_targets],
                "single": self._single}

    def __getstate__(self):
        """Everything but the native code, which ``__setstate__`` takes from the disk cache."""
        state = dict(self.__dict__)
        for key in ("_native", "_runner", "_entry"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._link()

    @property
    def kernels(self) -> list:
        """The native kernels of this function (empty for mode 'py'), each with its fused ops."""
        return list(self._native.kernels) if self._native is not None else []

    @property
    def fallbacks(self) -> list:
        """The nodes that run through their Python ``perform`` (every node in mode 'py').

        When the whole function runs as one native entry (``f.entry``), these are the
        nodes the entry calls back into Python for (none, for every op with a native
        step). A call the entry hands over (arguments it does not take, such as lists or
        arrays of another dtype, or shapes it cannot handle natively, such as size-1
        dimensions broadcast at run time in a gradient) runs node by node with the
        fallbacks of that path."""
        if self._native is None:
            return self.graph.toposort()
        if self._entry is not None:
            return list(self._native.host_nodes)
        return list(self._native.fallbacks)

    @property
    def entry(self):
        """The native builtin running the whole function in one call, or None (then
        ``f.why_no_entry`` says why): calling ``f`` calls it first."""
        return self._entry

    @property
    def why_no_entry(self) -> str | None:
        """Why this function has no whole-function entry (None when it has one)."""
        if self._entry is not None:
            return None
        if self._native is None:
            return f"mode {self.mode!r} runs node by node"
        return self._native.why_no_entry or "a borrowed output is a view of an input"

    def source(self, target="llvm", optimized=False) -> str:
        """Generated code for ``target`` ('llvm', 'c', 'cuda'; 'asm' for the host assembly),
        whatever this function's own mode. ``optimized=True`` gives LLVM IR after its passes."""
        from theanine.codegen import jit
        from theanine.compile.native import NativeProgram
        if target not in ("llvm", "asm", "c", "cuda"):
            raise ValueError(f"source: unknown target {target!r}; expected 'llvm', 'c', 'cuda' or 'asm'")
        llvm_target = target in ("llvm", "asm")
        if self._native is not None and self._native.target == ("llvm" if llvm_target else target):
            text = self._native.source
        elif llvm_target or target == "c":  # kernels and whole-function entry, as that mode builds them
            interface = {"n_args": len(self._ins), "n_outputs": self._n_out, "single": self._single}
            text = NativeProgram(self.graph, "llvm" if llvm_target else target, compile=False,
                                 interface=interface).source
        else:   # the CUDA modules, as mode 'cuda' builds them
            from theanine.compile.cuda_program import CudaProgram
            text = CudaProgram(self.graph, compile=False, interface=self._interface()).source
        if target == "asm":
            return jit.assembly(text)
        return jit.optimized_ir(text) if optimized and target == "llvm" else text

    def _filter(self, k, value):
        spec = self._ins[k]
        var = spec.variable
        allow = spec.allow_downcast if spec.allow_downcast is not None else self.allow_input_downcast
        label = f"input {k} ({var.name})" if var.name else f"input {k}"
        name = f"{self.name or 'function'}: {label}"
        if self._native is not None and self._native.target == "cuda" and _is_device_array(value):
            return _device_input(var.type, value, name)
        return var.type.filter(value, allow_downcast=allow, name=name)

    def __call__(self, *args, **kwargs):
        entry = self._entry
        if entry is not None and not kwargs:
            out = entry(*args)  # checks, runs, stores the updates; NotImplemented: see below
            if out is not NotImplemented:
                return out
            out = self._retry_canonical(entry, args)
            if out is not NotImplemented:
                return out
        n = len(self._ins)
        if len(args) > n:
            raise TypeError(f"{self.name or 'function'}: expected at most {n} arguments, got {len(args)}")
        values = list(args) + [_MISSING] * (n - len(args))
        for key, value in kwargs.items():
            if key == "output_subset":
                raise TypeError("output_subset is not supported")
            k = self._names.get(key)
            if k is None:
                known = ", ".join(sorted(self._names)) or "none (the inputs have no names)"
                raise TypeError(f"{self.name or 'function'}: unknown keyword argument {key!r}; "
                                f"input names: {known}")
            if values[k] is not _MISSING:
                raise TypeError(f"{self.name or 'function'}: input {key!r} given twice")
            values[k] = value
        for k, v in enumerate(values):
            if v is _MISSING:
                if self._ins[k].value is not None:
                    values[k] = self._ins[k].value
                else:
                    name = self._ins[k].name or f"#{k}"
                    raise TypeError(f"{self.name or 'function'}: missing input {name} "
                                    f"(expected {n} arguments, got {len(args) + len(kwargs)})")
        if not self.trust_input:
            values = [self._filter(k, v) for k, v in enumerate(values)]
        shared_values = [s.container[0] for s in self._shared]
        results = self._node_runner()(*values, *shared_values)
        outputs = results[:self._n_out]
        new_values = []
        for var, value in zip(self._update_targets, results[self._n_out:]):
            value = value if not _aliases(value, values, shared_values) else value.copy()
            var.container[0] = value
            new_values.append(value)
        return self._finish(outputs, values, shared_values + new_values)

    def _retry_canonical(self, entry, original):
        """Call ``entry`` again with the arguments it takes only as arrays of their dtype
        (Python numbers and lists, NumPy scalars, other dtypes) converted as the
        node-by-node path converts them (raising its errors), and arrays
        (arguments or shared values) that carried a copy of their dtype object rather than
        NumPy's own, as unpickled arrays do, viewed with NumPy's own: the entry checks
        dtypes by identity. NotImplemented when nothing changed or the entry declines again."""
        args = original
        if len(args) == len(self._ins) and not self.trust_input:
            args = [a if type(a) is np.ndarray and a.dtype == getattr(spec.variable.type, "numpy_dtype", None)
                    else self._filter(k, a) for k, (a, spec) in enumerate(zip(args, self._ins))]
        fixed = [_canonical(a) for a in args]
        changed = any(f is not a for f, a in zip(fixed, original))
        for var in self._shared:
            value = var.container[0]
            canonical = _canonical(value)
            if canonical is not value:
                var.container[0] = canonical
                changed = True
        return entry(*fixed) if changed else NotImplemented

    def _finish(self, outputs, values, shared_values):
        final = []
        for k, (spec, value) in enumerate(zip(self._outs, outputs)):
            if not spec.borrow and (not value.flags.writeable or _aliases(value, values, shared_values)
                                    or _aliases(value, final, [])):
                value = value.copy()
            final.append(value)
        return final[0] if self._single else final

    def copy(self):
        import copy as _copy
        return _copy.copy(self)

    def __repr__(self):
        return f"<theanine.Function {self.name or ''} ({len(self._ins)} inputs, mode={self.mode})>"


_MISSING = object()


def _canonical(value):
    """``value``, viewed with NumPy's own dtype object when it carries an equal copy."""
    if type(value) is np.ndarray and value.dtype.isbuiltin == 1:
        return value
    if type(value) is np.ndarray and value.dtype.kind in "biufc" and value.dtype.isnative:
        own = np.dtype(value.dtype.name)
        if value.dtype == own and value.dtype is not own:
            return value.view(own)
    return value


def _aliases(value, *groups):
    for group in groups:
        for other in group:
            if isinstance(other, np.ndarray) and np.may_share_memory(value, other):
                return True
    return False


def function(inputs, outputs=None, mode=None, updates=None, givens=None,
             no_default_updates=False, accept_inplace=False, name=None, rebuild_strict=True,
             allow_input_downcast=None, profile=None, on_unused_input="raise"):
    """Compile a callable computing ``outputs`` from ``inputs``.

    - ``inputs``: a list of variables (or ``In``); ``outputs``: a variable, or a list
      (entries may be ``Out``), or None for a function that only applies updates.
    - ``updates``: (shared variable, expression) pairs applied after all outputs are computed.
    - ``givens``: {variable: replacement} substituted before compiling.
    - ``mode``: 'llvm' (native, the default ``config.mode``), 'py' (the NumPy reference),
      'FAST_RUN' (= 'llvm'), 'FAST_COMPILE' (reference, few rewrites).
    - ``on_unused_input``: 'raise', 'warn' or 'ignore'.
    """
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"function: inputs must be a list of variables, got {type(inputs).__name__}")
    if on_unused_input not in ("raise", "warn", "ignore"):
        raise ValueError(f"function: on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}")
    mode = mode or config.mode
    if mode not in MODES:
        raise ValueError(f"function: unknown mode {mode!r}; available: {', '.join(MODES)}")
    if mode == "FAST_RUN":
        mode = "llvm"
    if outputs is None:
        outputs = []
    return Function(inputs, outputs, mode, updates, givens, no_default_updates, name,
                    allow_input_downcast, on_unused_input)


def _is_device_array(value) -> bool:
    from theanine.cuda import DeviceArray
    return type(value) is DeviceArray


def _device_input(ttype, value, name):
    """A DeviceArray argument of mode 'cuda', used where it is (no copy): it must have the
    input's dtype, rank and static sizes already."""
    if value.dtype != ttype.numpy_dtype:
        raise TypeError(f"{name}: expected a device array of dtype {ttype.dtype}, got {value.dtype} "
                        "(device arrays are not converted; convert it on the host or in the graph)")
    ttype.check_shape(value.shape, name, "a device array")
    return value
