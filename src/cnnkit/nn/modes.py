"""Each thread's call state and the blocks that change it: ``no_grad``, ``enable_grad`` and
``isolated`` (a lazy build's or a hook's calls, apart from the call in flight). The calls
themselves are :mod:`cnnkit.nn.context`'s."""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def state():
    """This thread's call state (frames of the calls in flight, grad mode, edge input)."""
    try:
        return _state.value
    except AttributeError:
        value = _CallState()
        _state.value = value
        return value


class _CallState:
    __slots__ = ("edge", "frames", "grad")

    def __init__(self) -> None:
        self.frames: list = []  # the Context of every call in flight, innermost last
        self.grad: bool | None = None  # None: record in training mode only
        self.edge = None  # the owner of the memory of the array the top-level forward was given


@contextlib.contextmanager
def no_grad():
    """Forwards in this block (this thread) save nothing for backward, in any mode."""
    current = state()
    previous, current.grad = current.grad, False
    try:
        yield
    finally:
        current.grad = previous


@contextlib.contextmanager
def isolated():
    """Calls in this block (this thread) start afresh: top-level calls that record nothing,
    unseen by any call in flight. A lazy build and a shape probe run this way inside another
    layer's forward, so they neither join that call nor change what it keeps."""
    current = state()
    saved = current.frames, current.edge, current.grad
    current.frames, current.edge, current.grad = [], None, False
    try:
        yield
    finally:
        current.frames, current.edge, current.grad = saved


@contextlib.contextmanager
def enable_grad():
    """Forwards in this block (this thread) save what backward needs, in evaluation mode too."""
    current = state()
    previous, current.grad = current.grad, True
    try:
        yield
    finally:
        current.grad = previous


__all__ = ["enable_grad", "isolated", "no_grad", "state"]
