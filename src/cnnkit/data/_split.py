"""Stratified picks: a fraction of a labelled set, spread over the classes in proportion."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ConfigError, DTypeError


def _check_fraction(fraction: float, where: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise DTypeError(f"{where} must be a number in [0, 1), got {fraction!r}")
    if not 0 <= fraction < 1:
        raise ConfigError(f"{where} must be in [0, 1), got {fraction!r}; use 0.1 for 10%")
    return float(fraction)


def _stratified_pick(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of round(fraction * N) items, spread over the classes in proportion.

    Items are visited in a random order; the k-th of its class (of n_c) gets the key
    (k + 0.5) / n_c, and the smallest keys are taken, so every class gives its share, +-1.
    """
    n = len(labels)
    take = int(fraction * n + 0.5)
    if take == 0:
        return np.zeros(0, np.int64)
    order = rng.permutation(n)
    shuffled = labels[order]
    counts = np.bincount(shuffled)
    by_class = np.argsort(shuffled, kind="stable")
    rank = np.empty(n, np.int64)
    rank[by_class] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    keys = (rank + 0.5) / counts[shuffled]
    return np.sort(order[np.argsort(keys, kind="stable")[:take]])
