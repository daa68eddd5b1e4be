"""B2: the fused elementwise expression ``exp(-x*x) * y + 0.5 * z``.

On 10,000,000 float64 and float32 elements (1,000,000 with ``--quick``):
median ms per call, GB/s (3 inputs read + 1 output written, divided by the
time), and that rate as a fraction of the memory bandwidth that a copy test
(``np.copyto(dst, src)`` on a large array, bytes read + written) measures in
the same run.  Peers: NumPy, numexpr, PyTorch, JAX jit, PyTensor (C).
Every implementation's result is checked against NumPy's before it is timed.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.common import (absent, check_close, guarded, import_jax, import_pytensor,
                                     main, pytensor_function, row, theanine_impl, theanine_modes,
                                     timeit_median, try_import)

TABLE = {"title": "B2 elementwise: exp(-x*x) * y + 0.5 * z",
         "unit": "ms", "extra": ["GB/s", "% of copy BW"]}

def copy_bandwidth(quick):
    """Bytes read + written per second by ``np.copyto`` on a 64 MiB (quick) or 256 MiB array."""
    n = (8 if quick else 32) * 1024 * 1024
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    t = timeit_median(lambda: np.copyto(dst, src), number=3 if quick else 5, repeat=7)
    return 2 * src.nbytes / t, src.nbytes


def _data(n, dtype):
    rng = np.random.default_rng(42)
    return tuple(rng.standard_normal(n).astype(dtype) for _ in range(3))


def run(quick: bool) -> list[dict]:
    n = 1_000_000 if quick else 10_000_000
    number, repeat = (5, 7) if quick else (3, 7)
    bw, copy_bytes = copy_bandwidth(quick)
    rows = [row(f"copy test, {copy_bytes >> 20} MiB", "np.copyto", None,
                f"memory bandwidth {bw / 1e9:.1f} GB/s (read + write)")]
    for dtype in ("float64", "float32"):
        rows += _run_dtype(n, dtype, number, repeat, bw)
    return rows


def _run_dtype(n, dtype, number, repeat, bw):
    case = f"{dtype}, n={n:.0e}".replace("e+0", "e")
    x, y, z = _data(n, dtype)
    want = np.exp(-x * x) * y + 0.5 * z
    assert want.dtype == np.dtype(dtype)
    rtol, atol = (1e-12, 1e-12) if dtype == "float64" else (1e-5, 1e-6)
    nbytes = 4 * n * np.dtype(dtype).itemsize
    rows = []

    def timed(impl, call, result, note=""):
        def body():
            got = np.asarray(result())
            if got.dtype != np.dtype(dtype):
                raise AssertionError(f"{impl}: dtype {got.dtype}, expected {dtype}")
            check_close(got, want, rtol, atol, impl)
            t = timeit_median(call, number, repeat)
            gbs = nbytes / t
            return row(case, impl, t, note, **{"GB/s": gbs / 1e9, "% of copy BW": 100 * gbs / bw})
        return guarded(case, impl, body)

    def np_expr():
        return np.exp(-x * x) * y + 0.5 * z
    rows.append(timed("numpy", np_expr, np_expr, "eager, temporaries"))

    import theanine
    import theanine.tensor as T
    for mode in theanine_modes():
        impl = theanine_impl(mode)

        def body(mode=mode, impl=impl):
            xs, ys, zs = (T.vector(nm, dtype=dtype) for nm in "xyz")
            f = theanine.function([xs, ys, zs], T.exp(-xs * xs) * ys + 0.5 * zs, mode=mode)
            f.trust_input = True
            return timed(impl, lambda: f(x, y, z), lambda: f(x, y, z), "trust_input")
        rows.append(guarded(case, impl, body))

    ne = try_import("numexpr")
    if ne is None:
        rows.append(absent(case, "numexpr"))
    else:
        # a literal 0.5 is a double in numexpr and would upcast float32: pass it typed
        env = {"x": x, "y": y, "z": z, "half": np.dtype(dtype).type(0.5)}

        def ne_expr():
            return ne.evaluate("exp(-x*x) * y + half * z", local_dict=env)
        rows.append(timed("numexpr", ne_expr, ne_expr, f"{ne.get_num_threads()} threads"))

    torch = try_import("torch")
    if torch is None:
        rows.append(absent(case, "torch"))
    else:
        xt, yt, zt = (torch.from_numpy(a) for a in (x, y, z))

        def t_expr():
            return torch.exp(-xt * xt) * yt + 0.5 * zt
        rows.append(timed("torch", t_expr, lambda: t_expr().numpy(),
                          f"eager, {torch.get_num_threads()} threads"))

    jax, jnp = import_jax()
    if jax is None:
        rows.append(absent(case, "jax"))
    else:
        def body():
            f = jax.jit(lambda a, b, c: jnp.exp(-a * a) * b + 0.5 * c)
            xj, yj, zj = (jnp.asarray(a) for a in (x, y, z))
            return timed("jax", lambda: f(xj, yj, zj).block_until_ready(),
                         lambda: f(xj, yj, zj), "jit")
        rows.append(guarded(case, "jax", body))

    pytensor, pt, _ = import_pytensor()
    if pytensor is None:
        rows.append(absent(case, "pytensor"))
    else:
        def body():
            xs, ys, zs = (pt.vector(nm, dtype=dtype) for nm in "xyz")
            f = pytensor_function([xs, ys, zs], pt.exp(-xs * xs) * ys + 0.5 * zs)
            return timed("pytensor", lambda: f(x, y, z), lambda: f(x, y, z),
                         "C back end, trust_input")
        rows.append(guarded(case, "pytensor", body))
    return rows


if __name__ == "__main__":
    import tests.benchmarks.bench_b2_elementwise as _self
    main(_self)
