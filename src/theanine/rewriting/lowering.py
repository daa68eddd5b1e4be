"""What the lowering rewrites share (``lower_conv``, ``lower_ops``): sizes that are ints when
known at build time and symbolic scalars otherwise, run-time checks, and the exception by
which a rewrite leaves a node as it is.

A lowering replaces a node by ordinary tensor ops that the native scheduler runs; where the
node's ``perform`` would raise on bad input, the lowered graph carries an Assert that raises
ValueError with the same message."""

from __future__ import annotations

import math

import numpy as np

from theanine.tensor import math as tm
from theanine.tensor.basic import assert_op
from theanine.tensor.shape import shape_i

#: the rewrite phase of lowerings (run first, by the native modes only)
PHASE = "native"
#: the tag of rewrites meant for the CPU entries only (not mode 'cuda'): lowerings to steps
#: the CUDA module has no kernels for, and layout choices made for CPU caches and BLAS
CPU_ONLY = "cpu_only"


class Unlowerable(Exception):
    """The node is left as it is (its ``perform`` runs)."""


def lowering(*op_types, tags=()):
    """Register ``lower(node)`` (its docstring gives the identity) as the ``native`` rewrite
    of ``op_types`` (with the further ``tags``): the node's outputs are replaced by what it
    returns, unless it returns None or raises Unlowerable."""
    from theanine.rewriting.engine import register_rewrite

    def register(lower):
        def rewrite(fgraph, node):
            try:
                return lower(node)
            except Unlowerable:
                return None

        rewrite.__name__ = lower.__name__
        rewrite.__doc__ = lower.__doc__
        return register_rewrite(PHASE, *tags, tracks=op_types)(rewrite)

    return register


def size(v, axis):
    """The size of ``v`` along ``axis``: an int when static, else a symbolic int64 scalar."""
    s = v.type.shape[axis]
    return s if s is not None else shape_i(v, axis)


def sizes(v):
    """The sizes of ``v``, one per axis (ints or symbolic scalars)."""
    return [size(v, a) for a in range(v.ndim)]


def static(*values) -> bool:
    """Whether every size is an int (known at build time)."""
    return all(isinstance(s, (int, np.integer)) for s in values)


def product(*values):
    """The product of sizes (ints or symbolic scalars); an int when every factor is."""
    known = math.prod(int(s) for s in values if static(s))
    symbolic = [s for s in values if not static(s)]
    return tm.mul(*symbolic, np.int64(known)) if symbolic else known


def eq(a, b):
    """a == b for sizes: a Python bool when both are ints, else a symbolic boolean."""
    return bool(a == b) if static(a, b) else tm.eq(a, b)


def ge(a, b):
    """a >= b for sizes: a Python bool when both are ints, else a symbolic boolean."""
    return bool(a >= b) if static(a, b) else tm.ge(a, b)


def checked(v, conditions, message):
    """``v`` behind an Assert of the conditions that are symbolic (ValueError(``message``)
    when one fails); a condition already False raises Unlowerable, True ones are dropped."""
    if any(c is False for c in conditions):
        raise Unlowerable(message)
    symbolic = [c for c in conditions if c is not True]
    return assert_op(v, *symbolic, message=message) if symbolic else v
