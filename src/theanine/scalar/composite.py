"""Scalar programs from the scalar op table: single ops and fused Composites.

``instruction`` states how one scalar op becomes a kernel-IR instruction (which
dtype its operands are converted to); ``Composite`` is a scalar op whose body
is a whole ScalarProgram, built by the fusion rewrite from a group of
elementwise nodes. Both evaluate with NumPy exactly as the unfused ops would.
"""

from __future__ import annotations

import numpy as np

from theanine.codegen.ir import Instr, ScalarProgram
from theanine.scalar.basic import Cast, ScalarOp
from theanine.tensor.type import upcast


def compute_dtype(op: ScalarOp, in_dtypes, out_dtype) -> str:
    """The dtype ``op``'s operands are converted to before it is applied."""
    if isinstance(op, Cast):
        return in_dtypes[0]
    if op.dtype_rule == "bool":
        return upcast(*in_dtypes)
    return out_dtype


def instruction(op: ScalarOp, args, in_dtypes) -> Instr:
    """The kernel-IR instruction applying ``op`` to the values ``args`` of ``in_dtypes``."""
    out = op.output_dtype(*in_dtypes)
    return Instr(op.ir, tuple(args), out, compute_dtype(op, in_dtypes, out))


def single_program(op: ScalarOp, in_dtypes) -> ScalarProgram:
    """The one-instruction program of ``op`` on inputs of ``in_dtypes``."""
    if isinstance(op, Composite):
        return op.program
    n = len(in_dtypes)
    return ScalarProgram(tuple(in_dtypes), (), (instruction(op, range(n), in_dtypes),), (n,))


def evaluate(op: ScalarOp, instr: Instr, args):
    """Apply ``op`` with NumPy the way ``Elemwise.perform`` does, giving ``instr.dtype``."""
    if op.dtype_rule == "float":
        args = [np.asarray(a, dtype=instr.dtype) if np.asarray(a).dtype.kind in "biu" else a
                for a in args]
    return np.asarray(op.impl(*args), dtype=instr.dtype)


class Composite(ScalarOp):
    """A fused scalar program: ``ops[k]`` is the scalar op of ``program.instrs[k]``."""

    dtype_rule = "first"

    def __init__(self, program: ScalarProgram, ops):
        if len(program.outputs) != 1:
            raise ValueError("Composite: only single-output programs are supported")
        self.program = program
        self.ops = tuple(ops)
        self.nin = len(program.input_dtypes)
        self.ir = None
        self.name = "Composite{" + ",".join(op.name for op in self.ops) + "}"

    def _params(self):
        return (self.program,)

    def output_dtype(self, *dtypes):
        return self.program.output_dtypes[0]

    def impl(self, *inputs):
        values = [np.asarray(x) for x in inputs]
        values += [np.asarray(v, dtype=d) for v, d in self.program.constants]
        with np.errstate(all="ignore"):
            for op, instr in zip(self.ops, self.program.instrs):
                values.append(evaluate(op, instr, [values[a] for a in instr.args]))
        return values[self.program.outputs[0]]
