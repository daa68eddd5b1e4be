"""Minibatch logistic regression in the style of the deeplearning.net tutorial: the data
set lives in shared variables, and each training call picks its minibatch by index
through givens."""

from __future__ import print_function

import numpy

import theano
import theano.tensor as T


class LogisticRegression(object):
    def __init__(self, input, n_in, n_out):
        self.W = theano.shared(value=numpy.zeros((n_in, n_out), dtype=theano.config.floatX),
                               name='W', borrow=True)
        self.b = theano.shared(value=numpy.zeros((n_out,), dtype=theano.config.floatX),
                               name='b', borrow=True)
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=1)
        self.params = [self.W, self.b]
        self.input = input

    def negative_log_likelihood(self, y):
        return -T.mean(T.log(self.p_y_given_x)[T.arange(y.shape[0]), y])

    def errors(self, y):
        if y.ndim != self.y_pred.ndim:
            raise TypeError('y should have the same shape as self.y_pred')
        return T.mean(T.neq(self.y_pred, y))


def shared_dataset(data_xy, borrow=True):
    data_x, data_y = data_xy
    shared_x = theano.shared(numpy.asarray(data_x, dtype=theano.config.floatX), borrow=borrow)
    shared_y = theano.shared(numpy.asarray(data_y, dtype=theano.config.floatX), borrow=borrow)
    return shared_x, T.cast(shared_y, 'int32')


def make_data(rng, n):
    centers = numpy.array([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.0]])
    y = rng.randint(0, 3, size=n)
    x = centers[y] + rng.normal(size=(n, 4))
    return x, y


def sgd_optimization(learning_rate=0.13, n_epochs=30, batch_size=20):
    rng = numpy.random.RandomState(1234)
    train_set_x, train_set_y = shared_dataset(make_data(rng, 600))
    test_set_x, test_set_y = shared_dataset(make_data(rng, 200))
    n_train_batches = train_set_x.get_value(borrow=True).shape[0] // batch_size

    index = T.lscalar()
    x = T.matrix('x')
    y = T.ivector('y')
    classifier = LogisticRegression(input=x, n_in=4, n_out=3)
    cost = classifier.negative_log_likelihood(y)

    test_model = theano.function(
        inputs=[],
        outputs=classifier.errors(y),
        givens={x: test_set_x, y: test_set_y})

    g_W = T.grad(cost=cost, wrt=classifier.W)
    g_b = T.grad(cost=cost, wrt=classifier.b)
    updates = [(classifier.W, classifier.W - learning_rate * g_W),
               (classifier.b, classifier.b - learning_rate * g_b)]
    train_model = theano.function(
        inputs=[index],
        outputs=cost,
        updates=updates,
        givens={
            x: train_set_x[index * batch_size: (index + 1) * batch_size],
            y: train_set_y[index * batch_size: (index + 1) * batch_size]
        })

    initial_error = float(test_model())
    epoch_costs = []
    for epoch in range(n_epochs):
        costs = [train_model(minibatch_index) for minibatch_index in range(n_train_batches)]
        epoch_costs.append(float(numpy.mean(costs)))
    test_error = float(test_model())
    print('first epoch cost %.4f, last epoch cost %.4f' % (epoch_costs[0], epoch_costs[-1]))
    print('test error %.2f %% (before training %.2f %%)' % (test_error * 100., initial_error * 100.))
    assert epoch_costs[-1] < 0.7 * epoch_costs[0], epoch_costs
    assert test_error < 0.15, test_error
    print('logistic_sgd OK')


if __name__ == '__main__':
    sgd_optimization()
