"""``python -m theanine.cache info|clear|prune``: maintain the on-disk compile cache.

A thin entry point; the cache and its command line live in :mod:`theanine.compile.cache`.
"""

import sys

from theanine.compile.cache import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
