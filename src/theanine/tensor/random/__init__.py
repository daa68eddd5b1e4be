"""theanine.tensor.random: random streams on the Philox4x32-10 counter-based generator.

``RandomStreams(seed)`` makes symbolic draws (``uniform``, ``normal``,
``binomial``, ``multinomial``, ``choice``, ``permutation``); each draw's state
is a shared variable updated by default, so compiled functions give new
numbers on every call and the same seed gives the same numbers everywhere.
``philox`` documents the state and word-stream layout, ``samplers`` which
words make which element, so other back ends can reproduce the streams.
"""

from theanine.tensor.random.op import (Binomial, Choice, Multinomial, Normal, Permutation,
                                       RandomDraw, Uniform)
from theanine.tensor.random.philox import philox4x32
from theanine.tensor.random.streams import RandomStreams

__all__ = ["RandomStreams", "philox4x32", "RandomDraw", "Uniform", "Normal", "Binomial",
           "Multinomial", "Choice", "Permutation"]
