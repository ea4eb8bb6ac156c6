"""CrossEntropyLoss: log-softmax and negative log-likelihood fused, as in PyTorch."""

from __future__ import annotations

import threading

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import DTypeError, ShapeError, StateError
from cnnkit.functional.loss import cross_entropy_backward, cross_entropy_forward


class CrossEntropyLoss:
    """Mean over the batch of -log softmax(logits)[target].

    ``forward(logits (N, K), targets (N,) ints in [0, K)) -> float``; ``backward() -> dlogits``
    of shape (N, K), the gradient of that mean. What backward needs is kept per thread.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, logits, targets) -> float:
        return self.forward(logits, targets)

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"

    def forward(self, logits, targets) -> float:
        if isinstance(targets, list | tuple):
            targets = np.asarray(targets)
        self._check(logits, targets)
        loss, self._local.cache = cross_entropy_forward(logits, targets)
        # Held until the next forward: the model's forward that made the logits stays
        # matched with its backward while they live (see cnnkit.nn.context).
        self._local.logits = logits
        return float(loss)

    def backward(self):
        cache = getattr(self._local, "cache", None)
        if cache is None:
            raise StateError(
                "CrossEntropyLoss(): backward() was called before forward(); "
                "call forward(logits, targets) first"
            )
        return cross_entropy_backward(cache)

    @staticmethod
    def _check(logits, targets) -> None:
        owner = "CrossEntropyLoss()"
        if not is_array(logits) or logits.dtype.kind != "f":
            got = logits.dtype if is_array(logits) else type(logits).__name__
            raise DTypeError(f"{owner}: logits must be a floating-point array (N, K), got {got}")
        if logits.ndim != 2:
            raise ShapeError(
                f"{owner}: expected logits of shape (N, K), got {tuple(logits.shape)}; "
                "the last layer should be Linear(..., K)"
            )
        if not is_array(targets) or targets.dtype.kind not in "iu":
            got = targets.dtype if is_array(targets) else type(targets).__name__
            raise DTypeError(
                f"{owner}: targets must be an integer array of class indices (N,), got {got}; "
                "use np.asarray(labels, dtype=np.int64)"
            )
        n, k = logits.shape
        if targets.shape != (n,):
            raise ShapeError(
                f"{owner}: expected targets of shape ({n},) to match logits {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        if n and (int(targets.min()) < 0 or int(targets.max()) >= k):
            bad = int(targets.min()) if int(targets.min()) < 0 else int(targets.max())
            raise ShapeError(
                f"{owner}: target {bad} is outside the {k} classes [0, {k - 1}] of the logits; "
                f"check the labels or use Linear(..., {max(k, bad + 1)})"
            )


__all__ = ["CrossEntropyLoss"]
