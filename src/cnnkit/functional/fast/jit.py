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
import threading
import types

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
        loop = _COMPILED[function] = numba.njit(cache=True, nogil=True)(function)
    return loop


# One parallel loop at a time (see Loops.run).
_PARALLEL = threading.Lock()
_forked = {"child": False}


def _after_fork() -> None:
    """A forked child runs every loop serially: GNU OpenMP, numba's threading layer where it
    is installed, terminates a child that starts a parallel region its parent had used."""
    global _PARALLEL
    _PARALLEL = threading.Lock()
    _forked["child"] = True


os.register_at_fork(after_in_child=_after_fork)


def threads() -> int:
    """The threads numba's parallel loops run on (``NUMBA_NUM_THREADS``: the cores)."""
    return int(numba.config.NUMBA_NUM_THREADS) if _AVAILABLE else 1


def parts_of(items: int) -> int:
    """Ranges a parallel loop splits ``items`` into: one per numba thread, at most one per item
    (fixed per process, and the loops give the same numbers whichever way they run)."""
    return max(1, min(items, threads()))


def _parallel_copy(function):
    """A copy of ``function`` under its own name, for its ``parallel=True`` compilation:
    numba's disk cache keys a loop by its name, and would hand the serial loop back."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__)
    copy.__qualname__ = f"{function.__qualname__}_parallel"
    return copy


class Loops:
    """A module's compiled loops. Its helpers compile first, in order, each replacing the
    module's own function, so that the loops compiled after them call compiled code; each loop
    compiles serial or parallel (its ``prange`` runs as ``range`` serially). ``helpers``: names
    and their fast-math flags; ``before``: what compiles the helpers they call elsewhere."""

    def __init__(self, namespace: dict, helpers: dict[str, set], before=()) -> None:
        self.namespace, self.helpers, self.before = namespace, helpers, before
        self.compiled: dict = {}

    def compile_helpers(self) -> None:
        for other in self.before:
            other()
        for name, flags in self.helpers.items():
            if name not in self.compiled:
                loop = numba.njit(cache=True, fastmath=flags)(self.namespace[name])
                self.compiled[name] = self.namespace[name] = loop
        self.namespace["prange"] = numba.prange

    def loop(self, name: str, parallel: bool = False, fastmath=frozenset()):
        loop = self.compiled.get((name, parallel))
        if loop is None:
            self.compile_helpers()
            function = self.namespace[name]
            function = _parallel_copy(function) if parallel else function
            options = dict(cache=True, parallel=parallel, fastmath=set(fastmath))
            loop = self.compiled[name, parallel] = numba.njit(**options)(function)
        return loop

    def run(self, name: str, parts: int, parallel: bool, *arguments) -> None:
        """The loop ``name`` over ``parts`` ranges: in parallel when asked, there is more than
        one range and no other thread is in a parallel loop, else serially (numba's workqueue
        threading layer, its fallback, must not be entered concurrently); both must give the
        same numbers."""
        serial = self.loop(name)
        wanted = parallel and parts > 1 and not _forked["child"]
        if wanted and _PARALLEL.acquire(blocking=False):
            try:
                self.loop(name, True)(*arguments)
            finally:
                _PARALLEL.release()
            return
        serial(*arguments)
