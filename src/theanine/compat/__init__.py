"""theanine.compat: running code written for Theano. ``theano.install()`` makes
``import theano`` resolve to theanine; ``python -m theanine.compat SCRIPT [ARGS]`` (or
``theanine run-theano SCRIPT [ARGS]``) runs a Theano script unchanged."""
