"""Theano's ``theano.tensor.shared_randomstreams`` name for theanine's random streams.

``RandomStreams`` is ``theanine.tensor.random.RandomStreams``: each draw's
state is a shared variable with a default update, as in Theano.
"""

from theanine.tensor.random.streams import RandomStreams

__all__ = ["RandomStreams"]
