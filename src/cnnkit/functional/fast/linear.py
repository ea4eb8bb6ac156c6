"""Fully connected layer: every output unit sees every input unit (no sparsity, no sharing)."""

from __future__ import annotations

from typing import NamedTuple


class LinearCache(NamedTuple):
    x: object  # (N, IN)
    w: object  # (OUT, IN)
    has_bias: bool


def linear_forward(x, w, b):
    """y = x @ w.T + b: x (N, IN), w (OUT, IN), b (OUT,) or None -> y (N, OUT)."""
    y = x @ w.T
    if b is not None:
        y += b
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy, cache: LinearCache, *, input_grad: bool = True):
    """dy (N, OUT) -> ``(dx (N, IN), dw (OUT, IN), db (OUT,) or None)``; dx is None when
    ``input_grad`` is False."""
    x, w, has_bias = cache
    dx = dy @ w if input_grad else None
    return dx, dy.T @ x, dy.sum(axis=0) if has_bias else None
