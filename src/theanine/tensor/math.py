"""Elementwise math, reductions and linear algebra, with Theano's names."""

from __future__ import annotations

import builtins
import functools

import numpy as np

from theanine import scalar as ts
from theanine.configparser import config
from theanine.graph.basic import Apply, Op
from theanine.tensor.elemwise import Elemwise, dimshuffle
from theanine.tensor.type import DISCRETE_DTYPES, FLOAT_DTYPES, INT_DTYPES, TensorType, upcast
from theanine.tensor.variable import as_tensor_variable

# --- elementwise -------------------------------------------------------------------------


def _elemwise(scalar_op, name=None, doc=None):
    op = Elemwise(scalar_op, name)

    def fn(*args):
        return op(*args)

    fn.__name__ = name or scalar_op.name
    fn.__doc__ = doc or (scalar_op.__doc__ or f"Elementwise {scalar_op.name}.")
    fn.op = op
    return fn


_add2 = _elemwise(ts.add)
_mul2 = _elemwise(ts.mul)


def add(a, *others):
    """a + b + ..., elementwise with broadcasting."""
    return functools.reduce(_add2, others, a) if others else as_tensor_variable(a)


def mul(a, *others):
    """a * b * ..., elementwise with broadcasting."""
    return functools.reduce(_mul2, others, a) if others else as_tensor_variable(a)


sub = _elemwise(ts.sub, doc="a - b, elementwise.")
true_div = _elemwise(ts.true_div, doc="a / b, elementwise; integers divide to floats.")
int_div = _elemwise(ts.int_div, doc="a // b, elementwise floor division.")
floor_div = int_div
mod = _elemwise(ts.mod, doc="a % b, elementwise (the sign of b, as in NumPy).")
pow = _elemwise(ts.pow_, "pow", doc="a ** b, elementwise.")  # noqa: A001
power = pow
maximum = _elemwise(ts.maximum, doc="Elementwise maximum.")
minimum = _elemwise(ts.minimum, doc="Elementwise minimum.")
arctan2 = _elemwise(ts.arctan2, doc="Elementwise arctan(y / x) in the right quadrant.")
neg = _elemwise(ts.neg, doc="-x, elementwise.")
abs = _elemwise(ts.abs_, "abs", doc="|x|, elementwise.")  # noqa: A001
abs_ = abs
sgn = _elemwise(ts.sgn, doc="Sign of x (-1, 0 or 1), elementwise.")
sign = sgn
sqr = _elemwise(ts.sqr, doc="x * x, elementwise.")
square = sqr
sqrt = _elemwise(ts.sqrt, doc="Square root, elementwise (nan for negative x).")
reciprocal = _elemwise(ts.reciprocal, doc="1 / x, elementwise.")
inv = reciprocal
exp = _elemwise(ts.exp)
exp2 = _elemwise(ts.exp2)
expm1 = _elemwise(ts.expm1, doc="exp(x) - 1, accurate for small x.")
log = _elemwise(ts.log)
log2 = _elemwise(ts.log2)
log10 = _elemwise(ts.log10)
log1p = _elemwise(ts.log1p, doc="log(1 + x), accurate for small x.")
sin, cos, tan = _elemwise(ts.sin), _elemwise(ts.cos), _elemwise(ts.tan)
arcsin, arccos, arctan = _elemwise(ts.arcsin), _elemwise(ts.arccos), _elemwise(ts.arctan)
sinh, cosh, tanh = _elemwise(ts.sinh), _elemwise(ts.cosh), _elemwise(ts.tanh)
arcsinh, arccosh, arctanh = _elemwise(ts.arcsinh), _elemwise(ts.arccosh), _elemwise(ts.arctanh)
floor, ceil, trunc = _elemwise(ts.floor), _elemwise(ts.ceil), _elemwise(ts.trunc)
round_half_to_even = _elemwise(ts.round_half_to_even)
round_half_away_from_zero = _elemwise(ts.round_half_away_from_zero)
erf, erfc, erfinv = _elemwise(ts.erf), _elemwise(ts.erfc), _elemwise(ts.erfinv)
gammaln = _elemwise(ts.gammaln, doc="log|Gamma(x)|, elementwise.")
psi = _elemwise(ts.psi, doc="The digamma function, elementwise.")
tri_gamma = _elemwise(ts.tri_gamma)
sigmoid = _elemwise(ts.sigmoid, doc="1 / (1 + exp(-x)), elementwise.")
softplus = _elemwise(ts.softplus, doc="log(1 + exp(x)), elementwise, without overflow.")
lt, le, gt, ge = _elemwise(ts.lt), _elemwise(ts.le), _elemwise(ts.gt), _elemwise(ts.ge)
eq, neq = _elemwise(ts.eq), _elemwise(ts.neq)
less, less_equal, greater, greater_equal = lt, le, gt, ge
equal, not_equal = eq, neq
_land = _elemwise(ts.logical_and, "and_")
_lor = _elemwise(ts.logical_or, "or_")
_lxor = _elemwise(ts.logical_xor, "xor")
_band = _elemwise(ts.bitwise_and)
_bor = _elemwise(ts.bitwise_or)
_bxor = _elemwise(ts.bitwise_xor)
logical_not = _elemwise(ts.logical_not, "logical_not")
_invert = _elemwise(ts.invert)
isnan = _elemwise(ts.isnan)
isinf = _elemwise(ts.isinf)
switch = _elemwise(ts.switch, doc="switch(cond, a, b): a where cond, else b (elementwise).")
where = switch
_clip = _elemwise(ts.clip)
second = _elemwise(ts.second, doc="second(x, y): y broadcast to x's shape (Theano's fill).")
fill = second
real, imag = _elemwise(ts.real), _elemwise(ts.imag)
tensor_copy = _elemwise(ts.identity, "tensor_copy", doc="A copy of x.")


def _is_bool(x):
    return as_tensor_variable(x).dtype == "bool"


def and_(a, b):
    """a & b: logical for booleans, bitwise for integers."""
    return _land(a, b) if _is_bool(a) and _is_bool(b) else _band(a, b)


def or_(a, b):
    """a | b: logical for booleans, bitwise for integers."""
    return _lor(a, b) if _is_bool(a) and _is_bool(b) else _bor(a, b)


def xor(a, b):
    """a ^ b: logical for booleans, bitwise for integers."""
    return _lxor(a, b) if _is_bool(a) and _is_bool(b) else _bxor(a, b)


def invert(a):
    """~a: logical not for booleans, bitwise not for integers."""
    return logical_not(a) if _is_bool(a) else _invert(a)


logical_and, logical_or, logical_xor = _land, _lor, _lxor
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = _band, _bor, _bxor, _invert
left_shift = _elemwise(ts.left_shift, doc="a << b, elementwise on integers (as numpy.left_shift: "
                                          "0 for a count outside [0, bits)).")
right_shift = _elemwise(ts.right_shift, doc="a >> b, elementwise on integers (as numpy.right_shift: "
                                            "arithmetic for signed a; a count outside [0, bits) "
                                            "gives 0, or -1 for negative a).")


def clip(x, a_min, a_max):
    """x limited to [a_min, a_max], elementwise."""
    return _clip(x, a_min, a_max)


def round(x, mode="half_to_even"):  # noqa: A001
    """Round to the nearest integer: mode 'half_to_even' (NumPy) or 'half_away_from_zero'."""
    if mode == "half_to_even":
        return round_half_to_even(x)
    if mode == "half_away_from_zero":
        return round_half_away_from_zero(x)
    raise ValueError(f"round: mode must be 'half_to_even' or 'half_away_from_zero', got {mode!r}")


def iround(x, mode="half_to_even"):
    """round(x) cast to int64."""
    return cast(round(x, mode), "int64")


_casts = {}


def cast(x, dtype):
    """x converted to ``dtype`` (float to int truncates toward zero, as in C and NumPy)."""
    x = as_tensor_variable(x)
    dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
    if x.dtype == dtype:
        return x
    if dtype not in _casts:
        _casts[dtype] = Elemwise(ts.Cast(dtype), f"cast{{{dtype}}}")
    return _casts[dtype](x)


def relu(x, alpha=0):
    """max(x, 0); with ``alpha``, the leaky version x if x > 0 else alpha * x."""
    x = as_tensor_variable(x)
    if alpha == 0:
        return maximum(x, 0)
    return switch(gt(x, 0), x, alpha * x)


def polygamma(n, x):
    """polygamma(n, x) for n in {0, 1}."""
    if n == 0:
        return psi(x)
    if n == 1:
        return tri_gamma(x)
    raise ValueError(f"polygamma: n must be 0 or 1, got {n}")


def true_divide(a, b):
    return true_div(a, b)


divide = true_div


# --- reductions --------------------------------------------------------------------------


def _normalize_axis(axis, ndim, opname):
    if axis is None:
        return tuple(range(ndim))
    if hasattr(axis, "owner") or hasattr(axis, "type"):
        from theanine.tensor.basic import get_scalar_constant_value
        axis = get_scalar_constant_value(axis)
    axes = (axis,) if isinstance(axis, (int, np.integer)) or np.ndim(axis) == 0 else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{opname}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):  # 0-d: 0 or -1, as NumPy
            raise ValueError(f"{opname}: axis {a} is out of range for a tensor with {ndim} dimensions")
        a = int(a) % builtins.max(ndim, 1)
        if a in out:
            raise ValueError(f"{opname}: axis {a} repeated in {axis!r}")
        out.append(a)
    if ndim == 0:
        return ()
    return tuple(sorted(out))


class Reduce(Op):
    """Reduction over ``axis`` (dropped from the result) with kind sum, prod, max, min, all or any."""

    __props__ = ("kind", "axis", "acc_dtype")
    _numpy = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min,
              "all": np.all, "any": np.any}

    def __init__(self, kind, axis, acc_dtype=None):
        if kind not in self._numpy:
            raise ValueError(f"Reduce: unknown kind {kind!r}")
        self.kind, self.axis, self.acc_dtype = kind, tuple(axis), acc_dtype

    def __str__(self):
        return f"{self.kind.capitalize()}{{axis={list(self.axis)}}}"

    def make_node(self, x):
        x = as_tensor_variable(x)
        if self.kind in ("all", "any"):
            dtype = "bool"
        elif self.kind in ("max", "min"):
            dtype = x.dtype
        else:
            dtype = self.acc_dtype or x.dtype
        shape = tuple(s for i, s in enumerate(x.type.shape) if i not in self.axis)
        if self.kind in ("max", "min"):
            for a in self.axis:
                if x.type.shape[a] == 0:
                    raise ValueError(f"{self}: cannot take the {self.kind} over an empty dimension {a}")
        return Apply(self, [x], [TensorType(dtype, shape)()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        out_dtype = node.outputs[0].dtype
        if self.kind in ("max", "min") and builtins.any(x.shape[a] == 0 for a in self.axis):
            raise ValueError(f"{self}: cannot take the {self.kind} over an empty dimension "
                             f"(input shape {x.shape})")
        kwargs = {"dtype": out_dtype} if self.kind in ("sum", "prod") else {}
        with np.errstate(all="ignore"):  # inf - inf and overflow: nan and inf, silently
            out = self._numpy[self.kind](x, axis=self.axis, **kwargs)
        output_storage[0][0] = np.asarray(out, dtype=out_dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(s for i, s in enumerate(shapes[0]) if i not in self.axis)]

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        (x,), (z,), (gz,) = inputs, outputs, output_grads
        if x.dtype in DISCRETE_DTYPES or self.kind in ("all", "any"):
            return [grad_undefined_for_discrete(x)]
        pattern = []
        k = 0
        for i in range(x.ndim):
            if i in self.axis:
                pattern.append("x")
            else:
                pattern.append(k)
                k += 1
        gz_b = dimshuffle(gz, pattern)
        if self.kind == "sum":
            return [second(x, gz_b)]
        z_b = dimshuffle(z, pattern)
        if self.kind in ("max", "min"):
            return [gz_b * eq(x, z_b)]
        # prod: d/dx_i = product of the other entries, exact even when some x are zero
        nz = eq(x, 0)
        n_zeros = dimshuffle(Reduce("sum", self.axis, "int64")(nz), pattern)
        prod_nonzero = dimshuffle(Reduce("prod", self.axis, self.acc_dtype)(switch(nz, 1, x)), pattern)
        no_zero = gz_b * z_b / switch(nz, 1, x)
        one_zero = gz_b * prod_nonzero * nz
        return [switch(eq(n_zeros, 0), no_zero, switch(eq(n_zeros, 1), one_zero, 0))]



def _keep(x, out, axes, keepdims):
    if not keepdims:
        return out
    pattern, k = [], 0
    for i in range(x.ndim):
        if i in axes:
            pattern.append("x")
        else:
            pattern.append(k)
            k += 1
    return dimshuffle(out, pattern)


def _acc_dtype(dtype, requested):
    if requested is not None:
        return config.floatX if requested == "floatX" else str(np.dtype(requested))
    if dtype == "bool" or dtype in ("int8", "int16", "int32"):
        return "int64"
    if dtype in ("uint8", "uint16", "uint32"):
        return "uint64"
    return dtype


def _reduce(kind, x, axis, keepdims, acc_dtype=None):
    x = as_tensor_variable(x)
    axes = _normalize_axis(axis, x.ndim, kind)
    out = Reduce(kind, axes, acc_dtype)(x) if axes else (x if kind not in ("all", "any") else neq(x, 0))
    if kind in ("sum", "prod") and not axes and acc_dtype is not None:
        out = cast(out, acc_dtype)
    return _keep(x, out, axes, keepdims)


def sum(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):  # noqa: A001
    """Sum over ``axis`` (int, tuple or None for all); integers accumulate in 64 bits."""
    x = as_tensor_variable(x)
    return _reduce("sum", x, axis, keepdims, _acc_dtype(x.dtype, dtype or acc_dtype))


def prod(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Product over ``axis``; integers accumulate in 64 bits."""
    x = as_tensor_variable(x)
    return _reduce("prod", x, axis, keepdims, _acc_dtype(x.dtype, dtype or acc_dtype))


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Maximum over ``axis``."""
    return _reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Minimum over ``axis``."""
    return _reduce("min", x, axis, keepdims)


def all(x, axis=None, keepdims=False):  # noqa: A001
    """Whether all entries along ``axis`` are non-zero."""
    return _reduce("all", x, axis, keepdims)


def any(x, axis=None, keepdims=False):  # noqa: A001
    """Whether any entry along ``axis`` is non-zero."""
    return _reduce("any", x, axis, keepdims)


def _count(x, axes):
    from theanine.tensor.shape import shape
    if not axes:
        return as_tensor_variable(np.int64(1))
    static = [x.type.shape[a] for a in axes]
    if None not in static:
        return as_tensor_variable(np.int64(np.prod(static)))
    shp = shape(x)
    return mul(*[shp[a] for a in axes])


def mean(x, axis=None, dtype=None, keepdims=False, acc_dtype=None):
    """Arithmetic mean over ``axis`` (integers give float64, as in NumPy)."""
    x = as_tensor_variable(x)
    axes = _normalize_axis(axis, x.ndim, "mean")
    out_dtype = dtype or (x.dtype if x.dtype in FLOAT_DTYPES else "float64")
    total = sum(x, axes, dtype=acc_dtype or out_dtype, keepdims=keepdims)
    return cast(total / cast(_count(x, axes), total.dtype), out_dtype)


def var(x, axis=None, ddof=0, keepdims=False, corrected=False):
    """Variance over ``axis`` (``ddof`` as in NumPy; ``corrected=True`` means ddof=1)."""
    x = as_tensor_variable(x)
    ddof = 1 if corrected else ddof
    axes = _normalize_axis(axis, x.ndim, "var")
    centered = x - mean(x, axes, keepdims=True)
    sq = sum(centered * centered, axes, keepdims=keepdims)
    dtype = sq.dtype
    return sq / cast(maximum(_count(x, axes) - ddof, 0), dtype)


def std(x, axis=None, ddof=0, keepdims=False, corrected=False):
    """Standard deviation over ``axis``."""
    return sqrt(var(x, axis, ddof, keepdims, corrected))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, computed without overflow."""
    x = as_tensor_variable(x)
    axes = _normalize_axis(axis, x.ndim, "logsumexp")
    m = max(x, axes, keepdims=True)
    m = switch(isinf(m), 0, m)  # all -inf (or +inf) slices: avoid inf - inf
    m = zero_grad_(m)
    out = log(sum(exp(x - m), axes, keepdims=True)) + m
    if not keepdims:
        out = _drop(out, axes)
    return out


def zero_grad_(x):
    from theanine.gradient import zero_grad
    return zero_grad(x)


def _drop(x, axes):
    return dimshuffle(x, [i for i in range(x.ndim) if i not in axes])


class ArgReduce(Op):
    """argmax / argmin along one axis (or over the flattened array when axis is None)."""

    __props__ = ("kind", "axis")

    def __init__(self, kind, axis):
        self.kind, self.axis = kind, axis

    def make_node(self, x):
        x = as_tensor_variable(x)
        if self.axis is None:
            shape = ()
        else:
            shape = tuple(s for i, s in enumerate(x.type.shape) if i != self.axis)
        return Apply(self, [x], [TensorType("int64", shape)()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        fn = np.argmax if self.kind == "argmax" else np.argmin
        n = x.size if self.axis is None else x.shape[self.axis]
        if n == 0:
            raise ValueError(f"{self}: attempt to get {self.kind} of an empty sequence (shape {x.shape})")
        output_storage[0][0] = np.asarray(fn(x, axis=self.axis), dtype="int64")

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        return [grad_undefined_for_discrete(inputs[0])]


def _single_axis(axis, ndim, opname):
    """One axis, normalised; None for a 0-d input (where NumPy accepts axis 0 or -1)."""
    if not hasattr(axis, "type") and not isinstance(axis, (int, np.integer)) \
            and np.ndim(axis) == 1 and len(axis) != 1:
        raise ValueError(f"{opname}: axis must be a single int or None, got {axis!r}")
    axes = _normalize_axis(axis, ndim, opname)
    return axes[0] if axes else None


def _argreduce(kind, x, axis, keepdims):
    x = as_tensor_variable(x)
    if axis is None:
        out = ArgReduce(kind, None)(x)
        axes = tuple(range(x.ndim))
    else:
        a = _single_axis(axis, x.ndim, kind)
        out = ArgReduce(kind, a)(x)
        axes = () if a is None else (a,)
    return _keep(x, out, axes, keepdims)


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum along ``axis`` (int64; first occurrence)."""
    return _argreduce("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the minimum along ``axis`` (int64; first occurrence)."""
    return _argreduce("argmin", x, axis, keepdims)


def max_and_argmax(x, axis=None, keepdims=False):
    """(max, argmax) along ``axis``."""
    return max(x, axis, keepdims), argmax(x, axis, keepdims)


class CumOp(Op):
    """Cumulative sum or product along ``axis`` (None: over the flattened array)."""

    __props__ = ("mode", "axis")

    def __init__(self, mode, axis):
        if mode not in ("add", "mul"):
            raise ValueError(f"CumOp: mode must be 'add' or 'mul', got {mode!r}")
        self.mode, self.axis = mode, axis

    def __str__(self):
        return f"Cum{'sum' if self.mode == 'add' else 'prod'}{{axis={self.axis}}}"

    def make_node(self, x):
        x = as_tensor_variable(x)
        dtype = _acc_dtype(x.dtype, None)
        if self.axis is None:
            n = None if None in x.type.shape else int(np.prod(x.type.shape, dtype=np.int64))
            return Apply(self, [x], [TensorType(dtype, (n,))()])
        return Apply(self, [x], [TensorType(dtype, x.type.shape)()])

    def perform(self, node, inputs, output_storage):
        fn = np.cumsum if self.mode == "add" else np.cumprod
        output_storage[0][0] = np.asarray(fn(inputs[0], axis=self.axis, dtype=node.outputs[0].dtype))

    def L_op(self, inputs, outputs, output_grads):
        from theanine.gradient import grad_undefined_for_discrete
        from theanine.tensor.shape import reshape, shape
        (x,), (z,), (gz,) = inputs, outputs, output_grads
        if x.dtype in DISCRETE_DTYPES:
            return [grad_undefined_for_discrete(x)]
        axis = 0 if self.axis is None else self.axis
        rev = _reverse(gz if self.mode == "add" else gz * z, axis)
        g = _reverse(CumOp("add", axis)(rev), axis)
        if self.mode == "mul":
            # d z_j / d x_i = z_j / x_i for j >= i; exact for non-zero x.
            g = g / x if self.axis is not None else g / x.flatten()
        if self.axis is None:
            g = reshape(g, shape(x), ndim=x.ndim)
        return [g]


def _reverse(x, axis):
    index = [slice(None)] * x.ndim
    index[axis] = slice(None, None, -1)
    return x[tuple(index)]


def cumsum(x, axis=None):
    """Cumulative sum along ``axis`` (None: flattened)."""
    x = as_tensor_variable(x)
    return CumOp("add", None if axis is None else _single_axis(axis, x.ndim, "cumsum"))(x)


def cumprod(x, axis=None):
    """Cumulative product along ``axis`` (None: flattened).

    Its gradient divides by x, so it is exact only where x is non-zero.
    """
    x = as_tensor_variable(x)
    return CumOp("mul", None if axis is None else _single_axis(axis, x.ndim, "cumprod"))(x)


# --- linear algebra ----------------------------------------------------------------------


def _float_operands(a, b, opname):
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    for name, v in (("first", a), ("second", b)):
        if v.dtype == "bool":
            raise TypeError(f"{opname}: the {name} operand is boolean; cast it to a number first")
    return a, b


class Dot(Op):
    """numpy.dot for operands of rank 0, 1 or 2 (higher ranks go through tensordot)."""

    __props__ = ()

    def make_node(self, a, b):
        a, b = _float_operands(a, b, "dot")
        if a.ndim > 2 or b.ndim > 2:
            raise TypeError("Dot: operands must have rank <= 2; use T.dot, which handles any rank")
        if a.ndim >= 1 and b.ndim >= 1:
            ka = a.type.shape[-1]
            kb = b.type.shape[0]
            if ka is not None and kb is not None and ka != kb:
                raise ValueError(f"dot: shapes {_shape_str(a)} and {_shape_str(b)} are not aligned "
                                 f"({ka} (dim {a.ndim - 1}) != {kb} (dim 0))")
        shape = a.type.shape[:-1] + b.type.shape[1:] if a.ndim and b.ndim else a.type.shape + b.type.shape
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape)()])

    def perform(self, node, inputs, output_storage):
        a, b = inputs
        try:
            with np.errstate(all="ignore"):  # nan and inf propagate silently
                out = np.dot(a, b)
        except ValueError as e:
            raise ValueError(f"dot: shapes {a.shape} and {b.shape} are not aligned") from e
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        sa, sb = shapes
        return [tuple(sa[:-1]) + tuple(sb[1:]) if sa and sb else tuple(sa) + tuple(sb)]

    def L_op(self, inputs, outputs, output_grads):
        a, b = inputs
        (gz,) = output_grads
        if a.ndim == 0 or b.ndim == 0:
            return [_sum_like(gz * b, a), _sum_like(gz * a, b)]
        if a.ndim == 1 and b.ndim == 1:
            return [gz * b, gz * a]
        if a.ndim == 2 and b.ndim == 1:
            return [outer(gz, b), dot(a.T, gz)]
        if a.ndim == 1 and b.ndim == 2:
            return [dot(b, gz), outer(a, gz)]
        return [dot(gz, b.T), dot(a.T, gz)]



def _sum_like(g, x):
    return sum(g) if x.ndim == 0 else g


def _shape_str(v):
    return "(" + ", ".join("?" if s is None else str(s) for s in v.type.shape) + ("," if v.ndim == 1 else "") + ")"


_dot = Dot()


def dot(a, b):
    """numpy.dot: inner product of vectors, matrix products, and the N-d rule (sum over
    the last axis of a and the second-to-last of b)."""
    a, b = _float_operands(a, b, "dot")
    if a.ndim <= 2 and b.ndim <= 2:
        if a.ndim == 0 or b.ndim == 0:
            return mul(a, b)
        return _dot(a, b)
    return tensordot(a, b, [[a.ndim - 1], [builtins.max(b.ndim - 2, 0)]])


def tensordot(a, b, axes=2):
    """numpy.tensordot: contract ``axes`` of a with those of b (an int or two lists)."""
    from theanine.tensor.shape import reshape, shape
    a, b = _float_operands(a, b, "tensordot")
    if isinstance(axes, (int, np.integer)):
        axes_a = list(range(a.ndim - axes, a.ndim))
        axes_b = list(range(axes))
    else:
        axes_a, axes_b = (list(ax) if isinstance(ax, (list, tuple)) else [ax] for ax in axes)
    if len(axes_a) != len(axes_b):
        raise ValueError(f"tensordot: axes lists differ in length ({axes_a} vs {axes_b})")
    axes_a = [ax % a.ndim for ax in axes_a]
    axes_b = [ax % b.ndim for ax in axes_b]
    for ia, ib in zip(axes_a, axes_b):
        sa, sb = a.type.shape[ia], b.type.shape[ib]
        if sa is not None and sb is not None and sa != sb:
            raise ValueError(f"tensordot: shape mismatch for summed axes: a{_shape_str(a)} axis {ia} "
                             f"has size {sa}, b{_shape_str(b)} axis {ib} has size {sb}")
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [i for i in range(b.ndim) if i not in axes_b]
    at = a.transpose(free_a + axes_a)
    bt = b.transpose(axes_b + free_b)
    sa, sb = shape(a), shape(b)

    def dims(v, sv, axes):  # static sizes as ints (so the result keeps its static shape)
        return [v.type.shape[i] if v.type.shape[i] is not None else sv[i] for i in axes]

    def size(entries):
        if builtins.all(isinstance(e, int) for e in entries):
            return int(np.prod(entries, dtype=np.int64))
        return mul(*entries)

    k = size(dims(a, sa, axes_a))
    m = size(dims(a, sa, free_a))
    n = size(dims(b, sb, free_b))
    a2 = reshape(at, [m, k], ndim=2)
    b2 = reshape(bt, [k, n], ndim=2)
    out_shape = dims(a, sa, free_a) + dims(b, sb, free_b)
    return reshape(_dot(a2, b2), out_shape, ndim=len(out_shape))


class MatMul(Op):
    """numpy.matmul for operands of rank >= 2 (batch dimensions broadcast)."""

    __props__ = ()

    def make_node(self, a, b):
        from theanine.tensor.elemwise import broadcast_static_shapes
        a, b = _float_operands(a, b, "matmul")
        if a.ndim < 2 or b.ndim < 2:
            raise TypeError("MatMul: operands must have rank >= 2; use T.matmul for vectors")
        ka, kb = a.type.shape[-1], b.type.shape[-2]
        if ka is not None and kb is not None and ka != kb:
            raise ValueError(f"matmul: shapes {_shape_str(a)} and {_shape_str(b)} are not aligned "
                             f"({ka} != {kb})")
        batch = broadcast_static_shapes([a.type.shape[:-2], b.type.shape[:-2]], "matmul")
        shape = batch + (a.type.shape[-2], b.type.shape[-1])
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape)()])

    def perform(self, node, inputs, output_storage):
        a, b = inputs
        try:
            out = np.matmul(a, b)
        except ValueError as e:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned") from e
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def L_op(self, inputs, outputs, output_grads):
        from theanine.tensor.elemwise import sum_to
        from theanine.tensor.shape import swapaxes
        a, b = inputs
        (gz,) = output_grads
        ga = matmul(gz, swapaxes(b, -1, -2))
        gb = matmul(swapaxes(a, -1, -2), gz)
        return [_sum_batch(ga, a, sum_to), _sum_batch(gb, b, sum_to)]


def _sum_batch(g, x, sum_to):
    extra = g.ndim - x.ndim
    if extra:
        g = sum(g, axis=list(range(extra)))
    return sum_to(g, x)


_matmul = MatMul()


def matmul(a, b):
    """numpy.matmul (the @ operator): matrix products with broadcast batch dimensions."""
    a, b = _float_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: scalar operands are not allowed; use *")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if a.ndim <= 2 and b.ndim <= 2:
        return _dot(a, b)
    a2 = dimshuffle(a, ["x", 0]) if squeeze_a else a
    b2 = dimshuffle(b, [0, "x"]) if squeeze_b else b
    out = _matmul(a2, b2)
    if squeeze_a:
        out = _drop(out, [out.ndim - 2])
    if squeeze_b:
        out = _drop(out, [out.ndim - 1])
    return out


def outer(x, y):
    """Outer product of two vectors (flattened first when they are not)."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if x.ndim != 1:
        x = x.flatten()
    if y.ndim != 1:
        y = y.flatten()
    return dimshuffle(x, [0, "x"]) * dimshuffle(y, ["x", 0])


def batched_dot(a, b):
    """Dot products of matching entries of two batches: out[i] = dot(a[i], b[i])."""
    a, b = _float_operands(a, b, "batched_dot")
    if a.ndim < 2 or b.ndim < 2:
        raise TypeError(f"batched_dot: operands need a batch dimension (rank >= 2), got ranks {a.ndim}, {b.ndim}")
    if a.ndim == 2 and b.ndim == 2:
        return sum(a * b, axis=1)
    if a.ndim == 2:
        return _drop(_matmul(dimshuffle(a, [0, "x", 1]), b), [1])
    if b.ndim == 2:
        return _drop(_matmul(a, dimshuffle(b, [0, 1, "x"])), [a.ndim - 1])
    return _matmul(a, b)


def batched_tensordot(x, y, axes=2):
    """tensordot of matching entries of two batches (leading dimension)."""
    from theanine.tensor.shape import reshape
    x, y = _float_operands(x, y, "batched_tensordot")
    if isinstance(axes, int):
        axes = [list(range(x.ndim - axes, x.ndim)), list(range(1, 1 + axes))]
    ax, ay = [list(a) if isinstance(a, (list, tuple)) else [a] for a in axes]
    free_x = [i for i in range(1, x.ndim) if i not in ax]
    free_y = [i for i in range(1, y.ndim) if i not in ay]
    xt = x.transpose([0] + free_x + ax)
    yt = y.transpose([0] + ay + free_y)
    sx, sy = x.shape, y.shape
    m = mul(*[sx[i] for i in free_x]) if free_x else 1
    k = mul(*[sx[i] for i in ax]) if ax else 1
    n = mul(*[sy[i] for i in free_y]) if free_y else 1
    out = _matmul(reshape(xt, [sx[0], m, k], ndim=3), reshape(yt, [sy[0], k, n], ndim=3))
    shape = [sx[0]] + [sx[i] for i in free_x] + [sy[i] for i in free_y]
    return reshape(out, shape, ndim=len(shape))


def quadratic_form(x, A):
    return dot(x, dot(A, x))


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "functools", "np", "ts", "config", "Apply", "Op", "Elemwise", "TensorType",
    "DISCRETE_DTYPES", "FLOAT_DTYPES", "INT_DTYPES", "upcast", "as_tensor_variable",
    "builtins", "zero_grad_", "quadratic_form", "dimshuffle")]
