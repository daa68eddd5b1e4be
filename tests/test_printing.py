"""theanine.printing: debugprint, pprint and to_dot."""

import io
import os
import re
import shutil
import stat
import sys

import pytest

import theanine
import theanine.tensor as T
from theanine.graph.basic import Apply
from theanine.graph.fg import FunctionGraph
from theanine.printing import debugprint, pp, pprint, to_dot
from theanine.tensor.variable import TensorVariable

SCALAR = "<Tensor{float64, ()}>"


@pytest.fixture
def xyz():
    return T.dscalar("x"), T.dscalar("y"), T.dscalar("z")


@pytest.fixture(scope="module")
def long_chain():
    """-(-(...(x))) 100,000 nodes deep, built without make_node's overhead."""
    x = T.dscalar("x")
    neg = T.neg(x).owner.op
    ttype = x.type
    y = x
    for _ in range(100_000):
        y = Apply(neg, [y], [TensorVariable(ttype)]).outputs[0]
    return x, y


# --- debugprint ---------------------------------------------------------------------------


def test_debugprint_small_graph(xyz):
    x, y, z = xyz
    p = x + y
    p.name = "p"
    g = p * z
    text = debugprint(g, file="str")
    assert text.splitlines() == [
        f"mul [id A] {SCALAR}",
        f" |add [id B] {SCALAR} 'p'",
        f" | |x [id C] {SCALAR}",
        f" | |y [id D] {SCALAR}",
        f" |z [id E] {SCALAR}",
    ]


def test_debugprint_options(xyz):
    x, y, z = xyz
    g = (x + y) * z
    no_types = debugprint(g, file="str", print_type=False)
    assert "Tensor{" not in no_types and "[id A]" in no_types
    no_ids = debugprint(g, file="str", ids="")
    assert "[id" not in no_ids and "add" in no_ids
    ints = debugprint(g, file="str", ids="int")
    assert "[id 0]" in ints and "[id 4]" in ints
    top = debugprint(g, file="str", depth=1)
    assert top.splitlines() == [f"mul [id A] {SCALAR}"]
    two = debugprint(g, file="str", depth=2)
    assert len(two.splitlines()) == 3 and "x [id" not in two
    with pytest.raises(ValueError, match="ids must be"):
        debugprint(g, file="str", ids="letters")


def test_debugprint_shared_subgraph_printed_once(xyz):
    x, y, _ = xyz
    s = x + y
    text = debugprint(s * s, file="str")
    lines = text.splitlines()
    assert lines[0].startswith("mul [id A]")
    add_lines = [ln for ln in lines if "add [id B]" in ln]
    assert len(add_lines) == 2  # once in full, once as a reference
    assert sum("x [id" in ln for ln in lines) == 1
    assert sum("y [id" in ln for ln in lines) == 1
    assert lines[-1] == f" |add [id B] {SCALAR}"  # the reference has no children after it


def test_debugprint_constants_and_unnamed_inputs():
    a = T.dvector()
    text = debugprint(a * 2.0, file="str")
    assert "2.0 [id" in text
    assert re.search(r"_v\d+ \[id", text)  # an unnamed input prints its automatic name
    assert "DimShuffle{x}" in text


def test_debugprint_stdout_file_and_done(xyz, capsys):
    x, y, z = xyz
    g = (x + y) * z
    assert debugprint(g) is None
    assert capsys.readouterr().out.startswith("mul [id A]")
    buf = io.StringIO()
    assert debugprint(g, file=buf) is buf
    assert buf.getvalue().startswith("mul [id A]")
    # a shared `done` numbers consistently across calls and prints nodes once
    done = {}
    first = debugprint(g, file="str", done=done)
    second = debugprint([g, x + z], file="str", done=done)
    assert "x [id C]" in first
    assert second.splitlines()[0] == f"mul [id A] {SCALAR}"  # a reference now
    assert f" |x [id C] {SCALAR}" in second.splitlines()


def test_debugprint_accepts_apply_list_fgraph_and_function(xyz):
    x, y, z = xyz
    g = (x + y) * z
    assert debugprint(g.owner, file="str") == debugprint(g, file="str")
    both = debugprint([g, x - y], file="str")
    assert "mul [id A]" in both and "sub [id" in both
    fg = FunctionGraph([x, y, z], [g])
    assert debugprint(fg, file="str") == debugprint(g, file="str")
    f = theanine.function([x, y, z], [g] + theanine.grad(g, [x, y, z]), mode="py")
    text = debugprint(f, file="str")
    assert text.splitlines()[0].endswith(f"[id A] {SCALAR}")
    for name in ("mul", "x [id", "y [id", "z [id"):
        assert name in text
    with pytest.raises(TypeError, match="cannot print a int"):
        debugprint(3, file="str")


def test_debugprint_100k_chain_does_not_recurse(long_chain):
    _, y = long_chain
    buf = io.StringIO()
    debugprint(y, file=buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 100_001
    assert lines[0] == f"neg [id A] {SCALAR}"
    assert lines[-1].endswith(f"|x [id {lines[-1].split('[id ')[1].split(']')[0]}] {SCALAR}")
    assert "(99980 levels)" in lines[-1]  # deep indentation is abbreviated
    assert max(map(len, lines)) < 200


# --- pprint -------------------------------------------------------------------------------


def test_pprint_expressions(xyz):
    x, y, z = xyz
    m, v = T.dmatrix("m"), T.dvector("v")
    assert pprint((x + y) * z) == "((x + y) * z)"
    assert pprint(x - y / z) == "(x - (y / z))"
    assert pprint(x ** 2) == "(x ** 2.0)"  # the constant takes x's dtype
    assert pprint(-x) == "-x"
    assert pprint(T.exp(x)) == "exp(x)"
    assert pprint(T.sum(m, axis=0)) == "sum(m, axis=[0])"
    assert pprint(m[1:3]) == "m[1:3]"
    assert pprint(m[1:, ::2]) == "m[1:, ::2]"
    assert pprint(m[0]) == "m[0]"
    assert pprint(T.dot(m, v)) == "dot(m, v)"
    assert pprint(m.T) == "m.T"
    assert pprint(m + 1.5) == "(m + 1.5)"  # broadcasting is invisible in the math
    assert pprint(T.gt(x, y)) == "(x > y)"
    assert pprint(T.maximum(x, y)) == "maximum(x, y)"
    assert pp is pprint


def test_pprint_names_and_fallback(xyz):
    x, y, z = xyz
    p = x + y
    p.name = "p"
    assert pprint(p * z) == "((x + y) * z)"
    assert pprint(p * z, stop_at_names=True) == "(p * z)"
    assert pprint(p, stop_at_names=True) == "(x + y)"  # the output itself is expanded
    m = T.dmatrix("m")
    assert re.fullmatch(r"Reshape.*\(m, .*\)", pprint(m.reshape((4, -1))))
    assert pprint([x + y, x * y]) == "(x + y)\n(x * y)"


def test_pprint_long_chain(long_chain):
    _, y = long_chain
    assert pprint(y) == "-" * 100_000 + "x"


def test_pprint_refuses_exponential_text():
    x = T.dscalar("x")
    y = x
    for _ in range(40):
        y = y + y  # 2**40 copies of x as text
    with pytest.raises(ValueError, match="use debugprint"):
        pprint(y)


# --- to_dot -------------------------------------------------------------------------------


def test_to_dot_text(xyz):
    x, y, z = xyz
    p = x + y
    p.name = "p"
    g = p * z
    text = to_dot(g)
    assert text.startswith("digraph")
    assert text.rstrip().endswith("}")
    for label in ('label="add"', 'label="mul"', 'label="x\\nTensor{float64, ()}"',
                  'label="p\\nTensor{float64, ()}"'):
        assert label in text
    assert text.count("->") == 6  # x, y -> add -> p; p, z -> mul -> out
    f = theanine.function([x, y, z], g, mode="py")
    assert to_dot(f).startswith("digraph")


def _dot_strings_are_balanced(text):
    """Every line's double-quoted strings close (escaped quotes do not end a string)."""
    for line in text.splitlines():
        stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "S", line)
        if '"' in stripped:
            return False
    return True


def test_to_dot_escapes_hostile_names():
    evil = 'x"; system("rm -rf /"); //'
    x = T.dscalar(evil)
    w = T.dscalar("back\\slash <b>&</b>\nnewline")
    text = to_dot(T.exp(x) + w)
    assert _dot_strings_are_balanced(text)
    assert 'label="x\\"; system(\\"rm -rf /\\"); //\\nTensor{float64, ()}"' in text
    assert "back\\\\slash <b>&</b>\\nnewline" in text
    assert "\nnewline" not in text  # a raw newline never lands inside a label


def test_to_dot_writes_file(tmp_path, xyz):
    x, y, _ = xyz
    path = tmp_path / "g.dot"
    text = to_dot(x * y, file=path)
    assert path.read_text(encoding="utf-8") == text


def test_to_dot_bad_arguments(xyz):
    x, y, _ = xyz
    with pytest.raises(ValueError, match="format must be"):
        to_dot(x * y, file="g.pdf", format="pdf")
    with pytest.raises(ValueError, match="needs a file path"):
        to_dot(x * y, format="svg")


def test_to_dot_without_graphviz_raises(tmp_path, monkeypatch, xyz):
    x, y, _ = xyz
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(RuntimeError, match="'dot' program is not installed"):
        to_dot(x * y, file=tmp_path / "g.svg", format="svg")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX shell script as a stand-in")
def test_to_dot_calls_dot_program(tmp_path, monkeypatch, xyz):
    """The rendering call, checked with a stand-in 'dot' that records its arguments."""
    x, y, _ = xyz
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dot"
    fake.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    "src = sys.stdin.read()\n"
                    "out = sys.argv[sys.argv.index('-o') + 1]\n"
                    "open(out, 'w').write(' '.join(sys.argv[1:]) + '\\n' + src)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ.get("PATH", ""))
    target = tmp_path / "g.png"
    assert to_dot(x * y, file=target, format="png") == str(target)
    args, dot_text = target.read_text().split("\n", 1)
    assert args.startswith("-Tpng -o")
    assert dot_text.startswith("digraph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' is not installed")
def test_to_dot_renders_svg(tmp_path, xyz):
    x, y, z = xyz
    target = tmp_path / "g.svg"
    out = to_dot(T.exp((x + y) * z), file=target, format="svg")
    assert out == str(target)
    svg = target.read_text()
    assert "<svg" in svg and "exp" in svg


def test_printing_exports():
    import theanine.printing as printing

    assert set(printing.__all__) >= {"debugprint", "pprint", "to_dot"}
    for name in printing.__all__:
        assert getattr(printing, name).__doc__
    assert theanine.printing.debugprint is debugprint
