"""B1: call overhead of ``f(x) = x + 1`` on a 10-element float64 vector.

theanine in every available mode, with input checking and with
``f.trust_input = True``; NumPy eager ``x + 1``; PyTorch eager, JAX jit and
PyTensor (C back end, ``trust_input=True``) when installed.  Median time per
call in µs: ``number`` calls timed with ``perf_counter_ns``, repeated 7 times,
the median of the per-call means.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.common import (absent, check_close, guarded, import_jax, import_pytensor,
                                     main, pytensor_function, row, theanine_impl, theanine_modes,
                                     timeit_median, try_import)

TABLE = {"title": "B1 call overhead: f(x) = x + 1, 10 float64", "unit": "µs"}

N = 10


def run(quick: bool) -> list[dict]:
    number = 2_000 if quick else 10_000
    repeat = 7
    case = f"x + 1, n={N}"
    x = np.linspace(0.0, 1.0, N)
    want = x + 1
    rows = []

    def timed(impl, call, check, note=""):
        def body():
            check_close(check(), want, 0, 0, impl)
            return row(case, impl, timeit_median(call, number, repeat), note)
        return guarded(case, impl, body)

    rows.append(timed("numpy", lambda: x + 1, lambda: x + 1))

    import theanine
    import theanine.tensor as T
    for mode in theanine_modes():
        for trust in (False, True):
            impl = theanine_impl(mode) + (" trust_input" if trust else "")

            def body(mode=mode, trust=trust, impl=impl):
                xv = T.dvector("x")
                f = theanine.function([xv], xv + 1, mode=mode)
                f.trust_input = trust
                return timed(impl, lambda: f(x), lambda: f(x))
            rows.append(guarded(case, impl, body))

    torch = try_import("torch")
    if torch is None:
        rows.append(absent(case, "torch"))
    else:
        xt = torch.from_numpy(x.copy())
        rows.append(timed("torch", lambda: xt + 1, lambda: (xt + 1).numpy(), "eager"))

    jax, jnp = import_jax()
    if jax is None:
        rows.append(absent(case, "jax"))
    else:
        def body():
            f = jax.jit(lambda a: a + 1)
            xj = jnp.asarray(x)
            return timed("jax", lambda: f(xj).block_until_ready(), lambda: np.asarray(f(xj)),
                         "jit, device array in, block_until_ready")
        rows.append(guarded(case, "jax", body))

    pytensor, pt, _ = import_pytensor()
    if pytensor is None:
        rows.append(absent(case, "pytensor"))
    else:
        def body():
            xv = pt.dvector("x")
            f = pytensor_function([xv], xv + 1)
            return timed("pytensor", lambda: f(x), lambda: f(x), "C back end, trust_input")
        rows.append(guarded(case, "pytensor", body))
    return rows


if __name__ == "__main__":
    import tests.benchmarks.bench_b1_call_overhead as _self
    main(_self)
