"""``theanine.export_c``: a compiled function as a freestanding C library (``NAME.c``, ``NAME.h``).

The function's rewritten graph becomes a schedule (``compile.scheduler``) whose kernels and
steps ``codegen.c_entry.render_export`` writes as C11 that needs no Python, NumPy or BLAS.
The header documents the API: buffers in (the function's inputs, then its shared
variables' current values), buffers out (its outputs, then the updated shared values), an
explicit workspace, and error codes.
"""

from __future__ import annotations

import os
import re

from theanine.compile.native import plan_kernels
from theanine.compile.scheduler import NotSchedulable, build_schedule

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def export_c(f, directory, name=None) -> tuple[str, str]:
    """Write ``NAME.c`` and ``NAME.h`` for the compiled function ``f`` into ``directory``
    (created if missing) and return their paths. ``name`` (default: ``f.name`` when it is a C
    identifier, else ``theanine_function``) prefixes every exported symbol. Raises ValueError
    when ``name`` is not a C identifier or a node of ``f`` has no schedule step (the message
    names it); build ``f`` with mode 'c' or 'llvm' so that its elementwise nodes are fused."""
    if name is None:
        name = f.name if f.name and _IDENTIFIER.match(f.name) else "theanine_function"
    if not _IDENTIFIER.match(name):
        raise ValueError(f"export_c: name {name!r} is not a C identifier (letters, digits and _, "
                         "not starting with a digit, at most 64 characters)")
    graph = f.graph
    planned, _ = plan_kernels(graph)
    try:
        schedule, constants, extra, _, _ = build_schedule(graph, planned, host_calls=False, target="c")
    except NotSchedulable as exc:
        raise ValueError(f"export_c: {f!r} cannot be exported: {exc}") from None
    kernels = [(p.kernel, p.inner_broadcast) for p in planned] + list(extra)
    from theanine.codegen import c_entry
    try:
        source, header = c_entry.render_export(schedule, kernels, constants, name,
                                               _input_labels(f), _output_labels(f))
    except ValueError as exc:
        raise ValueError(f"export_c: {f!r} cannot be exported: {exc}") from None
    os.makedirs(directory, exist_ok=True)
    paths = (os.path.join(directory, f"{name}.c"), os.path.join(directory, f"{name}.h"))
    for path, text in zip(paths, (source, header)):
        with open(path, "w") as out:
            out.write(text)
    return paths


def _input_labels(f) -> list:
    labels = [v.name or f"input {k}" for k, v in enumerate(f.inputs)]
    labels += [f"shared {v.name or k}" for k, v in enumerate(f._shared)]
    return labels


def _output_labels(f) -> list:
    labels = [v.name or f"output {k}" for k, v in enumerate(f.outputs)]
    labels += [f"new value of shared {v.name or k}" for k, v in enumerate(f._update_targets)]
    return labels
