"""nvcc: compile-checking generated CUDA C++ (codegen/cuda.py).

Only a compile check for now: ``compile_check`` turns a translation unit into PTX
(or a cubin) and returns the bytes, or raises with nvcc's diagnostics. Loading the
result and running it on a device belongs to a CUDA runtime that is not built yet.

The compiler is ``$THEANINE_NVCC`` when set (a path or a name on PATH), else
``nvcc`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

#: seconds one nvcc run may take
TIMEOUT = 120
_OUTPUTS = {"ptx": ("--ptx", "kernels.ptx"), "cubin": ("-cubin", "kernels.cubin")}


def path() -> str | None:
    """The nvcc executable to use, or None when there is none."""
    return shutil.which(os.environ.get("THEANINE_NVCC") or "nvcc")


def available() -> bool:
    """Whether an nvcc executable is available."""
    return path() is not None


def command(arch="sm_80", output="ptx", source="kernels.cu", target=None) -> list:
    """The nvcc command line ``compile_check`` runs."""
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(_OUTPUTS)}, not {output!r}")
    flag, default = _OUTPUTS[output]
    return [path() or "nvcc", "-std=c++17", f"-arch={arch}", flag, "-o", target or default, source]


def compile_check(source: str, arch: str = "sm_80", output: str = "ptx") -> bytes:
    """Compile the CUDA C++ ``source`` for ``arch`` to PTX (``output="ptx"``) or a cubin
    (``output="cubin"``) in a temporary directory and return the result's bytes.

    RuntimeError when nvcc is missing, fails (with the command and the first 40 lines
    of its diagnostics) or runs longer than ``TIMEOUT`` seconds.
    """
    if not available():
        raise RuntimeError("nvcc not found: install the CUDA toolkit or set THEANINE_NVCC")
    with tempfile.TemporaryDirectory(prefix="theanine-nvcc-") as tmp:
        src = os.path.join(tmp, "kernels.cu")
        with open(src, "w") as fh:
            fh.write(source)
        target = os.path.join(tmp, _OUTPUTS.get(output, ("", "out"))[1])
        cmd = command(arch, output, src, target)
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"nvcc timed out after {TIMEOUT} s: {' '.join(cmd)}") from None
        if proc.returncode != 0:
            diagnostics = (proc.stderr or proc.stdout).splitlines()
            shown = "\n".join(diagnostics[:40])
            more = f"\n... ({len(diagnostics) - 40} more lines)" if len(diagnostics) > 40 else ""
            raise RuntimeError(f"nvcc failed (exit {proc.returncode}): {' '.join(cmd)}\n{shown}{more}")
        with open(target, "rb") as fh:
            return fh.read()
