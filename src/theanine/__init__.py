"""theanine: a symbolic graph compiler for Python in the tradition of Theano.

Declare symbolic tensors (``theanine.tensor``), build expressions, ask for
gradients (``theanine.grad``), and compile them with ``theanine.function``.
"""

from theanine.configparser import config
from theanine.graph.basic import Apply, Constant, Op, Variable
from theanine import tensor  # noqa: F401  (first: the compile modules build on it)
from theanine.compile.function import Function, In, Out, function
from theanine.compile.export import export_c
from theanine.compile.sharedvalue import SharedVariable, shared
from theanine.gradient import Lop, Rop, grad, hessian, jacobian, verify_grad
from theanine.graph.traversal import clone_replace
from theanine import printing  # noqa: F401
from theanine import scan_module  # noqa: F401
from theanine.scan_module import foldl, foldr, map, reduce, scan, scan_checkpoints  # noqa: A004

clone = clone_replace
__version__ = "0.1.0"

__all__ = ["config", "Apply", "Constant", "Op", "Variable", "Function", "In", "Out", "function",
           "SharedVariable", "shared", "grad", "Lop", "Rop", "jacobian", "hessian", "verify_grad",
           "clone_replace", "tensor", "printing", "scan", "map", "reduce", "foldl", "foldr",
           "scan_checkpoints", "scan_module", "export_c"]
