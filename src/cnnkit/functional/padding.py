"""Padding by mode, forward beside backward: zeros, reflect, replicate and circular.

A convolution with ``padding_mode`` other than zeros pads its input explicitly with one of these,
then convolves without padding (as PyTorch does). Along one axis of size I padded by
(before, after), padded position p reads input position:

* ``reflect``: the mirror image without repeating the edge (``dcb|abcd|cba``), so
  before, after < I;
* ``replicate``: the nearest edge pixel (``aaa|abcd|ddd``);
* ``circular``: the input wrapped around (``bcd|abcd|abc``), so before, after <= I;
* ``zeros``: nothing (``000|abcd|000``).

Backward is the adjoint: the gradient of every padded pixel is added back onto the input pixel
it was read from, so an edge pixel that ``replicate`` copies three times receives four
gradients. The two spatial axes are padded one after the other, so backward folds them back in
the opposite order. Shapes: x (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).

>>> import numpy as np
>>> x = np.arange(4.0).reshape(1, 1, 1, 4)
>>> y, saved = pad2d_forward(x, ((0, 0), (2, 1)), "reflect")
>>> y[0, 0, 0].tolist()
[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0]
>>> pad2d_backward(np.ones_like(y), saved)[0, 0, 0].tolist()  # x[1] read twice, x[2] thrice
[1.0, 2.0, 3.0, 1.0]
"""

from __future__ import annotations

from cnnkit.backend import get_array_module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad2d_forward(x, padding, mode: str, workspace=None):
    """x (N, C, H, W) padded by ((top, bottom), (left, right)) in ``mode``; returns (y, saved),
    a fresh C-contiguous array and what :func:`pad2d_backward` needs (sizes only)."""
    xp = get_array_module(x)
    (top, bottom), (left, right) = padding
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    return xp.pad(x, widths, mode=_NUMPY_MODE[mode]), (padding, mode)


def pad2d_backward(dy, saved, workspace=None):
    """dy (N, C, Hp, Wp) -> dx (N, C, H, W): every padded pixel's gradient added onto its
    source pixel."""
    xp = get_array_module(dy)
    ((top, bottom), (left, right)), mode = saved
    columns = _fold_axis(dy, 3, left, right, mode)  # the width was padded last
    return xp.ascontiguousarray(_fold_axis(columns, 2, top, bottom, mode))


def _fold_axis(grad, axis: int, before: int, after: int, mode: str):
    """The adjoint of padding one axis: (..., I + before + after, ...) -> (..., I, ...)."""
    xp = get_array_module(grad)
    g = xp.moveaxis(grad, axis, 0)  # a view with the padded axis first
    size = g.shape[0] - before - after
    out = g[before : before + size].copy()  # the interior: each pixel's own gradient
    head, tail = g[:before], g[before + size :]  # the padded rows before and after it
    if mode == "reflect":  # head row k read input row before - k, tail row k row I - 2 - k
        out[1 : before + 1] += head[::-1]
        out[size - 1 - after : size - 1] += tail[::-1]
    elif mode == "replicate":  # every head row read row 0, every tail row row I - 1
        if before:
            out[0] += head.sum(axis=0)
        if after:
            out[size - 1] += tail.sum(axis=0)
    elif mode == "circular":  # head row k read row I - before + k, tail row k row k
        out[size - before :] += head
        out[:after] += tail
    return xp.moveaxis(out, 0, axis)
