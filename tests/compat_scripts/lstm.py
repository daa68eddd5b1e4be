"""An LSTM sequence classifier in the style of the deeplearning.net IMDB tutorial: padded
sequences with masks, the recurrence written with theano.scan, mean pooling over the
unmasked steps, dropout switched by a shared flag, and adadelta. Task: does the sequence
contain token 9?"""

from __future__ import print_function

from collections import OrderedDict

import numpy

import theano
from theano import config
import theano.tensor as tensor
from theano.sandbox.rng_mrg import MRG_RandomStreams as RandomStreams

SEED = 123
numpy.random.seed(SEED)


def numpy_floatX(data):
    return numpy.asarray(data, dtype=config.floatX)


def _p(pp, name):
    return '%s_%s' % (pp, name)


def ortho_weight(ndim):
    W = numpy.random.randn(ndim, ndim)
    u, s, v = numpy.linalg.svd(W)
    return u.astype(config.floatX)


def init_params(options):
    params = OrderedDict()
    randn = numpy.random.randn(options['n_words'], options['dim_proj'])
    params['Wemb'] = (0.5 * randn).astype(config.floatX)
    dim = options['dim_proj']
    params[_p('lstm', 'W')] = numpy.concatenate([ortho_weight(dim) for _ in range(4)], axis=1)
    params[_p('lstm', 'U')] = numpy.concatenate([ortho_weight(dim) for _ in range(4)], axis=1)
    params[_p('lstm', 'b')] = numpy.zeros((4 * dim,)).astype(config.floatX)
    params['U'] = 0.01 * numpy.random.randn(dim, options['ydim']).astype(config.floatX)
    params['b'] = numpy.zeros((options['ydim'],)).astype(config.floatX)
    return params


def init_tparams(params):
    tparams = OrderedDict()
    for kk, pp in params.items():
        tparams[kk] = theano.shared(params[kk], name=kk)
    return tparams


def dropout_layer(state_before, use_noise, trng):
    return tensor.switch(use_noise,
                         (state_before * trng.binomial(state_before.shape, p=0.5, n=1,
                                                       dtype=state_before.dtype)),
                         state_before * 0.5)


def lstm_layer(tparams, state_below, options, prefix='lstm', mask=None):
    nsteps = state_below.shape[0]
    n_samples = state_below.shape[1] if state_below.ndim == 3 else 1
    assert mask is not None

    def _slice(_x, n, dim):
        if _x.ndim == 3:
            return _x[:, :, n * dim:(n + 1) * dim]
        return _x[:, n * dim:(n + 1) * dim]

    def _step(m_, x_, h_, c_):
        preact = tensor.dot(h_, tparams[_p(prefix, 'U')])
        preact += x_
        i = tensor.nnet.sigmoid(_slice(preact, 0, options['dim_proj']))
        f = tensor.nnet.sigmoid(_slice(preact, 1, options['dim_proj']))
        o = tensor.nnet.sigmoid(_slice(preact, 2, options['dim_proj']))
        c = tensor.tanh(_slice(preact, 3, options['dim_proj']))
        c = f * c_ + i * c
        c = m_[:, None] * c + (1. - m_)[:, None] * c_
        h = o * tensor.tanh(c)
        h = m_[:, None] * h + (1. - m_)[:, None] * h_
        return h, c

    state_below = tensor.dot(state_below, tparams[_p(prefix, 'W')]) + tparams[_p(prefix, 'b')]
    dim_proj = options['dim_proj']
    rval, updates = theano.scan(_step,
                                sequences=[mask, state_below],
                                outputs_info=[tensor.alloc(numpy_floatX(0.), n_samples, dim_proj),
                                              tensor.alloc(numpy_floatX(0.), n_samples, dim_proj)],
                                name=_p(prefix, '_layers'),
                                n_steps=nsteps)
    return rval[0]


def build_model(tparams, options):
    trng = RandomStreams(SEED)
    use_noise = theano.shared(numpy_floatX(0.))
    x = tensor.matrix('x', dtype='int64')
    mask = tensor.matrix('mask', dtype=config.floatX)
    y = tensor.vector('y', dtype='int64')
    n_timesteps = x.shape[0]
    n_samples = x.shape[1]
    emb = tparams['Wemb'][x.flatten()].reshape([n_timesteps, n_samples, options['dim_proj']])
    proj = lstm_layer(tparams, emb, options, mask=mask)
    proj = (proj * mask[:, :, None]).sum(axis=0)
    proj = proj / mask.sum(axis=0)[:, None]
    proj = dropout_layer(proj, use_noise, trng)
    pred = tensor.nnet.softmax(tensor.dot(proj, tparams['U']) + tparams['b'])
    f_pred = theano.function([x, mask], pred.argmax(axis=1), name='f_pred')
    off = 1e-8
    cost = -tensor.log(pred[tensor.arange(n_samples), y] + off).mean()
    return use_noise, x, mask, y, f_pred, cost


def adadelta(lr, tparams, grads, x, mask, y, cost):
    zipped_grads = [theano.shared(p.get_value() * numpy_floatX(0.), name='%s_grad' % k)
                    for k, p in tparams.items()]
    running_up2 = [theano.shared(p.get_value() * numpy_floatX(0.), name='%s_rup2' % k)
                   for k, p in tparams.items()]
    running_grads2 = [theano.shared(p.get_value() * numpy_floatX(0.), name='%s_rgrad2' % k)
                      for k, p in tparams.items()]
    zgup = [(zg, g) for zg, g in zip(zipped_grads, grads)]
    rg2up = [(rg2, 0.95 * rg2 + 0.05 * (g ** 2)) for rg2, g in zip(running_grads2, grads)]
    f_grad_shared = theano.function([x, mask, y], cost, updates=zgup + rg2up,
                                    name='adadelta_f_grad_shared')
    updir = [-tensor.sqrt(ru2 + 1e-6) / tensor.sqrt(rg2 + 1e-6) * zg
             for zg, ru2, rg2 in zip(zipped_grads, running_up2, running_grads2)]
    ru2up = [(ru2, 0.95 * ru2 + 0.05 * (ud ** 2)) for ru2, ud in zip(running_up2, updir)]
    param_up = [(p, p + ud) for p, ud in zip(tparams.values(), updir)]
    f_update = theano.function([lr], [], updates=ru2up + param_up, on_unused_input='ignore',
                               name='adadelta_f_update')
    return f_grad_shared, f_update


def prepare_data(seqs, labels):
    lengths = [len(s) for s in seqs]
    n_samples = len(seqs)
    maxlen = numpy.max(lengths)
    x = numpy.zeros((maxlen, n_samples)).astype('int64')
    x_mask = numpy.zeros((maxlen, n_samples)).astype(theano.config.floatX)
    for idx, s in enumerate(seqs):
        x[:lengths[idx], idx] = s
        x_mask[:lengths[idx], idx] = 1.
    return x, x_mask, labels


def make_data(n, rng):
    seqs, labels = [], []
    for i in range(n):
        length = rng.randint(3, 13)
        s = list(rng.randint(1, 9, size=length))
        label = i % 2
        if label:
            s[rng.randint(length)] = 9
        seqs.append(s)
        labels.append(label)
    return seqs, numpy.asarray(labels, dtype='int64')


def train_lstm(dim_proj=16, n_words=10, max_epochs=12, batch_size=16):
    rng = numpy.random.RandomState(SEED)
    train = make_data(320, rng)
    test = make_data(160, rng)
    options = dict(dim_proj=dim_proj, n_words=n_words, ydim=2)
    tparams = init_tparams(init_params(options))
    (use_noise, x, mask, y, f_pred, cost) = build_model(tparams, options)
    grads = tensor.grad(cost, wrt=list(tparams.values()))
    lr = tensor.scalar(name='lr')
    f_grad_shared, f_update = adadelta(lr, tparams, grads, x, mask, y, cost)

    def error(data):
        x_, mask_, y_ = prepare_data(*data)
        return float(numpy.mean(f_pred(x_, mask_) != y_))

    use_noise.set_value(0.)
    error_before = error(test)
    costs = []
    for eidx in range(max_epochs):
        order = rng.permutation(len(train[0]))
        epoch_costs = []
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            use_noise.set_value(1.)
            x_, mask_, y_ = prepare_data([train[0][t] for t in idx], train[1][idx])
            epoch_costs.append(f_grad_shared(x_, mask_, y_))
            f_update(0.0001)
        costs.append(numpy.mean(epoch_costs))
    use_noise.set_value(0.)
    error_after = error(test)
    print('cost %.4f -> %.4f, test error %.2f %% -> %.2f %%' % (costs[0], costs[-1], error_before * 100,
                                                               error_after * 100))
    assert costs[-1] < 0.8 * costs[0], costs
    assert error_after < 0.2, error_after
    print('lstm OK')


if __name__ == '__main__':
    train_lstm()
