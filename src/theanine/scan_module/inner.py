"""Compiling a Scan's step graph for a mode: rewritten, and lowered to native kernels
where the mode has them, exactly as ``theanine.function`` does for a whole graph."""

from __future__ import annotations

from theanine.compile.executor import GraphRunner
from theanine.graph.fg import FunctionGraph
from theanine.graph.traversal import clone_graph
from theanine.rewriting import NATIVE_MODES, rewrite_graph


class StepFunction:
    """A compiled step: call it with one value per inner input; it returns the inner outputs.

    ``graph`` is the rewritten step graph, ``program`` its native kernels (None in
    the reference modes). ``device_outputs`` (mode 'cuda'): the outputs are left on the
    device, for a loop that keeps its values there.
    """

    def __init__(self, graph, mode, device_outputs=False):
        self.mode = mode
        self.graph = graph
        self.program = None
        thunks = {}
        if mode == "cuda":
            from theanine.compile.cuda_program import CudaProgram
            self.program = CudaProgram(self.graph, device_outputs=device_outputs)
            thunks.update(self.program.thunks)
        elif mode in NATIVE_MODES:
            from theanine.compile.native import NativeProgram
            self.program = NativeProgram(self.graph, target=mode)
            thunks.update(self.program.thunks)
        self._entry = getattr(self.program, "entry", None)  # the whole step in one native call
        for node in self.graph.toposort():  # loops nested in the step run in its mode
            make_thunk = getattr(node.op, "make_thunk", None)
            if make_thunk is not None and node not in thunks:
                thunks[node] = make_thunk(node, mode)
        self._runner = GraphRunner(self.graph.inputs, self.graph.outputs, self.graph.toposort(), thunks)

    def __call__(self, *values):
        entry = self._entry
        if entry is not None:
            out = entry(*values)
            if out is not NotImplemented:
                return out
        return self._runner(*values)

    @property
    def fallbacks(self) -> list:
        """The step's nodes that run through their Python ``perform``."""
        return self.graph.toposort() if self.program is None else list(self.program.fallbacks)


def rewritten_step(fgraph, mode) -> FunctionGraph:
    """A copy of the step graph ``fgraph`` rewritten for ``mode``, as ``theanine.function``
    rewrites a whole graph."""
    ins, outs, _ = clone_graph(fgraph.inputs, fgraph.outputs, copy_inputs=True)
    return rewrite_graph(FunctionGraph(ins, outs), mode)


def compile_step(graph, mode, device_outputs=False) -> StepFunction:
    """The rewritten step graph ``graph`` (see ``rewritten_step``) compiled for ``mode``
    ('py', 'llvm', 'c', 'cuda' or 'FAST_COMPILE'); see StepFunction for ``device_outputs``."""
    return StepFunction(graph, mode, device_outputs)
