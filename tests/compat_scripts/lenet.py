"""A LeNet-style convolutional network in the style of the deeplearning.net tutorial
(conv2d + pool_2d layers, a tanh hidden layer, a softmax), telling horizontal from
vertical bars in small noisy images."""

from __future__ import print_function

import numpy

import theano
import theano.tensor as T
from theano.tensor.nnet import conv2d
from theano.tensor.signal import pool

from logistic_sgd import LogisticRegression
from mlp import HiddenLayer


class LeNetConvPoolLayer(object):
    def __init__(self, rng, input, filter_shape, image_shape, poolsize=(2, 2), old_names=False):
        assert image_shape[1] == filter_shape[1]
        self.input = input
        fan_in = numpy.prod(filter_shape[1:])
        fan_out = (filter_shape[0] * numpy.prod(filter_shape[2:]) // numpy.prod(poolsize))
        W_bound = numpy.sqrt(6. / (fan_in + fan_out))
        self.W = theano.shared(
            numpy.asarray(rng.uniform(low=-W_bound, high=W_bound, size=filter_shape),
                          dtype=theano.config.floatX), borrow=True)
        b_values = numpy.zeros((filter_shape[0],), dtype=theano.config.floatX)
        self.b = theano.shared(value=b_values, borrow=True)
        conv_out = conv2d(input=input, filters=self.W, filter_shape=filter_shape, input_shape=image_shape)
        if old_names:   # Theano 0.8's spelling
            pooled_out = pool.pool_2d(input=conv_out, ds=poolsize, ignore_border=True)
        else:
            pooled_out = pool.pool_2d(input=conv_out, ws=poolsize, ignore_border=True)
        self.output = T.tanh(pooled_out + self.b.dimshuffle('x', 0, 'x', 'x'))
        self.params = [self.W, self.b]


def bars(rng, n):
    x = rng.normal(0, 0.3, size=(n, 1, 16, 16))
    y = rng.randint(0, 2, size=n)
    for i in range(n):
        k = rng.randint(2, 14)
        if y[i]:
            x[i, 0, :, k] += 1.5
        else:
            x[i, 0, k, :] += 1.5
    return (theano.shared(numpy.asarray(x.reshape(n, -1), dtype=theano.config.floatX), borrow=True),
            T.cast(theano.shared(numpy.asarray(y, dtype=theano.config.floatX), borrow=True), 'int32'))


def evaluate_lenet5(learning_rate=0.1, n_epochs=8, nkerns=(4, 6), batch_size=20):
    rng = numpy.random.RandomState(23455)
    train_set_x, train_set_y = bars(rng, 200)
    test_set_x, test_set_y = bars(rng, 100)
    n_train_batches = train_set_x.get_value(borrow=True).shape[0] // batch_size

    index = T.lscalar()
    x = T.matrix('x')
    y = T.ivector('y')
    layer0_input = x.reshape((batch_size, 1, 16, 16))
    layer0 = LeNetConvPoolLayer(rng, input=layer0_input, image_shape=(batch_size, 1, 16, 16),
                                filter_shape=(nkerns[0], 1, 5, 5), poolsize=(2, 2))
    layer1 = LeNetConvPoolLayer(rng, input=layer0.output, image_shape=(batch_size, nkerns[0], 6, 6),
                                filter_shape=(nkerns[1], nkerns[0], 3, 3), poolsize=(2, 2), old_names=True)
    layer2_input = layer1.output.flatten(2)
    layer2 = HiddenLayer(rng, input=layer2_input, n_in=nkerns[1] * 2 * 2, n_out=16, activation=T.tanh)
    layer3 = LogisticRegression(input=layer2.output, n_in=16, n_out=2)
    cost = layer3.negative_log_likelihood(y)

    n_test_batches = test_set_x.get_value(borrow=True).shape[0] // batch_size
    test_model = theano.function(
        [index], layer3.errors(y),
        givens={x: test_set_x[index * batch_size: (index + 1) * batch_size],
                y: test_set_y[index * batch_size: (index + 1) * batch_size]})
    params = layer3.params + layer2.params + layer1.params + layer0.params
    grads = T.grad(cost, params)
    updates = [(param_i, param_i - learning_rate * grad_i) for param_i, grad_i in zip(params, grads)]
    train_model = theano.function(
        [index], cost, updates=updates,
        givens={x: train_set_x[index * batch_size: (index + 1) * batch_size],
                y: train_set_y[index * batch_size: (index + 1) * batch_size]})

    costs = []
    for epoch in range(n_epochs):
        costs.append(numpy.mean([train_model(i) for i in range(n_train_batches)]))
    error = numpy.mean([test_model(i) for i in range(n_test_batches)])
    print('cost %.4f -> %.4f, test error %.2f %%' % (costs[0], costs[-1], error * 100))
    assert costs[-1] < 0.5 * costs[0], costs
    assert error < 0.1, error
    print('lenet OK')


if __name__ == '__main__':
    evaluate_lenet5()
