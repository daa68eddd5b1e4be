"""LLVM object code linked into shared libraries (``theanine.codegen.shared_lib``).

A module the JIT compiles is queued to be linked by the system C compiler into a
shared library kept in the cache; a later process loads that library with ctypes
and never imports llvmlite's binding. Checked here: the library gives the same
results as the JIT's code; a warm process loads it without LLVM, with the same
training-step results; a damaged or unloadable entry, a missing C compiler and
``shared_libraries='off'`` all leave the JIT serving the module with right results.
(The test suite turns linking off in conftest.py, to spare the cores; these tests
turn it on.)
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from theanine.codegen import jit, shared_lib
from theanine.compile.cache import DiskCache
from theanine.configparser import config

pytestmark = pytest.mark.skipif(shared_lib.cpu_identity() is None,
                                reason="no /proc/cpuinfo: shared libraries are not used here")


def axpy_ir(tag: str) -> tuple[str, str]:
    """IR of ``out[i] = a * x[i] + y[i]`` (float64) under a name unique to ``tag``."""
    name = f"shared_lib_axpy_{tag}"
    return name, f"""
define void @{name}(ptr noalias %x, ptr noalias %y, ptr noalias %out, double %a, i64 %n) {{
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %exit, label %loop
loop:
  %i = phi i64 [0, %entry], [%i.next, %loop]
  %px = getelementptr inbounds double, ptr %x, i64 %i
  %py = getelementptr inbounds double, ptr %y, i64 %i
  %vx = load double, ptr %px
  %vy = load double, ptr %py
  %m = fmul double %a, %vx
  %s = fadd double %m, %vy
  %po = getelementptr inbounds double, ptr %out, i64 %i
  store double %s, ptr %po
  %i.next = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i.next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}}
"""


def run_axpy(address, rng):
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double,
                          ctypes.c_int64)(address)
    x, y = rng.standard_normal(1001), rng.standard_normal(1001)
    out = np.empty_like(x)
    fn(x.ctypes.data, y.ctypes.data, out.ctypes.data, 2.5, x.size)
    np.testing.assert_array_equal(out, 2.5 * x + y)


@pytest.fixture
def libraries_on(monkeypatch):
    monkeypatch.setattr(jit, "_libraries", {})
    monkeypatch.setattr(jit, "_jitted", set())
    with config.change(shared_libraries="on"):
        yield


def test_a_jit_module_is_linked_and_a_later_load_takes_the_library(tmp_path, rng, libraries_on,
                                                                   monkeypatch):
    cache = DiskCache(str(tmp_path))
    name, ir = axpy_ir(f"linked_{os.getpid()}")
    run_axpy(jit.compile_ir(ir, [name], cache=cache)[name], rng)  # the JIT's code
    assert shared_lib.wait(60)
    key = shared_lib.library_key(ir, *jit_flags())
    library = cache.get(shared_lib.KIND, key)
    assert library is not None and library[:4] == b"\x7fELF"

    def no_engine(*args):
        raise AssertionError("the JIT was used although the library is cached")
    monkeypatch.setattr(jit, "_from_engine", no_engine)
    monkeypatch.setattr(jit, "_libraries", {})  # as a new process would start
    monkeypatch.setattr(jit, "_jitted", set())
    run_axpy(jit.compile_ir(ir, [name], cache=cache)[name], rng)  # the library's code


def jit_flags():
    import llvmlite
    return llvmlite.__version__, f"O{jit.OPT_LEVEL}", jit.CODEGEN


def test_an_unloadable_library_entry_leaves_the_jit_in_charge(tmp_path, rng, libraries_on):
    cache = DiskCache(str(tmp_path))
    name, ir = axpy_ir(f"damaged_{os.getpid()}")
    key = shared_lib.library_key(ir, *jit_flags())
    assert cache.put(shared_lib.KIND, key, b"this is not a shared library")
    assert shared_lib.load(key, [name], cache) is None
    run_axpy(jit.compile_ir(ir, [name], cache=cache)[name], rng)  # the JIT's code, then relinked
    assert shared_lib.wait(60)
    assert cache.get(shared_lib.KIND, key)[:4] == b"\x7fELF"
    assert set(shared_lib.load(key, [name], cache)) == {name}


def test_without_a_c_compiler_nothing_is_linked(tmp_path, rng, libraries_on):
    cache = DiskCache(str(tmp_path))
    name, ir = axpy_ir(f"nocc_{os.getpid()}")
    with config.change(cxx=str(tmp_path / "no-such-compiler")):
        run_axpy(jit.compile_ir(ir, [name], cache=cache)[name], rng)
        assert shared_lib.wait(60)
        assert cache.get(shared_lib.KIND, shared_lib.library_key(ir, *jit_flags())) is None


def test_switched_off_there_is_no_key():
    with config.change(shared_libraries="off"):
        assert shared_lib.library_key("define void @f() { ret void }", "x") is None
    with config.change(shared_libraries="on"):
        assert shared_lib.library_key("define void @f() { ret void }", "x") is not None


def test_a_garbled_object_file_does_not_link():
    assert shared_lib.link(b"\x7fELF garbage that no linker takes") is None


WARM_START = r'''
import json, sys
import numpy as np
import theanine, theanine.tensor as T
rng = np.random.default_rng(0)
X = T.matrix("X"); y = T.ivector("y")
W = theanine.shared(rng.standard_normal((20, 5)) * 0.1, name="W")
b = theanine.shared(np.zeros(5), name="b")
p = T.nnet.softmax(T.dot(X, W) + b)
loss = T.nnet.categorical_crossentropy(p, y).mean()
gW, gb = theanine.grad(loss, [W, b])
step = theanine.function([X, y], loss, updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)])
data = rng.standard_normal((32, 20)); labels = rng.integers(0, 5, 32).astype("int32")
losses = [float(step(data, labels)) for _ in range(3)]
print(json.dumps({"losses": losses, "llvm": "llvmlite.binding" in sys.modules,
                  "entry": step.entry is not None}))
'''


def test_a_warm_process_runs_the_library_without_llvm(tmp_path):
    env = dict(os.environ, THEANINE_FLAGS=f"cache_dir={tmp_path},shared_libraries=on")
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", WARM_START], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["llvm"] and cold["entry"]
    assert not warm["llvm"] and warm["entry"]
    assert warm["losses"] == cold["losses"]
    assert cold["losses"][2] < cold["losses"][0]


FORKED = r'''
import os, sys, time
import numpy as np
import theanine, theanine.tensor as T
x = T.dvector("x")
f = theanine.function([x], T.exp(x) + 1)  # compiled here: a link is queued in the parent
from theanine.codegen import shared_lib
assert shared_lib.wait(120)  # the parent's link thread is idle when the process forks
pid = os.fork()
if pid == 0:  # the child inherits no link thread; its exit must not wait for one
    start = time.perf_counter()
    y = T.dvector("y")
    g = theanine.function([y], T.sin(y) * 3)  # a new module: the child queues its own link
    assert abs(float(g(np.array([0.5]))[0]) - 3 * np.sin(0.5)) < 1e-12
    sys.stdout.write(f"child {time.perf_counter() - start:.3f}\n")
    sys.stdout.flush()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("status", status)
'''


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_links_its_own_modules_and_exits_promptly(tmp_path):
    env = dict(os.environ, THEANINE_FLAGS=f"cache_dir={tmp_path},shared_libraries=on")
    start = __import__("time").perf_counter()
    proc = subprocess.run([sys.executable, "-c", FORKED], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "status 0" in proc.stdout
    libraries = [name for _, _, names in os.walk(tmp_path / "v1" / shared_lib.KIND) for name in names]
    assert len(libraries) == 2  # the parent's module and the child's
    assert __import__("time").perf_counter() - start < 60


def test_a_module_the_engine_loaded_is_not_loaded_again_from_its_library(tmp_path, rng, libraries_on,
                                                                         monkeypatch):
    cache = DiskCache(str(tmp_path))
    name, ir = axpy_ir(f"once_{os.getpid()}")
    first = jit.compile_ir(ir, [name], cache=cache)[name]
    assert shared_lib.wait(60)

    def no_library(*args):
        raise AssertionError("a module the engine holds was loaded again from its library")
    monkeypatch.setattr(shared_lib, "load", no_library)
    assert jit.compile_ir(ir, [name], cache=cache)[name] == first
    run_axpy(first, rng)
