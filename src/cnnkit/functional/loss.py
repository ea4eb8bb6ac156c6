"""Softmax cross-entropy, fused: numerically stable log-softmax and its simple gradient."""

from __future__ import annotations

from typing import NamedTuple

from cnnkit.backend import get_array_module


class CrossEntropyCache(NamedTuple):
    probabilities: object  # (N, K) softmax of the logits
    targets: object  # (N,) integer classes


def cross_entropy_forward(logits, targets):
    """Mean over the batch of -log softmax(logits)[target].

    logits (N, K) float, targets (N,) integers in [0, K). Returns ``(loss, cache)``; ``loss`` is a
    0-d array of the logits' dtype. Subtracting each row's maximum keeps exp() from overflowing.
    """
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = xp.arange(logits.shape[0])
    log_likelihood = shifted[rows, targets] - xp.log(total[:, 0])
    return -log_likelihood.mean(), CrossEntropyCache(exp / total, targets)


def cross_entropy_backward(cache: CrossEntropyCache):
    """d loss / d logits = (softmax - one_hot(target)) / N, shape (N, K)."""
    xp = get_array_module(cache.probabilities)
    dlogits = cache.probabilities.copy()
    n = dlogits.shape[0]
    dlogits[xp.arange(n), cache.targets] -= 1
    dlogits /= n
    return dlogits
