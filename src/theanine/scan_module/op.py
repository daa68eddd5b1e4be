"""The Scan op: a loop whose body is an inner graph, run once per step.

The node's inputs are ``[n_steps] + sequences + initial states + non-sequences``.
The inner graph (``op.fgraph``) takes, in order, one row of each sequence, the
states each recurrent output reads (one input per tap), and the non-sequences;
it returns one value per output, then the stop condition when the loop is a
``while`` loop (see ``until``).

Each output is one of three kinds (``OutputSpec.kind``):

- ``history``: recurrent; the step reads the states at ``taps`` (negative
  offsets). Its initial value is the block of the first ``n_back`` states and
  the node's output is that block followed by one row per step.
- ``final``: recurrent with the single tap -1, keeping only the latest state:
  the initial value is a state and the output is the last state (how shared
  variables updated inside the loop, and gradient accumulators, are carried).
- ``stacked``: not recurrent: the output stacks one row per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from theanine.configparser import config
from theanine.graph.basic import Apply, Op
from theanine.graph.fg import FunctionGraph
from theanine.graph.traversal import clone_graph, graph_inputs
from theanine.tensor.type import INT_DTYPES, TensorType
from theanine.tensor.variable import as_tensor_variable

HISTORY, FINAL, STACKED = "history", "final", "stacked"


@dataclass(frozen=True)
class OutputSpec:
    """How one output of a Scan is carried from step to step (see the module docstring)."""

    kind: str
    taps: tuple = ()

    def __post_init__(self):
        if self.kind not in (HISTORY, FINAL, STACKED):
            raise ValueError(f"OutputSpec: unknown kind {self.kind!r}")
        if self.kind == FINAL and self.taps != (-1,):
            raise ValueError("OutputSpec: a 'final' output reads exactly the tap -1")
        if self.kind == STACKED and self.taps:
            raise ValueError("OutputSpec: a 'stacked' output has no taps")
        if self.kind == HISTORY and (not self.taps or any(k >= 0 for k in self.taps)):
            raise ValueError(f"OutputSpec: the taps of a recurrent output must be negative, got {self.taps}")

    @property
    def n_back(self) -> int:
        """How many past states the step can reach (the rows of the initial block)."""
        return -min(self.taps) if self.taps else 0

    @property
    def recurrent(self) -> bool:
        """Whether the step reads this output's past states."""
        return self.kind != STACKED


def types_compatible(a: TensorType, b: TensorType) -> bool:
    """Same dtype and rank, and no dimension known in both with different sizes."""
    return (a.dtype == b.dtype and a.ndim == b.ndim
            and all(x is None or y is None or x == y for x, y in zip(a.shape, b.shape)))


def resolve_mode(mode):
    """The compilation mode a Scan runs its step in (None: ``config.mode``)."""
    mode = mode or config.mode
    return "llvm" if mode == "FAST_RUN" else mode


class Scan(Op):
    """Runs an inner graph ``n_steps`` times, threading states through it.

    ``inner_inputs``/``inner_outputs`` are the step graph (laid out as in the module
    docstring), ``n_seqs`` the number of sequences, ``output_specs`` one
    ``OutputSpec`` per output, ``as_while`` whether the last inner output is a stop condition.
    ``mode`` compiles the step (None: ``config.mode`` when first run);
    ``truncate_gradient`` (> 0) limits back-propagation to the last steps.
    """

    def __init__(self, inner_inputs, inner_outputs, n_seqs, output_specs, as_while=False, name=None,
                 mode=None, truncate_gradient=-1):
        self.n_seqs = int(n_seqs)
        self.output_specs = tuple(output_specs)
        self.as_while = bool(as_while)
        self.name = name
        self.mode = mode
        self.truncate_gradient = int(truncate_gradient)
        ins, outs, _ = clone_graph(list(inner_inputs), list(inner_outputs), copy_inputs=True)
        #: the step graph, owned by this op (never rewritten in place)
        self.fgraph = FunctionGraph(ins, outs)
        self._compiled = {}  # (mode, device outputs) -> compiled step
        self._rewritten = {}  # mode -> rewritten step graph
        self._deps = None
        self._check_layout()

    # --- layout -------------------------------------------------------------------------

    @property
    def inner_inputs(self):
        return self.fgraph.inputs

    @property
    def inner_outputs(self):
        return self.fgraph.outputs

    @property
    def n_outs(self) -> int:
        return len(self.output_specs)

    @property
    def n_states(self) -> int:
        """Inner inputs that hold states (one per tap of each recurrent output)."""
        return sum(len(s.taps) for s in self.output_specs)

    @property
    def n_non_seqs(self) -> int:
        return len(self.inner_inputs) - self.n_seqs - self.n_states

    def state_positions(self, o) -> list:
        """Positions in the inner inputs of the states output ``o`` reads, one per tap."""
        pos = self.n_seqs + sum(len(s.taps) for s in self.output_specs[:o])
        return list(range(pos, pos + len(self.output_specs[o].taps)))

    def init_index(self, o) -> int:
        """Position in the node's inputs of the initial value of recurrent output ``o``."""
        return 1 + self.n_seqs + sum(1 for s in self.output_specs[:o] if s.recurrent)

    @property
    def non_seq_start(self) -> int:
        """Position in the node's inputs of the first non-sequence."""
        return 1 + self.n_seqs + sum(1 for s in self.output_specs if s.recurrent)

    def outer_to_inner(self, i) -> list:
        """The inner-input positions fed by node input ``i`` (n_steps feeds none)."""
        if i == 0:
            return []
        if i <= self.n_seqs:
            return [i - 1]
        if i >= self.non_seq_start:
            return [self.n_seqs + self.n_states + i - self.non_seq_start]
        for o, spec in enumerate(self.output_specs):
            if spec.recurrent and self.init_index(o) == i:
                return self.state_positions(o)
        raise IndexError(i)

    def _check_layout(self):
        n_in = self.n_seqs + self.n_states
        if n_in > len(self.inner_inputs):
            raise ValueError(f"{self}: the step graph has {len(self.inner_inputs)} inputs, fewer than "
                             f"the {n_in} sequences and states")
        expected = self.n_outs + (1 if self.as_while else 0)
        if len(self.inner_outputs) != expected:
            raise ValueError(f"{self}: the step graph has {len(self.inner_outputs)} outputs, "
                             f"expected {expected}")
        for o, spec in enumerate(self.output_specs):
            out = self.inner_outputs[o]
            if not isinstance(out.type, TensorType):
                raise TypeError(f"{self}: output {o} of the step is not a tensor ({out.type})")
            for p in self.state_positions(o):
                state = self.inner_inputs[p]
                if not types_compatible(state.type, out.type):
                    raise TypeError(f"{self}: output {o} of the step has type {out.type}, but the state "
                                    f"it updates has type {state.type}")
        if self.as_while and self.inner_outputs[-1].ndim != 0:
            raise TypeError(f"{self}: the stop condition must be a scalar, got {self.inner_outputs[-1].type}")

    # --- identity -----------------------------------------------------------------------

    def __eq__(self, other):
        return self is other  # each op owns its own step graph

    def __hash__(self):
        return id(self)

    def __str__(self):
        return f"Scan{{{self.name}}}" if self.name else "Scan"

    # --- graph building -----------------------------------------------------------------

    def make_node(self, n_steps, *inputs):
        n_steps = as_tensor_variable(n_steps)
        if n_steps.ndim != 0 or n_steps.dtype not in INT_DTYPES:
            raise TypeError(f"{self}: n_steps must be an integer scalar, got {n_steps.type}")
        inputs = [as_tensor_variable(x) for x in inputs]
        expected = self.non_seq_start - 1 + self.n_non_seqs
        if len(inputs) != expected:
            raise ValueError(f"{self}: expected {expected} inputs after n_steps, got {len(inputs)}")
        outer = [n_steps] + inputs
        for i in range(1, len(outer)):
            x = outer[i]
            inner = self.inner_inputs[self.outer_to_inner(i)[0]]
            if i <= self.n_seqs or self._history_init(i):
                want = TensorType(inner.dtype, (None,) + inner.type.shape)
                what = "sequence" if i <= self.n_seqs else "initial states"
            else:
                want, what = inner.type, ("non-sequence" if i >= self.non_seq_start else "initial state")
            if not types_compatible(want, x.type):
                raise TypeError(f"{self}: input {i} ({what} {x}) has type {x.type}, expected {want}")
        out_types = []
        for o, spec in enumerate(self.output_specs):
            if spec.kind == STACKED:
                inner_t = self.inner_outputs[o].type
                out_types.append(TensorType(inner_t.dtype, (None,) + inner_t.shape))
            else:
                state_t = self.inner_inputs[self.state_positions(o)[0]].type
                out_types.append(state_t if spec.kind == FINAL
                                 else TensorType(state_t.dtype, (None,) + state_t.shape))
        return Apply(self, outer, [t() for t in out_types])

    def _history_init(self, i) -> bool:
        for o, spec in enumerate(self.output_specs):
            if spec.kind == HISTORY and self.init_index(o) == i:
                return True
        return False

    # --- running ------------------------------------------------------------------------

    def step_graph(self, mode=None):
        """The step graph rewritten for ``mode`` (rewritten on first use, then cached on the op);
        the native entry of an enclosing function loops over it in native code."""
        from theanine.scan_module.inner import rewritten_step
        mode = resolve_mode(mode or self.mode)
        graph = self._rewritten.get(mode)
        if graph is None:
            graph = self._rewritten[mode] = rewritten_step(self.fgraph, mode)
        return graph

    def step_function(self, mode=None, device_outputs=False):
        """The compiled step for ``mode`` (compiled on first use, then cached on the op);
        ``device_outputs``: see StepFunction."""
        from theanine.scan_module.inner import compile_step
        mode = resolve_mode(mode or self.mode)
        key = (mode, bool(device_outputs))
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = compile_step(self.step_graph(mode), mode, device_outputs)
        return fn

    def perform(self, node, inputs, output_storage):
        self.make_thunk(node, None)(inputs, output_storage)

    def make_thunk(self, node, mode):
        """``thunk(input_values, output_storage)`` running ``node`` with its step compiled for
        this op's mode, or for ``mode`` (the enclosing function's) when the scan left it open."""
        from theanine.scan_module.loop import run_loop
        dtypes = [o.type.numpy_dtype for o in node.outputs]

        def thunk(inputs, output_storage):
            # compiled on first use: a function whose native entry runs the loop needs it
            # only when a call falls back to the node-by-node path
            step = self.step_function(self.mode or mode)
            for storage, value in zip(output_storage, run_loop(self, step, inputs, dtypes)):
                storage[0] = value
        return thunk

    # --- analysis -----------------------------------------------------------------------

    def inner_dependencies(self) -> list:
        """For each inner output, the set of inner-input positions it depends on."""
        if self._deps is None:
            position = {id(v): k for k, v in enumerate(self.inner_inputs)}
            self._deps = [frozenset(position[id(v)] for v in graph_inputs([out]) if id(v) in position)
                          for out in self.inner_outputs]
        return self._deps

    def output_dependencies(self) -> list:
        """For each output, the inner-input positions it depends on across all steps."""
        deps = self.inner_dependencies()
        reach = [set(deps[o]) for o in range(self.n_outs)]
        changed = True
        while changed:
            changed = False
            for o in range(self.n_outs):
                for p, spec in enumerate(self.output_specs):
                    if spec.recurrent and reach[o] & set(self.state_positions(p)) \
                            and not deps[p] <= reach[o]:
                        reach[o] |= deps[p]
                        changed = True
        return reach

    def connections(self, n_inputs) -> list:
        """For each of the node's ``n_inputs`` inputs, which outputs depend on it."""
        reach = self.output_dependencies()
        pattern = []
        for i in range(n_inputs):
            inner = set(self.outer_to_inner(i))
            row = []
            for o, spec in enumerate(self.output_specs):
                own = spec.recurrent and self.init_index(o) == i
                row.append(own or bool(inner & reach[o]))
            pattern.append(row)
        return pattern

    def connection_pattern(self, node):
        return self.connections(len(node.inputs))

    def L_op(self, inputs, outputs, output_grads):
        from theanine.scan_module.grad import scan_grad
        return scan_grad(self, inputs, outputs, output_grads)

    def infer_shape(self, fgraph, node, shapes):
        from theanine.scan_module.shape import scan_output_shapes
        return scan_output_shapes(self, node, shapes)


def as_history(op: Scan, finals) -> Scan:
    """A copy of ``op`` where the 'final' outputs numbered in ``finals`` keep their whole history."""
    specs = [OutputSpec(HISTORY, (-1,)) if o in finals else s for o, s in enumerate(op.output_specs)]
    return Scan(op.inner_inputs, op.inner_outputs, op.n_seqs, specs, op.as_while, op.name,
                op.mode, op.truncate_gradient)


def with_stacked(op: Scan, values) -> Scan:
    """A copy of ``op`` that also stacks, after its outputs, the values of ``values`` (variables
    of its step graph) at every step. Applied to the same inputs as ``op``, it replaces
    it (``merge_extended_scans``): one loop computes both."""
    outs = list(op.inner_outputs[:op.n_outs]) + list(values) + list(op.inner_outputs[op.n_outs:])
    specs = list(op.output_specs) + [OutputSpec(STACKED)] * len(values)
    extended = Scan(op.inner_inputs, outs, op.n_seqs, specs, op.as_while, op.name, op.mode,
                    op.truncate_gradient)
    extended.extends = op
    return extended
