"""Theano's ``theano.sandbox.rng_mrg`` name for theanine's random streams.

``MRG_RandomStreams`` is ``theanine.tensor.random.RandomStreams``: the same
draws, on the Philox4x32-10 generator rather than MRG31k3p. Its ``binomial``
takes ``n`` before ``p`` (pass ``p=`` by keyword).
"""

from theanine.tensor.random.streams import RandomStreams

MRG_RandomStreams = RandomStreams

__all__ = ["MRG_RandomStreams"]
