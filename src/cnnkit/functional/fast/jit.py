"""Compiled loops (numba): importing cnnkit never imports numba; the first call compiles a loop.

numba is part of the default install. ``CNNKIT_JIT=0`` in the environment, or :func:`use_jit`
(False), switches every compiled loop off: the NumPy path then runs, with the same numbers
(the tests run both). The first call of each loop compiles it (about a second), cached on disk
afterwards (numba's cache).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

_AVAILABLE = importlib.util.find_spec("numba") is not None


class _LazyNumba:
    """``numba``, imported on first attribute access."""

    def __getattr__(self, name):
        import numba as module

        globals()["numba"] = module
        return getattr(module, name)


numba = _LazyNumba()
_SETTINGS = {
    "1": True,
    "": True,
    "on": True,
    "true": True,
    "0": False,
    "off": False,
    "false": False,
}
_SETTING = os.environ.get("CNNKIT_JIT", "1")
_state = {"enabled": _AVAILABLE and _SETTINGS.get(_SETTING.strip().lower(), True)}
state = _state  # the kernels read state["enabled"] on every call
_COMPILED: dict[object, object] = {}

# Tinier arrays stay on NumPy: no compilation for toy sizes, and no gain there.
MIN_ELEMENTS = 1 << 12


def setting_problem() -> str | None:
    """What is wrong with ``CNNKIT_JIT`` in the environment, if anything (the CLI says so)."""
    if _SETTING.strip().lower() in _SETTINGS:
        return None
    return f"CNNKIT_JIT={_SETTING!r}: use 0 (NumPy only) or 1 (compiled loops, the default)"


def jit_available() -> bool:
    """Whether numba is installed (the kernels can run)."""
    return _AVAILABLE


def threads() -> int:
    """The threads numba's parallel loops run on (``NUMBA_NUM_THREADS``: the cores)."""
    return int(numba.config.NUMBA_NUM_THREADS) if _AVAILABLE else 1


def jit_enabled() -> bool:
    """Whether the kernels run now (installed and not switched off)."""
    return _state["enabled"]


@contextlib.contextmanager
def use_jit(enabled: bool):
    """``with use_jit(False):`` runs everything on NumPy (the tests compare both paths)."""
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled) and _AVAILABLE
    try:
        yield
    finally:
        _state["enabled"] = previous


def compiled(function):
    """``function`` compiled by numba (serial, cached on disk), compiled on first use.

    Serial on purpose: right after a matrix product OpenBLAS's threads still spin for a while,
    and a parallel loop fighting them for the two cores was sometimes twice as slow.
    """
    loop = _COMPILED.get(function)
    if loop is None:
        loop = _COMPILED[function] = numba.njit(cache=True)(function)
    return loop
