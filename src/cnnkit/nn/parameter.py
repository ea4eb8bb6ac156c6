"""A trainable array and the gradient that backward accumulates into it.

Shape-only ("meta") parameters let ``cnnkit.summary`` and architecture traces build VGG-sized
layers without allocating or drawing their weights: inside :func:`meta_parameters`,
:func:`new_parameter` returns a parameter whose ``data`` is a read-only zero-stride view of
one zero (its shape, dtype and size are real; it takes no memory) and whose initialiser is
never called, so no random number is drawn.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from cnnkit.backend import get_array_module
from cnnkit.errors import ShapeError

MAX_ELEMENTS = 2**62  # NumPy's arrays count their elements in 64-bit integers

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
def meta_parameters(on: bool = True):
    """Inside this block, :func:`new_parameter` makes shape-only parameters (this thread);
    ``meta_parameters(False)`` makes real ones again inside such a block."""
    previous = getattr(_meta, "on", False)
    _meta.on = on
    try:
        yield
    finally:
        _meta.on = previous


def making_meta() -> bool:
    """Whether :func:`new_parameter` makes shape-only parameters now (this thread)."""
    return getattr(_meta, "on", False)


def new_parameter(shape, dtype, initialise, name: str, owner: str = "") -> Parameter:
    """``Parameter(initialise(), name)``, or a shape-only parameter inside
    :func:`meta_parameters` (``initialise`` is then never called).

    A real parameter is refused (one :class:`ShapeError` naming ``owner``, such as
    ``Conv2d(1, 1, kernel_size=100000)``) before anything is allocated when it, its gradient
    and the float64 values drawn for it would need more memory than is available."""
    shape = tuple(int(size) for size in shape)
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        prefix = f"{owner}: " if owner else ""
        raise ShapeError(
            f"{prefix}its {name} would hold {' x '.join(map(str, shape))} = {count:,} values, "
            f"more than any array can ({MAX_ELEMENTS:,}); make the volume before it smaller "
            "(a POOL or a stride S > 1 first) or use fewer filters"
        )
    if getattr(_meta, "on", False):
        placeholder = np.broadcast_to(np.zeros((), dtype), tuple(shape))
        parameter = Parameter.__new__(Parameter)
        parameter.data, parameter.grad, parameter.name = placeholder, placeholder, name
        return parameter
    _check_memory(owner, name, shape, count, np.dtype(dtype))
    return Parameter(initialise(), name)


def _check_memory(owner: str, name: str, shape, count: int, dtype: np.dtype) -> None:
    """Refuse a parameter whose array, gradient and float64 draw exceed the memory available."""
    from cnnkit.data.memory import available_memory, describe_bytes

    need = count * (2 * dtype.itemsize + 8)
    available = available_memory()
    if available is None or need <= available:
        return
    prefix = f"{owner}: " if owner else ""
    raise ShapeError(
        f"{prefix}its {name} holds {' x '.join(map(str, shape))} = {count:,} values: "
        f"{describe_bytes(need)} for it and its gradient as {dtype.name} and the float64 "
        f"values drawn for it, but only {describe_bytes(available)} of memory is available; "
        "make the layer smaller (a smaller F, fewer filters, channels or features)"
    )
