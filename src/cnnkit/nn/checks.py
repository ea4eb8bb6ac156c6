"""Argument and array checks the layers share: checked once, at the edge, with a fix.

``owner`` (the first argument of each) is the layer itself or a string: it is only formatted
into a message, so a layer's repr is built only when a check fails.
"""

from __future__ import annotations

import numpy as np

from cnnkit.backend import is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(owner, x, ndim: int, layout: str, extra_axes_hint: str = "") -> None:
    """An array (NumPy, or CuPy when loaded) of floating dtype with ``ndim`` axes.

    ``owner`` (here and in the other checks) is the layer itself, or a string: it is only
    formatted into a message, so a layer's repr is built only when a check fails.

    ``extra_axes_hint`` replaces the generic fix when the input has more axes than expected.
    """
    if not is_array(x):
        raise DTypeError(
            f"{owner}: expected an array {layout}, got {type(x).__name__}; "
            "convert with np.asarray(x, dtype=np.float32)"
        )
    if x.ndim != ndim:
        if x.ndim == ndim - 1:
            hint = " add a batch axis with x[None]"
        elif x.ndim > ndim and extra_axes_hint:
            hint = f" {extra_axes_hint}"
        else:
            hint = f" reshape it to {layout}"
        raise ShapeError(
            f"{owner}: expected a {ndim}-D input {layout}, got a {x.ndim}-D array of shape "
            f"{tuple(x.shape)};{hint}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise DTypeError(
            f"{owner}: expected a floating-point input (float32 or float64), got {x.dtype}; "
            "convert with x.astype(np.float32) (scale images to [0, 1] first)"
        )


def check_dtype_matches(owner, x, dtype: np.dtype) -> None:
    """Parameters and input share a dtype: cnnkit never converts one silently."""
    if x.dtype != dtype:
        other = f" or build the layer with dtype=np.{x.dtype}" if x.dtype in FLOAT_DTYPES else ""
        raise DTypeError(
            f"{owner}: input is {x.dtype} but the layer's parameters are {dtype}; "
            f"convert with x.astype(np.{dtype}){other}"
        )


def check_shape_like(owner, dy, expected: tuple[int, ...]) -> None:
    """``backward(dy)`` receives a gradient shaped like the forward's output."""
    if tuple(dy.shape) != tuple(expected):
        raise ShapeError(
            f"{owner}: backward expected dy of shape {tuple(expected)} (the forward output), "
            f"got {tuple(dy.shape)}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def positive_int(owner: str, name: str, value, minimum: int = 1) -> int:
    if not _is_int(value):
        raise DTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def int_pair(owner: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each >= ``minimum``."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ConfigError(
                f"{owner}: {name} must be an int or an (h, w) pair, got {tuple(value)!r}"
            )
        return positive_int(owner, name, value[0], minimum), positive_int(
            owner, name, value[1], minimum
        )
    single = positive_int(owner, name, value, minimum)
    return single, single


def short(pair: tuple[int, int]) -> int | tuple[int, int]:
    """``(3, 3)`` -> ``3`` for messages and reprs; unequal pairs stay pairs."""
    return pair[0] if pair[0] == pair[1] else pair


def check_rounding(owner: str, rounding: str) -> str:
    if rounding not in ("strict", "floor"):
        raise ConfigError(
            f"{owner}: rounding must be 'strict' (refuse rounding that loses input) or 'floor' "
            f"(round down like PyTorch), got {rounding!r}"
        )
    return rounding
