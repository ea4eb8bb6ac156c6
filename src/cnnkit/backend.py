"""Which array module runs an operation: NumPy now, CuPy later, through one line of shared code.

Every function in ``functional`` starts with ``xp = get_array_module(x)`` and uses ``xp`` instead of
``np``, so a CuPy array flows through the same code on the GPU. CuPy is never imported here: an
array can only be a CuPy array if the user already imported it.
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np


def get_array_module(*arrays: object) -> ModuleType:
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    return np


def is_array(value: object) -> bool:
    """True for a NumPy array or, when CuPy is loaded, a CuPy array."""
    if isinstance(value, np.ndarray):
        return True
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(value, cupy.ndarray)
