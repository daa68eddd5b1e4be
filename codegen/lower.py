"""Lowering: from fused graph nodes (described by their programs and static shapes) to kernel IR.

The back end does not import the tensor front end: a node is described to it
by its scalar program and the static shapes of its inputs and output.
"""

from __future__ import annotations

from theanine.codegen import llvm
from theanine.codegen.ir import ElementwiseKernel, Instr, ReduceKernel, ScalarProgram


def supports_program(program: ScalarProgram) -> bool:
    """Whether the native back ends can lower ``program``."""
    return llvm.supports_program(program)


def supports_reduce(kind: str, out_dtype: str) -> bool:
    """Whether the native back ends can lower the reduction ``kind`` into ``out_dtype``."""
    return llvm.supports_reduce(kind, out_dtype)


def elementwise_kernel(name: str, program: ScalarProgram, input_shapes, output_shape, label=""):
    """The kernel computing ``program`` over ``output_shape``, and which inputs are
    broadcast along the last dimension (static size 1)."""
    ndim = len(output_shape)
    kernel = ElementwiseKernel(name, ndim, program, label)
    inner_broadcast = [ndim > 0 and len(s) == ndim and s[-1] == 1 for s in input_shapes]
    return kernel, inner_broadcast


def reduce_kernel(name, kind, axes, program: ScalarProgram, out_dtype, input_shapes, ndim, label=""):
    """The kernel reducing ``program``'s values over ``axes``; see ReduceKernel."""
    kernel = ReduceKernel(name, ndim, tuple(axes), kind, program, out_dtype, label)
    inner_broadcast = [ndim > 0 and len(s) == ndim and s[-1] == 1 for s in input_shapes]
    return kernel, inner_broadcast


def identity_program(dtype) -> ScalarProgram:
    """The program returning its single input unchanged."""
    return ScalarProgram((dtype,), (), (Instr("copy", (0,), dtype, dtype),), (1,))
