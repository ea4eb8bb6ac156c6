"""Checked inputs of the explanations: volumes, numbers, the one-filter conv, architectures."""

from __future__ import annotations

import json
import math

import numpy as np

from cnnkit import shapes
from cnnkit.arch.convert import architecture_of
from cnnkit.arch.specs import Architecture, parse
from cnnkit.data._files import read_bounded
from cnnkit.data.memory import check_memory
from cnnkit.errors import DataError, ShapeError
from cnnkit.nn.checks import positive_int
from cnnkit.nn.conv import Conv2d
from cnnkit.nn.layer import Layer

MAX_UNITS = 4096  # explain is for small examples; cnnkit summary handles real layers
MAX_VALUES = 1_000_000  # the most numbers in one array of an example: x, padded x, w
MAX_PRODUCTS = 4_000_000  # the most products the units of one example add up, one by one
MAX_VALUES_BYTES = 1 << 22  # 4 MiB: the most read from an --values file


def _as_volume(where: str, name: str, values) -> np.ndarray:
    """(C, H, W) float64 from (C, H, W) or (H, W) numbers; finite values only."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: {name} must be nested lists of numbers with rows of equal length "
            "(C x H x W, or H x W for one channel)"
        ) from None
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise ShapeError(
            f"{where}: {name} must be C x H x W (or H x W for one channel), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise DataError(f"{where}: {name} holds NaN or infinity; give finite numbers")
    return array


def _scalar(where: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"{where}: {name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise DataError(f"{where}: {name} must be finite, got {value!r}")
    return float(value)


def _conv_layer(x: np.ndarray, w: np.ndarray, b: float, stride: int, padding: int) -> Conv2d:
    """The engine's Conv2d with one filter set to ``w`` and ``b`` (float64)."""
    conv = Conv2d(
        x.shape[0],
        1,
        w.shape[1:],
        stride=stride,
        padding=padding,
        dtype=np.float64,
        rng=np.random.default_rng(0),
    )
    conv.weight.data[0] = w
    conv.bias.data[0] = b
    return conv


def _checked_conv(where: str, x, w, stride, padding):
    """Validated (x, w, stride, padding, (oh, ow)) for a one-filter conv over x."""
    x = _as_volume(where, "x", x)
    w = _as_volume(where, "w", w)
    if w.shape[0] != x.shape[0]:
        raise ShapeError(
            f"{where}: the filter w has {w.shape[0]} channels but the input x has "
            f"{x.shape[0]}; a filter spans the whole input depth, give w as "
            f"{x.shape[0]} x F x F"
        )
    stride = positive_int(where, "stride", stride)
    padding = positive_int(where, "padding", padding, minimum=0)
    oh, ow = _output_hw(where, x.shape[1:], w.shape[1:], stride, padding)
    _check_units(where, (oh, ow))
    c, h, width = x.shape
    padded = (c, h + 2 * padding, width + 2 * padding)
    _check_values(where, "the zero-padded input", padded, "a smaller --padding or --input")
    products = oh * ow * w.size
    if products > MAX_PRODUCTS:
        raise ShapeError(
            f"{where}: {oh}x{ow} units of {'x'.join(map(str, w.shape))} products each are "
            f"{products:,} products, more than explain works out one by one ({MAX_PRODUCTS:,}); "
            "use a smaller --filter, fewer --channels or a larger --stride"
        )
    check_memory(
        where,
        8 * (x.size + w.size + math.prod(padded)),
        "x, w and the zero-padded x as float64",
        "use a smaller example",
    )
    return x, w, stride, padding, (oh, ow)


def _check_units(where: str, output_hw) -> None:
    oh, ow = output_hw
    if oh * ow > MAX_UNITS:
        raise ShapeError(
            f"{where}: {oh}x{ow} = {oh * ow} output units are more than explain handles "
            f"({MAX_UNITS}); use a small example, or cnnkit summary for real layer sizes"
        )


def _check_values(where: str, name: str, shape, fix: str) -> None:
    count = math.prod(shape)
    if count > MAX_VALUES:
        raise ShapeError(
            f"{where}: {name} would be {'x'.join(map(str, shape))} = {count:,} values, more "
            f"than explain handles ({MAX_VALUES:,}); use {fix} (explain is for small "
            "examples; cnnkit summary handles real layer sizes)"
        )


def check_example(where: str, size: int, channels: int, kernel: int, output_hw=None) -> None:
    """Refuse, before anything is drawn, a random example (a CxIxI input, a CxFxF filter and,
    for backprop, an OHxOW upstream gradient) beyond :data:`MAX_VALUES` or the memory left."""
    _check_values(where, "the input x", (channels, size, size), "a smaller --input or --channels")
    _check_values(
        where, "the filter w", (channels, kernel, kernel), "a smaller --filter or --channels"
    )
    units = 0
    if output_hw is not None:
        _check_units(where, output_hw)
        units = math.prod(output_hw)
    values = channels * (size * size + kernel * kernel) + units
    check_memory(where, 8 * values, "the example's numbers as float64", "use a smaller example")


def _output_hw(where: str, input_hw, kernel, stride: int, padding: int) -> tuple[int, int]:
    """(OH, OW), or a ShapeError with the arithmetic and fixes in the lecture's letters."""
    for axis, size, k in zip(("height", "width"), input_hw, kernel, strict=True):
        problem = shapes.axis_problem(axis, size, k, stride, padding)
        if problem is None:
            continue
        label = "" if input_hw[0] == input_hw[1] and kernel[0] == kernel[1] else f"{axis}: "
        fixes = " or ".join(
            f"{shapes.LETTERS[fix.name]}={fix.value} (-> {fix.output})" for fix in problem.fixes
        )
        advice = f"; use {fixes}" if fixes else ""
        raise ShapeError(
            f"{where} (I={size}, F={k}, S={stride}, P={padding}): {label}"
            f"{problem.describe()}{advice}"
        )
    return tuple(  # type: ignore[return-value]
        (size + 2 * padding - k) // stride + 1 for size, k in zip(input_hw, kernel, strict=True)
    )


def load_values(path: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Read ``{"x": [[[...]]], "w": [[[...]]], "b": number}`` for ``explain conv --values``."""
    where = "explain conv --values"
    try:
        raw = read_bounded(
            path,
            MAX_VALUES_BYTES,
            "a values file may hold",
            "explain is for small examples; give x, w and b of a few thousand numbers",
        )
        text = raw.decode("utf-8")
    except DataError as error:
        raise DataError(f"{where}: cannot read {error}") from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"{where}: {path} is not UTF-8 text (byte {error.start}); give a JSON file"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{where}: {path} is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    example = '{"x": [[[...]]], "w": [[[...]]], "b": 1}'
    if not isinstance(document, dict):
        raise DataError(f"{where}: {path} must hold one object such as {example}")
    unknown = sorted(set(document) - {"x", "w", "b"})
    if unknown:
        raise DataError(
            f'{where}: {path} has unknown key "{unknown[0]}"; expected "x", "w" and "b", '
            f"as in {example}"
        )
    for key in ("x", "w"):
        if key not in document:
            raise DataError(f'{where}: {path} has no "{key}"; expected an object such as {example}')
    x = _as_volume(f"{where} {path}", '"x"', document["x"])
    w = _as_volume(f"{where} {path}", '"w"', document["w"])
    b = _scalar(f"{where} {path}", '"b"', document.get("b", 0.0))
    return x, w, b


def _architecture(where: str, spec, input_shape=None) -> Architecture:
    """An Architecture from a string, an Architecture, or a live model (a trained run's)."""
    if isinstance(spec, Layer):
        return architecture_of(spec, input_shape)
    arch = spec if isinstance(spec, Architecture) else parse(spec)
    return arch.with_input(input_shape)
