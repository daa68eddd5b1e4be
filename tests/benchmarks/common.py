"""Shared helpers of the benchmark suite: timing, peer detection, tables.

A benchmark module exposes ``run(quick) -> list[dict]`` and a ``TABLE`` dict
(``title``, ``unit``, optional ``extra`` columns and ``note``); each row is a
dict with at least ``case`` (what is measured: size, dtype, ...), ``impl``
(who runs it: ``theanine[py]``, ``numpy``, ``torch``, ...) and ``time_s``
(median seconds per call, or None with a ``note`` saying why: not installed,
error, wrong result).  ``markdown_table`` turns the rows into one Markdown
table with the ratio columns:

- "vs NumPy": NumPy's time / this row's time (>1: faster than NumPy);
- "vs fastest peer": the fastest other library's time / this row's time,
  where peers are every implementation that is not theanine (NumPy included).
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np

# --------------------------------------------------------------------------- timing


def timeit_median(fn, number, repeat=7, warmup=1):
    """Median over ``repeat`` runs of the mean seconds per call of ``number`` calls of ``fn()``."""
    for _ in range(warmup):
        fn()
    per_call = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            for _ in range(number):
                fn()
            t1 = time.perf_counter_ns()
            per_call.append((t1 - t0) / number / 1e9)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(per_call)


def timeit_auto(fn, target_s=0.05, repeat=7, max_number=100_000):
    """Like ``timeit_median`` with ``number`` chosen so that one repeat takes about ``target_s``."""
    fn()
    t0 = time.perf_counter_ns()
    fn()
    one = max((time.perf_counter_ns() - t0) / 1e9, 1e-7)
    number = int(min(max_number, max(1, target_s / one)))
    return timeit_median(fn, number=number, repeat=repeat, warmup=0)


# --------------------------------------------------------------------------- peers


def try_import(name):
    """The module ``name`` or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return None


_JAX_READY = False


def import_jax():
    """``(jax, jax.numpy)`` with float64 enabled (our float64 cases need it), or ``(None, None)``."""
    global _JAX_READY
    jax = try_import("jax")
    if jax is None:
        return None, None
    if not _JAX_READY:
        jax.config.update("jax_enable_x64", True)
        _JAX_READY = True
    import jax.numpy as jnp
    return jax, jnp


def import_pytensor():
    """``(pytensor, pytensor.tensor, c_mode)`` where c_mode is PyTensor's C back end, or Nones."""
    pytensor = try_import("pytensor")
    if pytensor is None:
        return None, None, None
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode
    return pytensor, pt, Mode(linker="cvm", optimizer="fast_run")


def pytensor_function(inputs, outputs, **kw):
    """A PyTensor function on its C back end with ``trust_input=True``."""
    pytensor, _, mode = import_pytensor()
    f = pytensor.function(inputs, outputs, mode=mode, **kw)
    f.trust_input = True
    return f


_THEANINE_MODES = None


def theanine_modes():
    """``["py"]`` plus each native mode (``"llvm"``, ``"c"``, and ``"cuda"`` where a GPU is
    usable) that ``theanine.function`` accepts."""
    global _THEANINE_MODES
    if _THEANINE_MODES is None:
        import theanine
        import theanine.cuda
        import theanine.tensor as T
        x = T.dvector("x")
        modes = []
        for m in ("py", "llvm", "c") + (("cuda",) if theanine.cuda.is_available() else ()):
            try:
                theanine.function([x], x + 1, mode=m)
            except ValueError:
                continue
            modes.append(m)
        _THEANINE_MODES = modes
    return list(_THEANINE_MODES)


def theanine_impl(mode):
    return f"theanine[{mode}]"


def is_theanine(impl):
    return impl.startswith("theanine")


# --------------------------------------------------------------------------- rows


def row(case, impl, time_s=None, note="", **extra):
    r = {"case": case, "impl": impl, "time_s": time_s, "note": note}
    r.update(extra)
    return r


def absent(case, impl):
    return row(case, impl, None, "not installed")


def check_close(got, want, rtol, atol, what):
    """Raise AssertionError (with the worst mismatch) unless ``got`` is allclose to ``want``."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
        raise AssertionError(f"{what}: max abs error {err:.3g} (rtol={rtol}, atol={atol})")


def guarded(case, impl, body):
    """Run ``body() -> row`` and turn an exception into a row that says what went wrong.

    A wrong answer (AssertionError from a correctness check) gives ``WRONG RESULT``
    and is never timed; any other exception gives ``error: ...``.
    """
    try:
        return body()
    except AssertionError as e:
        return row(case, impl, None, f"WRONG RESULT: {e}")
    except Exception as e:  # noqa: BLE001 - a failing peer must not stop the suite
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        return row(case, impl, None, f"error: {msg[:160]}")


def peer_rows(case, torch=None, jax=None, pytensor=None) -> list:
    """One row per peer of a benchmark case: ``torch(torch)``, ``jax(jax, jnp)`` and
    ``pytensor(pytensor, pt)`` each measure that peer (guarded: an error becomes the row's
    note); a peer that is not installed gets an 'absent' row."""
    torch_module = try_import("torch")
    jax_modules = import_jax()
    pytensor_modules = import_pytensor()[:2]
    rows = []
    for name, measure, found in (("torch", torch, (torch_module,)), ("jax", jax, jax_modules),
                                 ("pytensor", pytensor, pytensor_modules)):
        if found[0] is None:
            rows.append(absent(case, name))
        else:
            rows.append(guarded(case, name, lambda measure=measure, found=found: measure(*found)))
    return rows


# --------------------------------------------------------------------------- tables


_UNITS = {"s": 1.0, "ms": 1e3, "µs": 1e6, "us": 1e6, "ns": 1e9}


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v != v:
        return "nan"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def markdown_table(rows, title, unit="ms", extra=(), note="", time_label="median"):
    """One Markdown table: case | impl | time | extra... | vs NumPy | vs fastest peer | note.

    "vs NumPy" is left out when no row is NumPy's, "vs fastest peer" when no peer has a time.
    """
    scale = _UNITS[unit]
    cases = []
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])
    numpy_t, peer_t = {}, {}
    for r in rows:
        t = r.get("time_s")
        if t is None:
            continue
        if r["impl"] == "numpy":
            numpy_t[r["case"]] = t
        if not is_theanine(r["impl"]):
            peer_t[r["case"]] = min(t, peer_t.get(r["case"], float("inf")))
    has_peer = bool(peer_t)
    has_numpy = any(r["impl"] == "numpy" for r in rows)
    head = ["case", "impl", f"{time_label} ({unit})", *extra]
    if has_numpy:
        head.append("vs NumPy")
    if has_peer:
        head.append("vs fastest peer")
    head.append("note")
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for case in cases:
        for r in rows:
            if r["case"] != case:
                continue
            t = r.get("time_s")
            cells = [str(case), r["impl"], _fmt(t * scale) if t is not None else "—"]
            cells += [_fmt(r.get(k)) for k in extra]
            if has_numpy:
                nt = numpy_t.get(case)
                cells.append(f"{nt / t:.2f}" if (t and nt) else "")
            if has_peer:
                pt = peer_t.get(case)
                cells.append(f"{pt / t:.2f}" if (t and pt) else "")
            cells.append(str(r.get("note", "")).replace("|", "/"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- machine


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    """Installed versions of theanine and the peers (None when absent), without importing heavy ones twice."""
    from importlib import metadata
    out = {}
    for dist in ("theanine", "numpy", "scipy", "numexpr", "torch", "jax", "jaxlib", "pytensor", "llvmlite"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_header():
    v = versions()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    lines = [
        "## Machine",
        "",
        f"- CPU: {cpu_model()}, {cores} cores available ({os.cpu_count()} logical CPUs)",
        f"- Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
        "- not installed: " + (", ".join(k for k, val in v.items() if val is None) or "none"),
        f"- theanine modes: {', '.join(theanine_modes())}",
    ]
    try:
        load = os.getloadavg()
        lines.append(f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                     "(other work on the machine makes multi-threaded timings noisy)")
    except OSError:
        pass
    threads = []
    if v.get("torch"):
        torch = try_import("torch")
        if torch is not None:
            threads.append(f"torch {torch.get_num_threads()}")
    if v.get("numexpr"):
        ne = try_import("numexpr")
        if ne is not None:
            threads.append(f"numexpr {ne.get_num_threads()}")
    if threads:
        lines.append("- threads (library defaults, untouched): " + ", ".join(threads))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def main(module):
    """``python -m tests.benchmarks.bench_x [--quick]``: run one benchmark, print its table."""
    quick = "--quick" in sys.argv[1:]
    t0 = time.perf_counter()
    rows = module.run(quick)
    print(markdown_table(rows, **module.TABLE))
    print(f"({time.perf_counter() - t0:.1f} s{', quick' if quick else ''})")
    return rows
