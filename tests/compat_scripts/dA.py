"""A denoising autoencoder in the style of the deeplearning.net tutorial: binomial corruption
from RandomStreams, tied weights, cross-entropy reconstruction, on binary bar images."""

from __future__ import print_function

import numpy

import theano
import theano.tensor as T
from theano.tensor.shared_randomstreams import RandomStreams


class dA(object):
    def __init__(self, numpy_rng, theano_rng=None, input=None, n_visible=64, n_hidden=20):
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        if not theano_rng:
            theano_rng = RandomStreams(numpy_rng.randint(2 ** 30))
        initial_W = numpy.asarray(
            numpy_rng.uniform(low=-4 * numpy.sqrt(6. / (n_hidden + n_visible)),
                              high=4 * numpy.sqrt(6. / (n_hidden + n_visible)),
                              size=(n_visible, n_hidden)), dtype=theano.config.floatX)
        self.W = theano.shared(value=initial_W, name='W', borrow=True)
        self.b = theano.shared(value=numpy.zeros(n_visible, dtype=theano.config.floatX), borrow=True)
        self.b_prime = self.b
        self.b = theano.shared(value=numpy.zeros(n_hidden, dtype=theano.config.floatX), name='b', borrow=True)
        self.W_prime = self.W.T
        self.theano_rng = theano_rng
        self.x = T.dmatrix(name='input') if input is None else input
        self.params = [self.W, self.b, self.b_prime]

    def get_corrupted_input(self, input, corruption_level):
        return self.theano_rng.binomial(size=input.shape, n=1, p=1 - corruption_level,
                                        dtype=theano.config.floatX) * input

    def get_hidden_values(self, input):
        return T.nnet.sigmoid(T.dot(input, self.W) + self.b)

    def get_reconstructed_input(self, hidden):
        return T.nnet.sigmoid(T.dot(hidden, self.W_prime) + self.b_prime)

    def get_cost_updates(self, corruption_level, learning_rate):
        tilde_x = self.get_corrupted_input(self.x, corruption_level)
        y = self.get_hidden_values(tilde_x)
        z = self.get_reconstructed_input(y)
        L = - T.sum(self.x * T.log(z) + (1 - self.x) * T.log(1 - z), axis=1)
        cost = T.mean(L)
        gparams = T.grad(cost, self.params)
        updates = [(param, param - learning_rate * gparam) for param, gparam in zip(self.params, gparams)]
        return (cost, updates)


def bar_images(rng, n):
    images = numpy.zeros((n, 8, 8))
    for i in range(n):
        images[i, rng.randint(8), :] = 1
        images[i, :, rng.randint(8)] = 1
    return images.reshape(n, 64)


def test_dA(learning_rate=0.1, training_epochs=15, batch_size=20, corruption_level=0.3):
    rng = numpy.random.RandomState(123)
    data = bar_images(rng, 400)
    train_set_x = theano.shared(numpy.asarray(data, dtype=theano.config.floatX), borrow=True)
    n_train_batches = data.shape[0] // batch_size
    index = T.lscalar()
    x = T.matrix('x')
    theano_rng = RandomStreams(rng.randint(2 ** 30))
    da = dA(numpy_rng=rng, theano_rng=theano_rng, input=x, n_visible=64, n_hidden=20)
    cost, updates = da.get_cost_updates(corruption_level=corruption_level, learning_rate=learning_rate)
    train_da = theano.function([index], cost, updates=updates,
                               givens={x: train_set_x[index * batch_size: (index + 1) * batch_size]})

    corrupt = theano.function([x], da.get_corrupted_input(x, corruption_level))
    ones = numpy.ones((50, 64), dtype=theano.config.floatX)
    dropped = 1 - corrupt(ones).mean()
    assert abs(dropped - corruption_level) < 0.05, dropped
    assert not numpy.array_equal(corrupt(ones), corrupt(ones))   # new noise each call

    costs = []
    for epoch in range(training_epochs):
        costs.append(numpy.mean([train_da(i) for i in range(n_train_batches)]))
    print('dropped %.3f of the inputs; reconstruction cost %.3f -> %.3f' % (dropped, costs[0], costs[-1]))
    assert costs[-1] < 0.6 * costs[0], costs
    print('dA OK')


if __name__ == '__main__':
    test_dA()
