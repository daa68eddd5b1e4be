"""``import theano`` on theanine: run existing Theano scripts unchanged.

``install()`` puts an import hook in front of ``sys.meta_path`` so that
``theano`` and its submodules resolve to theanine's::

    from theanine.compat import theano
    theano.install()
    import theano                                  # theanine, under Theano's names
    import theano.tensor as T
    from theano.tensor.nnet import conv2d
    from theano.tensor.signal import pool
    from theano.sandbox.rng_mrg import MRG_RandomStreams
    from theano.tensor.shared_randomstreams import RandomStreams
    from theano.ifelse import ifelse

Each ``theano.X`` is a thin module that forwards every attribute to
``theanine.X`` (so ``theano.tensor.dot is theanine.tensor.dot``), with a few
attributes replaced where Theano's signature differs (``compat.shims``).
``theanine run-theano script.py [args]`` (or ``python -m theanine.compat``)
installs the hook and runs a script as ``__main__``; ``THEANO_FLAGS`` is read
like Theano reads it.

Differences from Theano:

- Random numbers: ``MRG_RandomStreams`` and ``RandomStreams`` draw from
  theanine's Philox4x32-10 streams, not MRG31k3p or NumPy's generator, so a
  seed gives other numbers than in Theano (reproducibly across theanine's
  modes). ``nstreams`` is accepted and ignored; ``normal(truncate=True)`` is
  not supported. ``RandomStreams()`` without a seed uses 12345, like
  ``MRG_RandomStreams`` (Theano's shared_randomstreams took one from the OS).
- Devices: everything runs on the CPU. ``device``, ``optimizer``,
  ``linker`` and Theano's other settings are accepted in ``theano.config``
  and ``THEANO_FLAGS`` and have no effect; ``floatX`` and ``mode`` are
  honoured (FAST_RUN is native code, FAST_COMPILE and DebugMode the NumPy
  reference executor). ``theano.sandbox.cuda`` and ``theano.gpuarray`` are
  refused with an ImportError.
- ``pool_2d`` accepts Theano's older ``ds``/``st``/``padding`` names, and its
  ``ignore_border`` defaults to False as in Theano (theanine's own pool_2d
  defaults to True). ``theano.tensor.signal.downsample.max_pool_2d`` and the
  old ``theano.tensor.nnet.conv.conv2d(image_shape=...)`` are provided.
- ``theano.printing.pydotprint`` draws through Graphviz's ``dot`` program
  (theanine's ``to_dot``), ignoring Theano's styling options.
- Compiled functions cannot be pickled, and Theano's ``gof`` internals
  (``theano.gof``) are theanine's graph classes, not Theano's.
- A theano submodule without a theanine counterpart raises ImportError
  naming it; so does ``install()`` when a real Theano is already imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

from theanine.compat import shims

#: Theano modules whose theanine counterpart has another name
RENAMED = {
    "theano.tensor.nnet.nnet": "theanine.tensor.nnet",
    "theano.tensor.nnet.sigm": "theanine.tensor.nnet",
    "theano.tensor.nnet.abstract_conv": "theanine.tensor.nnet.conv",
    "theano.tensor.signal.downsample": "theanine.tensor.signal.pool",
    "theano.tensor.extra_ops": "theanine.tensor",
    "theano.tensor.var": "theanine.tensor.variable",
    "theano.tensor.sharedvar": "theanine.compile.sharedvalue",
    "theano.compile.function_module": "theanine.compile.function",
    "theano.compile.function": "theanine.compile.function",
    "theano.scan_module.scan": "theanine.scan_module",
    "theano.gof": "theanine.graph",
}

#: attributes replaced in the aliased modules (Theano's signatures)
OVERRIDES = {
    "theano": {"config": shims.TheanoConfig(), "__version__": "1.0.5 (theanine)"},
    "theano.tensor.signal.pool": {"pool_2d": shims.pool_2d},
    "theano.tensor.signal.downsample": {"max_pool_2d": shims.max_pool_2d,
                                        "pool_2d": shims.pool_2d},
    "theano.tensor.nnet.conv": {"conv2d": shims.conv2d_old},
    "theano.sandbox.rng_mrg": {"MRG_RandomStreams": shims.MRG_RandomStreams},
    "theano.printing": {"pydotprint": shims.pydotprint},
}

#: Theano modules refused, with the reason
REFUSED = {
    "theano.sandbox.cuda": "theanine runs Theano scripts on the CPU; there is no theano.sandbox.cuda",
    "theano.gpuarray": "theanine runs Theano scripts on the CPU; there is no theano.gpuarray",
}


def target_name(name):
    """The theanine module that stands for the Theano module ``name``."""
    if name in RENAMED:
        return RENAMED[name]
    return "theanine" + name[len("theano"):]


class AliasModule(types.ModuleType):
    """A ``theano.*`` module: its own attributes (the overrides and imported submodules),
    then those of its theanine counterpart."""

    def __init__(self, name, target):
        super().__init__(name, target.__doc__)
        self.__dict__["_theanine_module"] = target
        self.__dict__.update(OVERRIDES.get(name, {}))
        self.__path__ = []   # a package, so that theano.X.Y can be imported

    def __getattr__(self, attr):
        target = self.__dict__["_theanine_module"]
        try:
            value = getattr(target, attr)
        except AttributeError:
            if attr.startswith("_") or importlib.util.find_spec(f"{target.__name__}.{attr}") is None:
                raise AttributeError(f"module {self.__name__!r} (theanine's {target.__name__}) has no "
                                     f"attribute {attr!r}") from None
            value = importlib.import_module(f"{target.__name__}.{attr}")   # a submodule not yet imported
        if isinstance(value, types.ModuleType) and value.__name__.startswith("theanine."):
            # a theanine submodule reached by attribute: hand out its theano alias instead
            return importlib.import_module(f"{self.__name__}.{attr}")
        return value

    def __dir__(self):
        return sorted(set(dir(self.__dict__["_theanine_module"])) | set(self.__dict__))


class TheanoFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``theano`` and ``theano.*`` and loads them as aliases of theanine's modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "theano" and not fullname.startswith("theano."):
            return None
        for refused, reason in REFUSED.items():
            if fullname == refused or fullname.startswith(refused + "."):
                raise ImportError(f"{fullname}: {reason}", name=fullname)
        name = target_name(fullname)
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ModuleNotFoundError(f"{fullname}: theanine has no counterpart of this Theano "
                                      f"module (looked for {name})", name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return AliasModule(spec.name, importlib.import_module(target_name(spec.name)))

    def exec_module(self, module):
        pass


_finder = TheanoFinder()


def _real_theano_imported():
    module = sys.modules.get("theano")
    return module is not None and not isinstance(module, AliasModule)


def install():
    """Make ``import theano`` (and its submodules) give theanine. Reads ``THEANO_FLAGS``.
    Raises RuntimeError if a real Theano is already imported in this process."""
    if _real_theano_imported():
        where = getattr(sys.modules["theano"], "__file__", None) or "unknown location"
        raise RuntimeError(f"a real Theano is already imported ({where}); theanine cannot stand "
                           "in for it in this process. Run the script in a fresh interpreter "
                           "with `theanine run-theano SCRIPT` or `python -m theanine.compat SCRIPT`.")
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    flags = os.environ.get("THEANO_FLAGS", "")
    if flags:
        OVERRIDES["theano"]["config"].apply_flags(flags)


def uninstall():
    """Remove the import hook and forget the ``theano`` modules it made."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in [n for n, m in sys.modules.items() if isinstance(m, AliasModule)]:
        del sys.modules[name]


def installed():
    """Whether ``install()`` is in effect."""
    return _finder in sys.meta_path
