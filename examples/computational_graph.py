"""A computational graph, step by step: build it, run it, differentiate it, look at it.

The textbook example: p = x + y and g = p * z, at x = 1, y = 3, z = -3.

    python examples/computational_graph.py [--out DIR]

--out names a directory for a Graphviz picture of the graph
(computational_graph.dot, plus computational_graph.svg when Graphviz's
`dot` program is installed). Without it, a temporary directory is used.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import theanine
import theanine.tensor as T
from theanine.printing import debugprint, pprint, to_dot


def main(out_dir=None):
    # 1. Declare symbolic inputs. Nothing is computed yet: x, y and z are
    #    placeholders of type "float64 scalar", named for printing.
    x, y, z = T.dscalar("x"), T.dscalar("y"), T.dscalar("z")

    # 2. Build expressions. Each operator adds a node to a graph; p and g are
    #    symbolic variables that remember how they are computed.
    p = x + y
    p.name = "p"
    g = p * z
    g.name = "g"

    # 3. Ask for gradients. theanine.grad extends the graph with new nodes that
    #    compute dg/dx, dg/dy and dg/dz (reverse-mode differentiation).
    dg_dx, dg_dy, dg_dz = theanine.grad(g, [x, y, z])

    # 4. Compile. theanine.function copies the graph, rewrites it (merging
    #    duplicates, folding constants, simplifying) and returns a callable.
    #    mode="py" is the NumPy reference executor.
    f = theanine.function([x, y, z], [p, g, dg_dx, dg_dy, dg_dz], mode="py")

    # 5. Run it on numbers.
    p_val, g_val, gx, gy, gz = f(1.0, 3.0, -3.0)
    print("Forward pass at x = 1, y = 3, z = -3:")
    print(f"  p = x + y = {p_val:g}")
    print(f"  g = p * z = {g_val:g}")
    print("Backward pass (gradients of g):")
    print(f"  dg/dx = z = {gx:g}")
    print(f"  dg/dy = z = {gy:g}")
    print(f"  dg/dz = p = {gz:g}")

    # 6. Look at the graph. debugprint shows one line per node: the op, an id
    #    to refer to it, its type, and its name; inputs are indented below.
    print("\nThe graph of g as written (debugprint):")
    debugprint(g)

    print("\nThe same graph as math (pprint):")
    print(" ", pprint(g))

    # The compiled function holds the rewritten graph of all five outputs.
    # A node used twice is printed once, then referred to by its id. The
    # gradients, built as 1 * z and 1 * p, come out simplified: the rewrite
    # log below says which rewrite did what.
    print("\nThe compiled graph (debugprint of the function):")
    debugprint(f)

    print("\nWhat the rewrites changed (f.rewrite_log):")
    for record in f.rewrite_log:
        print(" ", record)
    if not f.rewrite_log:
        print("  (nothing)")

    # 7. A picture: Graphviz DOT text, and an SVG when Graphviz is installed.
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="theanine-example-"))
    out.mkdir(parents=True, exist_ok=True)
    dot_path = out / "computational_graph.dot"
    to_dot(g, file=dot_path)
    print(f"\nGraphviz DOT written to {dot_path}")
    if shutil.which("dot"):
        svg_path = to_dot(g, file=out / "computational_graph.svg", format="svg")
        print(f"SVG rendered to {svg_path}")
    else:
        print("(install Graphviz to also get an SVG: its 'dot' program was not found)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the Graphviz files (default: a temp dir)")
    main(parser.parse_args().out)
