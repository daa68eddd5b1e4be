"""The table of scalar operations that ``Elemwise`` maps over arrays.

Each scalar op states, in one place:

- ``impl``: its NumPy function (the reference semantics, exact);
- ``output_dtype``: the dtype rule for its result;
- ``grad``: its derivative, as tensor expressions (elementwise);
- ``ir``: its opcode in the kernel IR's scalar vocabulary (``theanine.codegen.ir``),
  which native back ends lower.

Ops are values: two instances of the same class with the same parameters are
equal, so graphs built from them merge.
"""

from __future__ import annotations

import numpy as np
import scipy.special as sps

from theanine.tensor.type import (COMPLEX_DTYPES, DISCRETE_DTYPES, FLOAT_DTYPES, INT_DTYPES,
                                  upcast, upgrade_to_float)


def _t():
    """The tensor namespace (imported lazily: gradients are tensor expressions)."""
    import theanine.tensor as T
    return T


class ScalarOp:
    """Base class; subclasses set ``name``, ``nin``, ``ir`` and ``impl``."""

    name = "scalar"
    nin = 1
    ir = ""
    dtype_rule = "upcast"  # upcast | float | bool | int | first
    commutative = False
    associative = False
    #: positions of the inputs whose dtypes Python scalar arguments adapt to (None: all)
    dtype_inputs = None

    def _params(self):
        return ()

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((type(self), self._params()))

    def __str__(self):
        return self.name

    __repr__ = __str__

    def output_dtype(self, *dtypes) -> str:
        if self.dtype_rule == "bool":
            return "bool"
        common = upcast(*dtypes)
        if self.dtype_rule == "float":
            return upgrade_to_float(common)
        if self.dtype_rule == "first":
            return dtypes[0]
        return common

    def check_dtypes(self, *dtypes):
        """Raise TypeError when the op is undefined for these input dtypes."""

    def impl(self, *args):
        raise NotImplementedError(self.name)

    def grad(self, inputs, output, gz):
        """d(output)/d(input_i) * gz for each input, as tensor expressions."""
        from theanine.gradient import grad_not_implemented
        return [grad_not_implemented(self, i, x) for i, x in enumerate(inputs)]

    def is_discrete_output(self, dtype) -> bool:
        return dtype in DISCRETE_DTYPES


# --- helpers to declare ops compactly ---------------------------------------------------

def _unary(name, numpy_fn, ir, dtype_rule="float", grad=None, doc=""):
    cls = type(name.capitalize(), (ScalarOp,), {
        "name": name, "nin": 1, "ir": ir, "dtype_rule": dtype_rule,
        "impl": staticmethod(numpy_fn), "__doc__": doc or f"{name}(x), elementwise.",
    })
    if grad is not None:
        cls.grad = lambda self, inputs, output, gz: [grad(inputs[0], output, gz)]
    return cls()


def _binary(name, numpy_fn, ir, dtype_rule="upcast", grad=None, commutative=False, doc=""):
    cls = type(name.capitalize(), (ScalarOp,), {
        "name": name, "nin": 2, "ir": ir, "dtype_rule": dtype_rule,
        "impl": staticmethod(numpy_fn), "commutative": commutative,
        "__doc__": doc or f"{name}(x, y), elementwise.",
    })
    if grad is not None:
        cls.grad = lambda self, inputs, output, gz: list(grad(inputs[0], inputs[1], output, gz))
    return cls()


# --- arithmetic -------------------------------------------------------------------------

add = _binary("add", np.add, "add", commutative=True,
              grad=lambda x, y, z, g: (g, g))
sub = _binary("sub", np.subtract, "sub", grad=lambda x, y, z, g: (g, -g))
mul = _binary("mul", np.multiply, "mul", commutative=True,
              grad=lambda x, y, z, g: (g * y, g * x))


def _true_div_impl(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


true_div = _binary("true_div", _true_div_impl, "div", dtype_rule="float",
                   grad=lambda x, y, z, g: (g / y, -g * z / y))


class IntDiv(ScalarOp):
    """Floor division x // y, NumPy semantics (rounds toward -inf; x // 0 is 0 for ints)."""

    name, nin, ir = "int_div", 2, "floordiv"

    @staticmethod
    def impl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.floor_divide(x, y)

    def grad(self, inputs, output, gz):
        T = _t()
        return [T.zeros_like(x, dtype=_grad_dtype(x)) for x in inputs]


int_div = IntDiv()


class Mod(ScalarOp):
    """x % y with NumPy's sign convention (the result takes the sign of y)."""

    name, nin, ir = "mod", 2, "mod"

    @staticmethod
    def impl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mod(x, y)

    def grad(self, inputs, output, gz):
        x, y = inputs
        T = _t()
        return [gz, -gz * T.floor(x / y)]


mod = Mod()


class Pow(ScalarOp):
    """x ** y, elementwise (NumPy semantics; integer ** negative integer raises)."""

    name, nin, ir = "pow", 2, "pow"

    @staticmethod
    def impl(x, y):
        if np.issubdtype(np.result_type(x, y), np.integer) and np.any(np.asarray(y) < 0):
            raise ValueError("pow: integers to negative integer powers are not allowed")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.power(x, y)

    def grad(self, inputs, output, gz):
        x, y = inputs
        T = _t()
        gx = gz * y * x ** (y - 1)
        # d/dy x**y = x**y * log(x); 0 where x == 0 (the limit for y > 0).
        gy = gz * T.switch(T.eq(x, 0), 0, output * T.log(T.switch(T.eq(x, 0), 1, x)))
        return [gx, gy]


pow_ = Pow()

maximum = _binary("maximum", np.maximum, "max", commutative=True,
                  grad=lambda x, y, z, g: (g * _t().ge(x, y), g * _t().lt(x, y)))
minimum = _binary("minimum", np.minimum, "min", commutative=True,
                  grad=lambda x, y, z, g: (g * _t().le(x, y), g * _t().gt(x, y)))


def _arctan2_grad(y, x, z, g):
    r2 = x * x + y * y
    return (g * x / r2, -g * y / r2)


arctan2 = _binary("arctan2", np.arctan2, "atan2", dtype_rule="float", grad=_arctan2_grad)

# --- unary ------------------------------------------------------------------------------

neg = _unary("neg", np.negative, "neg", "upcast", grad=lambda x, z, g: -g)
identity = _unary("identity", lambda x: np.array(x, copy=True), "copy", "upcast",
                  grad=lambda x, z, g: g)


def _abs_grad(x, z, g):
    return g * _t().sgn(x)


class Abs(ScalarOp):
    """|x|; for complex x the result is the (real) modulus."""

    name, nin, ir = "abs", 1, "abs"
    impl = staticmethod(np.abs)

    def output_dtype(self, dtype):
        return {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)

    def grad(self, inputs, output, gz):
        return [_abs_grad(inputs[0], output, gz)]


abs_ = Abs()
sgn = _unary("sgn", np.sign, "sign", "upcast", grad=lambda x, z, g: _t().zeros_like(x, dtype=_grad_dtype(x)))
sqr = _unary("sqr", np.square, "sqr", "upcast", grad=lambda x, z, g: g * 2 * x)


def _sqrt_impl(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def _log_impl(fn):
    def impl(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(x)
    return impl


_LN2 = float(np.log(2.0))
_LN10 = float(np.log(10.0))

sqrt = _unary("sqrt", _sqrt_impl, "sqrt", grad=lambda x, z, g: g * 0.5 / z)
reciprocal = _unary("reciprocal", _log_impl(np.reciprocal), "recip", "float",
                    grad=lambda x, z, g: -g * z * z)
exp = _unary("exp", np.exp, "exp", grad=lambda x, z, g: g * z)
exp2 = _unary("exp2", np.exp2, "exp2", grad=lambda x, z, g: g * z * _LN2)
expm1 = _unary("expm1", np.expm1, "expm1", grad=lambda x, z, g: g * (z + 1))
log = _unary("log", _log_impl(np.log), "log", grad=lambda x, z, g: g / x)
log2 = _unary("log2", _log_impl(np.log2), "log2", grad=lambda x, z, g: g / (x * _LN2))
log10 = _unary("log10", _log_impl(np.log10), "log10", grad=lambda x, z, g: g / (x * _LN10))
log1p = _unary("log1p", _log_impl(np.log1p), "log1p", grad=lambda x, z, g: g / (1 + x))
sin = _unary("sin", np.sin, "sin", grad=lambda x, z, g: g * _t().cos(x))
cos = _unary("cos", np.cos, "cos", grad=lambda x, z, g: -g * _t().sin(x))
tan = _unary("tan", np.tan, "tan", grad=lambda x, z, g: g * (1 + z * z))
arcsin = _unary("arcsin", _log_impl(np.arcsin), "asin", grad=lambda x, z, g: g / _t().sqrt(1 - x * x))
arccos = _unary("arccos", _log_impl(np.arccos), "acos", grad=lambda x, z, g: -g / _t().sqrt(1 - x * x))
arctan = _unary("arctan", np.arctan, "atan", grad=lambda x, z, g: g / (1 + x * x))
sinh = _unary("sinh", np.sinh, "sinh", grad=lambda x, z, g: g * _t().cosh(x))
cosh = _unary("cosh", np.cosh, "cosh", grad=lambda x, z, g: g * _t().sinh(x))
tanh = _unary("tanh", np.tanh, "tanh", grad=lambda x, z, g: g * (1 - z * z))
arcsinh = _unary("arcsinh", np.arcsinh, "asinh", grad=lambda x, z, g: g / _t().sqrt(x * x + 1))
arccosh = _unary("arccosh", _log_impl(np.arccosh), "acosh", grad=lambda x, z, g: g / _t().sqrt(x * x - 1))
arctanh = _unary("arctanh", _log_impl(np.arctanh), "atanh", grad=lambda x, z, g: g / (1 - x * x))

_zero_grad = lambda x, z, g: _t().zeros_like(x, dtype=_grad_dtype(x))  # noqa: E731
floor = _unary("floor", np.floor, "floor", grad=_zero_grad)
ceil = _unary("ceil", np.ceil, "ceil", grad=_zero_grad)
trunc = _unary("trunc", np.trunc, "trunc", grad=_zero_grad)
round_half_to_even = _unary("round_half_to_even", np.round, "round_even", grad=_zero_grad,
                            doc="Round to nearest, ties to even (NumPy's np.round).")


def _round_half_away(x):
    # the fraction is compared exactly: floor(x + 0.5) would round x + 0.5 first
    x = np.asarray(x)
    whole = np.trunc(x)
    away = np.abs(x - whole) >= 0.5
    return (whole + np.where(away, np.sign(x), 0)).astype(np.result_type(x, np.float16))


round_half_away_from_zero = _unary("round_half_away_from_zero", _round_half_away, "round_away",
                                   grad=_zero_grad, doc="Round to nearest, ties away from zero.")

_SQRT_PI = float(np.sqrt(np.pi))
erf = _unary("erf", sps.erf, "erf", grad=lambda x, z, g: g * (2 / _SQRT_PI) * _t().exp(-x * x))
erfc = _unary("erfc", sps.erfc, "erfc", grad=lambda x, z, g: -g * (2 / _SQRT_PI) * _t().exp(-x * x))
erfinv = _unary("erfinv", sps.erfinv, "erfinv",
                grad=lambda x, z, g: g * (_SQRT_PI / 2) * _t().exp(z * z))
def _gammaln(x):
    # as C's lgamma: -log(x) for positive subnormals, where scipy's gammaln overflows to
    # inf, and +inf at -inf, where scipy gives -inf
    x = np.asarray(x)
    out = sps.gammaln(x)
    tiny = (x > 0) & (x < np.finfo(np.result_type(x, np.float16)).tiny)
    if np.any(tiny):
        out = np.where(tiny, -np.log(np.where(tiny, x, 1)), out)
    return np.where(x == -np.inf, np.inf, out) if np.any(x == -np.inf) else out


gammaln = _unary("gammaln", _gammaln, "lgamma", grad=lambda x, z, g: g * _t().psi(x))


def _psi_grad(x, z, g):
    return g * _t().polygamma(1, x)


psi = _unary("psi", sps.digamma, "digamma", grad=_psi_grad)


class TriGamma(ScalarOp):
    """polygamma(1, x): the derivative of psi."""

    name, nin, ir, dtype_rule = "tri_gamma", 1, "trigamma", "float"

    @staticmethod
    def impl(x):
        return sps.polygamma(1, x)

    def grad(self, inputs, output, gz):
        from theanine.gradient import grad_not_implemented
        return [grad_not_implemented(self, 0, inputs[0], "the derivative of trigamma is not implemented")]


tri_gamma = TriGamma()


def _sigmoid_impl(x):
    return sps.expit(x)


sigmoid = _unary("sigmoid", _sigmoid_impl, "sigmoid", grad=lambda x, z, g: g * z * (1 - z))


def _softplus_impl(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
    return np.logaddexp(0, x)


softplus = _unary("softplus", _softplus_impl, "softplus", grad=lambda x, z, g: g * _t().sigmoid(x))

# --- comparisons, logic, predicates ------------------------------------------------------


def _cmp(name, fn, ir):
    return _binary(name, fn, ir, dtype_rule="bool",
                   grad=lambda x, y, z, g: (_t().zeros_like(x, dtype=_grad_dtype(x)),
                                            _t().zeros_like(y, dtype=_grad_dtype(y))))


lt = _cmp("lt", np.less, "lt")
le = _cmp("le", np.less_equal, "le")
gt = _cmp("gt", np.greater, "gt")
ge = _cmp("ge", np.greater_equal, "ge")
eq = _cmp("eq", np.equal, "eq")
neq = _cmp("neq", np.not_equal, "ne")
logical_and = _cmp("and_", np.logical_and, "land")
logical_or = _cmp("or_", np.logical_or, "lor")
logical_xor = _cmp("xor", np.logical_xor, "lxor")
logical_not = _unary("invert_bool", np.logical_not, "lnot", "bool", grad=_zero_grad)
isnan = _unary("isnan", np.isnan, "isnan", "bool", grad=_zero_grad)
isinf = _unary("isinf", np.isinf, "isinf", "bool", grad=_zero_grad)


class Bitwise(ScalarOp):
    """Bitwise and/or/xor on integers and booleans."""

    nin = 2
    commutative = True

    def __init__(self, name, fn, ir):
        self.name, self._fn, self.ir = name, fn, ir

    def _params(self):
        return (self.name,)

    def check_dtypes(self, *dtypes):
        for d in dtypes:
            if d not in DISCRETE_DTYPES:
                raise TypeError(f"{self.name}: bitwise operations need integer or bool inputs, got {d}")

    def impl(self, x, y):
        return self._fn(x, y)

    def grad(self, inputs, output, gz):
        return [_t().zeros_like(x, dtype=_grad_dtype(x)) for x in inputs]


bitwise_and = Bitwise("bitwise_and", np.bitwise_and, "band")
bitwise_or = Bitwise("bitwise_or", np.bitwise_or, "bor")
bitwise_xor = Bitwise("bitwise_xor", np.bitwise_xor, "bxor")


class Shift(ScalarOp):
    """x << y or x >> y on integers, NumPy's semantics: a count outside [0, bits) shifts every
    bit out (0, or -1 for negative x >> y); >> is arithmetic for signed x."""

    nin = 2

    def __init__(self, name, fn, ir):
        self.name, self._fn, self.ir = name, fn, ir

    def _params(self):
        return (self.name,)

    def check_dtypes(self, *dtypes):
        for d in dtypes:
            if d not in INT_DTYPES:
                raise TypeError(f"{self.name}: shifts need integer inputs, got {d}")
        if upcast(*dtypes) not in INT_DTYPES:
            raise TypeError(f"{self.name}: no integer dtype holds both {dtypes[0]} and {dtypes[1]}")

    def impl(self, x, y):
        return self._fn(x, y)

    def grad(self, inputs, output, gz):
        return [_t().zeros_like(x, dtype=_grad_dtype(x)) for x in inputs]


left_shift = Shift("left_shift", np.left_shift, "lshift")
right_shift = Shift("right_shift", np.right_shift, "rshift")


class Invert(ScalarOp):
    """~x: bitwise not on integers, logical not on booleans."""

    name, nin, ir = "invert", 1, "bnot"

    def check_dtypes(self, dtype):
        if dtype not in DISCRETE_DTYPES:
            raise TypeError(f"invert: needs an integer or bool input, got {dtype}")

    impl = staticmethod(np.invert)

    def grad(self, inputs, output, gz):
        return [_t().zeros_like(inputs[0], dtype=_grad_dtype(inputs[0]))]


invert = Invert()


class Switch(ScalarOp):
    """switch(cond, a, b): a where cond is true, else b (NumPy's where)."""

    name, nin, ir = "switch", 3, "select"
    dtype_inputs = (1, 2)  # switch(ivector, fvector, 0.5) is float32: the condition does not count

    def output_dtype(self, cond, a, b):
        return upcast(a, b)

    @staticmethod
    def impl(c, a, b):
        return np.where(c, a, b)

    def grad(self, inputs, output, gz):
        c, a, b = inputs
        T = _t()
        zero = T.zeros_like(gz)
        return [T.zeros_like(c, dtype=_grad_dtype(c)), T.switch(c, gz, zero), T.switch(c, zero, gz)]


switch = Switch()


class Clip(ScalarOp):
    """clip(x, lo, hi) = min(max(x, lo), hi); the gradient passes where lo <= x <= hi."""

    name, nin, ir = "clip", 3, "clip"

    def output_dtype(self, x, lo, hi):
        return upcast(x, lo, hi)

    @staticmethod
    def impl(x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)

    def grad(self, inputs, output, gz):
        x, lo, hi = inputs
        T = _t()
        inside = T.and_(T.ge(x, lo), T.le(x, hi))
        return [gz * inside, gz * T.lt(x, lo), gz * T.gt(x, hi)]


clip = Clip()


class Second(ScalarOp):
    """second(x, y) = y, broadcast to the shape of x (Theano's ``fill``)."""

    name, nin, ir = "second", 2, "second"

    def output_dtype(self, x, y):
        return y

    @staticmethod
    def impl(x, y):
        return np.broadcast_to(y, np.broadcast_shapes(np.shape(x), np.shape(y))).copy()

    def grad(self, inputs, output, gz):
        x, y = inputs
        return [_t().zeros_like(x, dtype=_grad_dtype(x)), gz]


second = Second()


class Cast(ScalarOp):
    """Conversion to ``dtype`` (C semantics: float to int truncates toward zero)."""

    nin, ir = 1, "cast"

    def __init__(self, dtype):
        self.dtype = str(np.dtype(dtype))
        self.name = f"cast_{self.dtype}"

    def _params(self):
        return (self.dtype,)

    def output_dtype(self, dtype):
        return self.dtype

    def impl(self, x):
        with np.errstate(invalid="ignore", over="ignore"):
            return np.asarray(x).astype(self.dtype)

    def grad(self, inputs, output, gz):
        x = inputs[0]
        T = _t()
        if x.dtype in DISCRETE_DTYPES or self.dtype in DISCRETE_DTYPES:
            return [T.zeros_like(x, dtype=_grad_dtype(x))]
        return [T.cast(gz, x.dtype)]


class RealPart(ScalarOp):
    name, nin, ir = "real", 1, "real"
    impl = staticmethod(np.real)

    def output_dtype(self, dtype):
        return {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)


class ImagPart(RealPart):
    name, ir = "imag", "imag"
    impl = staticmethod(np.imag)


real = RealPart()
imag = ImagPart()


def _grad_dtype(x):
    """The dtype gradients with respect to ``x`` take (floatX for discrete inputs)."""
    from theanine.configparser import config
    return x.dtype if x.dtype in FLOAT_DTYPES + COMPLEX_DTYPES else config.floatX
