"""Run a Theano script on theanine: ``python -m theanine.compat SCRIPT [ARGS]`` or
``theanine run-theano SCRIPT [ARGS]``."""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from theanine.compat import theano


def run_script(path, args=()):
    """Run the Python file ``path`` as ``__main__`` with ``sys.argv = [path, *args]`` and
    ``import theano`` resolving to theanine (its directory first on sys.path, as Python does)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such script: {path}")
    theano.install()
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    runpy.run_path(path, run_name="__main__")


def main(argv=None):
    """``python -m theanine.compat SCRIPT [ARGS]``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m theanine.compat SCRIPT [ARGS...]\n\n"
              "Runs a Theano script with `import theano` resolving to theanine.", file=sys.stderr)
        return 0 if argv else 2
    try:
        run_script(argv[0], argv[1:])
    except FileNotFoundError as e:
        print(f"theanine: {e}", file=sys.stderr)
        return 2
    return 0


def cli(argv=None):
    """The ``theanine`` command: ``theanine run-theano SCRIPT [ARGS]`` and
    ``theanine cache info|clear|prune [...]`` (as ``python -m theanine.cache``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cache"]:
        from theanine.compile.cache import main as cache_main
        return cache_main(argv[1:])
    parser = argparse.ArgumentParser(prog="theanine", description="theanine command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run-theano", help="run an unmodified Theano script on theanine")
    run.add_argument("script", help="the Python script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    commands.add_parser("cache", help="maintain the compile cache: info | clear | prune "
                                      "(see python -m theanine.cache --help)")
    ns = parser.parse_args(argv)
    return main([ns.script, *ns.args])


if __name__ == "__main__":
    sys.exit(main())
