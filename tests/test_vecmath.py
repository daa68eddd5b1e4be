"""The vectorisable transcendental functions of ``theanine.codegen.vecmath``.

Each function is compiled alone into a small loop over an array and held, in ulps
of its dtype, to the bound the module documents (``vecmath.ULP_BOUND``) on about
10**5 points spread over the whole float line, against a reference computed in
extended precision; special values (signed zeros, infinities, nan, overflow and
underflow) must come out exactly. Then the functions are checked inside kernels
rendered by the LLVM back end: results match NumPy and the loop is vectorised.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import jit, vecmath
from theanine.compile.cache import DiskCache

DTYPES = ["float64", "float32"]
LLVM_TYPE = {"float64": "double", "float32": "float"}
LD = np.longdouble
EXTENDED = np.finfo(LD).nmant >= 63          # x87 80-bit long double (or better)
INF, NAN = np.inf, np.nan


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory):
    return DiskCache(tmp_path_factory.mktemp("vecmath-cache"))


def compile_map(op, dtype, cache):
    """A native ``out[i] = op(in[i])`` over a contiguous array, through vecmath's definition."""
    name, definition = vecmath.function(op, dtype)
    t, entry = LLVM_TYPE[dtype], f"map_{op}_{dtype}"
    ir = definition + f"""

define void @{entry}(ptr noalias %in, ptr noalias %out, i64 %n) {{
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %exit, label %loop
loop:
  %i = phi i64 [0, %entry], [%i.next, %loop]
  %pi = getelementptr inbounds {t}, ptr %in, i64 %i
  %x = load {t}, ptr %pi
  %y = call {t} @{name}({t} %x)
  %po = getelementptr inbounds {t}, ptr %out, i64 %i
  store {t} %y, ptr %po
  %i.next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i.next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}}
"""
    address = jit.compile_ir(ir, [entry], cache=cache)[entry]
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(address)

    def run(x):
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.empty_like(x)
        fn(x.ctypes.data, out.ctypes.data, x.size)
        return out

    return run, ir


def reference(op, x):
    """``op(x)`` in long double (the inputs are exact; the results carry extra bits)."""
    x = x.astype(LD)
    with np.errstate(all="ignore"):
        if op == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if op == "softplus":
            return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        return getattr(np, op)(x)


#: points where something changes: reduction boundaries, overflow and underflow
#: thresholds, the switch-over points of tanh, the ends of the exponent range
_EDGES = {
    "float64": [0.3466, 0.55, 1.0, 19.06, 36.7, 37.4, 45.0, 708.4, 709.78, 744.44, 745.13, 1022.0,
                1024.0, 1074.0, 1075.0],
    "float32": [0.3466, 0.55, 1.0, 8.0, 9.0, 16.6, 17.3, 24.0, 87.34, 88.72, 102.9, 103.97, 126.0,
                128.0, 149.0, 150.0],
}


def points(dtype, n=100_000, seed=0):
    """Inputs over the whole float line: log-uniform magnitudes of both signs (subnormals
    included), dense intervals around 0, 1, -1 and every edge, and the special values."""
    rng = np.random.default_rng(seed)
    fi = np.finfo(dtype)
    lo, hi = np.log(float(fi.smallest_subnormal)), np.log(float(fi.max))
    parts = [np.exp(rng.uniform(lo, hi, n // 2)) * rng.choice([-1.0, 1.0], n // 2),
             rng.uniform(-1, 1, n // 10), rng.uniform(-50, 50, n // 10),
             1 + rng.uniform(-1e-3, 1e-3, n // 20), -1 + rng.uniform(-1e-3, 1e-3, n // 20),
             rng.uniform(-1e-6, 1e-6, n // 20)]
    for edge in _EDGES[dtype]:
        parts.append(edge + rng.uniform(-0.5, 0.5, 400))
        parts.append(-edge + rng.uniform(-0.5, 0.5, 400))
    x = np.concatenate(parts).astype(dtype)
    tiny, sub = fi.tiny, fi.smallest_subnormal
    special = np.array([0.0, -0.0, INF, -INF, NAN, sub, -sub, tiny - sub, -(tiny - sub), tiny, -tiny,
                        fi.max, -fi.max, 1.0, -1.0, fi.eps, -fi.epsneg], dtype=dtype)
    # both neighbours of every edge, exactly
    edges = np.array(_EDGES[dtype], dtype=dtype)
    near = np.concatenate([edges, np.nextafter(edges, INF, dtype=dtype),
                           np.nextafter(edges, -INF, dtype=dtype)])
    return np.concatenate([x, special, near, -near])


def ulp_errors(got, ref, dtype):
    """(error in ulps where the rounded reference is finite, mask of exact-match failures)."""
    fi = np.finfo(dtype)
    with np.errstate(over="ignore"):
        want = ref.astype(dtype)
    finite = np.isfinite(want) & np.isfinite(got)
    _, e = np.frexp(np.abs(ref[finite]))
    # ulp of the exact result in its own binade; subnormal spacing below the normal range
    ulp = np.ldexp(LD(1), np.maximum(e.astype(np.int64) - fi.nmant - 1, fi.minexp - fi.nmant))
    err = np.zeros(got.shape)
    err[finite] = np.abs(got[finite].astype(LD) - ref[finite]) / ulp
    wrong = ~finite & ~((got == want) | (np.isnan(got) & np.isnan(want)))
    # a zero result must carry the right sign
    zero = finite & (want == 0)
    wrong |= zero & ((got != 0) | (np.signbit(got) != np.signbit(want)))
    return err, wrong


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", vecmath.OPCODES)
def test_accuracy_over_the_whole_domain(op, dtype, jit_cache):
    if dtype == "float64" and not EXTENDED:
        pytest.skip("needs an extended-precision long double for the float64 reference")
    run, _ = compile_map(op, dtype, jit_cache)
    x = points(dtype)
    got = run(x)
    err, wrong = ulp_errors(got, reference(op, x), dtype)
    assert not wrong.any(), (f"{op} {dtype}: x={x[wrong][:5]} gave {got[wrong][:5]}, "
                             f"expected {reference(op, x[wrong][:5]).astype(dtype)}")
    worst = int(np.argmax(err))
    assert err[worst] <= vecmath.ULP_BOUND[op], (
        f"{op} {dtype}: {err[worst]:.3f} ulp at x={x[worst]!r}: {got[worst]!r}")


_SPECIAL = {
    "exp": [(-INF, 0.0), (INF, INF), (NAN, NAN), (0.0, 1.0), (-0.0, 1.0), (1000.0, INF),
            (-1000.0, 0.0), (1.0, np.e)],
    "exp2": [(-INF, 0.0), (INF, INF), (NAN, NAN), (0.0, 1.0), (-0.0, 1.0), (3.0, 8.0),
             (-3.0, 0.125), (2000.0, INF), (-2000.0, 0.0)],
    "expm1": [(-INF, -1.0), (INF, INF), (NAN, NAN), (0.0, 0.0), (-0.0, -0.0), (1000.0, INF),
              (-1000.0, -1.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (1.0, 0.0)],
    "log2": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (1.0, 0.0),
             (8.0, 3.0), (0.125, -3.0)],
    "log1p": [(-1.0, -INF), (-2.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (0.0, 0.0),
              (-0.0, -0.0)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (1000.0, 1.0),
             (-1000.0, -1.0), (30.0, 1.0), (-30.0, -1.0)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (INF, 1.0), (-INF, 0.0), (NAN, NAN), (1000.0, 1.0),
                (-1000.0, 0.0)],
    "softplus": [(INF, INF), (-INF, 0.0), (NAN, NAN), (1000.0, 1000.0), (-1000.0, 0.0)],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", vecmath.OPCODES)
def test_special_values(op, dtype, jit_cache):
    run, _ = compile_map(op, dtype, jit_cache)
    xs, want = (np.array(v, dtype=dtype) for v in zip(*_SPECIAL[op]))
    got = run(xs)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), f"{op} {dtype}: x={xs[~same]} gave {got[~same]}, expected {want[~same]}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_overflow_and_subnormal_underflow(dtype, jit_cache):
    run, _ = compile_map("exp", dtype, jit_cache)
    fi = np.finfo(dtype)
    # the last finite results and the first infinite ones, as the exact exp rounds
    edge = np.array(np.log(LD(fi.max)), dtype=dtype)
    x = (edge + np.arange(-4, 5) * np.spacing(edge)).astype(dtype)
    got = run(x)
    err, wrong = ulp_errors(got, reference("exp", x), dtype)
    assert not wrong.any() and err.max() <= 1.0
    assert np.isfinite(got).any() and np.isinf(got).any()
    # exp(x) is the smallest subnormal just above log(smallest subnormal / 2), 0 below it
    edge = np.log(LD(fi.smallest_subnormal) / 2)
    above = np.nextafter(np.array(edge, dtype=dtype), INF, dtype=dtype)
    below = np.nextafter(np.array(edge, dtype=dtype), -INF, dtype=dtype)
    got = run(np.array([above, below]))
    assert got[0] == fi.smallest_subnormal and got[1] == 0
    # subnormal results all the way down
    x = np.linspace(float(np.log(LD(fi.tiny))), float(edge), 1000).astype(dtype)
    err, wrong = ulp_errors(run(x), reference("exp", x), dtype)
    assert not wrong.any() and err.max() <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_definitions_are_straight_line_and_inlined(dtype):
    for op in vecmath.OPCODES:
        name, text = vecmath.function(op, dtype)
        assert name == f"theanine_{op}_{'f64' if dtype == 'float64' else 'f32'}"
        assert text.startswith(f"define internal {LLVM_TYPE[dtype]} @{name}(")
        assert "alwaysinline" in text.splitlines()[0]
        body = text.splitlines()[1:]
        assert not any(line.strip().startswith(("br ", "switch")) for line in body)
        calls = {line.split("@")[1].split("(")[0] for line in body if " call " in line}
        assert all(c.startswith(("llvm.fma.", "llvm.fabs.", "llvm.copysign.")) for c in calls), calls
        assert vecmath.function(op, dtype) is vecmath.function(op, dtype)   # cached
    assert vecmath.function("sin", dtype) is None
    assert vecmath.function("exp", "int32") is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_isolated_loop_vectorises(dtype, jit_cache):
    _, ir = compile_map("exp", dtype, jit_cache)
    assert f" x {LLVM_TYPE[dtype]}>" in jit.optimized_ir(ir)


# --- inside kernels rendered by the LLVM back end --------------------------------------------

#: a call that would keep the loop scalar: libm, or an LLVM intrinsic that becomes libm calls
_LIBM_CALL = re.compile(r"call [^@]*@(llvm\.)?(exp|exp2|expm1|log|log2|log1p|tanh)f?[.(]")
_TOL = {"float64": dict(rtol=1e-13, atol=1e-300), "float32": dict(rtol=1e-6, atol=1e-38)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_kernel_matches_numpy_and_vectorises(dtype):
    x, y = T.vector("x", dtype=dtype), T.vector("y", dtype=dtype)
    f = theanine.function([x, y], T.exp(-x * x) * y, mode="llvm")
    rng = np.random.default_rng(1)
    a = rng.uniform(-30, 30, 10_001).astype(dtype)
    b = rng.standard_normal(10_001).astype(dtype)
    np.testing.assert_allclose(f(a, b), np.exp(-a * a) * b, **_TOL[dtype])
    assert f"@theanine_exp_{'f64' if dtype == 'float64' else 'f32'}" in f.source("llvm")
    optimized = f.source("llvm", optimized=True)
    assert f" x {LLVM_TYPE[dtype]}>" in optimized
    assert not _LIBM_CALL.search(optimized)


_NUMPY = {
    "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2,
    "log1p": np.log1p, "tanh": np.tanh,
    "sigmoid": lambda v: (1 / (1 + np.exp(-v.astype(LD)))).astype(v.dtype),
    "softplus": lambda v: np.logaddexp(np.zeros((), v.dtype), v),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", vecmath.OPCODES)
def test_every_function_vectorises_in_a_kernel(op, dtype):
    x = T.vector("x", dtype=dtype)
    f = theanine.function([x], getattr(T, op)(x), mode="llvm")
    rng = np.random.default_rng(2)
    a = rng.uniform(-20, 20, 1001).astype(dtype)
    if op.startswith("log"):
        a = np.abs(a)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(f(a), _NUMPY[op](a), **_TOL[dtype])
    assert f"@theanine_{op}_" in f.source("llvm")
    optimized = f.source("llvm", optimized=True)
    assert f" x {LLVM_TYPE[dtype]}>" in optimized
    assert not _LIBM_CALL.search(optimized)
