"""Inverted dropout, forward beside backward: one implementation for both engines.

Training zeroes each value (or each whole depth slice (n, c), ``channels=True``) with
probability p and scales the kept ones by 1/(1 - p), so each value's expected output is its
input: E[y] = (1 - p) * x / (1 - p) + p * 0 = x. Backward lets the gradient through the same
kept positions with the same scale. The mask is drawn by :func:`dropout_mask` on the host from
a NumPy generator, the same numbers on either engine, in float32 or float64, for any memory
layout of x; a mask is a bool per value (or per depth slice), all backward needs.

>>> import numpy as np
>>> x = np.ones((1, 8), np.float32)
>>> y, mask = dropout_forward(x, 0.5, np.random.default_rng(0))
>>> sorted(set(y.ravel().tolist())), bool((y[mask] == 2).all())
([0.0, 2.0], True)
"""

from __future__ import annotations

import numpy as np

from cnnkit.backend import get_array_module


def mask_shape(shape: tuple[int, ...], channels: bool) -> tuple[int, ...]:
    """The shape of the mask for an input of ``shape``: the input's own, or (N, C, 1, 1) when
    whole depth slices are dropped."""
    shape = tuple(shape)
    return (*shape[:2], *(1,) * (len(shape) - 2)) if channels else shape


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    """True where a value is kept: ``u >= p`` for u uniform in [0, 1), drawn in float32 (half
    the memory and time of float64; the same mask for float32 and float64 inputs). Every
    position is kept with probability 1 - p (up to float32 rounding of p, below 1e-7)."""
    return rng.random(shape, dtype=np.float32) >= np.float32(p)


def dropout_forward(x, p: float, rng, *, channels: bool = False, workspace=None):
    """(y, mask) with y = x * mask / (1 - p), x any shape ((N, C, H, W) when ``channels``).

    y is stored like x (NCHW or channels-last), so the next layer keeps its fast path.
    """
    xp = get_array_module(x)
    mask = xp.asarray(dropout_mask(rng, mask_shape(x.shape, channels), p))
    y = xp.empty_like(x)
    xp.multiply(x, mask, out=y)
    y *= x.dtype.type(1.0 / (1.0 - p))  # kept values become x * (1 / (1 - p)), as in PyTorch
    return y, mask


def dropout_backward(dy, mask, p: float, workspace=None):
    """dx = dy * mask / (1 - p): the gradient of the forward that drew ``mask``."""
    xp = get_array_module(dy)
    dx = xp.empty_like(dy)
    xp.multiply(dy, mask, out=dx)
    dx *= dy.dtype.type(1.0 / (1.0 - p))
    return dx
