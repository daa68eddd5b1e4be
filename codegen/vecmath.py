"""Vectorisable implementations of transcendental functions, as LLVM IR.

LLVM does not vectorise calls to libm's ``exp``, ``log``, ... by itself. The
functions here are written with arithmetic, bit operations and selects only,
so a loop calling them (they are ``alwaysinline``) vectorises.
"""

from __future__ import annotations


def function(opcode: str, dtype: str):
    """``(name, LLVM definition)`` of the vectorisable ``opcode`` for ``dtype``, or None."""
    return None
