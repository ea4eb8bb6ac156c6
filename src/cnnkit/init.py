"""Weight initialisation, always from an explicit ``numpy.random.Generator``."""

from __future__ import annotations

import math

import numpy as np

from cnnkit.errors import DTypeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_rng(rng, owner: str) -> np.random.Generator:
    """``None`` -> a fresh generator seeded from the OS; a Generator is used as it is."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise DTypeError(
        f"{owner}: rng must be a numpy.random.Generator or None, got {type(rng).__name__}; "
        f"use rng=np.random.default_rng({rng if isinstance(rng, int) else 0})"
    )


def resolve_dtype(dtype, owner: str) -> np.dtype:
    """float32 or float64; anything else is refused (no silent conversion later)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise DTypeError(
            f"{owner}: dtype must be float32 or float64, got {dtype!r}; "
            "use dtype=np.float32 (default) or np.float64 for gradient checks"
        )
    return resolved


def uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Values drawn uniformly from [-bound, bound)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def default_bound(fan_in: int) -> float:
    """PyTorch's default for Conv2d and Linear: kaiming_uniform(a=sqrt(5)) on the weight gives
    bound sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in), and the bias uses the same bound."""
    return 1.0 / math.sqrt(fan_in)
