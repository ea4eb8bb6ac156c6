"""The lecture's network, sized for any images: INPUT -> [CONV -> RELU -> POOL] x N -> FC."""

from __future__ import annotations

import numpy as np

from cnnkit.arch.convert import from_spec

LECTURE_DEPTHS = (32, 64)


def lecture_spec(
    input_shape: tuple[int, int, int], classes: int, depths: tuple[int, ...] = LECTURE_DEPTHS
) -> str:
    """The lecture's INPUT -> [CONV -> RELU -> POOL] x len(depths) -> FC as a string.

    Each CONV is 3x3 with P=1, S=1 (keeps H x W); each POOL is 2x2 max with S=2 (halves it).

    >>> lecture_spec((1, 8, 8), 10, depths=(16,))
    'INPUT(1x8x8) - CONV(D=16, F=3, P=1) - RELU - POOL(F=2) - FC(10)'
    """
    channels, height, width = input_shape
    blocks = [f"CONV(D={depth}, F=3, P=1) - RELU - POOL(F=2)" for depth in depths]
    return " - ".join([f"INPUT({channels}x{height}x{width})", *blocks, f"FC({classes})"])


def lecture_network(
    input_shape: tuple[int, int, int],
    classes: int,
    *,
    depths: tuple[int, ...] = LECTURE_DEPTHS,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
):
    """The lecture's stack (:func:`lecture_spec`) for (C, H, W) images, with fresh weights.

    >>> lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0)).output_shape((5, 1, 8, 8))
    (5, 10)
    """
    return from_spec(lecture_spec(input_shape, classes, depths), rng=rng, dtype=dtype)
