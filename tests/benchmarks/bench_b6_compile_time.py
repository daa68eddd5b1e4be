"""B6: compile time of the B3 training function (MLP 784-256-256-10, SGD updates).

Each measurement is a fresh Python process that imports the library, then
times from building the graph to the first result of the training step:

- cold: the compile cache is an empty temporary directory
  (theanine: ``THEANINE_FLAGS=cache_dir=<dir>``; PyTensor:
  ``PYTENSOR_FLAGS=compiledir=<dir>``; JAX: its persistent compilation cache
  pointed at ``<dir>`` with no minimum compile time or entry size);
- warm: a second fresh process with the same cache directory.

Seconds; the import time of the library is reported beside it, not included.
The first result is checked against the NumPy reference step of B3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from tests.benchmarks.common import (absent, guarded, main, row, theanine_impl, theanine_modes,
                                     try_import)

TABLE = {"title": "B6 compile time of the B3 training function (fresh process each)",
         "unit": "s", "extra": ["import (s)"],
         "time_label": "graph to first result"}

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in the child process: argv = [which, mode, cache_dir]; prints one JSON line.
CHILD = r'''
import json, sys, time
which, mode, cache_dir = sys.argv[1:4]
t0 = time.perf_counter()
import numpy as np
from tests.benchmarks import bench_b3_mlp as b3
if which == "theanine":
    import theanine
elif which == "jax":
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    for k, v in (("jax_persistent_cache_min_compile_time_secs", 0),
                 ("jax_persistent_cache_min_entry_size_bytes", 0)):
        try:
            jax.config.update(k, v)
        except Exception:
            pass
elif which == "pytensor":
    import pytensor, pytensor.tensor as pt
init = b3.init_params()
X, y = b3.make_data()
t1 = time.perf_counter()
if which == "theanine":
    train, _, _ = b3.build_theanine_step(init, mode)
    loss = float(train(X, y))
elif which == "jax":
    step = b3.jax_step_fn(jax, jnp)
    out, _ = step([jnp.asarray(p) for p in init], jnp.asarray(X), jnp.asarray(y))
    loss = float(out.block_until_ready())
elif which == "pytensor":
    train, _ = b3.build_pytensor_step(pytensor, pt, init)
    loss = float(train(X, y))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "compile_s": t2 - t1, "loss": loss}))
'''


def _child(which, mode, cache_dir, env_extra, timeout):
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-c", CHILD, which, mode, cache_dir], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"child exited {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(impl, which, mode, env_for, want_loss, timeout):
    """Two rows, cold and warm, for one implementation."""
    cache_dir = tempfile.mkdtemp(prefix=f"bench_b6_{which}_")
    rows = []
    try:
        for case in ("cold (empty cache)", "warm (same cache, new process)"):
            def body(case=case):
                r = _child(which, mode, cache_dir, env_for(cache_dir), timeout)
                if abs(r["loss"] - want_loss) > 1e-4 * abs(want_loss):
                    raise AssertionError(f"{impl}: first loss {r['loss']}, expected {want_loss}")
                return row(case, impl, r["compile_s"], "", **{"import (s)": r["import_s"]})
            rows.append(guarded(case, impl, body))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return rows


def _theanine_env(cache_dir):
    flags = os.environ.get("THEANINE_FLAGS", "")
    return {"THEANINE_FLAGS": (flags + "," if flags else "") + f"cache_dir={cache_dir}"}


def _pytensor_env(cache_dir):
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    return {"PYTENSOR_FLAGS": (flags + "," if flags else "") + f"compiledir={cache_dir}"}


def run(quick: bool) -> list[dict]:
    from tests.benchmarks import bench_b3_mlp as b3
    want_loss = float(b3.numpy_step(b3.init_params(), *b3.make_data()))
    timeout = 300 if quick else 600
    rows = []
    for mode in theanine_modes():
        rows += _measure(theanine_impl(mode), "theanine", mode, _theanine_env, want_loss, timeout)
    cases = ("cold (empty cache)", "warm (same cache, new process)")
    if try_import("jax") is None:
        rows += [absent(c, "jax") for c in cases]
    else:
        rows += _measure("jax", "jax", "", lambda d: {}, want_loss, timeout)
    if try_import("pytensor") is None:
        rows += [absent(c, "pytensor") for c in cases]
    else:
        rows += _measure("pytensor", "pytensor", "", _pytensor_env, want_loss, timeout)
    return rows


if __name__ == "__main__":
    import tests.benchmarks.bench_b6_compile_time as _self
    main(_self)
