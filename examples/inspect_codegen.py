"""What theanine does with an expression, every step of the way.

One small model, a logistic-regression loss and its gradient, goes through
theanine.function; then we look at each thing the compiler made:

1. the graph as written (debugprint) and after rewriting: the rewrite log
   says which rewrite replaced what (merging duplicates, folding constants,
   turning the cross-entropy of a sigmoid into a form that cannot overflow,
   fusing elementwise chains);
2. the kernels: each fused loop nest and the scalar program it runs, and the
   nodes that still run through NumPy (fallbacks);
3. the generated source of one fused expression: LLVM IR, C and CUDA C
   (f.source('llvm' | 'c' | 'cuda')), and the host assembly;
4. the graph drawn by Graphviz (printing.to_dot) as SVG, before and after
   rewriting (the .dot files are written even without Graphviz installed).

    python examples/inspect_codegen.py [--out DIR] [--full]

--full prints the sources whole instead of their first lines.
"""

import argparse
import os
import re
import shutil

import numpy as np

import theanine
import theanine.tensor as T
from theanine.printing import debugprint, pprint, to_dot


def heading(text):
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


# Where the first kernel starts in each target's source (the helpers come before it).
KERNEL_START = {"llvm": r"^define void @\w+_k0\(", "c": r"^/\* \w+_k0:", "cuda": r"^/\* \w+_k0:",
                "asm": r"^\w+_k0:"}


def show_source(f, target, lines, **kwargs):
    """The source ``f`` generated for ``target``: whole, or ``lines`` lines from its first kernel."""
    all_lines = f.source(target, **kwargs).splitlines()
    if lines is None:
        print("\n".join(all_lines))
        return
    start = next((i for i, line in enumerate(all_lines) if re.match(KERNEL_START[target], line)), 0)
    if start:
        print(f"... ({start} lines of helpers and declarations before the kernel)")
    print("\n".join(all_lines[start:start + lines]))
    rest = len(all_lines) - start - lines
    if rest > 0:
        print(f"... ({rest} more lines; --full shows them all)")


def draw(graph, name, out_dir):
    dot_path = os.path.join(out_dir, f"{name}.dot")
    to_dot(graph, file=dot_path)
    if shutil.which("dot") is None:
        print(f"{dot_path} written; Graphviz's dot is not installed, so no SVG "
              "(apt-get install graphviz)")
        return
    svg_path = to_dot(graph, file=os.path.join(out_dir, f"{name}.svg"), format="svg")
    print(f"{svg_path} drawn")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".", help="directory for the graph pictures")
    parser.add_argument("--full", action="store_true", help="print whole sources")
    parser.add_argument("--smoke", action="store_true", help="the same run (it is quick already)")
    args = parser.parse_args()
    lines = None if args.full else 40

    # The model: p = sigmoid(X . w + b), loss = mean binary cross-entropy, and its gradient.
    X, t = T.dmatrix("X"), T.dvector("t")
    w, b = T.dvector("w"), T.dscalar("b")
    p = T.nnet.sigmoid(T.dot(X, w) + b)
    loss = T.mean(T.nnet.binary_crossentropy(p, t))   # -(t log p + (1 - t) log(1 - p))
    loss.name = "loss"
    gw, gb = theanine.grad(loss, [w, b])

    heading("1. the graph as written")
    print("pprint:", pprint(loss))
    debugprint(loss)

    f = theanine.function([X, t, w, b], [loss, gw, gb])
    heading("1. after rewriting: the rewrite log")
    for record in f.rewrite_log:
        print(f"[{record.phase}] {record.rewrite}: {record.old}  ->  {record.new}")
    heading("1. after rewriting: the compiled graph")
    debugprint(f)

    rng = np.random.default_rng(0)
    data = rng.normal(size=(100, 3)), rng.integers(0, 2, 100).astype(float), rng.normal(size=3), 0.1
    value, grad_w, grad_b = f(*data)
    reference = theanine.function([X, t, w, b], [loss, gw, gb], mode="py")(*data)
    same = all(np.allclose(a, r) for a, r in zip((value, grad_w, grad_b), reference))
    print(f"loss {float(value):.6f}, gradient {np.round(grad_w, 6)}, {float(grad_b):.6f}; "
          f"same as the NumPy reference: {same}")

    heading("2. kernels (fused loops) and fallbacks")
    for kernel in f.kernels:
        print(f"{kernel.name}: {', '.join(kernel.ops)}; loops: {kernel.loops}")
        print("    " + kernel.program.replace("\n", "\n    "))
    print("fallbacks (run through NumPy):", ", ".join(str(node.op) for node in f.fallbacks) or "none")

    # A purely elementwise expression becomes a single fused kernel: its source is short.
    x, y, z = T.dvectors("x", "y", "z")
    g = theanine.function([x, y, z], T.exp(-x * x) * y + 0.5 * z)
    heading("3. one fused expression: exp(-x*x) * y + 0.5 * z")
    print(g.kernels[0].program)
    heading("3. LLVM IR")
    show_source(g, "llvm", lines)
    heading("3. LLVM IR after optimisation (vectorised)")
    show_source(g, "llvm", lines, optimized=True)
    heading("3. C")
    show_source(g, "c", lines)
    heading("3. CUDA C")
    show_source(g, "cuda", lines)
    heading("3. host assembly")
    show_source(g, "asm", 20 if lines else None)

    heading("4. pictures")
    os.makedirs(args.out, exist_ok=True)
    draw(loss, "inspect_codegen_written", args.out)
    draw(f, "inspect_codegen_compiled", args.out)


if __name__ == "__main__":
    main()
