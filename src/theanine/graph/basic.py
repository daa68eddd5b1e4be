"""The graph's building blocks: Type, Variable, Constant, Apply and Op.

A graph is a bipartite DAG: ``Variable`` nodes are produced by ``Apply`` nodes
(``var.owner``), and each ``Apply`` applies one ``Op`` to input variables.
Ops declare their parameters in ``__props__``; equality and hashing derive
from them, which is what lets the merge rewrite (CSE) recognise identical
computations.
"""

from __future__ import annotations

import itertools
import os
import sys
import types
from typing import Any, Sequence

_ids = itertools.count()


def new_auto_name() -> str:
    """A name no other variable of this process has (``_v<n>``), for unnamed variables."""
    return f"_v{next(_ids)}"


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_inside_package: dict[str, bool] = {}


def user_frame():
    """Return (filename, lineno, function) of the innermost frame outside theanine."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = _inside_package.get(filename)
        if inside is None:
            inside = _inside_package[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR)
        if not inside:
            return (filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


def format_trace(trace) -> str:
    """Render a creation trace as 'file:line in function'."""
    if not trace:
        return "<unknown location>"
    filename, lineno, func = trace
    return f"{filename}:{lineno} in {func}"


class Type:
    """The type of a Variable: says which runtime values it may hold.

    Subclasses are immutable values: they implement ``__eq__``/``__hash__`` and
    ``filter(value, strict=False, allow_downcast=None)``, which returns the
    value converted to this type or raises TypeError.
    """

    def filter(self, value, strict=False, allow_downcast=None):
        raise NotImplementedError(f"{type(self).__name__}.filter")

    def make_variable(self, name=None) -> "Variable":
        """A fresh Variable of this type."""
        return Variable(self, name=name)

    def __call__(self, name=None) -> "Variable":
        return self.make_variable(name)

    def is_valid_value(self, value) -> bool:
        try:
            self.filter(value, strict=True)
            return True
        except (TypeError, ValueError):
            return False


class Variable:
    """A symbolic value in a graph.

    ``owner`` is the Apply that computes it (None for graph inputs), ``index``
    its position in ``owner.outputs``. ``tag.trace`` records where in user code
    it was created, so errors can point back there.
    """

    def __init__(self, type: Type, owner: "Apply | None" = None, index: int | None = None,
                 name: str | None = None):
        if not isinstance(type, Type):
            raise TypeError(f"Variable: 'type' must be a Type, got {type!r}")
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.auto_name = new_auto_name()
        self.tag = types.SimpleNamespace(trace=user_frame())

    def __str__(self):
        if self.name is not None:
            return self.name
        if self.owner is not None:
            op = self.owner.op
            if len(self.owner.outputs) == 1:
                return f"{op}.0"
            return f"{op}.{self.index}"
        return f"<{self.type}>"

    def __repr__(self):
        return str(self)

    def clone(self) -> "Variable":
        """A new, ownerless Variable with the same type, name and tag."""
        cp = type(self).__new__(type(self))
        cp.__dict__.update(self.__dict__)
        cp.owner = None
        cp.index = None
        cp.auto_name = new_auto_name()
        cp.tag = types.SimpleNamespace(**vars(self.tag))
        return cp

    def get_parents(self):
        return [self.owner] if self.owner is not None else []

    def eval(self, inputs_to_values=None, mode=None):
        """Compile and evaluate this variable, given a dict {input variable: value}."""
        from theanine.compile.function import function

        inputs_to_values = inputs_to_values or {}
        inputs = list(inputs_to_values)
        key = (tuple(inputs), mode)
        cache = self.__dict__.setdefault("_eval_cache", {})
        if key not in cache:
            cache[key] = function(inputs, self, mode=mode, on_unused_input="ignore")
        return cache[key](*[inputs_to_values[i] for i in inputs])


class Constant(Variable):
    """A Variable with a fixed value (``data``)."""

    def __init__(self, type: Type, data, name: str | None = None):
        super().__init__(type, None, None, name)
        self.data = type.filter(data)

    def signature(self):
        """A hashable key; constants with equal signatures are merged."""
        return (self.type, self.data)

    def __str__(self):
        if self.name is not None:
            return self.name
        text = repr(self.data)
        return text if len(text) < 40 else f"Constant{{{self.type}}}"

    def clone(self):
        return self

    def get_parents(self):
        return []


class Apply:
    """One node of the graph: ``op`` applied to ``inputs``, giving ``outputs``."""

    def __init__(self, op: "Op", inputs: Sequence[Variable], outputs: Sequence[Variable]):
        self.op = op
        self.inputs = list(inputs)
        for i, inp in enumerate(self.inputs):
            if not isinstance(inp, Variable):
                raise TypeError(f"Apply({op}): input {i} must be a Variable, got {type(inp).__name__}")
        self.outputs = []
        for i, out in enumerate(outputs):
            if not isinstance(out, Variable):
                raise TypeError(f"Apply({op}): output {i} must be a Variable, got {type(out).__name__}")
            if out.owner is None:
                out.owner, out.index = self, i
            elif out.owner is not self or out.index != i:
                raise ValueError(f"Apply({op}): output {i} already belongs to another node")
            self.outputs.append(out)
        self.tag = types.SimpleNamespace(trace=user_frame())

    @property
    def out(self) -> Variable:
        """The default output (the only one, or the op's ``default_output``)."""
        do = getattr(self.op, "default_output", None)
        if do is not None:
            return self.outputs[do]
        if len(self.outputs) != 1:
            raise AttributeError(f"{self.op} has {len(self.outputs)} outputs; pick one")
        return self.outputs[0]

    def clone_with_new_inputs(self, inputs: Sequence[Variable], strict=True) -> "Apply":
        """A copy of this node on new inputs (types re-inferred unless strict and unchanged)."""
        if all(a is b for a, b in zip(inputs, self.inputs)):
            return self
        if strict and all(a.type == b.type for a, b in zip(inputs, self.inputs)):
            outs = [o.type.make_variable(o.name) for o in self.outputs]
            for new, old in zip(outs, self.outputs):
                new.tag = types.SimpleNamespace(**vars(old.tag))
            node = Apply(self.op, inputs, outs)
        else:
            node = self.op.make_node(*inputs)
            for new, old in zip(node.outputs, self.outputs):
                new.name = old.name
                new.tag = types.SimpleNamespace(**vars(old.tag))
        node.tag = types.SimpleNamespace(**vars(self.tag))
        return node

    def __str__(self):
        return f"{self.op}({', '.join(map(str, self.inputs))})"

    __repr__ = __str__

    @property
    def nin(self):
        return len(self.inputs)

    @property
    def nout(self):
        return len(self.outputs)


class Op:
    """An operation. Subclass it, declare ``__props__`` and implement:

    - ``make_node(*inputs) -> Apply`` (type inference; raise early, clear errors)
    - ``perform(node, inputs, output_storage)`` (NumPy reference; store results in
      ``output_storage[i][0]``)
    - ``grad(inputs, output_grads) -> list`` (symbolic gradient), optional
    - ``infer_shape(fgraph, node, input_shapes) -> list of shape tuples``, optional
    """

    __props__: tuple[str, ...] = ()
    default_output: int | None = None

    def _props(self):
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other):
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self):
        h = self.__dict__.get("_cached_hash")
        if h is None:  # ops are immutable values: hash once
            h = self.__dict__["_cached_hash"] = hash((type(self), self._props()))
        return h

    def __getstate__(self):
        """The op's attributes for pickling and copying, without its cached hash: that
        hash differs from process to process (it hashes the class and strings)."""
        state = dict(self.__dict__)
        state.pop("_cached_hash", None)
        return state

    def __str__(self):
        name = type(self).__name__
        if self.__props__:
            return f"{name}{{{', '.join(f'{p}={getattr(self, p)!r}' for p in self.__props__)}}}"
        return name

    __repr__ = __str__

    def make_node(self, *inputs) -> Apply:
        raise NotImplementedError(f"{type(self).__name__}.make_node")

    def __call__(self, *inputs, **kwargs):
        node = self.make_node(*inputs, **kwargs)
        if self.default_output is not None:
            return node.outputs[self.default_output]
        if len(node.outputs) == 1:
            return node.outputs[0]
        return node.outputs

    def perform(self, node, inputs, output_storage):
        raise NotImplementedError(f"{type(self).__name__} has no perform()")

    def L_op(self, inputs, outputs, output_grads):
        """Vector-Jacobian product; defaults to ``grad``."""
        return self.grad(inputs, output_grads)

    def grad(self, inputs, output_grads):
        from theanine.gradient import grad_not_implemented

        return [grad_not_implemented(self, i, x) for i, x in enumerate(inputs)]

    def connection_pattern(self, node):
        """For each input, a list saying which outputs depend on it (default: all)."""
        return [[True] * len(node.outputs) for _ in node.inputs]


def as_variable_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]
