"""Mini-batches of indices and the random-shift augmentation."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnkit.errors import ConfigError, DTypeError, ShapeError


def batches(count: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index arrays covering ``range(count)`` once, in a permutation drawn from ``rng``.

    The last batch keeps the remainder. ``rng=None`` keeps the order (for evaluation).

    >>> [b.tolist() for b in batches(5, 2, None)]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DTypeError(f"batches: batch_size must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ConfigError(f"batches: batch_size must be at least 1, got {batch_size}")
    if count < 0:
        raise ConfigError(f"batches: count must be at least 0, got {count}")
    order = np.arange(count) if rng is None else rng.permutation(count)
    return [order[start : start + batch_size] for start in range(0, count, batch_size)]


def epoch_steps(count: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of ``count`` examples: ceil(count / batch_size), except that
    a last batch of a single example joins the batch before it (one example has no batch
    statistics: BatchNorm refuses it in training, as PyTorch does).

    >>> epoch_steps(65, 32), epoch_steps(64, 32), epoch_steps(66, 32), epoch_steps(1, 32)
    (2, 2, 3, 1)
    """
    steps = -(-count // batch_size)
    if batch_size > 1 and steps > 1 and count % batch_size == 1:
        steps -= 1
    return steps


def step_batch(order: np.ndarray, step: int, steps: int, batch_size: int) -> np.ndarray:
    """The indices of batch ``step`` of ``steps`` (see :func:`epoch_steps`): the last batch
    takes everything left."""
    start = step * batch_size
    return order[start:] if step == steps - 1 else order[start : start + batch_size]


def random_shift(
    images: np.ndarray,
    max_shift: int,
    rng: np.random.Generator,
    *,
    fill: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Each NCHW image moved by whole pixels, a new array of the same shape and dtype.

    Offsets ``(dy, dx) = rng.integers(-max_shift, max_shift + 1, size=(N, 2))`` (one draw per
    call): ``out[n, c, y, x] = images[n, c, y - dy, x - dx]``, and ``fill`` where that falls
    outside (a scalar or one value per channel). On normalised images the background is not 0:
    pass ``fill=-mean / std`` to fill with normalised black. ``max_shift=0`` returns a copy and
    draws nothing. Vectorised: one padded copy, then one gather through a sliding-window view.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ShapeError(f"random_shift: images of shape {images.shape}, expected NCHW (4 axes)")
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)):
        raise DTypeError(f"random_shift: max_shift must be an integer, got {max_shift!r}")
    if max_shift < 0:
        raise ConfigError(f"random_shift: max_shift must be at least 0, got {max_shift}")
    n, c, h, w = images.shape
    if max_shift == 0 or n == 0:
        return images.copy()
    m = int(max_shift)
    offsets = rng.integers(-m, m + 1, size=(n, 2))  # (N, 2): dy, dx
    fill = np.asarray(fill, images.dtype).reshape(-1, 1, 1)  # (1 or C, 1, 1)
    if len(fill) not in (1, c):
        raise ShapeError(
            f"random_shift: fill has {len(fill)} values for {c} channels; pass one number or "
            "one value per channel"
        )
    padded = np.empty((n, c, h + 2 * m, w + 2 * m), images.dtype)
    padded[...] = fill
    padded[:, :, m : m + h, m : m + w] = images
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 2m+1, 2m+1, H, W)
    return windows[np.arange(n), :, m - offsets[:, 0], m - offsets[:, 1]]  # (N, C, H, W)
