"""Shared variables: symbolic tensors with a value that compiled functions read and update."""

from __future__ import annotations

import numpy as np

from theanine.tensor.type import TensorType
from theanine.tensor.variable import TensorVariable, _python_scalar_dtype


class SharedVariable(TensorVariable):
    """A tensor whose value lives in ``container`` and persists across calls.

    ``default_update``, when set, is an expression used as this variable's
    update by every function that uses it (unless the function is given an
    explicit update for it, or ``no_default_updates``).
    """

    def __init__(self, type, value, name=None, strict=False, allow_downcast=None):
        super().__init__(type, name=name)
        self.container = [type.filter(value, strict=strict, allow_downcast=allow_downcast,
                                      name=f"shared {name or ''}".strip())]
        self.default_update = None

    def get_value(self, borrow=False, return_internal_type=False):
        """The current value (a copy unless ``borrow=True``)."""
        value = self.container[0]
        return value if borrow else value.copy()

    def set_value(self, value, borrow=False):
        """Replace the value (copied unless ``borrow=True``); it must fit the variable's type."""
        value = self.type.filter(value, name=f"{self.name or 'shared variable'}.set_value")
        self.container[0] = value if borrow else np.array(value, copy=True)

    @property
    def value(self):
        return self.get_value()

    def clone(self):
        return self  # a shared variable is one storage cell: copies must share it

    def zero(self, borrow=False):
        self.container[0] = np.zeros_like(self.container[0])

    def __str__(self):
        return self.name if self.name is not None else f"<shared {self.type}>"


def shared(value, name=None, strict=False, allow_downcast=None, borrow=False, shape=None,
           broadcastable=None):
    """A SharedVariable holding ``value`` (copied unless ``borrow=True``).

    Dimensions are left free (None) so that ``set_value`` may change the shape,
    unless ``shape`` (or Theano's ``broadcastable``) says otherwise.
    """
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        arr = np.asarray(value, dtype=_python_scalar_dtype(value) if not isinstance(value, int)
                         or isinstance(value, bool) else "int64")
    else:
        arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"shared: cannot make a shared tensor from {type(value).__name__}")
    if not borrow:
        arr = np.array(arr, copy=True)
    if shape is None:
        shape = (None,) * arr.ndim if broadcastable is None else \
            tuple(1 if b else None for b in broadcastable)
    ttype = TensorType(str(arr.dtype), shape)
    return SharedVariable(ttype, arr, name=name, strict=strict, allow_downcast=allow_downcast)
