"""Where generated code finds ``sgemm``/``dgemm``: a function address and its integer width.

The Fortran-convention routines (every argument by pointer) come from the
OpenBLAS that NumPy's wheels bundle (``scipy_sgemm_64_``: 64-bit integers,
already loaded with NumPy, so finding it costs nothing), and otherwise from
``scipy.linalg.cython_blas`` (32-bit integers; importing it costs tens of
milliseconds). ``int_bits()`` is fixed for the process and is part of the
generated code, hence of its cache key.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import numpy as np


@functools.cache
def _numpy_openblas():
    """{'sgemm': address, 'dgemm': address} from NumPy's bundled ILP64 OpenBLAS, or None."""
    folder = os.path.dirname(np.__file__) + ".libs"
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so"))):
        try:
            lib = ctypes.CDLL(path)
            return {name: ctypes.cast(getattr(lib, f"scipy_{name}_64_"), ctypes.c_void_p).value
                    for name in ("sgemm", "dgemm")}
        except (OSError, AttributeError):
            continue
    return None


def int_bits() -> int:
    """The width of the BLAS integer arguments: 64 or 32."""
    return 64 if _numpy_openblas() else 32


def address(name: str) -> int:
    """The address of the Fortran-convention routine ``name`` ('sgemm' or 'dgemm')."""
    found = _numpy_openblas()
    if found:
        return found[name]
    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))
