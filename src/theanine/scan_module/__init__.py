"""Loops in graphs: ``scan`` and the loops built on it (Theano's scan module).

``scan`` builds a ``Scan`` node whose step is an inner graph; running it calls
the compiled step once per step from Python (the loop itself is not native
code). Gradients flow back through time as a second, backward Scan.
"""

from theanine.scan_module.builder import scan
from theanine.scan_module.checkpoints import scan_checkpoints
from theanine.scan_module.op import OutputSpec, Scan
from theanine.scan_module.step import until
from theanine.scan_module.views import foldl, foldr, map, reduce  # noqa: A004

__all__ = ["scan", "scan_checkpoints", "map", "reduce", "foldl", "foldr", "until", "Scan",
           "OutputSpec"]
