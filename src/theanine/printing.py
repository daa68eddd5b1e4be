"""Printing graphs: debugprint (a tree), pprint (math-like text), to_dot (Graphviz).

All three accept what a user has at hand: a Variable, a list of Variables, an
Apply node, a FunctionGraph or a compiled Function (whose rewritten graph,
``f.graph``, is the one shown). None of them recurse, so graphs of any depth
print without hitting Python's recursion limit.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

from theanine.graph.basic import Apply, Constant, Variable
from theanine.graph.traversal import toposort

__all__ = ["debugprint", "pprint", "pp", "to_dot"]


# --- turning what the user passed into a list of output variables ------------------------


def _outputs_of(obj) -> list:
    """The variables to print for ``obj`` (see the module docstring for what is accepted)."""
    from theanine.graph.fg import FunctionGraph

    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    outs = []
    for item in items:
        if isinstance(item, Variable):
            outs.append(item)
        elif isinstance(item, Apply):
            outs.extend(item.outputs)
        elif isinstance(item, FunctionGraph):
            outs.extend(item.outputs)
        elif hasattr(item, "graph") and isinstance(getattr(item, "graph"), FunctionGraph):
            outs.extend(item.graph.outputs)  # a compiled Function
        else:
            raise TypeError(f"printing: cannot print a {type(item).__name__}; expected a Variable, "
                            "a list of Variables, an Apply, a FunctionGraph or a compiled Function")
    return outs


# --- debugprint --------------------------------------------------------------------------

#: beyond this depth, debugprint shortens the indentation (a chain 100,000 nodes
#: deep would otherwise print 10^10 characters of ' |')
_MAX_INDENT = 40
_KEPT_INDENT = 20


def _letters(n: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ... (bijective base 26)."""
    out = []
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out.append(chr(ord("A") + r))
    return "".join(reversed(out))


def _indent(depth: int) -> str:
    if depth <= _MAX_INDENT:
        return " |" * depth
    return f" |...({depth - _KEPT_INDENT} levels)..." + " |" * _KEPT_INDENT


def _label(var: Variable) -> str:
    """The op (for computed variables) or the variable itself (for inputs and constants)."""
    node = var.owner
    if node is None:
        if var.name is not None or isinstance(var, Constant):
            return str(var)
        return var.auto_name
    text = str(node.op)
    if len(node.outputs) > 1:
        text += f".{var.index}"
    return text


def debugprint(obj, file=None, ids="auto", print_type=True, depth=-1, done=None):
    """Print a graph as an indented tree, one line per variable.

    Each line reads ``op [id A] <type> 'name'``: the op computing the variable
    (or, for inputs and constants, the variable itself), an id naming the node,
    its type (when ``print_type``) and its name when it has one. The inputs of a
    node follow it, indented by `` |``. A node printed before is shown again as
    a one-line reference (same id, no children), so shared subgraphs appear once.

    - ``obj``: a Variable, a list of Variables, an Apply, a FunctionGraph, or a
      compiled Function (its rewritten graph ``f.graph`` is printed).
    - ``file``: None prints to stdout and returns None; ``"str"`` returns the
      text; any object with ``write`` receives the text and is returned.
    - ``ids``: ``"auto"`` (or ``"CHAR"``) letters A, B, ..., AA, ...; ``"int"``
      numbers; ``"id"`` Python object ids; ``""`` no ids.
    - ``depth``: print at most this many levels (-1: all).
    - ``done``: a dict {node or input variable: id} shared between calls, so
      several debugprints number nodes consistently and print each node's
      inputs only once.
    """
    if ids not in ("auto", "CHAR", "int", "id", ""):
        raise ValueError(f"debugprint: ids must be 'auto', 'CHAR', 'int', 'id' or '', got {ids!r}")
    outputs = _outputs_of(obj)
    done = {} if done is None else done
    buf = io.StringIO()
    write = buf.write

    def id_of(key):
        if key not in done:
            if ids == "id":
                done[key] = str(id(key))
            elif ids == "int":
                done[key] = str(len(done))
            else:
                done[key] = _letters(len(done))
        return done[key]

    stack = [(v, 0) for v in reversed(outputs)]
    while stack:
        var, level = stack.pop()
        node = var.owner
        key = node if node is not None else var
        seen = key in done
        line = [_indent(level), _label(var)]
        ident = id_of(key)
        if ids:
            line.append(f" [id {ident}]")
        if print_type:
            line.append(f" <{var.type}>")
        if node is not None and var.name is not None:
            line.append(f" {var.name!r}")
        write("".join(line))
        write("\n")
        if node is None or seen:
            continue
        if depth != -1 and level + 1 >= depth:
            continue
        for inp in reversed(node.inputs):
            stack.append((inp, level + 1))

    text = buf.getvalue()
    if file is None:
        sys.stdout.write(text)
        return None
    if file == "str":
        return text
    file.write(text)
    return file


# --- pprint ------------------------------------------------------------------------------

_INFIX = {
    "add": "+", "sub": "-", "mul": "*", "true_div": "/", "int_div": "//", "mod": "%",
    "pow": "**", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "neq": "!=",
    "and_": "&", "or_": "|", "xor": "^", "bitwise_and": "&", "bitwise_or": "|",
    "bitwise_xor": "^",
}
_PREFIX = {"neg": "-", "invert": "~", "invert_bool": "~"}

#: pprint refuses to build text longer than this (a DAG with much sharing can
#: expand exponentially as text; debugprint shows it compactly instead)
_MAX_PPRINT_CHARS = 20_000_000


def _template(node: Apply, var: Variable) -> list:
    """How ``var`` (an output of ``node``) reads: a list of strings and Variables.

    Variables in the list stand for their own text, filled in later; building
    templates instead of strings keeps pprint linear in the size of its output.
    """
    from theanine.tensor.elemwise import DimShuffle, Elemwise

    op = node.op
    args = node.inputs
    kind = type(op).__name__

    def call(name, items, extra=()):
        out = [name, "("]
        for k, a in enumerate(items):
            if k:
                out.append(", ")
            out.append(a)
        for e in extra:
            out.append(", ")
            out.append(e)
        out.append(")")
        return out

    if isinstance(op, Elemwise):
        sname = getattr(op.scalar_op, "name", "")
        if sname in _INFIX and len(args) == 2:
            return ["(", args[0], f" {_INFIX[sname]} ", args[1], ")"]
        if sname in _PREFIX and len(args) == 1:
            return [_PREFIX[sname], args[0]]
        return call(op.name, args)
    if isinstance(op, DimShuffle):
        order = op.new_order
        kept = [d for d in order if d != "x"]
        if kept == list(range(op.input_ndim)):
            return [args[0]]  # only inserts broadcastable dimensions: invisible in math
        if op.input_ndim == 2 and tuple(order) == (1, 0):
            return [args[0], ".T"]
        return [args[0], f".dimshuffle({', '.join(map(repr, order))})"]
    if kind == "Reduce":
        return call(op.kind, [args[0]], [f"axis={list(op.axis)}"])
    if kind == "Dot":
        return call("dot", args)
    if kind in ("Subtensor", "IncSubtensor"):
        start = 2 if kind == "IncSubtensor" else 1
        rest = iter(args[start:])
        index = [args[0], "["]
        for k, e in enumerate(op.idx_list):
            if k:
                index.append(", ")
            if e[0] == "n":
                index.append("None")
            elif e[0] == "s":
                parts = [next(rest) if present else "" for present in e[1:]]
                if parts[2] == "":
                    parts = parts[:2]
                for j, p in enumerate(parts):
                    if j:
                        index.append(":")
                    index.append(p)
            else:
                index.append(next(rest))
        index.append("]")
        if kind == "Subtensor":
            return index
        fn = "set_subtensor" if op.set_instead_of_inc else "inc_subtensor"
        return [fn, "("] + index + [", ", args[1], ")"]
    name = str(op)
    if len(node.outputs) > 1:
        name = f"{name}.{var.index}"
    return call(name, args)


def pprint(obj, stop_at_names=False) -> str:
    """A math-like one-line rendering of an expression, e.g. ``((x + y) * z)``.

    Inputs print as their names (constants as their values); arithmetic and
    comparisons as parenthesised infix; elementwise functions as ``exp(x)``;
    reductions as ``sum(x, axis=[0])``; indexing as ``x[1:3]``; ``dot(a, b)``;
    any other op as ``OpName(args)``. With ``stop_at_names``, a named
    intermediate variable prints as its name instead of its expression.
    ``obj`` may be anything ``debugprint`` accepts; several outputs give one
    line each.
    """
    outputs = _outputs_of(obj)
    if stop_at_names:
        blockers = [v for v in _named_intermediates(outputs) if v not in outputs]
    else:
        blockers = []
    blocked = set(map(id, blockers))
    templates: dict[int, list] = {}
    sizes: dict[int, int] = {}

    def size_of(v):
        return sizes.get(id(v)) or len(_leaf_text(v))

    for node in toposort(outputs, blockers=blockers):
        for out in node.outputs:
            if id(out) in blocked:
                continue
            tpl = _template(node, out)
            templates[id(out)] = tpl
            sizes[id(out)] = sum(len(p) if isinstance(p, str) else size_of(p) for p in tpl)
    total = sum(size_of(v) for v in outputs)
    if total > _MAX_PPRINT_CHARS:
        raise ValueError(f"pprint: the expression would be {total} characters long (shared "
                         "subexpressions repeat in text); use debugprint, which prints each "
                         "node once, or stop_at_names=True with named intermediates")

    lines = []
    for v in outputs:
        parts = []
        stack = [v]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
                continue
            tpl = templates.get(id(item))
            if tpl is None:
                parts.append(_leaf_text(item))
            else:
                stack.extend(reversed(tpl))
        lines.append("".join(parts))
    return "\n".join(lines)


def _named_intermediates(outputs):
    from theanine.graph.traversal import ancestors
    return [v for v in ancestors(outputs) if v.owner is not None and v.name is not None]


def _leaf_text(v: Variable) -> str:
    if v.name is not None:
        return v.name
    return str(v)


pp = pprint


# --- Graphviz ----------------------------------------------------------------------------

_APPLY_COLORS = {
    "Elemwise": "#cfe2f3",
    "DimShuffle": "#e6e6e6",
    "Reduce": "#fce5cd",
    "Dot": "#f4cccc",
    "MatMul": "#f4cccc",
    "Subtensor": "#d9ead3",
    "IncSubtensor": "#d9ead3",
}
_DEFAULT_APPLY_COLOR = "#fff2cc"


def _dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string, safe for any characters."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    text = "".join(ch if ch >= " " or ch == "\t" else f"\\\\x{ord(ch):02x}" for ch in text)
    return f'"{text}"'


def to_dot(obj, file=None, format=None) -> str:
    """The graph as Graphviz DOT text; optionally written or rendered to ``file``.

    Variables are ellipses labelled with their name and type (inputs green,
    outputs blue, constants grey boxes); apply nodes are filled boxes labelled
    with their op. Edges into a node with several inputs are numbered by input
    position. Labels are escaped, so any variable name gives valid DOT.

    - ``obj``: anything ``debugprint`` accepts.
    - ``file``: a path; with ``format=None`` (or ``"dot"``) the DOT text is
      written there, and the text is returned.
    - ``format``: ``"svg"`` or ``"png"`` renders ``file`` with Graphviz's
      ``dot`` program and returns the path; RuntimeError if ``dot`` is not
      installed.
    """
    if format not in (None, "dot", "svg", "png"):
        raise ValueError(f"to_dot: format must be None, 'dot', 'svg' or 'png', got {format!r}")
    if format in ("svg", "png") and file is None:
        raise ValueError(f"to_dot: format={format!r} needs a file path to render to")
    outputs = _outputs_of(obj)
    out_ids = {id(v) for v in outputs}
    names: dict[int, str] = {}
    lines = ["digraph theanine {", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']

    def var_node(v):
        key = id(v)
        if key in names:
            return names[key]
        nid = f"v{len(names)}"
        names[key] = nid
        type_text = str(v.type)
        if isinstance(v, Constant):
            label = str(v) if v.name is None else f"{v.name}\n{type_text}"
            attrs = f'shape=box, style=filled, fillcolor="#eeeeee", label={_dot_quote(label)}'
        else:
            label = f"{v.name}\n{type_text}" if v.name is not None else type_text
            if v.owner is None:
                fill = "#d9ead3"
            elif key in out_ids:
                fill = "#c9daf8"
            else:
                fill = None
            style = f', style=filled, fillcolor="{fill}"' if fill else ""
            attrs = f"shape=ellipse{style}, label={_dot_quote(label)}"
        if key in out_ids and v.owner is None:
            attrs += ", peripheries=2"
        lines.append(f"  {nid} [{attrs}];")
        return nid

    for v in outputs:
        if v.owner is None:
            var_node(v)
    for k, node in enumerate(toposort(outputs)):
        aid = f"a{k}"
        color = _APPLY_COLORS.get(type(node.op).__name__, _DEFAULT_APPLY_COLOR)
        lines.append(f'  {aid} [shape=box, style="filled,rounded", fillcolor="{color}", '
                     f"label={_dot_quote(str(node.op))}];")
        many_in = len(node.inputs) > 1
        for i, inp in enumerate(node.inputs):
            label = f" [label={_dot_quote(str(i))}]" if many_in else ""
            lines.append(f"  {var_node(inp)} -> {aid}{label};")
        many_out = len(node.outputs) > 1
        for i, out in enumerate(node.outputs):
            label = f" [label={_dot_quote(str(i))}]" if many_out else ""
            lines.append(f"  {aid} -> {var_node(out)}{label};")
    lines.append("}")
    text = "\n".join(lines) + "\n"

    if file is None:
        return text
    path = os.fspath(file)
    if format in (None, "dot"):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return text
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(f"to_dot: cannot render {format}: Graphviz's 'dot' program is not "
                           "installed (install graphviz, or call to_dot without format to get "
                           "the DOT text)")
    proc = subprocess.run([exe, f"-T{format}", "-o", path], input=text.encode("utf-8"),
                          capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"to_dot: 'dot -T{format}' failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode('utf-8', 'replace').strip()}")
    return path
