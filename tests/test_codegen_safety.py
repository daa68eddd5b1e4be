"""Generated source is safe and reproducible.

- Names chosen by users (variables, outputs, functions) never reach generated LLVM IR, C or
  CUDA C: a name full of quotes, comment terminators, newlines, preprocessor lines and
  IR syntax compiles harmlessly, and the functions compute the right thing.
- What the renderers do write as text is checked: module and kernel names must be
  identifiers, and a kernel's label stays inside its comment.
- The same graph gives the same bytes: built twice in one process, and in two processes
  with different hash seeds.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.codegen import c as crender
from theanine.codegen import cuda, llvm, lower

MARK = "PWNED"
HOSTILE = [
    f'x"; system("rm -rf /"); // {MARK}',
    f"a\n*/ int {MARK} = 1; /*\n#include <stdlib.h>",
    f"@{MARK} = global i32 0 ; }}\ndefine void @{MARK}() {{ ret void }}",
    f"%{MARK}\r\n\t'\\\\\0{{}}$(){MARK}",
    f"ünïcødé {MARK} \u2028 \ufeff",
]
TARGETS = ("llvm", "c", "cuda")


def _graph(name):
    x = T.dmatrix(name)
    y = T.dvector(name + "_y")
    w = theanine.shared(np.ones(3), name=name + "_w")
    z = T.exp(x) * y + T.sum(x * w, axis=1, keepdims=True)
    z.name = name + "_z"
    s = T.sum(T.tanh(z) ** 2)
    s.name = name + "_s"
    return [x, y], [z, s, T.dot(x, y)], w


@pytest.mark.parametrize("name", HOSTILE, ids=[f"name{k}" for k in range(len(HOSTILE))])
@pytest.mark.parametrize("mode", ["llvm", "c"])
def test_user_names_never_reach_generated_source(mode, name):
    ins, outs, w = _graph(name)
    f = theanine.function(ins, outs, mode=mode, name=name, updates=[(w, w * 0.5)])
    for target in TARGETS:
        text = f.source(target)
        assert MARK not in text, (target, [line for line in text.splitlines() if MARK in line])
    xv = np.arange(6.0).reshape(2, 3) / 10
    yv = np.array([1.0, -1.0, 0.5])
    z, s, d = f(xv, yv)
    zw = np.exp(xv) * yv + np.sum(xv, axis=1, keepdims=True)
    np.testing.assert_allclose(z, zw, rtol=1e-12)
    np.testing.assert_allclose(s, np.sum(np.tanh(zw) ** 2), rtol=1e-12)
    np.testing.assert_allclose(d, xv @ yv, rtol=1e-12)
    np.testing.assert_array_equal(w.get_value(), np.full(3, 0.5))


def _without_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _kernel(label):
    prog = lower.identity_program("float64")
    return lower.elementwise_kernel("kern0", prog, [(None,)], (None,), label=label)


LABEL = f"x */ int {MARK} = 1; /* \n#define {MARK} 1\n"


def test_a_kernel_label_stays_inside_its_c_comment():
    text = crender.render_module([_kernel(LABEL)], "labelled")
    assert MARK in text                                      # it is shown, as a comment
    assert MARK not in _without_comments(text)
    assert not any(line.lstrip().startswith("#define") and MARK in line for line in text.splitlines())


def test_a_kernel_label_stays_inside_its_cuda_comment():
    text = cuda.render_module([_kernel(LABEL)], "labelled")
    assert MARK not in _without_comments(text)


@pytest.mark.parametrize("render", [llvm.render_module, crender.render_module],
                         ids=["llvm", "c"])
@pytest.mark.parametrize("bad", ["m\n@x = global i32 0", 'x"; y', "a b", "", "1abc", "a-b", None])
def test_module_and_kernel_names_must_be_identifiers(render, bad):
    kernel = _kernel("")
    with pytest.raises(ValueError, match="not an identifier"):
        render([kernel], bad)
    prog = lower.identity_program("float64")
    renamed = lower.elementwise_kernel(bad, prog, [(None,)], (None,)) if bad is not None else None
    if renamed is not None:
        with pytest.raises(ValueError, match="kernel name"):
            render([renamed], "fine")
    assert "kern0" in render([kernel], "fine")


@pytest.mark.parametrize("name", HOSTILE[:3], ids=["quote", "comment", "ir"])
def test_exported_c_keeps_user_names_inside_comments(tmp_path, name):
    """theanine.export_c documents each input and output by its name: in comments only, and
    the library still compiles."""
    ins, outs, w = _graph(name)
    f = theanine.function(ins, outs, mode="c", updates=[(w, w * 0.5)])
    source, header = theanine.export_c(f, tmp_path, name="exported")
    for path in (source, header):
        with open(path) as fh:
            text = fh.read()
        code = re.sub(r"//[^\n]*", "", _without_comments(text))
        assert MARK not in code, path
    cc = theanine.config.cxx.split()
    proc = subprocess.run(cc + ["-std=c11", "-c", "-o", str(tmp_path / "exported.o"), source],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------ determinism

def _sources(f):
    return {t: f.source(t) for t in TARGETS}


def _compiled(name, mode):
    ins, outs, w = _graph(name)
    return theanine.function(ins, outs, mode=mode, updates=[(w, w * 0.5)])


@pytest.mark.parametrize("mode", ["py", "llvm", "c"])
def test_the_same_graph_built_twice_renders_the_same_bytes(mode):
    first = _sources(_compiled("a", mode))
    second = _sources(_compiled("b", mode))  # other names, other variable ids
    for t in TARGETS:
        assert first[t] == second[t], t
        assert len(first[t]) > 500


_PRINT_DIGESTS = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import theanine, theanine.tensor as T
    from test_codegen_safety import _graph, TARGETS
    ins, outs, w = _graph("proc")
    for mode in ("llvm", "c"):
        f = theanine.function(ins, outs, mode=mode, updates=[(w, w * 0.5)])
        for t in TARGETS + ("asm",) * (mode == "llvm"):
            print(mode, t, hashlib.sha256(f.source(t).encode()).hexdigest())
""")


def test_sources_are_the_same_in_two_processes(tmp_path):
    script = _PRINT_DIGESTS.format(tests=os.path.dirname(os.path.abspath(__file__)))
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, THEANINE_FLAGS=f"cache_dir={tmp_path / seed}")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 7
    digest = hashlib.sha256(_compiled("here", "llvm").source("cuda").encode()).hexdigest()
    assert f"llvm cuda {digest}" in outs[0]
