"""Conv2d's checks and messages: its arguments at the edge (padding, dilation, groups,
padding mode) and the errors that name the layer, the values and a fix."""

from __future__ import annotations

import math

from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.padding import PADDING_MODES
from cnnkit.nn.checks import int_pair, positive_int, short


def _resolve_padding(owner: str, padding, kernel, stride, dilation):
    """``int | (h, w) | "same" | "valid"`` -> ((top, bottom), (left, right)).

    "same" keeps H x W at stride 1: a window spans d(F - 1) + 1 inputs, so d(F - 1) rows and
    columns of padding in all; when that is odd the bottom and right get one more than the top
    and left, as in PyTorch.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ConfigError(
                    f"{owner}: padding='same' needs stride=1, got stride={short(stride)}; "
                    "use an explicit padding with stride > 1"
                )
            totals = (d * (k - 1) for k, d in zip(kernel, dilation, strict=True))
            return tuple((total // 2, total - total // 2) for total in totals)
        raise ConfigError(
            f"{owner}: padding must be an int, an (h, w) pair, 'same' or 'valid', got {padding!r}"
        )
    ph, pw = int_pair(owner, "padding", padding, minimum=0)
    return (ph, ph), (pw, pw)


def _dilation(owner: str, dilation) -> tuple[int, int]:
    try:
        return int_pair(owner, "dilation", dilation, minimum=1)
    except ConfigError as error:
        raise ConfigError(
            f"{error}; use dilation=1 for neighbouring taps (dilation=d leaves d - 1 inputs "
            "between taps)"
        ) from None


def _groups(owner: str, groups, in_channels: int, out_channels: int) -> int:
    """``groups`` that divides both channel counts, else a ConfigError with the nearest that do."""
    groups = positive_int(owner, "groups", groups)
    if in_channels % groups == 0 and out_channels % groups == 0:
        return groups
    raise ConfigError(
        f"{owner}: groups={groups} must divide both in_channels={in_channels} and "
        f"out_channels={out_channels}; use {nearest_groups(groups, in_channels, out_channels)}"
    )


def nearest_groups(groups: int, in_channels: int, out_channels: int) -> str:
    """``groups=4 or 8``: the nearest numbers below and above ``groups`` that divide both."""
    common = math.gcd(in_channels, out_channels)
    divisors = [g for g in range(1, common + 1) if common % g == 0]
    below = [g for g in divisors if g < groups]
    above = [g for g in divisors if g > groups]
    found = ([below[-1]] if below else []) + ([above[0]] if above else [])
    return "groups=" + " or ".join(str(g) for g in found)


def _padding_mode(owner: str, mode) -> str:
    if mode not in PADDING_MODES:
        names = ", ".join(repr(name) for name in PADDING_MODES)
        raise ConfigError(
            f"{owner}: padding_mode must be one of {names}, got {mode!r}; use "
            "padding_mode='zeros' (the default) or one of the others"
        )
    return mode


def _grouping(groups: int, channels: int, depth: int) -> str:
    """What groups > 1 changes, as a sentence (empty for an ordinary convolution)."""
    if groups == 1:
        return ""
    if groups == channels:
        each = "" if depth == channels else f" ({depth // channels} filters per slice)"
        return f" A depthwise conv (groups={groups}): each filter reads one depth slice{each}."
    return (
        f" groups={groups}: the {channels} channels split into {groups} groups of "
        f"{channels // groups}, and each group's {depth // groups} filters read only their "
        "group's channels."
    )


def _check_padding_fits(layer, input_hw) -> None:
    """reflect mirrors the input without its edge (padding < size), circular wraps it around
    once (padding <= size), as PyTorch requires."""
    mode = layer.padding_mode
    for axis, size, sides in zip(("height", "width"), input_hw, layer.sides, strict=True):
        largest = max(sides)
        if mode == "reflect" and largest >= size:
            raise ShapeError(
                f"{layer}: padding_mode='reflect' mirrors the input without repeating its edge, "
                f"so the padding must be smaller than the input: padding {largest} on a {axis} "
                f"of {size}; use padding <= {size - 1} or padding_mode='replicate'"
            )
        if mode == "circular" and largest > size:
            raise ShapeError(
                f"{layer}: padding_mode='circular' wraps the input around once, so the padding "
                f"can be at most the input: padding {largest} on a {axis} of {size}; use "
                f"padding <= {size} or padding_mode='replicate'"
            )


def _channel_message(layer, shape: tuple[int, ...]) -> str:
    c, expected = shape[1], layer.in_channels
    text = (
        f"{layer}: expected {expected} input channels (N, {expected}, H, W), got {c} channels in "
        f"shape {shape}"
    )
    if shape[3] == expected:
        return text + (
            "; the array looks channels-last (N, H, W, C): transpose it with "
            "x.transpose(0, 3, 1, 2)"
        )
    return text + f"; use Conv2d({c}, {layer.out_channels}, ...) or feed {expected}-channel input"
