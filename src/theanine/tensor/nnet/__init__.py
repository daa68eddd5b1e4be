"""theanine.tensor.nnet: neural-network functions (Theano's names).

Activations (``activations``), softmax and log-softmax (``softmax``),
cross-entropy losses (``losses``), 2-d convolution (``conv``) and batch
normalization (``bn``). Pooling lives in ``theanine.tensor.signal.pool``.
"""

from theanine.tensor.nnet.activations import (SELU_ALPHA, SELU_SCALE, elu, hard_sigmoid, relu, selu,
                                              sigmoid, softplus)
from theanine.tensor.nnet.softmax import (LogSoftmax, Softmax, SoftmaxGrad, log_softmax, logsoftmax,
                                          softmax)
from theanine.tensor.nnet.losses import (BinaryCrossentropy, BinaryCrossentropyGrad,
                                         CrossentropyCategorical1Hot, CrossentropyCategorical1HotGrad,
                                         binary_crossentropy, categorical_crossentropy,
                                         crossentropy_categorical_1hot, sigmoid_binary_crossentropy)
from theanine.tensor.nnet.conv import (Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv2d,
                                       conv2d_grad_wrt_inputs, conv2d_grad_wrt_weights)
from theanine.tensor.nnet import bn  # noqa: F401

__all__ = ["sigmoid", "hard_sigmoid", "softplus", "relu", "elu", "selu", "SELU_ALPHA", "SELU_SCALE",
           "softmax", "log_softmax", "logsoftmax", "Softmax", "LogSoftmax", "SoftmaxGrad",
           "categorical_crossentropy", "crossentropy_categorical_1hot", "binary_crossentropy",
           "sigmoid_binary_crossentropy", "CrossentropyCategorical1Hot",
           "CrossentropyCategorical1HotGrad", "BinaryCrossentropy", "BinaryCrossentropyGrad",
           "conv2d", "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights", "Conv2d",
           "Conv2dGradWeights", "Conv2dGradInputs", "bn"]
