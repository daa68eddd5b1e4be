"""The kernel IR's scalar vocabulary: the contract between the front end and the back ends.

Every scalar operation of ``theanine.scalar`` names one opcode below
(``ScalarOp.ir``). A native back end lowers each opcode with exactly the
semantics written here, which are NumPy's; the reference executor (``mode="py"``)
is the executable form of the same definitions. Types follow the op's dtype rule:
operands are first converted to the result dtype, except where an opcode says
otherwise (comparisons and predicates read their operands' common dtype and
produce bool; ``select`` reads a bool condition; ``cast`` converts).

Loop nests, buffers and library calls join this module with the native back ends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Opcode:
    """One scalar opcode: its arity and its exact meaning."""

    name: str
    arity: int
    semantics: str


def _ops(arity, table):
    return {name: Opcode(name, arity, text) for name, text in table.items()}


SCALAR_OPCODES: dict[str, Opcode] = {
    **_ops(1, {
        "copy": "x",
        "neg": "-x (wraps around for the most negative integer)",
        "abs": "|x|; for complex x the modulus, a real number",
        "sign": "-1, 0 or 1 with the sign of x; nan for nan",
        "sqr": "x * x",
        "sqrt": "square root; nan for x < 0",
        "recip": "1 / x (float): inf for x = 0",
        "exp": "e ** x", "exp2": "2 ** x", "expm1": "e ** x - 1, accurate near 0",
        "log": "natural log; -inf at 0, nan below", "log2": "base-2 log", "log10": "base-10 log",
        "log1p": "log(1 + x), accurate near 0",
        "sin": "sine", "cos": "cosine", "tan": "tangent",
        "asin": "arcsine; nan outside [-1, 1]", "acos": "arccosine; nan outside [-1, 1]",
        "atan": "arctangent",
        "sinh": "hyperbolic sine", "cosh": "hyperbolic cosine", "tanh": "hyperbolic tangent",
        "asinh": "inverse hyperbolic sine", "acosh": "inverse hyperbolic cosine; nan below 1",
        "atanh": "inverse hyperbolic tangent; +-inf at +-1, nan outside",
        "floor": "largest integer <= x", "ceil": "smallest integer >= x",
        "trunc": "integer part, toward zero",
        "round_even": "nearest integer, ties to even", "round_away": "nearest integer, ties away from 0",
        "erf": "error function", "erfc": "1 - erf(x), accurate for large x",
        "erfinv": "inverse of erf on (-1, 1); +-inf at +-1",
        "lgamma": "log |Gamma(x)|", "digamma": "d/dx log Gamma(x)", "trigamma": "d/dx digamma(x)",
        "sigmoid": "1 / (1 + e ** -x), without overflow for large |x|",
        "softplus": "log(1 + e ** x), computed as max(x, 0) + log1p(e ** -|x|)",
        "lnot": "logical not (bool)", "bnot": "bitwise not (integers); logical not (bool)",
        "isnan": "x is nan (bool)", "isinf": "x is +-inf (bool)",
        "cast": "conversion to the result dtype; float to int truncates toward zero",
        "real": "real part", "imag": "imaginary part",
    }),
    **_ops(2, {
        "add": "x + y", "sub": "x - y", "mul": "x * y",
        "div": "x / y in the float result dtype (ints are converted first)",
        "floordiv": "floor(x / y); for ints x // 0 is 0",
        "mod": "x - floor(x / y) * y: the sign of y; for ints x % 0 is 0",
        "pow": "x ** y; integer to a negative integer power is an error",
        "max": "maximum; nan if either is nan", "min": "minimum; nan if either is nan",
        "atan2": "angle of (x=second, y=first) in (-pi, pi]",
        "lt": "x < y", "le": "x <= y", "gt": "x > y", "ge": "x >= y", "eq": "x == y", "ne": "x != y",
        "land": "logical and", "lor": "logical or", "lxor": "logical xor",
        "band": "bitwise and", "bor": "bitwise or", "bxor": "bitwise xor",
        "second": "y (x only gives the shape)",
    }),
    **_ops(3, {
        "select": "b if c else d, for (c, b, d)",
        "clip": "min(max(x, lo), hi)",
    }),
}


def opcode(name: str) -> Opcode:
    """The opcode called ``name``; KeyError with the known names otherwise."""
    try:
        return SCALAR_OPCODES[name]
    except KeyError:
        raise KeyError(f"unknown scalar opcode {name!r}; known: {', '.join(sorted(SCALAR_OPCODES))}") from None
