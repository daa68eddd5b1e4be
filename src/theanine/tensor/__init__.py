"""theanine.tensor: symbolic tensors with Theano's names (usually imported as T)."""

from theanine.tensor.type import TensorType, upcast
from theanine.tensor.variable import (TensorConstant, TensorVariable, as_tensor_variable,
                                      constant)
from theanine.tensor.elemwise import DimShuffle, Elemwise, dimshuffle, sum_to
from theanine.tensor.math import *  # noqa: F401,F403
from theanine.tensor.shape import *  # noqa: F401,F403
from theanine.tensor.basic import *  # noqa: F401,F403
from theanine.tensor.subtensor import *  # noqa: F401,F403
from theanine.tensor import nnet  # noqa: F401
from theanine.gradient import grad, hessian, jacobian, Lop, Rop  # noqa: F401
from theanine.compile.sharedvalue import shared  # noqa: F401
from theanine.tensor import random, shared_randomstreams  # noqa: F401
from theanine.tensor.sort import argsort, sort  # noqa: F401

as_tensor = as_tensor_variable
