"""Specialize: general operations replaced by cheaper special cases."""

from __future__ import annotations

import numpy as np

from theanine import scalar as ts
from theanine.rewriting.canonicalize import constant_data, operand_besides, replacement
from theanine.rewriting.engine import register_rewrite
from theanine.tensor import math as tm
from theanine.tensor.elemwise import Elemwise
from theanine.tensor.type import COMPLEX_DTYPES, FLOAT_DTYPES


def _base_of_power(node, exponent):
    """x (in the result's dtype) when ``node`` computes ``x ** exponent``, else None."""
    x = operand_besides(node, exponent)
    return None if x is None else tm.cast(x, node.outputs[0].dtype)


@register_rewrite("specialize", tracks=(Elemwise(ts.pow_),))
def pow_two_to_sqr(fgraph, node):
    """x ** 2 -> sqr(x)"""
    x = _base_of_power(node, 2)
    return None if x is None else replacement(node, tm.sqr(x))


@register_rewrite("specialize", tracks=(Elemwise(ts.pow_),))
def pow_half_to_sqrt(fgraph, node):
    """x ** 0.5 -> sqrt(x)"""
    x = _base_of_power(node, 0.5)
    return None if x is None else replacement(node, tm.sqrt(x))


@register_rewrite("specialize", tracks=(Elemwise(ts.pow_),))
def pow_minus_one_to_reciprocal(fgraph, node):
    """x ** -1 -> reciprocal(x) (floats only: integers to negative powers are an error)"""
    if node.outputs[0].dtype not in FLOAT_DTYPES + COMPLEX_DTYPES:
        return None
    x = _base_of_power(node, -1)
    return None if x is None else replacement(node, tm.reciprocal(x))


@register_rewrite("specialize", tracks=(Elemwise(ts.true_div),))
def div_by_power_of_two(fgraph, node):
    """x / c -> x * (1 / c) for c a power of two (1 / c is exact, so both round alike)"""
    x, c = node.inputs
    out = node.outputs[0]
    data = constant_data(c)
    if data is None or data.size == 0 or x.dtype != out.dtype or out.dtype not in FLOAT_DTYPES:
        return None
    c = data.astype(out.dtype).flat[0]
    if not np.all(data == c) or abs(np.frexp(c)[0]) != 0.5:
        return None
    with np.errstate(over="ignore"):
        inverse = np.reciprocal(c)
    if not np.isfinite(inverse):
        return None
    return replacement(node, tm.mul(x, np.full((1,) * x.ndim, inverse)))


#: the largest integer exponent turned into multiplications
MAX_UNROLLED_EXPONENT = 16


@register_rewrite("specialize", tracks=(Elemwise(ts.pow_),))
def pow_small_integer_to_mul(fgraph, node):
    """x ** n -> x * x * ... (exponentiation by squaring) for a constant integer 3 <= n <= 16

    Floats only; the product may differ from libm's pow in the last bits (a few ulp)."""
    x, n = node.inputs
    out = node.outputs[0]
    data = constant_data(n)
    if data is None or data.size == 0 or out.dtype not in FLOAT_DTYPES:
        return None
    e = data.flat[0]
    if not np.all(data == e) or e != np.floor(e) or not 3 <= e <= MAX_UNROLLED_EXPONENT:
        return None
    base = tm.cast(x, out.dtype)
    result, square, e = None, base, int(e)
    while e:
        if e & 1:
            result = square if result is None else tm.mul(result, square)
        e >>= 1
        if e:
            square = tm.sqr(square)
    return replacement(node, result)
