"""A trainable array and the gradient that backward accumulates into it.

Shape-only ("meta") parameters let ``cnnkit.summary`` and architecture traces build VGG-sized
layers without allocating or drawing their weights: inside :func:`meta_parameters`,
:func:`new_parameter` returns a parameter whose ``data`` is a read-only zero-stride view of
one zero (its shape, dtype and size are real; it takes no memory) and whose initialiser is
never called, so no random number is drawn.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from cnnkit.backend import get_array_module

_meta = threading.local()


class Parameter:
    """``data`` is the array; ``grad`` (same shape and dtype) starts at zero and collects ``+=``
    from every backward until :meth:`zero_grad`.

    >>> w = Parameter(np.ones((2, 3), np.float32), "weight")
    >>> w.grad.sum(), w.shape, w.size
    (np.float32(0.0), (2, 3), 6)
    """

    def __init__(self, data, name: str = "") -> None:
        self.data = data
        self.grad = get_array_module(data).zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_meta(self) -> bool:
        """True for a shape-only parameter made inside :func:`meta_parameters`."""
        return self.data.size > 0 and 0 in self.data.strides

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


@contextlib.contextmanager
def meta_parameters():
    """Inside this block, :func:`new_parameter` makes shape-only parameters (this thread)."""
    previous = getattr(_meta, "on", False)
    _meta.on = True
    try:
        yield
    finally:
        _meta.on = previous


def new_parameter(shape, dtype, initialise, name: str) -> Parameter:
    """``Parameter(initialise(), name)``, or a shape-only parameter inside
    :func:`meta_parameters` (``initialise`` is then never called)."""
    if getattr(_meta, "on", False):
        placeholder = np.broadcast_to(np.zeros((), dtype), tuple(shape))
        parameter = Parameter.__new__(Parameter)
        parameter.data, parameter.grad, parameter.name = placeholder, placeholder, name
        return parameter
    return Parameter(initialise(), name)
