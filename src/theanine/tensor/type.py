"""TensorType and dtype rules."""

from __future__ import annotations

import functools

import numpy as np

from theanine.configparser import config
from theanine.graph.basic import Type

ALL_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float16", "float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
DISCRETE_DTYPES = ("bool",) + INT_DTYPES


@functools.lru_cache(maxsize=4096)
def _upcast(dtypes: tuple) -> str:
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))


def upcast(*dtypes) -> str:
    """The dtype NumPy gives when combining arrays of these dtypes."""
    return _upcast(tuple(str(d) for d in dtypes))


@functools.lru_cache(maxsize=256)
def _dtype_name(dtype) -> str:
    return str(np.dtype(dtype))


def upgrade_to_float(dtype: str) -> str:
    """Theano's rule for ops like true division and sqrt on integers."""
    if dtype in FLOAT_DTYPES or dtype in COMPLEX_DTYPES:
        return dtype
    if dtype in ("bool", "int8", "uint8", "int16", "uint16"):
        return "float32" if config.floatX == "float32" else "float64"
    return "float64"


class TensorType(Type):
    """The type of an n-dimensional array: a dtype and a static shape.

    ``shape`` entries are ints (known sizes; 1 means broadcastable) or None
    (known only at run time).
    """

    def __init__(self, dtype, shape=None, broadcastable=None):
        try:
            dtype = config.floatX if dtype == "floatX" else _dtype_name(dtype)
        except TypeError:
            raise TypeError(f"TensorType: unsupported dtype {dtype!r}; expected one of {ALL_DTYPES}") from None
        if dtype not in ALL_DTYPES:
            raise TypeError(f"TensorType: unsupported dtype {dtype!r}; expected one of {ALL_DTYPES}")
        if shape is None and broadcastable is not None:
            shape = tuple(1 if b else None for b in broadcastable)
        if shape is None:
            raise TypeError("TensorType: give 'shape' (a tuple of ints or None)")
        norm = []
        for s in shape:
            if s is None:
                norm.append(None)
            elif isinstance(s, (bool, np.bool_)):
                norm.append(1 if s else None)  # a Theano-style broadcastable pattern
            elif isinstance(s, (int, np.integer)) and s >= 0:
                norm.append(int(s))
            else:
                raise TypeError(f"TensorType: shape entries must be non-negative ints or None, got {s!r}")
        self.dtype = dtype
        self.shape = tuple(norm)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        return tuple(s == 1 for s in self.shape)

    @property
    def numpy_dtype(self):
        return np.dtype(self.dtype)

    def clone(self, dtype=None, shape=None) -> "TensorType":
        return TensorType(self.dtype if dtype is None else dtype,
                          self.shape if shape is None else shape)

    def __eq__(self, other):
        return type(self) is type(other) and self.dtype == other.dtype and self.shape == other.shape

    def __hash__(self):
        return hash((TensorType, self.dtype, self.shape))

    def __str__(self):
        shape = ", ".join("?" if s is None else str(s) for s in self.shape)
        if len(self.shape) == 1:
            shape += ","
        return f"Tensor{{{self.dtype}, ({shape})}}"

    __repr__ = __str__

    def is_super(self, other) -> bool:
        """Whether every value of ``other`` is a value of this type."""
        return (isinstance(other, TensorType) and self.dtype == other.dtype
                and self.ndim == other.ndim
                and all(a is None or a == b for a, b in zip(self.shape, other.shape)))

    def convert_variable(self, var):
        """``var`` as a variable of this type when that is safe (more static info), else None."""
        if self.is_super(var.type):
            return var
        if isinstance(var.type, TensorType) and var.type.is_super(self):
            from theanine.tensor.shape import specify_shape
            return specify_shape(var, self.shape)
        return None

    def filter(self, value, strict=False, allow_downcast=None, name="value"):
        """Return ``value`` as an ndarray of this type, or raise a clear TypeError/ValueError."""
        if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
            value = value.view(np.ndarray)  # np.matrix & co. would change what ops compute
        if isinstance(value, np.ndarray) and value.dtype == self.numpy_dtype:
            arr = value
        elif strict:
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"{name}: expected an ndarray of dtype {self.dtype}, got {got}")
        else:
            arr = self._convert(value, allow_downcast, name)
        self.check_shape(arr.shape, name)
        return arr

    def check_shape(self, shape, name="value", what="an array"):
        """Raise the clear error for ``what`` of ``shape`` whose rank or static sizes this
        type refuses (TypeError for the rank, ValueError for a size)."""
        if len(shape) != self.ndim:
            raise TypeError(f"{name}: expected {self.ndim} dimensions ({self}), "
                            f"got {what} with {len(shape)} (shape {shape})")
        for axis, (want, got) in enumerate(zip(self.shape, shape)):
            if want is not None and want != got:
                raise ValueError(f"{name}: expected shape {_fmt_shape(self.shape)}, got {shape} "
                                 f"(dimension {axis} must be {want})")

    def _convert(self, value, allow_downcast, name):
        if isinstance(value, np.ndarray):
            src = value.dtype
            if src.kind not in "biufc":
                raise TypeError(f"{name}: expected a numeric array of dtype {self.dtype}, "
                                f"got an array of dtype {src}")
            if np.can_cast(src, self.numpy_dtype, casting="safe"):
                return value.astype(self.numpy_dtype)
            if allow_downcast:
                return value.astype(self.numpy_dtype)
            raise TypeError(
                f"{name}: expected dtype {self.dtype}, got an array of dtype {src}; converting would "
                f"lose precision. Cast it first, or pass allow_input_downcast=True to function()")
        try:
            arr = np.asarray(value)
        except ValueError as e:  # ragged nested sequences
            raise TypeError(f"{name}: expected a numeric array of dtype {self.dtype}, got a "
                            f"{type(value).__name__} that is not one ({e})") from None
        if arr.dtype.kind not in "biufc":  # objects, strings, bytes, dates
            got = type(value).__name__ + (f" of dtype {arr.dtype}" if arr.dtype != object else "")
            raise TypeError(f"{name}: expected a numeric array of dtype {self.dtype}, got {got}")
        if np.can_cast(arr.dtype, self.numpy_dtype, casting="safe") or allow_downcast:
            return arr.astype(self.numpy_dtype)
        # Python scalars and lists: accept when the value survives the cast exactly.
        converted = arr.astype(self.numpy_dtype)
        if allow_downcast is None and arr.dtype.kind == "f" and self.dtype in FLOAT_DTYPES:
            return converted  # Theano accepts Python floats for float32 inputs
        with np.errstate(invalid="ignore"):
            exact = np.array_equal(converted.astype(arr.dtype), arr, equal_nan=arr.dtype.kind in "fc")
        if exact:
            return converted
        raise TypeError(f"{name}: expected dtype {self.dtype}; the value {value!r} cannot be "
                        f"represented exactly (pass allow_input_downcast=True to allow rounding)")

    def make_variable(self, name=None):
        from theanine.tensor.variable import TensorVariable
        return TensorVariable(self, name=name)

    def value_zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)


def _fmt_shape(shape):
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
