"""A trainable array and the gradient that backward accumulates into it."""

from __future__ import annotations

from cnnkit.backend import get_array_module


class Parameter:
    """``data`` is the array; ``grad`` (same shape and dtype) starts at zero and collects ``+=``
    from every backward until :meth:`zero_grad`."""

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

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"
