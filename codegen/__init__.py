"""theanine.codegen: the back end (kernel IR, lowering, renderers, JIT).

Shipped as the subpackage ``theanine.codegen``. The front end talks to it only
through the kernel IR; it never imports ``theanine.tensor``.
"""
