"""theanine.sandbox: Theano's sandbox module names (``rng_mrg``), kept for existing scripts."""
