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
def entry_call(mode):
    """``entry_call(f, *args)``: ``f(*args)``; in the native modes (llvm, c) it also checks
    that ``f`` has no node left to Python (``f.fallbacks == []``) and that its native entry
    alone runs this call (so ``args`` must be arrays of the inputs' exact dtypes)."""

    def call(f, *args):
        if mode not in ("llvm", "c"):
            return f(*args)
        assert f.fallbacks == [], f.fallbacks
        out = f.entry(*args)
        assert out is not NotImplemented, "the native entry handed the call over to Python"
        return out

    return call


@pytest.fixture
def rng():
    """A seeded random generator, fresh for each test."""
    return np.random.default_rng(20261127)


# --- Hypothesis: the profiles of the differential fuzzer (tests/test_fuzz.py) ------------
# THEANINE_FUZZ_PROFILE=ci (the default: 100 examples, derandomized, reproducible) or
# THEANINE_FUZZ_PROFILE=long (random, many examples: a run by hand that may take hours).
try:
    from hypothesis import HealthCheck, settings as _hypothesis_settings

    _hypothesis_settings.register_profile(
        "theanine-fuzz-ci", max_examples=100, derandomize=True, deadline=None, database=None,
        print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
    _hypothesis_settings.register_profile(
        "theanine-fuzz-long", max_examples=20_000, derandomize=False, deadline=None,
        print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
except ImportError:  # hypothesis is a test extra; the fuzz tests skip without it
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: differential fuzzing with Hypothesis (tests/test_fuzz.py)")


# Linking every module the suite compiles into a shared library (theanine.codegen.shared_lib)
# would cost the cold suite about a minute of CPU; tests/test_shared_lib.py turns it on.
from theanine.configparser import config as _config  # noqa: E402

_config.shared_libraries = "off"
