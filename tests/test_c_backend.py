"""The C back end (mode="c") against the LLVM back end: same kernel IR, same results bit for bit.

Kernel-level differential tests render one kernel per (opcode, dtype) that the
LLVM renderer supports, compile the module with both back ends and run both on
special values (nan, +-inf, +-0, subnormals, integer extremes, zero divisors,
out-of-range float to int casts). Function-level tests compare mode="c" with
mode="llvm" through the user API (fusion, broadcasting, strides, reductions).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import c as crender
from theanine.codegen import cc, jit, llvm
from theanine.codegen.ir import ElementwiseKernel, Instr, ReduceKernel, ScalarProgram
from theanine.compile.cache import DiskCache

FLOATS = ["float32", "float64"]
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
ALL = FLOATS + INTS + ["bool"]
KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

_UNARY = {"copy", "neg", "abs", "sign", "sqr", "sqrt", "recip", "exp", "exp2", "expm1", "log",
          "log2", "log10", "log1p", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
          "tanh", "asinh", "acosh", "atanh", "floor", "ceil", "trunc", "round_even", "round_away",
          "erf", "erfc", "lgamma", "sigmoid", "softplus", "lnot", "bnot", "isnan", "isinf"}
_PREDICATES = {"lt", "le", "gt", "ge", "eq", "ne", "land", "lor", "lxor", "lnot", "isnan", "isinf"}
_TERNARY = {"select", "clip"}


def _specials(dtype):
    if dtype == "bool":
        return np.array([False, True])
    if dtype in FLOATS:
        info = np.finfo(dtype)
        vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, -7.0, 0.1, -0.1, 0.55,
                np.pi, -np.pi, 1e-8, -1e-8, 1e-30, 88.7, -103.9, 709.8, -745.2, 1e10, -1e10,
                127.9, -128.9, 255.5, 256.0, 2.0 ** 31, -2.0 ** 31, 2.0 ** 63, -2.0 ** 63, 2.0 ** 64,
                1e30, float(info.max), -float(info.max), float(info.tiny), float(info.smallest_subnormal),
                -float(info.smallest_subnormal), np.inf, -np.inf, np.nan]
        with np.errstate(over="ignore"):
            return np.array(vals, dtype=dtype)
    info = np.iinfo(dtype)
    vals = [0, 1, 2, 3, 7, 100, info.max, info.max - 1, info.min, info.min + 1, -1, -2, -3, -7, -100]
    return np.array([v for v in vals if info.min <= v <= info.max], dtype=dtype)


def _random(dtype, n, rng):
    """Values spread over the whole range (log-uniform magnitudes for floats)."""
    if dtype == "bool":
        return rng.random(n) < 0.5
    if dtype in FLOATS:
        top = 38 if dtype == "float32" else 300
        with np.errstate(over="ignore"):
            mag = 10.0 ** rng.uniform(-top, top, n)
            return (mag * rng.choice([-1, 1], n)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)


def _cases(op, dtype, rng):
    """Input columns (one array per operand) for ``op`` on ``dtype``: all pairs of special
    values for binary operations, specials plus random values for unary ones."""
    s = _specials(dtype)
    arity = 1 if op in _UNARY or op == "cast" else 3 if op in _TERNARY else 2
    if arity == 1:
        extra = [_random(dtype, 400, rng)]
        if dtype in FLOATS:
            extra += [rng.uniform(-3, 3, 400).astype(dtype), rng.uniform(-1, 1, 200).astype(dtype)]
        return [np.concatenate([s] + extra)]
    if arity == 2:
        a, b = (x.ravel() for x in np.meshgrid(s, s))
        r = _random(dtype, 300, rng), _random(dtype, 300, rng)
        if dtype in INTS:  # small divisors
            r = r[0], (r[1] % 5).astype(dtype)
        return [np.concatenate([a, r[0]]), np.concatenate([b, r[1]])]
    sub = s[:: max(1, len(s) // 8)]
    cols = [x.ravel() for x in np.meshgrid(sub, sub, sub)]
    return cols


def _instrs(dtype):
    """(label, Instr, input dtypes) for every opcode the LLVM renderer accepts for ``dtype``."""
    ops = llvm._FLOAT_OPS if dtype in FLOATS else llvm._INT_OPS if dtype in INTS else llvm._BOOL_OPS
    out = []
    for op in sorted(ops):
        if op == "cast":
            for dst in ALL:
                out.append((f"cast_{dtype}_{dst}", Instr("cast", (0,), dst, dtype), (dtype,)))
            continue
        arity = 1 if op in _UNARY else 3 if op in _TERNARY else 2
        result = "bool" if op in _PREDICATES else dtype
        ins = (dtype,) * arity
        out.append((f"{op}_{dtype}", Instr(op, tuple(range(arity)), result, dtype), ins))
    # operands converted to the compute dtype first
    if dtype in INTS:
        out.append((f"div_{dtype}_to_f64", Instr("div", (0, 1), "float64", "float64"), (dtype, dtype)))
        out.append((f"add_{dtype}_to_f32", Instr("add", (0, 1), "float32", "float32"), (dtype, dtype)))
    if dtype in FLOATS + INTS:
        out.append((f"select_bool_{dtype}", Instr("select", (0, 1, 2), dtype, dtype), ("bool", dtype, dtype)))
        out.append((f"land_bool_{dtype}", Instr("land", (0, 1), "bool", dtype), ("bool", dtype)))
    return out


def _program(instr, in_dtypes):
    return ScalarProgram(tuple(in_dtypes), (), (instr,), (len(in_dtypes),))


def _compile_both(kernels, tag):
    """Addresses of every kernel in the LLVM and the C build of the same kernel list."""
    pairs = [(k, [False] * len(k.program.input_dtypes)) for k in kernels]
    names = [k.name for k in kernels]
    ltext = llvm.render_module(pairs, f"theanine_ctest_{tag}")
    ctext = crender.render_module(pairs, f"theanine_ctest_{tag}")
    return jit.compile_ir(ltext, names), cc.compile_source(ctext, names)


def _run(address, arrays, out_dtype):
    """Run a 1-d kernel over ``arrays`` (any strides) into a fresh output."""
    n = len(arrays[0])
    out = np.empty(n, dtype=out_dtype)
    shape = np.array([n], dtype=np.int64)
    strides = np.array([a.strides[0] for a in arrays] + [out.strides[0]], dtype=np.int64)
    data = (ctypes.c_void_p * (len(arrays) + 1))(*[a.ctypes.data for a in arrays], out.ctypes.data)
    KERNEL(address)(shape.ctypes.data, ctypes.addressof(data), strides.ctypes.data)
    return out


def assert_same_bits(got, want, context=""):
    """Equal bit for bit, except that any nan equals any nan."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, context
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), context
        bits = got.dtype.str.replace("f", "u")
        bad = (got.view(bits) != want.view(bits)) & ~nan
        assert not bad.any(), f"{context}: {got[bad][:5]} != {want[bad][:5]}"
    else:
        np.testing.assert_array_equal(got, want, err_msg=context)


# --- every opcode, every dtype, kernel level -----------------------------------------------------


@pytest.mark.parametrize("dtype", ALL)
def test_every_opcode_agrees_with_llvm_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    table = _instrs(dtype)
    kernels = [ElementwiseKernel(f"ct_{dtype}_{k}", 1, _program(instr, ins))
               for k, (_, instr, ins) in enumerate(table)]
    laddr, caddr = _compile_both(kernels, dtype)
    for (label, instr, ins), k in zip(table, kernels):
        cols = _cases(instr.opcode, dtype, rng)
        arrays = [np.ascontiguousarray(col.astype(d) if d != dtype else col) for col, d in zip(cols, ins)]
        if instr.opcode == "select" and ins[0] == "bool":
            arrays[0] = (np.arange(len(arrays[0])) % 3 == 0)
        for strided in (False, True):
            args = [np.repeat(a, 2)[::2] if strided else a for a in arrays]
            with np.errstate(all="ignore"):
                want = _run(laddr[k.name], args, instr.dtype)
                got = _run(caddr[k.name], args, instr.dtype)
            assert_same_bits(got, want, f"{label} (strided={strided})")


def test_constants_and_fused_programs_agree():
    """Constants of every dtype (negative zero, nan, extremes) and multi-instruction programs."""
    cases = [("float64", -0.0), ("float64", np.nan), ("float32", 1e-45), ("float32", -np.inf),
             ("int64", np.iinfo(np.int64).min), ("int32", np.iinfo(np.int32).min), ("int8", -128),
             ("uint64", 2 ** 64 - 1), ("uint8", 255), ("bool", True), ("float64", 0.1),
             ("float32", 0.1)]
    kernels = []
    for k, (dtype, value) in enumerate(cases):
        prog = ScalarProgram((dtype,), ((value, dtype),), (
            Instr("add" if dtype != "bool" else "lxor", (0, 1), dtype if dtype != "bool" else "bool", dtype),
            Instr("mul" if dtype != "bool" else "land", (2, 1), dtype if dtype != "bool" else "bool", dtype),
            Instr("cast", (3,), "float64", dtype)), (3, 4))
        kernels.append(ElementwiseKernel(f"ct_const_{k}", 1, prog))
    laddr, caddr = _compile_both(kernels, "const")
    for k, (dtype, value) in zip(kernels, cases):
        x = _specials(dtype)
        n = len(x)
        results = []  # two outputs: data holds the input, out0, out1
        for addr in (laddr[k.name], caddr[k.name]):
            outs = [np.empty(n, dtype=d) for d in k.program.output_dtypes]
            shape = np.array([n], dtype=np.int64)
            strides = np.array([x.strides[0]] + [o.strides[0] for o in outs], dtype=np.int64)
            data = (ctypes.c_void_p * 3)(x.ctypes.data, *[o.ctypes.data for o in outs])
            with np.errstate(all="ignore"):
                KERNEL(addr)(shape.ctypes.data, ctypes.addressof(data), strides.ctypes.data)
            results.append(outs)
        for got, want in zip(results[1], results[0]):
            assert_same_bits(got, want, f"constant {value!r} ({dtype})")


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min", "all", "any"])
def test_reduce_kernels_agree(kind):
    """Every reduction kind into every dtype it supports, over the last axis (register
    accumulation) and the first (accumulation in memory), dense and strided."""
    dtypes = ["bool"] if kind in ("all", "any") else FLOATS + INTS
    kernels, meta = [], []
    for dtype in dtypes:
        prog = ScalarProgram((dtype,), (), (Instr("copy", (0,), dtype, dtype),), (1,))
        for axes in ((1,), (0,), (0, 1)):
            name = f"ct_red_{kind}_{dtype}_{''.join(map(str, axes))}"
            kernels.append(ReduceKernel(name, 2, axes, kind, prog, dtype))
            meta.append((dtype, axes))
    laddr, caddr = _compile_both(kernels, f"reduce_{kind}")
    rng = np.random.default_rng(3)
    for k, (dtype, axes) in zip(kernels, meta):
        s = _specials(dtype)
        base = np.resize(np.concatenate([s, _random(dtype, 60, rng)]), (7, 24))
        if kind in ("sum", "prod") and dtype in FLOATS:  # reassociated: no cancellation
            base = rng.uniform(0.5, 2.0, (7, 24)).astype(dtype)
            base[1, 3], base[2, 5], base[4, 0] = np.nan, np.inf, -0.0
        for strided in (False, True):
            x = np.repeat(base, 2, axis=1)[:, ::2] if strided else base
            results = []
            for addr in (laddr[k.name], caddr[k.name]):
                identity = {"sum": 0, "prod": 1, "all": True, "any": False}.get(kind)
                if identity is None:
                    identity = (-np.inf if kind == "max" else np.inf) if dtype in FLOATS else \
                        (np.iinfo(dtype).min if kind == "max" else np.iinfo(dtype).max)
                kept = [n for d, n in enumerate(x.shape) if d not in axes]
                out = np.full(kept, identity, dtype=dtype)
                it = iter(out.strides)
                orow = [0 if d in axes else next(it) for d in range(2)]
                strides = np.array([list(x.strides), orow], dtype=np.int64)
                shape = np.array(x.shape, dtype=np.int64)
                data = (ctypes.c_void_p * 2)(x.ctypes.data, out.ctypes.data)
                with np.errstate(all="ignore"):
                    KERNEL(addr)(shape.ctypes.data, ctypes.addressof(data), strides.ctypes.data)
                results.append(out)
            want, got = results
            context = f"{kind} {dtype} axes={axes} strided={strided}"
            if dtype in FLOATS and kind in ("sum", "prod"):  # may be reassociated
                np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12,
                                           equal_nan=True, err_msg=context)
            else:
                assert_same_bits(got, want, context)


# --- mode="c" through the user API ----------------------------------------------------------


def _both(inputs, outputs, *args, **kw):
    fc = theanine.function(inputs, outputs, mode="c", **kw)
    fl = theanine.function(inputs, outputs, mode="llvm", **kw)
    with np.errstate(all="ignore"):
        return fc, fc(*args), fl(*args)


def _check(got, want, reassociated=False):
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want):
        if reassociated and np.asarray(w).dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-12 if np.asarray(w).dtype == np.float64 else 1e-5)
        else:
            assert_same_bits(g, w)


def test_c_mode_fused_chain_with_broadcast_and_strides(rng):
    x, r, c = T.dmatrix("x"), T.drow("r"), T.dcol("c")
    out = [T.exp(-x * x) * r + T.tanh(c) / (1 + T.abs(x)), T.sigmoid(x - c) * T.softplus(r),
           T.switch(T.gt(x, r), T.log1p(T.abs(x)), T.maximum(x, c))]
    a = rng.normal(size=(6, 20))[:, ::2]            # non-contiguous
    b, cc_ = rng.normal(size=(1, 10)), rng.normal(size=(6, 1))
    a[0, :3] = [np.nan, np.inf, -0.0]
    f, got, want = _both([x, r, c], out, a, b, cc_)
    assert f.mode == "c" and len(f.kernels) >= 1 and f.fallbacks == []
    _check(got, want)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "uint64"])
def test_c_mode_integer_arithmetic(dtype, rng):
    x, y = T.vector("x", dtype=dtype), T.vector("y", dtype=dtype)
    out = [x + y, x * y - x, x // y, x % y, T.maximum(x, y), -x, abs(x), x & y, x ^ ~y,
           T.cast(x, "float32") / 3, T.clip(x, 1, 50)]
    info = np.iinfo(dtype)
    a = np.concatenate([_specials(dtype), rng.integers(info.min, info.max, 50, dtype=dtype)])
    b = np.concatenate([np.resize(_specials(dtype)[::-1], len(_specials(dtype))),
                        rng.integers(-3 if info.min else 0, 4, 50).astype(dtype)])
    _, got, want = _both([x, y], out, a, b)
    _check(got, want)


@pytest.mark.parametrize("dtype", FLOATS)
def test_c_mode_float_division_and_casts(dtype):
    x, y = T.vector("x", dtype=dtype), T.vector("y", dtype=dtype)
    out = [x // y, x % y, x / y, T.cast(x, "int8"), T.cast(x, "uint8"), T.cast(x, "int64"),
           T.cast(x, "uint64"), T.cast(x, "bool"), T.round_half_to_even(x), T.sgn(x), x ** y,
           T.arctan2(x, y), T.isnan(x), T.isinf(y)]
    s = _specials(dtype)
    a, b = (v.ravel() for v in np.meshgrid(s, s))
    _, got, want = _both([x, y], out, a, b)
    _check(got, want)


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min", "all", "any"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, (0, 2)])
def test_c_mode_reductions(kind, axis, rng):
    dtypes = ["bool"] if kind in ("all", "any") else ["float64", "float32", "int32", "uint8"]
    for dtype in dtypes:
        x = T.tensor(dtype=dtype, shape=(None, None, None))
        op = getattr(T, kind)
        outs = [op(x, axis=axis)]
        if dtype != "bool":
            outs.append(op(x * 2 + 1, axis=axis))   # fused with its producer
        if dtype in FLOATS:
            a = rng.uniform(0.5, 1.5, (4, 6, 10)).astype(dtype)
            a[1, 2, 3] = np.nan if kind in ("max", "min") else a[1, 2, 3]
        elif dtype == "bool":
            a = rng.random((4, 6, 10)) < (0.9 if kind == "all" else 0.1)
        else:
            a = rng.integers(0, 4, (4, 6, 10)).astype(dtype)
        a = np.swapaxes(a, 0, 2)                      # non-contiguous
        _, got, want = _both([x], outs, a)
        _check(got, want, reassociated=kind in ("sum", "prod"))


def test_c_mode_empty_and_scalar_inputs():
    x = T.dmatrix("x")
    s = T.dscalar("s")
    _, got, want = _both([x, s], [x * s + 1, T.sum(x, axis=0), s * 2], np.zeros((0, 3)), 2.5)
    _check(got, want)
    assert got[0].shape == (0, 3) and got[1].shape == (3,)


def test_source_c_names_the_kernels():
    x = T.fvector("x")
    f = theanine.function([x], T.sqrt(x * x + 1), mode="c")
    text = f.source("c")
    assert "#include <math.h>" in text and f.kernels[0].name in text
    assert f"void {f.kernels[0].name}(" in text and "theanine_module" not in text
    assert text == theanine.function([x], T.sqrt(x * x + 1), mode="llvm").source("c")


def test_compile_error_raises_with_the_compiler_message(tmp_path):
    x = T.dvector("x")
    with theanine.config.change(cache_dir=str(tmp_path), cflags="-O2 -fnot-a-flag"):
        with pytest.raises(RuntimeError) as info:
            theanine.function([x], T.exp(x) * 3 - 1.25, mode="c")
    message = str(info.value)
    assert "-fnot-a-flag" in message and "command:" in message
    assert "not-a-flag" in message.split("command:")[1].split("\n", 1)[1]  # the compiler's stderr


def test_missing_compiler_is_a_clear_error(tmp_path):
    x = T.dvector("x")
    with theanine.config.change(cache_dir=str(tmp_path), cxx=str(tmp_path / "no-such-cc")):
        with pytest.raises(RuntimeError, match="cannot run the C compiler"):
            theanine.function([x], T.exp(x) * 3 - 1.5, mode="c")


def test_processes_compiling_at_once_then_a_second_process_uses_the_disk_cache(tmp_path):
    """Three processes compile the same function at once into a fresh cache; then a process
    whose compiler answers --version like the real one but cannot compile still gets the
    function, from the cache (with an empty cache the same process fails)."""
    fake = tmp_path / "fake-cc"
    real = cc.compiler_command()[0]
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then exec {real} --version; fi\n'
                    'echo "fake-cc: refusing to compile" >&2\nexit 1\n')
    fake.chmod(0o755)
    script = textwrap.dedent("""
        import sys, numpy as np, theanine, theanine.tensor as T
        theanine.config.cxx = sys.argv[1]
        x = T.dvector("x")
        f = theanine.function([x], T.tanh(x) * 7 + 0.125, mode="c")
        print(repr(float(f(np.array([0.5, 2.0])).sum())))
    """)

    def start(compiler, cache):
        env = dict(os.environ, THEANINE_FLAGS=f"cache_dir={tmp_path / cache}")
        return subprocess.Popen([sys.executable, "-c", script, compiler], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(proc):
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out, err

    together = [finish(p) for p in [start(real, "cache") for _ in range(3)]]
    assert all(rc == 0 for rc, _, _ in together), [err for _, _, err in together]
    assert len({out for _, out, _ in together}) == 1
    assert DiskCache(tmp_path / "cache").info()["entries"].get("c", 0) == 1
    rc, out, err = finish(start(str(fake), "cache"))
    assert rc == 0 and out == together[0][1], err
    rc, _, err = finish(start(str(fake), "empty"))
    assert rc != 0 and "refusing to compile" in err and "fake-cc" in err


def test_module_is_loaded_once_per_process(tmp_path):
    text = crender.render_module([(ElementwiseKernel("ct_once_k0", 1, _program(
        Instr("add", (0, 1), "float64", "float64"), ("float64", "float64"))), [False, False])])
    cache = DiskCache(tmp_path)
    first = cc.compile_source(text, ["ct_once_k0"], cache)
    again = cc.compile_source(text, ["ct_once_k0"], cache)
    assert first == again and cache.stats["writes"] == 1
    assert not any(itertools.chain.from_iterable(
        files for _, _, files in os.walk(tmp_path) if any(f.endswith(".so") for f in files)))
