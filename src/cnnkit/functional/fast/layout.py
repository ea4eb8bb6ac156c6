"""Memory layouts behind the NCHW edge, and the scratch arrays a layer reuses between calls.

Every array that crosses the public edge is indexed (N, C, H, W). How its values lie in memory
is the engine's choice, and the strides say which: a convolution's matrix product naturally
writes its output channels-last (N, H, W, C) or channel-major (C, N, H, W), so the layer returns
that memory through a transposed view instead of paying for a copy into NCHW order, and the next
layer reads the strides to pick its own fast path. Values, shapes and dtypes never depend on the
layout; only the speed does.

>>> import numpy as np
>>> x = np.zeros((2, 3, 4, 5), np.float32)
>>> layout_of(x), layout_of(in_layout(x, NHWC))
('nchw', 'nhwc')
>>> memory(in_layout(x, NHWC), NHWC).shape  # (N, H, W, C)
(2, 4, 5, 3)
"""

from __future__ import annotations

import sys

from cnnkit.backend import get_array_module

NCHW, NHWC, CNHW = "nchw", "nhwc", "cnhw"
# For each layout, the NCHW axes in the order they lie in memory, outermost first.
MEMORY_ORDER = {NCHW: (0, 1, 2, 3), NHWC: (0, 2, 3, 1), CNHW: (1, 0, 2, 3)}
# Back from memory order to NCHW indexing.
_NCHW_ORDER = {NCHW: (0, 1, 2, 3), NHWC: (0, 3, 1, 2), CNHW: (1, 0, 2, 3)}


def memory(x, layout: str):
    """The (N, C, H, W)-indexed ``x`` with its axes in ``layout``'s memory order: a view, C-
    contiguous exactly when ``x`` is stored in that layout."""
    return x.transpose(MEMORY_ORDER[layout])


def nchw(stored, layout: str):
    """Inverse of :func:`memory`: index an array stored in ``layout`` order as (N, C, H, W)."""
    return stored.transpose(_NCHW_ORDER[layout])


def layout_of(x) -> str | None:
    """Which layout ``x`` (indexed N, C, H, W) is stored in, or None for any other strides.

    NCHW wins over the others when several hold (one channel or one image).
    """
    for layout in (NCHW, NHWC, CNHW):
        if memory(x, layout).flags.c_contiguous:
            return layout
    return None


def in_layout(x, layout: str):
    """``x`` itself when already stored in ``layout``, else a copy that is; indexed NCHW."""
    if memory(x, layout).flags.c_contiguous:
        return x
    xp = get_array_module(x)
    return nchw(xp.ascontiguousarray(memory(x, layout)), layout)


def empty(shape: tuple[int, int, int, int], dtype, layout: str, xp):
    """A fresh (N, C, H, W)-indexed array stored in ``layout``."""
    order = MEMORY_ORDER[layout]
    return nchw(xp.empty(tuple(shape[axis] for axis in order), dtype=dtype), layout)


class Workspace:
    """Scratch arrays that one layer reuses from call to call (im2col columns, padded copies).

    A fresh large array costs page faults on every call; a reused one is already mapped and often
    still in cache. Each layer has one workspace per thread (``Layer.workspace()``), so threads
    never share one. :meth:`get` lends scratch for the duration of one call: nothing may keep
    it. Everything that outlives the call (outputs and gradients handed to the caller, and what
    a forward saves for its backward) comes from :meth:`result`, which reuses memory only once
    nothing outside the workspace refers to it: a layer used twice before its backward, or a
    saved context still waiting, keeps its arrays.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, object] = {}
        self._results: dict[str, list] = {}
        self.choices: dict = {}  # timed choices of this layer's call sites (fast/tuning.py)

    def get(self, name: str, shape: tuple[int, ...], dtype, xp, fill: float | None = None):
        """The array called ``name`` with this shape and dtype; ``fill`` initialises it when it
        is (re)allocated, so a border written once (padding) stays written."""
        array = self._arrays.get(name)
        if (
            array is None
            or array.shape != tuple(shape)
            or array.dtype != dtype
            or get_array_module(array) is not xp
        ):
            array = xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype)
            self._arrays[name] = array
        return array

    def result(self, name: str, shape: tuple[int, ...], dtype, xp, fill: float | None = None):
        """A C-contiguous array for a result handed to the caller (an output, a gradient).

        A fresh array costs the kernel's page faults on every call (about a fifth of a LeNet-5
        training step on the benchmark machine). This returns memory it handed out under
        ``name`` before when nothing but this workspace refers to it any more (no variable, no
        view, no cache): the caller cannot tell it from a new array. Memory still referred to
        anywhere is never reused. NumPy only, up to ``RESULT_MAX_BYTES``; CuPy has its own pool.
        ``fill`` initialises the array when it is allocated (never when it is reused).
        """
        shape = tuple(shape)
        if xp.__name__ != "numpy":
            return _fresh(xp, shape, dtype, fill)
        slots = self._results.setdefault(name, [])
        for array in slots:
            free = sys.getrefcount(array) == _UNHELD_REFERENCES
            if free and array.shape == shape and array.dtype == dtype:
                return array
        array = _fresh(xp, shape, dtype, fill)
        if array.nbytes <= RESULT_MAX_BYTES:
            if len(slots) == RESULT_SLOTS:
                slots.pop(0)  # forget the oldest; whoever holds it keeps it
            slots.append(array)
        return array

    def nbytes(self) -> int:
        kept = [array for slots in self._results.values() for array in slots]
        return sum(array.nbytes for array in [*self._arrays.values(), *kept])

    def clear(self) -> None:
        self._arrays.clear()
        self._results.clear()

    def __repr__(self) -> str:
        return f"Workspace({len(self._arrays)} arrays, {self.nbytes()} bytes)"


def _fresh(xp, shape, dtype, fill):
    return xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype)


def _unheld_references() -> int:
    """What ``sys.getrefcount`` says, in :meth:`Workspace.result`'s loop, of an array nothing
    else holds (3 in CPython 3.11: the slot list, the loop variable, the argument). Measured
    rather than assumed, so an interpreter that counts differently never sees a held array as
    free (it would then see none as free, and only lose the reuse)."""
    slots = [object()]
    for item in slots:
        return sys.getrefcount(item)
    return 0


_UNHELD_REFERENCES = _unheld_references()

# Per name, a result may still be held (by the next layer's cache, or by forwards still waiting
# for their backward: up to cnnkit.nn.context.MAX_PENDING of them) while the next call wants a
# new one: five slots let them take turns without fresh memory.
RESULT_SLOTS = 5
RESULT_MAX_BYTES = 64 << 20


def result(workspace: Workspace | None, name: str, shape, dtype, layout: str, xp, fill=None):
    """Like :func:`empty` (an (N, C, H, W)-indexed array stored in ``layout``), from
    ``workspace.result`` when there is a workspace."""
    stored_shape = tuple(shape[axis] for axis in MEMORY_ORDER[layout])
    if workspace is None:
        return nchw(_fresh(xp, stored_shape, dtype, fill), layout)
    return nchw(workspace.result(name, stored_shape, dtype, xp, fill), layout)


def kept(workspace: Workspace | None, name: str, shape, dtype, xp, fill=None):
    """A plain C-ordered array that may outlive the call (saved for backward): from
    ``workspace.result``, so it is reused only once nothing refers to it any more."""
    if workspace is None:
        return _fresh(xp, tuple(shape), dtype, fill)
    return workspace.result(name, tuple(shape), dtype, xp, fill)


def scratch(workspace: Workspace | None, name: str, shape, dtype, xp, fill: float | None = None):
    """``workspace.get(...)``, or a fresh array without a workspace."""
    if workspace is None:
        return xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype)
    return workspace.get(name, shape, dtype, xp, fill)
