"""Fully connected layer: every output unit sees every input unit (no sparsity, no sharing).

Products of up to ``SMALL`` multiply-adds (a classifier head) run with BLAS held to one thread
(:mod:`.halves`): two threads gain nothing there, and waking OpenBLAS's workers would leave them
spinning against the parallel loops of the convolutions that run next.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.functional.fast import halves

SMALL = 1 << 23


class LinearCache(NamedTuple):
    x: object  # (N, IN)
    w: object  # (OUT, IN)
    has_bias: bool


def _threads(x, w):
    return halves.hold(x.shape[0] * w.shape[0] * w.shape[1] <= SMALL)


def linear_forward(x, w, b):
    """y = x @ w.T + b: x (N, IN), w (OUT, IN), b (OUT,) or None -> y (N, OUT)."""
    with _threads(x, w):
        y = x @ w.T
    if b is not None:
        y += b
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy, cache: LinearCache, *, input_grad: bool = True):
    """dy (N, OUT) -> ``(dx (N, IN), dw (OUT, IN), db (OUT,) or None)``; dx is None when
    ``input_grad`` is False."""
    x, w, has_bias = cache
    with _threads(x, w):
        dx = dy @ w if input_grad else None
        dw = dy.T @ x
    return dx, dw, dy.sum(axis=0) if has_bias else None
