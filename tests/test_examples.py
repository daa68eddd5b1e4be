"""The example programs run, from a fresh interpreter, and print the right numbers."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_computational_graph(tmp_path):
    out = run_example("computational_graph.py", "--out", str(tmp_path / "pics"), cwd=tmp_path)
    assert re.search(r"p = x \+ y = 4\n", out)
    assert re.search(r"g = p \* z = -12\n", out)
    assert re.search(r"dg/dx = z = -3\n", out)
    assert re.search(r"dg/dy = z = -3\n", out)
    assert re.search(r"dg/dz = p = 4\n", out)
    assert "mul [id A] <Tensor{float64, ()}> 'g'" in out  # debugprint before rewriting
    assert "((x + y) * z)" in out  # pprint
    assert "rewrite_log" in out
    dot = (tmp_path / "pics" / "computational_graph.dot").read_text()
    assert dot.startswith("digraph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pics"]  # nothing else written


def test_forward_propagation(tmp_path):
    out = run_example("forward_propagation.py", cwd=tmp_path)
    assert re.search(r"hidden_1: \[16\.\s+0\.\]", out)
    assert re.search(r"hidden_2: \[\s*0\.\s+16\.\]", out)
    assert re.search(r"output:\s+\[112\.\]", out)
    assert "prediction: 112" in out
    assert "matches NumPy: yes" in out
