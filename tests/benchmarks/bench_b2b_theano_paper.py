"""B2b: the elementwise table of the 2010 Theano paper (Bergstra et al., SciPy 2010).

``a**2 + b**2 + 2*a*b``, ``2*a + 3*b``, ``a + 1`` and ``2*a + b**10`` on float64
vectors of 1e3, 1e5 and 1e7 elements (``--quick`` skips 1e7), median µs per
call; theanine in every available mode (``trust_input``) against NumPy and
numexpr, and PyTorch, JAX jit and PyTensor (C) when installed.  Each result is
checked against NumPy's before it is timed.
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.common import (absent, check_close, guarded, import_jax, import_pytensor,
                                     main, pytensor_function, row, theanine_impl, theanine_modes,
                                     timeit_auto, try_import)

TABLE = {"title": "B2b Theano-paper elementwise expressions, float64", "unit": "µs"}

EXPRS = ["a**2 + b**2 + 2*a*b", "2*a + 3*b", "a + 1", "2*a + b**10"]


def run(quick: bool) -> list[dict]:
    sizes = [10**3, 10**5] if quick else [10**3, 10**5, 10**7]
    target = 0.01 if quick else 0.05
    rng = np.random.default_rng(7)
    torch = try_import("torch")
    ne = try_import("numexpr")
    jax, jnp = import_jax()
    pytensor, pt, _ = import_pytensor()
    import theanine
    import theanine.tensor as T
    modes = theanine_modes()

    rows = []
    for n in sizes:
        a = rng.uniform(-1.5, 1.5, n)
        b = rng.uniform(-1.5, 1.5, n)
        for expr in EXPRS:
            case = f"{expr}, n=1e{len(str(n)) - 1}"
            want = eval(expr, {"a": a, "b": b})

            def timed(impl, call, result, note=""):
                def body():
                    check_close(np.asarray(result()), want, 1e-10, 1e-12, impl)
                    return row(case, impl, timeit_auto(call, target_s=target), note)
                return guarded(case, impl, body)

            code = compile(expr, "<expr>", "eval")  # parsed once, not per call

            def np_expr(code=code):
                return eval(code, {"a": a, "b": b})
            rows.append(timed("numpy", np_expr, np_expr))

            for mode in modes:
                impl = theanine_impl(mode)

                def body(mode=mode, impl=impl):
                    sa, sb = T.dvector("a"), T.dvector("b")
                    f = theanine.function([sa, sb], eval(expr, {"a": sa, "b": sb}), mode=mode,
                                          on_unused_input="ignore")
                    f.trust_input = True
                    return timed(impl, lambda: f(a, b), lambda: f(a, b), "trust_input")
                rows.append(guarded(case, impl, body))

            if ne is None:
                rows.append(absent(case, "numexpr"))
            else:
                env = {"a": a, "b": b}
                rows.append(timed("numexpr", lambda: ne.evaluate(expr, local_dict=env),
                                  lambda: ne.evaluate(expr, local_dict=env)))

            if torch is None:
                rows.append(absent(case, "torch"))
            else:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)

                def t_expr(code=code, ta=ta, tb=tb):
                    return eval(code, {"a": ta, "b": tb})
                rows.append(timed("torch", t_expr, lambda: t_expr().numpy(), "eager"))

            if jax is None:
                rows.append(absent(case, "jax"))
            else:
                def body(code=code):
                    f = jax.jit(lambda ja, jb: eval(code, {"a": ja, "b": jb}))
                    ja, jb = jnp.asarray(a), jnp.asarray(b)
                    return timed("jax", lambda: f(ja, jb).block_until_ready(), lambda: f(ja, jb), "jit")
                rows.append(guarded(case, "jax", body))

            if pytensor is None:
                rows.append(absent(case, "pytensor"))
            else:
                def body():
                    sa, sb = pt.dvector("a"), pt.dvector("b")
                    f = pytensor_function([sa, sb], eval(expr, {"a": sa, "b": sb}),
                                          on_unused_input="ignore")
                    return timed("pytensor", lambda: f(a, b), lambda: f(a, b), "C, trust_input")
                rows.append(guarded(case, "pytensor", body))
    return rows


if __name__ == "__main__":
    import tests.benchmarks.bench_b2b_theano_paper as _self
    main(_self)
