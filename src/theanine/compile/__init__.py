"""Compilation: function(), Function, In/Out, shared variables, the reference executor."""

from theanine.compile.function import Function, In, Out, function  # noqa: F401
from theanine.compile.sharedvalue import SharedVariable, shared  # noqa: F401
