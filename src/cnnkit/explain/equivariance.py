"""``explain equivariance``: f(g(x)) against g'(f(x)) per layer, for shifts of k pixels."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from cnnkit.arch.convert import describe, network_text
from cnnkit.arch.trace import make_layer, trace
from cnnkit.data.memory import check_memory
from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.explain._format import _pair_text
from cnnkit.explain._inputs import _architecture
from cnnkit.nn.checks import positive_int
from cnnkit.nn.layer import Layer
from cnnkit.nn.modes import no_grad
from cnnkit.nn.probe import evaluating
from cnnkit.shapes import Field

EQUIVARIANCE_DEFAULT = (
    "INPUT(1x16x16) - CONV(D=4, F=3, P=1) - RELU - POOL(F=2) - CONV(D=4, F=4, S=2, P=1)"
)

AXES = ("width", "height", "both")
MAX_VALUES = 1 << 22  # input and layer outputs of one forward pass: explain is for small inputs


@dataclass(frozen=True)
class EquivarianceCell:
    shift: tuple[int, int]  # (kh, kw) input pixels
    output_shift: tuple[int, int]  # (mh, mw) output units compared against
    exact: bool  # k is a multiple of the cumulative stride J on every shifted axis
    error: float | None  # max |f(g(x)) - g'(f(x))|; None: no unit far enough from the borders
    compared: int  # output values compared

    def text(self) -> str:
        if self.error is None:
            return "n/a"
        return f"{self.error:.1e}" + ("" if self.exact else "*")


@dataclass(frozen=True)
class EquivarianceRow:
    index: int
    layer: str
    jump: tuple[int, int]
    receptive_field: tuple[int, int]
    offset: tuple[int, int]
    output_shape: tuple[int, ...]
    cells: tuple[EquivarianceCell, ...]

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "layer": self.layer,
            "jump": list(self.jump),
            "receptive_field": list(self.receptive_field),
            "offset": list(self.offset),
            "output_shape": list(self.output_shape),
            "cells": [
                {
                    "shift": list(cell.shift),
                    "output_shift": list(cell.output_shift),
                    "exact": cell.exact,
                    "error": cell.error,
                    "compared": cell.compared,
                }
                for cell in self.cells
            ],
        }


@dataclass(frozen=True, repr=False)
class EquivarianceExplanation(TextDisplay):
    architecture: str
    input_shape: tuple[int, int, int]
    axis: str
    seed: int
    shifts: tuple[int, ...]
    rows: tuple[EquivarianceRow, ...]
    skipped: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.equivariance/1",
            "architecture": self.architecture,
            "input_shape": list(self.input_shape),
            "axis": self.axis,
            "seed": self.seed,
            "shifts": list(self.shifts),
            "rows": [row.to_dict() for row in self.rows],
            "skipped": list(self.skipped),
        }

    def text(self) -> str:
        along = {"width": "the width", "height": "the height", "both": "both axes"}[self.axis]
        lines_word = {"width": "columns", "height": "rows", "both": "rows and columns"}[self.axis]
        c, h, w = self.input_shape
        lines = [
            "equivariance to translation: is f(g(x)) = g'(f(x)) layer by layer?",
            f"network: {self.architecture}",
            "f:  the network up to and including the layer of each row",
            f"g:  np.roll of a random {c}x{h}x{w} input (seed {self.seed}, float64) by k pixels "
            f"along {along}",
            "g': the same roll of the layer's output by k/J units (J: the layer's cumulative "
            "stride)",
            "cell: max |f(g(x)) - g'(f(x))| over the units whose receptive field (RF) lies "
            "inside the image",
            f"      and avoids the k wrapped-around {lines_word}",
            "",
        ]
        names = [f"{row.index} {row.layer}" for row in self.rows]
        name_width = max(len("layer"), *(len(name) for name in names))
        header = f"{'layer'.ljust(name_width)}  {'J':>5}  {'RF':>5}"
        header += "".join(f"  {f'k={k}':<9}" for k in self.shifts)
        lines.append(header.rstrip())
        for name, row in zip(names, self.rows, strict=True):
            text = (
                f"{name.ljust(name_width)}  {_pair_text(row.jump):>5}  "
                f"{_pair_text(row.receptive_field):>5}"
            )
            text += "".join(f"  {cell.text():<9}" for cell in row.cells)
            lines.append(text.rstrip())
        lines += [
            "",
            "* k is not a multiple of J: no whole shift of the output matches; compared with "
            "the closer of floor(k/J) and ceil(k/J) units",
        ]
        if any(cell.error is None for row in self.rows for cell in row.cells):
            lines.append("n/a: no unit is far enough from the borders for this shift")
        lines += [f"not measured: {text}" for text in self.skipped]
        return "\n".join(lines)


def _valid_units(count, shift, moved, field, jump, offset, size) -> np.ndarray:
    """Output indices u where unit u of f(g(x)) and unit u - moved of f(x) both read only
    image pixels, and the first avoids the ``shift`` wrapped-around ones."""
    units = np.arange(count)
    if shift == 0 and moved == 0:
        return units  # an axis that is not shifted: both sides are computed alike
    first = units * jump - offset
    before = (units - moved) * jump - offset
    ok = (first >= shift) & (first + field - 1 <= size - 1)
    ok &= (units - moved >= 0) & (before >= 0) & (before + field - 1 <= size - 1)
    return units[ok]


def _cell(shifted, base, shift, field, jump, offset, size_hw) -> EquivarianceCell:
    options = []
    for a in (0, 1):
        k, j = shift[a], jump[a]
        options.append([k // j] if k % j == 0 else [k // j, k // j + 1])
    exact = all(shift[a] % jump[a] == 0 for a in (0, 1))
    best = None

    def valid(a: int, moved: int) -> np.ndarray:
        count = base.shape[2 + a]
        return _valid_units(count, shift[a], moved, field[a], jump[a], offset[a], size_hw[a])

    for mh in options[0]:
        for mw in options[1]:
            rows, cols = valid(0, mh), valid(1, mw)
            if rows.size == 0 or cols.size == 0:
                continue
            a = shifted[:, :, rows[:, None], cols[None, :]]
            b = base[:, :, (rows - mh)[:, None], (cols - mw)[None, :]]
            error = float(np.max(np.abs(a - b)))
            if best is None or error < best.error:
                best = EquivarianceCell(shift, (mh, mw), exact, error, int(a.size))
    if best is None:
        return EquivarianceCell(shift, (options[0][0], options[1][0]), exact, None, 0)
    return best


def _spatial_prefix(layers, texts, shape):
    """The layers up to the first that mixes all positions (an FC, a FLATTEN), with each one's
    receptive field, jump and offset, its output shape, and what was left out."""
    field, current, kept = Field(), (1, *shape), []
    for index, layer in enumerate(layers):
        out = tuple(layer.output_shape(current))
        field = layer.field_after(field)
        if field is None or len(out) != 4:
            return kept, [f"layer {index} {texts[index]} and after (they mix all positions)"]
        kept.append((index, layer, field, out[1:]))
        current = out
    return kept, []


def _network(where: str, network, input_shape, rng):
    """(layers, their texts, input shape (C, H, W), architecture text): a live model as it is,
    or a string or Architecture built in float64 up to its first FLATTEN or FC."""
    if isinstance(network, Layer):
        shape = input_shape or getattr(network, "input_shape", None)
        if shape is None:
            raise ConfigError(f"{where}: give input_shape=(C, H, W) for this model")
        layers = network.sequence()
        shape, current, texts = tuple(shape), (1, *shape), []
        for layer in layers:
            texts.append(describe(layer, current))
            current = tuple(layer.output_shape(current))
        return layers, texts, shape, network_text(network, shape)
    arch = _architecture(where, network, input_shape)
    traced = trace(arch)
    traced.raise_problems()
    layers, texts = [], []
    for step in traced.steps:
        if len(step.output_shape) != 3:
            texts.append(step.spec.text())
            layers.append(step.layer)  # shape-only: never run, only reported as skipped
            break
        layers.append(make_layer(step.spec, (1, *step.input_shape), rng=rng, dtype=np.float64))
        texts.append(step.spec.text())
    return layers, texts, arch.input.shape, arch.text()


def explain_equivariance(
    network=EQUIVARIANCE_DEFAULT,
    *,
    input_shape=None,
    shifts: int = 4,
    axis: str = "width",
    seed: int = 0,
) -> EquivarianceExplanation:
    """Shift a random input by k = 1..``shifts`` pixels and measure, per layer, the largest
    difference between f(g(x)) and the matching shift of f(x) away from the borders.

    ``network``: an architecture string, built-in name or Architecture (built here, float64,
    weights from ``default_rng(seed)``), or a live model (with ``input_shape`` (C, H, W) or its
    own ``input_shape``), the user's own layers included: each layer says how it widens the
    receptive field (``field_after``). The input is ``standard_normal`` from the same
    generator, in the network's dtype.
    """
    where = "explain equivariance"
    if axis not in AXES:
        raise ConfigError(f"{where}: axis must be one of {', '.join(AXES)}, got {axis!r}")
    seed = positive_int(where, "seed", seed, minimum=0)
    shifts = positive_int(where, "shifts", shifts)
    rng = np.random.default_rng(seed)
    layers, texts, shape, text = _network(where, network, input_shape, rng)
    kept, skipped = _spatial_prefix(layers, texts, shape)
    if not kept:
        raise ConfigError(
            f"{where}: {text} has no layer that keeps positions (CONV, POOL, RELU) before its "
            "first FLATTEN or FC; e.g. INPUT(1x16x16) - CONV(D=4, F=3, P=1) - RELU"
        )
    c, h, w = shape
    _check_sizes(where, shape, [out for _, _, _, out in kept], shifts, axis)
    params = [p for _, layer, _, _ in kept for p in layer.parameters()]
    dtype = params[0].data.dtype if params else np.float64
    x = rng.standard_normal((1, c, h, w)).astype(dtype)
    columns = _measure(
        [layer for _, layer, _, _ in kept], [f for _, _, f, _ in kept], x, shifts, axis, (h, w)
    )
    rows = tuple(
        EquivarianceRow(
            index, texts[index], field.jump, field.size, field.offset, out, tuple(columns[n])
        )
        for n, (index, _, field, out) in enumerate(kept)
    )
    return EquivarianceExplanation(
        text, shape, axis, seed, tuple(range(1, shifts + 1)), rows, tuple(skipped)
    )


def _check_sizes(where: str, shape, outputs, shifts: int, axis: str) -> None:
    """Refuse shifts that move nothing or everything, and volumes beyond :data:`MAX_VALUES`
    (or the memory left) before the input is drawn."""
    c, h, w = shape
    limit = {"width": w, "height": h, "both": min(h, w)}[axis]
    if limit < 2:
        raise ConfigError(
            f"{where}: the {h}x{w} input is 1 pixel across ({axis}), so no shift moves "
            "anything; use an input of at least 2x2 (e.g. --input 1x16x16)"
        )
    if shifts >= limit:
        raise ConfigError(
            f"{where}: a shift of {shifts} pixels rolls the {h}x{w} input all the way around; "
            f"use --shifts {limit - 1} or fewer"
        )
    values = c * h * w + sum(math.prod(out) for out in outputs)
    if values > MAX_VALUES:
        raise ShapeError(
            f"{where}: the {c}x{h}x{w} input and the layers' outputs are {values:,} values, "
            f"more than explain measures ({MAX_VALUES:,}); use a smaller --input such as "
            "1x32x32 (equivariance shows on small inputs as on large ones)"
        )
    check_memory(
        where,
        2 * 8 * values,
        f"the outputs of f(x) and f(g(x)) ({values:,} values each, float64)",
        "use a smaller --input",
    )


def _measure(layers, fields, x, shifts: int, axis: str, size_hw) -> list[list[EquivarianceCell]]:
    def outputs(batch):
        """Each layer's output in evaluation mode (fixed running statistics, no dropout
        masks: the layer as it predicts), each put back in its mode afterwards."""
        result = []
        with no_grad(), contextlib.ExitStack() as stack:
            for layer in layers:
                stack.enter_context(evaluating(layer))
            for layer in layers:
                batch = layer.forward(batch)
                result.append(batch)
        return result

    base = outputs(x)
    columns: list[list[EquivarianceCell]] = [[] for _ in layers]
    for k in range(1, shifts + 1):
        shift = {"width": (0, k), "height": (k, 0), "both": (k, k)}[axis]
        moved = outputs(np.roll(x, shift, axis=(2, 3)))
        for n, field in enumerate(fields):
            columns[n].append(
                _cell(moved[n], base[n], shift, field.size, field.jump, field.offset, size_hw)
            )
    return columns
