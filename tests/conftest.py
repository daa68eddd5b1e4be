"""Shared fixtures. Back ends are a fixture, so one test body checks each of them."""

import numpy as np
import pytest

#: the compilation modes every op test runs under (native back ends join this list)
BACKENDS = ["py", "llvm", "c"]


@pytest.fixture(params=BACKENDS)
def mode(request):
    """The compilation mode under test."""
    return request.param


@pytest.fixture
def rng():
    """A seeded random generator, fresh for each test."""
    return np.random.default_rng(20261127)
