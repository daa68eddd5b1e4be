"""The graph core: types, variables, nodes, ops, traversal and FunctionGraph."""

from theanine.graph.basic import Apply, Constant, Op, Type, Variable
from theanine.graph.fg import FunctionGraph, RewriteRecord
from theanine.graph.traversal import (ancestors, clone_graph, clone_replace, graph_inputs,
                                      toposort)

__all__ = ["Apply", "Constant", "Op", "Type", "Variable", "FunctionGraph", "RewriteRecord",
           "ancestors", "clone_graph", "clone_replace", "graph_inputs", "toposort"]
