"""Scalar operations: the elementwise vocabulary (see ``theanine.scalar.basic``)."""

from theanine.scalar.basic import *  # noqa: F401,F403
from theanine.scalar.basic import Cast, ScalarOp  # noqa: F401
