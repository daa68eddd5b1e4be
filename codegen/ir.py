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
        "lshift": "x << y (integers): x's bits moved up y places, wrapping in the dtype; 0 when y "
                  "is negative or at least the dtype's bit width",
        "rshift": "x >> y (integers): x's bits moved down y places, filling with the sign bit for "
                  "signed x (floor(x / 2**y)) and zeros for unsigned x; when y is negative or at "
                  "least the bit width, -1 for negative x and 0 otherwise",
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


# --- scalar programs: the body of an elementwise kernel ------------------------------------


@dataclass(frozen=True)
class Instr:
    """``dtype = opcode(args...)``, operands first converted to ``compute_dtype``.

    ``args`` are value ids of the enclosing ScalarProgram. For ``cast`` the
    compute dtype is the source dtype; for comparisons and predicates it is the
    operands' common dtype and ``dtype`` is bool; for ``select`` the condition
    is read as "non-zero" and the two branches are converted.
    """

    opcode: str
    args: tuple
    dtype: str
    compute_dtype: str


@dataclass(frozen=True)
class ScalarProgram:
    """A straight-line scalar program in SSA form.

    Value ids: ``0 .. len(input_dtypes)-1`` are the inputs, then one id per
    entry of ``constants`` (``(value, dtype)`` pairs), then one per instruction.
    ``outputs`` lists the value ids the program returns.
    """

    input_dtypes: tuple
    constants: tuple
    instrs: tuple
    outputs: tuple

    def value_dtype(self, vid: int) -> str:
        """The dtype of value ``vid``."""
        n_in, n_const = len(self.input_dtypes), len(self.constants)
        if vid < n_in:
            return self.input_dtypes[vid]
        if vid < n_in + n_const:
            return self.constants[vid - n_in][1]
        return self.instrs[vid - n_in - n_const].dtype

    @property
    def output_dtypes(self) -> tuple:
        return tuple(self.value_dtype(v) for v in self.outputs)

    def __str__(self):
        n_in = len(self.input_dtypes)
        names = [f"i{k}" for k in range(n_in)]
        names += [repr(v) for v, _ in self.constants]
        lines = []
        for instr in self.instrs:
            name = f"v{len(names)}"
            args = ", ".join(names[a] for a in instr.args)
            lines.append(f"{name}: {instr.dtype} = {instr.opcode}({args})")
            names.append(name)
        lines.append("return " + ", ".join(names[v] for v in self.outputs))
        return "\n".join(lines)


@dataclass(frozen=True)
class ElementwiseKernel:
    """One loop nest over an output shape applying ``program`` to every element.

    Inputs are strided buffers broadcast to the output shape (a stride of 0
    repeats an element); outputs are strided buffers of the full shape.
    The native signature is ``void name(const int64 *shape, char **data,
    const int64 *strides)``: ``data`` holds the inputs then the outputs, and
    ``strides[k * ndim + d]`` is buffer k's byte stride along dimension d.
    """

    name: str
    ndim: int
    program: ScalarProgram
    label: str = ""

    @property
    def n_buffers(self) -> int:
        return len(self.program.input_dtypes) + len(self.program.outputs)


@dataclass(frozen=True)
class ReduceKernel:
    """A loop nest over the inputs' broadcast shape combining ``program``'s value at each
    element into the output element it reduces to.

    ``kind`` is sum, prod, max, min, all or any; ``axes`` are the reduced dimensions.
    The output has the input rank with stride 0 along ``axes`` and holds the
    reduction's identity on entry. Same native signature as ElementwiseKernel.
    Float sums and products may be reassociated (vectorised partial sums).
    """

    name: str
    ndim: int
    axes: tuple
    kind: str
    program: ScalarProgram
    out_dtype: str
    label: str = ""


def render_each(kernels, elementwise, reduce) -> list:
    """For each ``(kernel, inner_broadcast)`` pair, in order: ``reduce(kernel, inner)`` for a
    ReduceKernel, ``elementwise(kernel, inner)`` otherwise. The renderers' shared dispatch."""
    return [reduce(k, inner) if isinstance(k, ReduceKernel) else elementwise(k, inner)
            for k, inner in kernels]
