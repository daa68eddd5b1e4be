"""TensorVariable, TensorConstant and conversion of Python values to graph variables."""

from __future__ import annotations

import numpy as np

from theanine.configparser import config
from theanine.graph.basic import Constant, Variable
from theanine.tensor.type import TensorType


class _TensorOperators:
    """Python operators and methods shared by symbolic tensors (NumPy-like)."""

    __array_priority__ = 1000  # ndarray op tensor -> tensor's reflected operator

    # arithmetic
    def __add__(self, o): return _m().add(self, o)
    def __radd__(self, o): return _m().add(o, self)
    def __sub__(self, o): return _m().sub(self, o)
    def __rsub__(self, o): return _m().sub(o, self)
    def __mul__(self, o): return _m().mul(self, o)
    def __rmul__(self, o): return _m().mul(o, self)
    def __truediv__(self, o): return _m().true_div(self, o)
    def __rtruediv__(self, o): return _m().true_div(o, self)
    def __floordiv__(self, o): return _m().int_div(self, o)
    def __rfloordiv__(self, o): return _m().int_div(o, self)
    def __mod__(self, o): return _m().mod(self, o)
    def __rmod__(self, o): return _m().mod(o, self)
    def __pow__(self, o): return _m().pow(self, o)
    def __rpow__(self, o): return _m().pow(o, self)
    def __matmul__(self, o): return _m().matmul(self, o)
    def __rmatmul__(self, o): return _m().matmul(o, self)
    def __neg__(self): return _m().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _m().abs(self)
    def __invert__(self): return _m().invert(self)
    def __and__(self, o): return _m().and_(self, o)
    def __rand__(self, o): return _m().and_(o, self)
    def __or__(self, o): return _m().or_(self, o)
    def __ror__(self, o): return _m().or_(o, self)
    def __xor__(self, o): return _m().xor(self, o)
    def __rxor__(self, o): return _m().xor(o, self)
    def __lshift__(self, o): return _m().left_shift(self, o)
    def __rlshift__(self, o): return _m().left_shift(o, self)
    def __rshift__(self, o): return _m().right_shift(self, o)
    def __rrshift__(self, o): return _m().right_shift(o, self)

    # comparisons are symbolic, as in Theano; use `is` for identity
    def __lt__(self, o): return _m().lt(self, o)
    def __le__(self, o): return _m().le(self, o)
    def __gt__(self, o): return _m().gt(self, o)
    def __ge__(self, o): return _m().ge(self, o)

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value; use T.switch / ifelse for "
                        "symbolic conditions, or `is` to compare variables")

    def __iter__(self):
        n = self.type.shape[0] if self.ndim else None
        if n is None:
            raise TypeError(f"cannot iterate over {self}: its first dimension is not known statically")
        return (self[i] for i in range(n))

    def __len__(self):
        raise TypeError("len() of a symbolic tensor is not defined; use x.shape[0]")

    # indexing
    def __getitem__(self, index):
        from theanine.tensor.subtensor import getitem
        return getitem(self, index)

    def __setitem__(self, index, value):
        raise TypeError("symbolic tensors are immutable: use T.set_subtensor(x[idx], value) "
                        "or T.inc_subtensor(x[idx], value)")

    # attributes
    @property
    def ndim(self): return self.type.ndim

    @property
    def dtype(self): return self.type.dtype

    @property
    def broadcastable(self): return self.type.broadcastable

    @property
    def shape(self):
        from theanine.tensor.shape import shape
        return shape(self)

    @property
    def size(self):
        return _m().prod(self.shape)

    @property
    def T(self):
        return self.transpose()

    # methods
    def sum(self, axis=None, dtype=None, keepdims=False): return _m().sum(self, axis, dtype, keepdims)
    def prod(self, axis=None, dtype=None, keepdims=False): return _m().prod(self, axis, dtype, keepdims)
    def mean(self, axis=None, dtype=None, keepdims=False): return _m().mean(self, axis, dtype, keepdims)
    def var(self, axis=None, ddof=0, keepdims=False): return _m().var(self, axis, ddof, keepdims)
    def std(self, axis=None, ddof=0, keepdims=False): return _m().std(self, axis, ddof, keepdims)
    def max(self, axis=None, keepdims=False): return _m().max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _m().min(self, axis, keepdims)
    def all(self, axis=None, keepdims=False): return _m().all(self, axis, keepdims)
    def any(self, axis=None, keepdims=False): return _m().any(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return _m().argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return _m().argmin(self, axis, keepdims)
    def cumsum(self, axis=None): return _m().cumsum(self, axis)
    def cumprod(self, axis=None): return _m().cumprod(self, axis)
    def dot(self, o): return _m().dot(self, o)
    def clip(self, a_min, a_max): return _m().clip(self, a_min, a_max)
    def round(self, mode="half_to_even"): return _m().round(self, mode)
    def astype(self, dtype): return _m().cast(self, dtype)
    def conj(self): return self
    def nonzero(self, return_matrix=False):
        from theanine.tensor.subtensor import nonzero
        return nonzero(self, return_matrix)

    def reshape(self, *shape, ndim=None):
        from theanine.tensor.shape import reshape
        if len(shape) == 1 and isinstance(shape[0], (list, tuple, Variable, np.ndarray)):
            shape = shape[0]
        return reshape(self, shape, ndim=ndim)

    def flatten(self, ndim=1):
        from theanine.tensor.shape import flatten
        return flatten(self, ndim)

    def dimshuffle(self, *pattern):
        from theanine.tensor.elemwise import dimshuffle
        if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
            pattern = pattern[0]
        return dimshuffle(self, pattern)

    def transpose(self, *axes):
        from theanine.tensor.shape import transpose
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return transpose(self, axes or None)

    def squeeze(self, axis=None):
        from theanine.tensor.shape import squeeze
        return squeeze(self, axis)

    def swapaxes(self, a, b):
        from theanine.tensor.shape import swapaxes
        return swapaxes(self, a, b)

    def copy(self, name=None):
        out = _m().tensor_copy(self)
        out.name = name
        return out


def _m():
    import theanine.tensor.math as m
    return m


class TensorVariable(_TensorOperators, Variable):
    """A symbolic tensor: a Variable whose type is a TensorType."""

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


class TensorConstant(_TensorOperators, Constant):
    """A tensor with a fixed value; constants with equal values merge."""

    def __init__(self, type, data, name=None):
        Constant.__init__(self, type, data, name)
        self.data.setflags(write=False)

    def signature(self):
        d = self.data
        return (self.type, d.shape, d.tobytes()) if d.size < 10_000 else (self.type, id(self))

    @property
    def value(self):
        return self.data

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def __str__(self):
        if self.name is not None:
            return self.name
        if self.data.size <= 8:
            text = np.array2string(self.data, separator=", ") if self.data.ndim else repr(self.data.item())
            return text.replace("\n", "")
        return f"TensorConstant{{{self.type}}}"


def _python_scalar_dtype(value, like=None) -> str:
    """Theano-style dtype for a Python scalar, adapting to ``like`` (a dtype) when given."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.integer):
        if like is not None and like != "bool":
            kind = np.dtype(like).kind
            if kind in "fc" or (kind in "iu" and np.can_cast(np.min_scalar_type(value), like)):
                return like
        for dt in ("int8", "int16", "int32", "int64"):
            if np.iinfo(dt).min <= value <= np.iinfo(dt).max:
                return dt
        raise OverflowError(f"integer {value} does not fit in int64")
    if isinstance(value, float):
        if like is not None and np.dtype(like).kind in "fc":
            return like
        return config.floatX
    if isinstance(value, complex):
        return "complex128"
    return str(np.asarray(value).dtype)


def constant(value, name=None, ndim=None, dtype=None) -> TensorConstant:
    """A constant tensor holding ``value`` (Python scalars get Theano's dtype rules)."""
    if isinstance(value, TensorConstant):
        return value
    if dtype is None:
        if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
            dtype = _python_scalar_dtype(value)
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"constant: cannot make a tensor from {type(value).__name__}: {value!r}")
            dtype = str(arr.dtype)
            if arr.dtype.kind in "US":
                raise TypeError(f"constant: strings are not tensors (got {value!r})")
            if isinstance(value, (list, tuple)) and arr.dtype == np.float64:
                dtype = config.floatX
    arr = np.asarray(value, dtype=dtype)
    if ndim is not None:
        if arr.ndim > ndim:
            raise ValueError(f"constant: value has {arr.ndim} dimensions, more than ndim={ndim}")
        arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    ttype = TensorType(str(arr.dtype), arr.shape)
    return TensorConstant(ttype, np.array(arr), name=name)


def as_tensor_variable(x, name=None, ndim=None, dtype_like=None) -> TensorVariable:
    """``x`` as a symbolic tensor: variables pass through, values become constants."""
    if isinstance(x, Variable):
        if not isinstance(x.type, TensorType):
            raise TypeError(f"as_tensor_variable: expected a tensor, got {x} of type {x.type}")
        if ndim is not None and x.ndim != ndim:
            raise ValueError(f"as_tensor_variable: expected {ndim} dimensions, got {x.ndim} ({x})")
        return x
    if hasattr(x, "owner") and hasattr(x, "outputs") and hasattr(x, "op"):  # an Apply
        return as_tensor_variable(x.out, name, ndim)
    if isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in _flatten(x)):
        from theanine.tensor.basic import stack
        return stack([as_tensor_variable(e) for e in x])
    if dtype_like is not None and isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return constant(x, name=name, ndim=ndim, dtype=_python_scalar_dtype(x, dtype_like))
    return constant(x, name=name, ndim=ndim)


def _flatten(x):
    stack = [x]
    while stack:
        e = stack.pop()
        if isinstance(e, (list, tuple)):
            stack.extend(e)
        else:
            yield e
