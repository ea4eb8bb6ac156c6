"""``cnnkit explain``: the lecture's ideas worked out on real numbers, by the engine itself.

Every explanation is computed in two ways: the engine's own layers produce the numbers
(``Conv2d.forward`` for the output, ``Conv2d.backward`` for the gradients, the real layers for
equivariance), and this module writes out the arithmetic that reproduces them, term by term, so
a reader can check each number by hand. Each ``explain_*`` function returns a frozen dataclass
with ``text()`` (what the terminal shows) and ``to_dict()`` (JSON-able, for ``--json``).

>>> e = explain_conv(LECTURE_X, LECTURE_W, LECTURE_B, stride=2, padding=1)
>>> e.output.tolist()
[[3.0, 4.0, 1.0], [4.0, 1.0, 6.0], [3.0, 3.0, 4.0]]
>>> unit = e.units[1]
>>> unit.region, unit.channel_sums, unit.value
('x[:, 0:3, 2:5]', (1.0, 2.0, 0.0), 4.0)
>>> explain_sharing("alexnet-conv1").layers[0].unshared
105705600

Topics (``cnnkit explain TOPIC``, see :func:`add_explain_parser`)
------------------------------------------------------------------
conv
    :func:`explain_conv`: the zero-padded input per channel, the filter and bias, then every
    computational unit's region and dot product, building the output grid unit by unit. The
    default is the lecture's worked example (a consistent 5x5x3 input, its filter F0, b = 1,
    S=2, P=1 -> [[3, 4, 1], [4, 1, 6], [3, 3, 4]]). ``--seed`` draws small integers (input
    0..2, filter and bias -1..1, like the lecture's); ``--values FILE`` reads
    ``{"x": CxHxW or HxW, "w": CxFxF or FxF, "b": number}`` (``b`` defaults to 0). Printing is
    refused past a 12x12 padded input, 4 channels or 49 output units; ``--png FILE`` draws
    the padded input, the filter and the output instead (needs matplotlib).
shape
    :func:`explain_shape`: (I - F + 2P)/S + 1 step by step, where the filter starts, and the
    verdict and fixes in the same words as ``cnnkit shape``. Exit code 1 when impossible.
sharing
    :func:`explain_sharing`: per CONV layer, D*(F*F*C + 1) parameters with sharing against
    OH*OW*D*(F*F*C + 1) without; the ratio is OH*OW, the units in one depth slice.
sparse
    :func:`explain_sparse`: one unit of a CONV layer reads F*F*C inputs; a fully connected
    unit would read all H*W*C; and which input region unit (i, j) reads.
equivariance
    :func:`explain_equivariance`: max |f(g(x)) - g'(f(x))| per layer and shift, where g rolls a
    random input by k pixels (``np.roll``) and g' rolls the layer's output by k/J units, J being
    the layer's cumulative stride. Only units whose receptive field lies inside the image and
    avoids the k wrapped-around columns (rows) are compared: unit u of a layer with receptive
    field R, jump J and cumulative padding offset O reads input pixels u*J - O .. u*J - O + R - 1
    (r = r_prev + (F - 1)*j_prev, j = j_prev*S, O = O_prev + P*j_prev), so it is compared when
    that range lies in k .. size - 1 for f(g(x)) and unit u - m's range lies in 0 .. size - 1
    for f(x). Axes that are not shifted are compared everywhere. When k is not a multiple of J
    there is no exact output shift; the cell is compared against the closer of floor(k/J) and
    ceil(k/J) (the smaller error) and marked ``exact: false``. Layers from the first FLATTEN
    or FC on are not measured: they mix all positions.
backprop
    :func:`explain_backprop`: on a tiny conv layer, every unit's contribution
    dy[p, q] * x[region(p, q)][i, j] to one shared weight w[0, c, i, j], their sum, and the
    engine's ``weight.grad`` (and the bias: the sum of dy against ``bias.grad``).

JSON (``to_dict()``; every document has ``"schema"``; keys are only added under a new schema)
------------------------------------------------------------------------------------------------
``cnnkit.explain.conv/1``: ``source`` (str), ``layer`` (the engine's Conv2d repr), ``stride``,
``padding`` (int), ``x`` (C x H x W lists), ``padded`` (C x (H+2P) x (W+2P)), ``w``
(C x KH x KW), ``b`` (float), ``formula`` ({"height": str, "width": str}), ``output``
(OH x OW, the engine's), ``units``: [{``out``: [i, j], ``rows``: [start, stop], ``cols``:
[start, stop] (of the padded input, stop exclusive), ``region`` (str, e.g.
"x[:, 0:3, 2:5]"), ``inputs`` (C x KH x KW: the padded values read), ``channel_sums``
([sum(inputs[c] * w[c]) per channel]), ``sum`` (sum(channel_sums) + b, by hand), ``value``
(the engine's out[i, j])}].

``cnnkit.explain.shape/1``: ``I``, ``F``, ``S``, ``P`` (int), ``formula`` (str), ``span``
(I - F + 2P), ``exact`` (float), ``possible`` (bool), ``output`` (int or null; with --floor the
floored size), ``floor`` (bool), ``positions`` ([first padded pixel of each unit], at most 64),
``unread`` (padded pixels after the last window), ``verdict`` (str, as ``cnnkit shape`` prints
it), ``advice`` (str or null), ``fixes`` ([{``letter``, ``value``, ``output``}]).

``cnnkit.explain.sharing/1``: ``architecture`` (str), ``layers``: [{``index``, ``layer``,
``input_shape`` [C, H, W], ``output_shape`` [D, OH, OW], ``per_filter`` (F*F*C + 1),
``shared``, ``units`` (OH*OW), ``unshared``, ``shared_formula``, ``unshared_formula`` (str)}],
``shared``, ``unshared`` (totals, int).

``cnnkit.explain.sparse/1``: ``architecture``, ``index``, ``layer``, ``input_shape``,
``output_shape``, ``connections`` (F*F*C), ``fc_connections`` (H*W*C), ``fraction`` (float),
``units`` (OH*OW*D), ``layer_connections``, ``fc_layer_connections``, ``unit`` [i, j],
``rows``, ``cols`` ([first, last] input pixels read, may reach into the padding: < 0 or
>= size).

``cnnkit.explain.equivariance/1``: ``architecture``, ``input_shape``, ``axis`` ("width",
"height" or "both"), ``seed``, ``shifts`` ([k, ...]), ``rows``: [{``index``, ``layer``,
``jump`` [jh, jw], ``receptive_field`` [rh, rw], ``offset`` [oh, ow], ``output_shape``
[D, OH, OW], ``cells``: [{``shift`` [kh, kw], ``output_shift`` [mh, mw], ``exact`` (bool),
``error`` (float or null when no unit is far enough from the borders), ``compared`` (number of
output values compared)}]}], ``skipped`` ([str]: layers not measured).

``cnnkit.explain.backprop/1``: ``source``, ``layer``, ``stride``, ``padding``, ``x``, ``padded``,
``w``, ``b``, ``dy`` (OH x OW), ``weight`` [0, c, i, j], ``terms``: [{``out`` [p, q], ``dy``,
``input`` [c, row, col] (padded), ``x``, ``contribution``}], ``sum``, ``weight_grad`` (engine),
``bias_sum``, ``bias_grad`` (engine), ``grad`` (the engine's whole weight.grad[0], C x KH x KW).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np

from cnnkit import shapes
from cnnkit.architecture import (
    Architecture,
    ConvSpec,
    FCSpec,
    FlattenSpec,
    PoolSpec,
    architecture_of,
    trace,
)
from cnnkit.errors import ConfigError, DataError, ShapeError
from cnnkit.layers import Conv2d, Flatten, Linear
from cnnkit.layers.base import positive_int
from cnnkit.spec import parse


def _frozen(values) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


# The lecture's worked example with a consistent 3-channel 5x5 input (the slides list the second
# channel twice, so they cannot reproduce their printed output); channels 0 and 1 are the
# lecture's. The filter is the lecture's F0, channel by channel, with a bias of 1.
LECTURE_X = _frozen(
    [
        [[1, 1, 0, 0, 2], [1, 1, 0, 1, 0], [1, 1, 1, 2, 1], [1, 0, 2, 0, 2], [0, 0, 2, 1, 0]],
        [[0, 0, 2, 0, 1], [1, 1, 0, 1, 1], [2, 0, 2, 2, 0], [1, 1, 1, 2, 0], [0, 1, 2, 2, 0]],
        [[2, 1, 0, 1, 2], [0, 0, 1, 2, 1], [1, 2, 0, 0, 1], [2, 0, 1, 1, 0], [0, 1, 2, 0, 1]],
    ]
)
LECTURE_W = _frozen(
    [
        [[1, 1, 1], [1, 0, -1], [-1, 0, 1]],
        [[-1, 0, -1], [0, 1, 0], [0, 0, 0]],
        [[1, 1, -1], [0, 1, 0], [-1, 0, 0]],
    ]
)
LECTURE_B = 1.0
LECTURE_SOURCE = "the lecture's worked example"

EQUIVARIANCE_DEFAULT = (
    "INPUT(1x16x16) - CONV(D=4, F=3, P=1) - RELU - POOL(F=2) - CONV(D=4, F=4, S=2, P=1)"
)
MAX_PRINT_SIDE = 12  # padded input height/width that still prints as a readable grid
MAX_PRINT_CHANNELS = 4
MAX_PRINT_UNITS = 49
MAX_UNITS = 4096  # explain is for small examples; cnnkit summary handles real layers
LINE = 100  # printed lines stay within this many characters where they can


# ---------------------------------------------------------------------------------------------
# Formatting


def _num(value) -> str:
    """``3``, ``-1``, ``0.25``: whole numbers without a decimal point, others to 4 digits."""
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))  # also turns -0.0 into 0
    return f"{value:.4g}"


def _factor(value) -> str:
    """A number as a factor of a product: negatives in parentheses, ``1*(-1)``."""
    text = _num(value)
    return f"({text})" if text.startswith("-") else text


def _sum_text(values) -> str:
    """``1 + 2 - 3``: the terms of a sum as a reader writes them."""
    parts = []
    for index, value in enumerate(values):
        text = _num(value)
        if index == 0:
            parts.append(text)
        elif text.startswith("-"):
            parts.append(f"- {text[1:]}")
        else:
            parts.append(f"+ {text}")
    return " ".join(parts)


def _article(text: str) -> str:
    """``a 3x3`` but ``an 11x11`` and ``an 8x8``."""
    spoken_vowel = text.startswith("8") or text in ("11", "18") or text.startswith(("11", "18"))
    return "an" if spoken_vowel and not text.startswith(("110", "180")) else "a"


def _thousands(value: int) -> str:
    return f"{value:,}"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _grid(values, width: int | None = None) -> list[str]:
    """Rows of right-aligned entries; ``values`` holds numbers or ready-made strings."""
    texts = [[v if isinstance(v, str) else _num(v) for v in row] for row in values]
    if width is None:
        width = max(2, *(len(text) for row in texts for text in row))
    return [" ".join(text.rjust(width) for text in row) for row in texts]


def _width(*arrays) -> int:
    return max(2, *(len(_num(v)) for array in arrays for v in np.asarray(array).flat))


def _side_by_side(blocks: list[tuple[str, list[str]]], gap: int = 4) -> list[str]:
    """Titled blocks next to each other, starting a new row of blocks past :data:`LINE`."""

    def width(block) -> int:
        title, body = block
        return max(len(title), *(len(line) for line in body))

    rows: list[list[tuple[str, list[str]]]] = [[]]
    used = 0
    for block in blocks:
        if rows[-1] and used + gap + width(block) > LINE:
            rows.append([])
            used = 0
        used += width(block) + (gap if rows[-1] else 0)
        rows[-1].append(block)
    lines: list[str] = []
    for row in rows:
        if lines:
            lines.append("")
        height = 1 + max(len(body) for _, body in row)
        for k in range(height):
            cells = []
            for block in row:
                title, body = block
                cell = title if k == 0 else (body[k - 1] if k - 1 < len(body) else "")
                cells.append(cell.ljust(width(block)))
            lines.append((" " * gap).join(cells).rstrip())
    return lines


def _span(letter: str, stride: int, size: int) -> str:
    """``2i:2i+3`` (or ``i:i+3`` at stride 1): the slice unit ``i`` reads."""
    start = letter if stride == 1 else f"{stride}{letter}"
    return f"{start}:{start}+{size}"


def _offset(letter: str, stride: int, offset: int) -> str:
    """``2p+1``, ``p``: where unit ``p`` meets filter position ``offset``."""
    start = letter if stride == 1 else f"{stride}{letter}"
    return start if offset == 0 else f"{start}+{offset}"


def _pair_text(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _check_printable(where: str, padded_hw, channels: int, output_hw, *, png: bool) -> None:
    """Refuse a printout too large to read, pointing at ``--png`` where there is one."""
    picture = ", or --png FILE for a picture" if png else ""
    ph, pw = padded_hw
    if max(ph, pw) > MAX_PRINT_SIDE:
        raise ShapeError(
            f"{where}: the zero-padded input is {ph}x{pw}, too large to print (at most "
            f"{MAX_PRINT_SIDE}x{MAX_PRINT_SIDE}); use a smaller --input or --padding{picture}"
        )
    if channels > MAX_PRINT_CHANNELS:
        raise ShapeError(
            f"{where}: {channels} channels are too many to print (at most "
            f"{MAX_PRINT_CHANNELS}); use --channels {MAX_PRINT_CHANNELS} or fewer{picture}"
        )
    oh, ow = output_hw
    if oh * ow > MAX_PRINT_UNITS:
        raise ShapeError(
            f"{where}: {oh}x{ow} = {oh * ow} output units are too many to print (at most "
            f"{MAX_PRINT_UNITS}); use a larger --stride or a smaller --input{picture}"
        )


# ---------------------------------------------------------------------------------------------
# Inputs


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
    if oh * ow > MAX_UNITS:
        raise ShapeError(
            f"{where}: {oh}x{ow} = {oh * ow} output units are more than explain handles "
            f"({MAX_UNITS}); use a small example, or cnnkit summary for real layer sizes"
        )
    return x, w, stride, padding, (oh, ow)


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
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise DataError(f"{where}: cannot read {path}: {error.strerror or error}") from None
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


def random_conv_example(
    seed: int, size: int = 5, channels: int = 3, kernel: int = 3
) -> tuple[np.ndarray, np.ndarray, float]:
    """Small integers like the lecture's: input 0..2, filter and bias -1..1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(channels, size, size)).astype(np.float64)
    w = rng.integers(-1, 2, size=(channels, kernel, kernel)).astype(np.float64)
    b = float(rng.integers(-1, 2))
    return x, w, b


# ---------------------------------------------------------------------------------------------
# explain conv


@dataclass(frozen=True)
class ConvUnit:
    """One computational unit: the region it reads and its dot product, by hand and engine."""

    position: tuple[int, int]  # (i, j) in the output grid
    rows: tuple[int, int]  # rows of the padded input read: start, stop (exclusive)
    cols: tuple[int, int]
    channel_sums: tuple[float, ...]  # sum(x[c, rows, cols] * w[c]), one per channel
    total: float  # sum(channel_sums) + b, added here term by term
    value: float  # out[i, j] from the engine's Conv2d.forward

    @property
    def region(self) -> str:
        (r0, r1), (c0, c1) = self.rows, self.cols
        return f"x[:, {r0}:{r1}, {c0}:{c1}]"


@dataclass(frozen=True, eq=False)
class ConvExplanation:
    """The lecture's worked example for any small input: see :func:`explain_conv`."""

    x: np.ndarray  # (C, H, W)
    w: np.ndarray  # (C, KH, KW): the one filter
    b: float
    stride: int
    padding: int
    padded: np.ndarray  # (C, H + 2P, W + 2P)
    output: np.ndarray  # (OH, OW): the engine's
    units: tuple[ConvUnit, ...]  # row by row
    layer: str  # the engine layer's repr
    source: str

    def formulas(self) -> tuple[str, str]:
        h, w = self.x.shape[1:]
        kh, kw = self.w.shape[1:]
        s, p = self.stride, self.padding
        oh, ow = self.output.shape
        return (
            f"{shapes.formula(h, kh, s, p)} = {oh}",
            f"{shapes.formula(w, kw, s, p)} = {ow}",
        )

    def to_dict(self) -> dict:
        height, width = self.formulas()
        units = []
        for unit in self.units:
            (r0, r1), (c0, c1) = unit.rows, unit.cols
            units.append(
                {
                    "out": list(unit.position),
                    "rows": list(unit.rows),
                    "cols": list(unit.cols),
                    "region": unit.region,
                    "inputs": self.padded[:, r0:r1, c0:c1].tolist(),
                    "channel_sums": list(unit.channel_sums),
                    "sum": unit.total,
                    "value": unit.value,
                }
            )
        return {
            "schema": "cnnkit.explain.conv/1",
            "source": self.source,
            "layer": self.layer,
            "stride": self.stride,
            "padding": self.padding,
            "x": self.x.tolist(),
            "padded": self.padded.tolist(),
            "w": self.w.tolist(),
            "b": self.b,
            "formula": {"height": height, "width": width},
            "output": self.output.tolist(),
            "units": units,
        }

    def text(self, *, verbose: bool = False) -> str:
        """The padded input, the filter, every unit's dot product and the output grid.

        The first unit is written product by product; the others as one sum per channel plus
        b, unless ``verbose``. Raises :class:`ShapeError` when too large to print.
        """
        c, h, w = self.x.shape
        kh, kw = self.w.shape[1:]
        oh, ow = self.output.shape
        ph, pw = self.padded.shape[1:]
        _check_printable("explain conv", (ph, pw), c, (oh, ow), png=True)
        s, p = self.stride, self.padding
        height, width = self.formulas()
        if height.split(" = ")[0] == width.split(" = ")[0]:
            size = f"(I - F + 2P)/S + 1 = {height}"
        else:
            size = f"height {height}, width {width}"
        ring = f"a ring of P={p} zeros around each {h}x{w} channel" if p else "P=0, no padding"
        lines = [
            f"{self.source}: a {h}x{w}x{c} input, one {kh}x{kw}x{c} filter and a bias, "
            f"S={s}, P={p}",
            f"output size: {size}, so {oh}x{ow} = {oh * ow} computational units",
            "",
            f"zero-padded input x, {ph}x{pw} per channel ({ring}):",
        ]
        cell = _width(self.padded)
        lines += _side_by_side([(f"x[{k}, :, :]", _grid(self.padded[k], cell)) for k in range(c)])
        lines += ["", f"filter w, {kh}x{kw} per channel, and bias b = {_num(self.b)}:"]
        cell = _width(self.w)
        lines += _side_by_side([(f"w[{k}, :, :]", _grid(self.w[k], cell)) for k in range(c)])
        rows, cols = _span("i", s, kh), _span("j", s, kw)
        how = "" if verbose else "; --verbose writes every product"
        lines += [
            "",
            f"computational units: out[i,j] = sum(x[:, {rows}, {cols}] * w) + b",
            f"(rows and columns of the padded x; one sum per channel, then b{how})",
            "",
        ]
        cell = _width(self.output)
        for unit in self.units:
            i, j = unit.position
            head = f"out[{i},{j}] = sum({unit.region} * w) + b"
            if verbose or unit.position == (0, 0):
                lines += self._products(unit, head)
            else:
                terms = _sum_text([*unit.channel_sums, self.b])
                lines.append(f"{head} = {terms} = {self._result(unit)}")
            if j == ow - 1 and i < oh - 1:
                so_far = [[v if r <= i else "." for v in row] for r, row in enumerate(self.output)]
                for n, line in enumerate(_grid(so_far, cell)):
                    lines.append(("    out so far:  " if n == 0 else " " * 17) + line)
        lines += ["", f"output out ({self.layer}.forward, the engine's), {oh}x{ow}:"]
        lines += _grid(self.output, cell)
        return "\n".join(lines)

    def _result(self, unit: ConvUnit) -> str:
        if _close(unit.total, unit.value):
            return _num(unit.value)
        return f"{_num(unit.total)} (but the engine says {_num(unit.value)})"

    def _products(self, unit: ConvUnit, head: str) -> list[str]:
        """One unit written product by product, a line (or a block) per channel."""
        indent = " " * head.index("=")
        (r0, r1), (c0, c1) = unit.rows, unit.cols
        products = [
            [
                " + ".join(f"{_factor(a)}*{_factor(b)}" for a, b in zip(xs, ws, strict=True))
                for xs, ws in zip(self.padded[k, r0:r1, c0:c1], self.w[k], strict=True)
            ]
            for k in range(len(unit.channel_sums))
        ]  # per channel, per filter row
        wrap = any(len(" + ".join(rows)) > LINE - 30 for rows in products)
        entries: list[tuple[list[str], str]] = []
        for k, rows in enumerate(products):
            if wrap and len(rows) > 1:  # one line per filter row
                body = [f"({rows[0]} +"] + [f" {row} +" for row in rows[1:-1]] + [f" {rows[-1]})"]
            else:
                body = ["(" + " + ".join(rows) + ")"]
            entries.append((body, f"x[{k}] * w[{k}] = {_num(unit.channel_sums[k])}"))
        entries.append(([_factor(self.b)], "b"))
        width = max(len(line) for body, _ in entries for line in body)
        lines = [head]
        for n, (body, note) in enumerate(entries):
            for m, line in enumerate(body):
                sign = ("=" if n == 0 else "+") if m == 0 else " "
                text = f"{indent}{sign} {line}"
                if m == len(body) - 1:
                    text = f"{text.ljust(len(indent) + 2 + width)}   <- {note}"
                lines.append(text)
        terms = _sum_text([*unit.channel_sums, self.b])
        lines.append(f"{indent}= {terms} = {self._result(unit)}")
        return lines


def explain_conv(
    x, w, b: float = 0.0, *, stride: int = 1, padding: int = 0, source: str = "explain conv"
) -> ConvExplanation:
    """Every computational unit of one filter ``w`` (C, F, F) over ``x`` (C, H, W).

    The output comes from the engine's :class:`~cnnkit.layers.Conv2d` (float64); each unit's
    channel sums are added here product by product, in the order they are printed, so
    ``unit.total`` reproduces ``unit.value`` (exactly, for the integer examples).
    """
    where = "explain conv"
    x, w, stride, padding, (oh, ow) = _checked_conv(where, x, w, stride, padding)
    b = _scalar(where, "b", b)
    conv = _conv_layer(x, w, b, stride, padding)
    output = conv.forward(x[None])[0, 0]
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[1:]
    units = []
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride, j * stride
            region = padded[:, r0 : r0 + kh, c0 : c0 + kw]
            sums = tuple(
                sum(float(a) * float(v) for a, v in zip(region[k].flat, w[k].flat, strict=True))
                for k in range(x.shape[0])
            )
            total = sum(sums) + b
            units.append(
                ConvUnit((i, j), (r0, r0 + kh), (c0, c0 + kw), sums, total, float(output[i, j]))
            )
    for array in (x, w, padded, output):
        array.setflags(write=False)
    return ConvExplanation(
        x, w, b, stride, padding, padded, output, tuple(units), repr(conv), source
    )


def write_conv_png(explanation: ConvExplanation, path: str) -> None:
    """Draw the padded input, the filter and the output grid (needs matplotlib)."""
    where = "explain conv --png"
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ConfigError(
            f"{where}: matplotlib is not installed; pip install cnnkit[viz] "
            "(or pip install matplotlib)"
        ) from None
    e = explanation
    c = e.x.shape[0]
    kh, kw = e.w.shape[1:]
    columns = max(c, 2)
    figure = Figure(figsize=(2.6 * columns, 8.0), layout="constrained")
    axes = figure.subplots(3, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()

    def draw(ax, values, title, annotate):
        ax.set_axis_on()
        bound = max(float(np.abs(values).max()), 1.0)
        ax.imshow(values, cmap="coolwarm", vmin=-bound, vmax=bound)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if annotate:
            for (r, q), value in np.ndenumerate(values):
                ax.text(q, r, _num(value), ha="center", va="center", fontsize=7)

    annotate = max(e.padded.shape[1:]) <= 16
    (r0, r1), (c0, c1) = e.units[0].rows, e.units[0].cols
    h, w = e.x.shape[1:]
    for k in range(c):
        draw(axes[0, k], e.padded[k], f"padded x[{k}] (P={e.padding})", annotate)
        if e.padding:  # the image inside its ring of zeros
            axes[0, k].add_patch(
                Rectangle((e.padding - 0.5,) * 2, w, h, fill=False, ec="gray", ls="--", lw=1)
            )
        axes[0, k].add_patch(
            Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ec="black", lw=2)
        )
        draw(axes[1, k], e.w[k], f"w[{k}]", max(kh, kw) <= 16)
    draw(axes[2, 0], e.output, f"out = conv(x) + b (b = {_num(e.b)}, S={e.stride})", annotate)
    axes[2, 0].add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="black", lw=2))
    axes[2, 1].text(
        0.0,
        0.5,
        f"{e.source}\nthe outlined region gives out[0,0]\n{e.layer}",
        fontsize=8,
        va="center",
    )
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise DataError(f"{where}: cannot write {path}: {error.strerror or error}") from None


# ---------------------------------------------------------------------------------------------
# explain shape


@dataclass(frozen=True)
class ShapeExplanation:
    """(I - F + 2P)/S + 1 evaluated step by step, with the verdict of ``cnnkit shape``."""

    size: int
    kernel: int
    stride: int
    padding: int
    floor: bool
    problem: shapes.AxisProblem | None

    @property
    def formula(self) -> str:
        return shapes.formula(self.size, self.kernel, self.stride, self.padding)

    @property
    def span(self) -> int:
        return self.size + 2 * self.padding - self.kernel

    @property
    def exact(self) -> float:
        return self.span / self.stride + 1

    @property
    def possible(self) -> bool:
        return self.problem is None or (self.floor and not self.problem.too_large)

    @property
    def output(self) -> int | None:
        return self.span // self.stride + 1 if self.possible else None

    @property
    def positions(self) -> list[int]:
        """The first padded pixel of every window that fits."""
        if self.span < 0:
            return []
        return list(range(0, self.span + 1, self.stride))

    @property
    def unread(self) -> int:
        return self.span % self.stride if self.span >= 0 else 0

    def verdict(self) -> tuple[str, str | None]:
        """The lines ``cnnkit shape`` prints: the verdict, and the advice when impossible."""
        problem = self.problem
        if problem is None:
            n = self.output
            return f"{self.formula} = {n}: possible, {n} units along this axis", None
        if self.floor and not problem.too_large:
            return (
                f"{self.formula} = {_num(problem.exact)} -> floor "
                f"{problem.floor_output} (as PyTorch): the last {problem.dropped} of the "
                f"{problem.padded_size} padded input positions are never read",
                None,
            )
        return f"{problem.describe()}: impossible", problem.advice(letters=True)

    def to_dict(self) -> dict:
        verdict, advice = self.verdict()
        fixes = self.problem.fixes if self.problem is not None else ()
        return {
            "schema": "cnnkit.explain.shape/1",
            "I": self.size,
            "F": self.kernel,
            "S": self.stride,
            "P": self.padding,
            "formula": self.formula,
            "span": self.span,
            "exact": self.exact,
            "possible": self.possible,
            "output": self.output,
            "floor": self.floor,
            "positions": self.positions[:64],
            "unread": self.unread,
            "verdict": verdict,
            "advice": advice,
            "fixes": [
                {"letter": shapes.LETTERS[fix.name], "value": fix.value, "output": fix.output}
                for fix in fixes
            ],
        }

    def text(self) -> str:
        i, f, s, p = self.size, self.kernel, self.stride, self.padding
        lead = "units along one axis = "
        pad = " " * (len(lead) - 2)
        lines = [
            f"{lead}(I - F + 2P)/S + 1   with I={i}, F={f}, S={s}, P={p}",
            f"{pad}= {self.formula}",
            f"{pad}= {self.span}/{s} + 1",
            f"{pad}= {_num(self.exact)}",
        ]
        padded = i + 2 * p
        if self.span >= 0:
            starts = self.positions
            shown = (
                ", ".join(map(str, starts))
                if len(starts) <= 8
                else (f"{starts[0]}, {starts[1]}, ..., {starts[-1]}")
            )
            last = starts[-1] + f - 1
            lines.append(
                f"the {f}-wide filter starts at padded pixels {shown} ({len(starts)} "
                f"position{'s' if len(starts) > 1 else ''}, S={s} apart) and reads up to "
                f"pixel {last} of 0..{padded - 1}"
                + (
                    f": the last {self.unread} {'is' if self.unread == 1 else 'are'} never read"
                    if self.unread
                    else ": every pixel is read"
                )
            )
        verdict, advice = self.verdict()
        lines.append(verdict)
        if advice is not None:
            lines.append(advice)
        return "\n".join(lines)


def explain_shape(size: int, kernel: int, stride: int = 1, padding: int = 0, *, floor=False):
    """:class:`ShapeExplanation` of one axis: I=size, F=kernel, S=stride, P=padding."""
    where = "explain shape"
    size = positive_int(where, "I", size)
    kernel = positive_int(where, "F", kernel)
    stride = positive_int(where, "S", stride)
    padding = positive_int(where, "P", padding, minimum=0)
    problem = shapes.axis_problem("size", size, kernel, stride, padding)
    return ShapeExplanation(size, kernel, stride, padding, bool(floor), problem)


# ---------------------------------------------------------------------------------------------
# Architectures: explain sharing and explain sparse


def _architecture(where: str, spec, input_shape=None) -> Architecture:
    arch = spec if isinstance(spec, Architecture) else parse(spec)
    return arch.with_input(input_shape)


def _conv_steps(where: str, arch: Architecture):
    traced = trace(arch)
    traced.raise_problems()
    steps = [step for step in traced.steps if isinstance(step.spec, ConvSpec)]
    if not steps:
        raise ConfigError(
            f"{where}: {arch.text()} has no CONV layer; e.g. INPUT(3x32x32) - CONV(D=16, F=3, P=1)"
        )
    return steps


@dataclass(frozen=True)
class SharingLayer:
    """Parameters of one CONV layer with and without sharing."""

    index: int
    layer: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    output_shape: tuple[int, int, int]  # (D, OH, OW)
    kernel: tuple[int, int]
    bias: bool

    @property
    def per_filter(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.input_shape[0] + int(self.bias)

    @property
    def units(self) -> int:
        return self.output_shape[1] * self.output_shape[2]

    @property
    def shared(self) -> int:
        return self.output_shape[0] * self.per_filter

    @property
    def unshared(self) -> int:
        return self.units * self.shared

    def filter_text(self) -> str:
        kh, kw = self.kernel
        text = f"{kh}*{kw}*{self.input_shape[0]}"
        return f"({text} + 1)" if self.bias else f"({text})"

    def shared_formula(self) -> str:
        return f"{self.output_shape[0]}*{self.filter_text()}"

    def unshared_formula(self) -> str:
        d, oh, ow = self.output_shape
        return f"{oh}*{ow}*{d}*{self.filter_text()}"

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "layer": self.layer,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "per_filter": self.per_filter,
            "shared": self.shared,
            "units": self.units,
            "unshared": self.unshared,
            "shared_formula": self.shared_formula(),
            "unshared_formula": self.unshared_formula(),
        }


@dataclass(frozen=True)
class SharingExplanation:
    architecture: str
    layers: tuple[SharingLayer, ...]

    @property
    def shared(self) -> int:
        return sum(layer.shared for layer in self.layers)

    @property
    def unshared(self) -> int:
        return sum(layer.unshared for layer in self.layers)

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.sharing/1",
            "architecture": self.architecture,
            "layers": [layer.to_dict() for layer in self.layers],
            "shared": self.shared,
            "unshared": self.unshared,
        }

    def text(self) -> str:
        lines = [
            f"parameter sharing in {self.architecture}",
            "all units of one depth slice use the same filter and bias (tied weights)",
        ]
        for layer in self.layers:
            c, h, w = layer.input_shape
            d, oh, ow = layer.output_shape
            kh, kw = layer.kernel
            bias = " + 1 bias" if layer.bias else " (no bias)"
            shared = f"{layer.shared_formula()} = {_thousands(layer.shared)}"
            unshared = f"{layer.unshared_formula()} = {_thousands(layer.unshared)}"
            width = max(len(shared), len(unshared))
            lines += [
                "",
                f"layer {layer.index} {layer.layer}: {h}x{w}x{c} -> {oh}x{ow}x{d}",
                f"  one filter: {kh}*{kw}*{c} weights{bias} = {layer.per_filter} parameters",
                f"  with sharing, one filter per depth slice:  {shared.rjust(width)}",
                f"  without sharing, one filter per unit:      {unshared.rjust(width)}",
                f"  sharing divides the count by {oh}*{ow} = {_thousands(layer.units)}, "
                "the number of units in each depth slice",
            ]
        if len(self.layers) > 1:
            count = len(self.layers)
            ratio = self.unshared / self.shared
            lines += [
                "",
                f"all {count} CONV layers: {_thousands(self.shared)} parameters with sharing, "
                f"{_thousands(self.unshared)} without ({ratio:,.0f}x as many)",
            ]
        return "\n".join(lines)


def explain_sharing(spec="alexnet-conv1", *, input_shape=None) -> SharingExplanation:
    """Per CONV layer of ``spec`` (a string, built-in name or Architecture), the parameters
    with sharing, D*(F*F*C + 1), and without, OH*OW*D*(F*F*C + 1)."""
    where = "explain sharing"
    arch = _architecture(where, spec, input_shape)
    layers = tuple(
        SharingLayer(
            step.index,
            step.spec.text(),
            step.input_shape,
            step.output_shape,
            step.spec.kernel,
            step.spec.bias,
        )
        for step in _conv_steps(where, arch)
    )
    return SharingExplanation(arch.text(), layers)


@dataclass(frozen=True)
class SparseExplanation:
    """What one unit of a CONV layer is connected to, against a fully connected unit."""

    architecture: str
    index: int
    layer: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    sides: tuple[tuple[int, int], tuple[int, int]]
    unit: tuple[int, int]

    @property
    def connections(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.input_shape[0]

    @property
    def fc_connections(self) -> int:
        return math.prod(self.input_shape)

    @property
    def units(self) -> int:
        return math.prod(self.output_shape)

    def extent(self, axis: int) -> tuple[int, int]:
        """First and last input pixel unit ``self.unit`` reads along ``axis`` (0 rows, 1 cols);
        outside 0..size-1 is zero padding."""
        first = self.unit[axis] * self.stride[axis] - self.sides[axis][0]
        return first, first + self.kernel[axis] - 1

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.sparse/1",
            "architecture": self.architecture,
            "index": self.index,
            "layer": self.layer,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "connections": self.connections,
            "fc_connections": self.fc_connections,
            "fraction": self.connections / self.fc_connections,
            "units": self.units,
            "layer_connections": self.units * self.connections,
            "fc_layer_connections": self.units * self.fc_connections,
            "unit": list(self.unit),
            "rows": list(self.extent(0)),
            "cols": list(self.extent(1)),
        }

    def text(self) -> str:
        c, h, w = self.input_shape
        d, oh, ow = self.output_shape
        kh, kw = self.kernel
        fraction = self.connections / self.fc_connections
        lines = [
            f"sparse interactions: layer {self.index} {self.layer}, {h}x{w}x{c} -> {oh}x{ow}x{d}",
            "",
            f"one output unit reads {_article(f'{kh}')} {kh}x{kw}x{c} region: {kh}*{kw}*{c} = "
            f"{_thousands(self.connections)} inputs (plus its bias)",
            f"a fully connected unit would read the whole {h}x{w}x{c} input: {h}*{w}*{c} = "
            f"{_thousands(self.fc_connections)} inputs",
            f"so a conv unit reads {_thousands(self.connections)}/"
            f"{_thousands(self.fc_connections)} = {fraction:.2%} of them "
            f"(1 in {self.fc_connections / self.connections:,.0f})",
            f"the layer's {oh}*{ow}*{d} = {_thousands(self.units)} units: "
            f"{_thousands(self.units * self.connections)} connections, against "
            f"{_thousands(self.units * self.fc_connections)} if fully connected",
            "",
        ]
        i, j = self.unit
        lines.append(f"unit ({i}, {j}) of every depth slice reads, in all {c} channels:")
        for axis, (name, size, letter) in enumerate((("row", h, "i"), ("column", w, "j"))):
            first, last = self.extent(axis)
            padding = [n for n in range(first, last + 1) if n < 0 or n >= size]
            note = ""
            if padding:
                where = str(padding[0]) if len(padding) == 1 else f"{padding[0]}..{padding[-1]}"
                verb = f"{name} {where} is" if len(padding) == 1 else f"{name}s {where} are"
                note = f" ({verb} zero padding)"
            s, p, f = self.stride[axis], self.sides[axis][0], self.kernel[axis]
            lines.append(
                f"  {name}s {first}..{last}{note}: first = {letter}*S - P = "
                f"{self.unit[axis]}*{s} - {p} = {first}, last = first + F - 1 = "
                f"{first} + {f} - 1 = {last}"
            )
        if h <= 32 and w <= 32:
            lines += ["", f"the input ({h}x{w}, one channel shown); # = read by unit ({i}, {j}):"]
            (r0, r1), (c0, c1) = self.extent(0), self.extent(1)
            for r in range(h):
                row = ["#" if r0 <= r <= r1 and c0 <= q <= c1 else "." for q in range(w)]
                lines.append("  " + " ".join(row))
        return "\n".join(lines)


def explain_sparse(
    spec="alexnet-conv1", *, layer: int | None = None, unit=(0, 0), input_shape=None
) -> SparseExplanation:
    """The sparse interactions of CONV layer ``layer`` (its index in ``spec``; default the
    first CONV) and the input region that output unit ``unit`` = (i, j) reads."""
    where = "explain sparse"
    arch = _architecture(where, spec, input_shape)
    steps = _conv_steps(where, arch)
    if layer is None:
        step = steps[0]
    else:
        chosen = [s for s in steps if s.index == layer]
        if not chosen:
            indices = ", ".join(str(s.index) for s in steps)
            what = (
                f"layer {layer} ({arch.layers[layer].text()}) is not a CONV layer"
                if layer < len(arch.layers)
                else f"there is no layer {layer}"
            )
            raise ConfigError(f"{where}: {what}; use --layer with a CONV layer's index: {indices}")
        step = chosen[0]
    i, j = unit
    oh, ow = step.output_shape[1:]
    if not (0 <= i < oh and 0 <= j < ow):
        raise ConfigError(
            f"{where}: unit ({i}, {j}) is outside the {oh}x{ow} output of layer {step.index}; "
            f"use --unit I J with I in 0..{oh - 1} and J in 0..{ow - 1}"
        )
    spec_ = step.spec
    return SparseExplanation(
        arch.text(),
        step.index,
        spec_.text(),
        step.input_shape,
        step.output_shape,
        spec_.kernel,
        spec_.stride,
        spec_.sides(),
        (i, j),
    )


# ---------------------------------------------------------------------------------------------
# explain equivariance

AXES = ("width", "height", "both")


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


@dataclass(frozen=True)
class EquivarianceExplanation:
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


def _fields(specs) -> list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """Per layer: receptive field (rh, rw), jump (jh, jw) and padding offset (oh, ow)."""
    field, jump, offset = [1, 1], [1, 1], [0, 0]
    result = []
    for spec in specs:
        if isinstance(spec, ConvSpec | PoolSpec):
            sides = spec.sides()
            for a in (0, 1):
                offset[a] += sides[a][0] * jump[a]
                field[a] += (spec.kernel[a] - 1) * jump[a]
                jump[a] *= spec.stride[a]
        result.append((tuple(field), tuple(jump), tuple(offset)))
    return result  # type: ignore[return-value]


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


def _spatial_prefix(model) -> tuple[list, list[str]]:
    """The layers before the first Flatten or Linear, and what was left out."""
    layers = list(model)
    for index, layer in enumerate(layers):
        if isinstance(layer, Flatten | Linear):
            rest = f"layer {index} {layer!r} and after (they mix all positions)"
            return layers[:index], [rest]
    return layers, []


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
    weights from ``default_rng(seed)``), or a live ``Sequential`` (with ``input_shape``
    (C, H, W) or its own ``input_shape``). The input is ``standard_normal`` from the same
    generator, in the network's dtype.
    """
    from cnnkit.model import Sequential

    where = "explain equivariance"
    if axis not in AXES:
        raise ConfigError(f"{where}: axis must be one of {', '.join(AXES)}, got {axis!r}")
    seed = positive_int(where, "seed", seed, minimum=0)
    shifts = positive_int(where, "shifts", shifts)
    rng = np.random.default_rng(seed)
    if isinstance(network, Sequential):
        model = network
        shape = input_shape or model.input_shape
        if shape is None:
            raise ConfigError(f"{where}: give input_shape=(C, H, W) for this model")
        arch = architecture_of(model, tuple(shape))
    else:
        arch = _architecture(where, network, input_shape)
        cut = next(
            (n for n, spec in enumerate(arch.layers) if isinstance(spec, FlattenSpec | FCSpec)),
            len(arch.layers),
        )
        model = Architecture(arch.input, arch.layers[:cut]).build(rng=rng, dtype=np.float64)
    traced = trace(arch)
    traced.raise_problems()
    layers, skipped = _spatial_prefix(model)
    if not layers:
        raise ConfigError(
            f"{where}: {arch.text()} has no CONV, POOL or RELU layer before its first FLATTEN "
            "or FC; e.g. INPUT(1x16x16) - CONV(D=4, F=3, P=1) - RELU"
        )
    c, h, w = arch.input.shape
    limit = {"width": w, "height": h, "both": min(h, w)}[axis]
    if shifts >= limit:
        raise ConfigError(
            f"{where}: a shift of {shifts} pixels rolls the {h}x{w} input all the way around; "
            f"use --shifts below {limit}"
        )
    params = list(model.parameters())
    dtype = params[0].data.dtype if params else np.float64
    x = rng.standard_normal((1, c, h, w)).astype(dtype)
    steps = traced.steps[: len(layers)]
    fields = _fields([step.spec for step in steps])

    def outputs(batch):
        result = []
        for layer in layers:
            batch = layer.forward(batch)
            result.append(batch)
        return result

    base = outputs(x)
    columns: list[list[EquivarianceCell]] = [[] for _ in layers]
    for k in range(1, shifts + 1):
        shift = {"width": (0, k), "height": (k, 0), "both": (k, k)}[axis]
        moved = outputs(np.roll(x, shift, axis=(2, 3)))
        for n, (field, jump, offset) in enumerate(fields):
            columns[n].append(_cell(moved[n], base[n], shift, field, jump, offset, (h, w)))
    rows = tuple(
        EquivarianceRow(
            step.index,
            step.spec.text(),
            fields[n][1],
            fields[n][0],
            fields[n][2],
            step.output_shape,
            tuple(columns[n]),
        )
        for n, step in enumerate(steps)
    )
    return EquivarianceExplanation(
        Architecture(arch.input, tuple(step.spec for step in steps)).text(),
        arch.input.shape,
        axis,
        seed,
        tuple(range(1, shifts + 1)),
        rows,
        tuple(skipped),
    )


# ---------------------------------------------------------------------------------------------
# explain backprop


@dataclass(frozen=True)
class BackpropTerm:
    """One unit's share of the gradient of the shared weight: dy[p, q] * the input it read."""

    position: tuple[int, int]  # (p, q) in the output
    dy: float
    input: tuple[int, int, int]  # (c, row, col) of the padded input that the weight multiplies
    x: float
    contribution: float  # dy * x


@dataclass(frozen=True, eq=False)
class BackpropExplanation:
    x: np.ndarray  # (C, H, W)
    w: np.ndarray  # (C, KH, KW)
    b: float
    dy: np.ndarray  # (OH, OW): the upstream gradient dL/d out
    stride: int
    padding: int
    padded: np.ndarray
    weight: tuple[int, int, int]  # (c, i, j) of w[0, c, i, j]
    terms: tuple[BackpropTerm, ...]
    weight_grad: float  # the engine's weight.grad[0, c, i, j]
    bias_grad: float  # the engine's bias.grad[0]
    grad: np.ndarray  # the engine's whole weight.grad[0], (C, KH, KW)
    layer: str
    source: str

    @property
    def total(self) -> float:
        return sum(term.contribution for term in self.terms)

    @property
    def bias_total(self) -> float:
        return sum(float(v) for v in self.dy.flat)

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.backprop/1",
            "source": self.source,
            "layer": self.layer,
            "stride": self.stride,
            "padding": self.padding,
            "x": self.x.tolist(),
            "padded": self.padded.tolist(),
            "w": self.w.tolist(),
            "b": self.b,
            "dy": self.dy.tolist(),
            "weight": [0, *self.weight],
            "terms": [
                {
                    "out": list(t.position),
                    "dy": t.dy,
                    "input": list(t.input),
                    "x": t.x,
                    "contribution": t.contribution,
                }
                for t in self.terms
            ],
            "sum": self.total,
            "weight_grad": self.weight_grad,
            "bias_sum": self.bias_total,
            "bias_grad": self.bias_grad,
            "grad": self.grad.tolist(),
        }

    def text(self) -> str:
        c, h, w = self.x.shape
        kh, kw = self.w.shape[1:]
        oh, ow = self.dy.shape
        _check_printable("explain backprop", self.padded.shape[1:], c, (oh, ow), png=False)
        s, p = self.stride, self.padding
        ch, i, j = self.weight
        name = f"w[0,{ch},{i},{j}]"
        padded = f"zero-padded (P={p}) " if p else ""
        lines = [
            f"{self.layer} on a {h}x{w}x{c} input -> {oh}x{ow} output ({self.source})",
            "",
        ]
        cell = _width(self.padded, self.w, self.dy)
        blocks = [(f"{padded}x[{k}, :, :]", _grid(self.padded[k], cell)) for k in range(c)]
        blocks += [(f"w[0, {k}, :, :]", _grid(self.w[k], cell)) for k in range(c)]
        blocks.append(("dy = dL/d out", _grid(self.dy, cell)))
        lines += _side_by_side(blocks)
        rows, cols = _span("p", s, kh), _span("q", s, kw)
        at = f"x[{ch}, {_offset('p', s, i)}, {_offset('q', s, j)}]"
        lines += [
            f"b = {_num(self.b)}",
            "",
            f"forward: out[p,q] = sum(x[:, {rows}, {cols}] * w) + b, the same w and b in every "
            "unit (parameter sharing)",
            f"so {name} multiplies {at} in unit (p, q): d out[p,q] / d {name} = {at}",
            f"backward: unit (p, q) contributes dy[p,q] * {at}; the shared weight gets the sum",
            "",
        ]
        for t in self.terms:
            pq = f"{t.position[0]},{t.position[1]}"
            read = f"x[{t.input[0]},{t.input[1]},{t.input[2]}]"
            lines.append(
                f"unit out[{pq}]: dy[{pq}] * {read} = {_factor(t.dy)} * {_factor(t.x)} "
                f"= {_num(t.contribution)}"
            )
        verdict = "equal" if _close(self.total, self.weight_grad) else "DIFFERENT"
        bias_verdict = "equal" if _close(self.bias_total, self.bias_grad) else "DIFFERENT"
        lines += [
            "",
            "sum over the depth slice: "
            f"{_sum_text(t.contribution for t in self.terms)} = {_num(self.total)}",
            f"the engine (Conv2d.backward): weight.grad[0,{ch},{i},{j}] = "
            f"{_num(self.weight_grad)}: {verdict}",
            "",
            "the bias is added once in every unit (d out[p,q] / d b = 1), so its gradient is "
            "the sum of dy:",
            f"  {_sum_text(self.dy.flat)} = {_num(self.bias_total)}; the engine: "
            f"bias.grad[0] = {_num(self.bias_grad)}: {bias_verdict}",
            "",
            "the same sum for every weight gives the engine's whole weight.grad[0]:",
        ]
        cell = _width(self.grad)
        lines += _side_by_side(
            [(f"weight.grad[0, {k}, :, :]", _grid(self.grad[k], cell)) for k in range(c)]
        )
        return "\n".join(lines)


def random_backprop_example(
    seed: int, size: int = 4, channels: int = 1, kernel: int = 3, output_hw=(2, 2)
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Small integers: input 0..2, filter and bias -1..1, upstream gradient -2..2."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(channels, size, size)).astype(np.float64)
    w = rng.integers(-1, 2, size=(channels, kernel, kernel)).astype(np.float64)
    b = float(rng.integers(-1, 2))
    dy = rng.integers(-2, 3, size=output_hw).astype(np.float64)
    return x, w, b, dy


def explain_backprop(
    x,
    w,
    b: float,
    dy,
    *,
    stride: int = 1,
    padding: int = 0,
    weight=(0, 0, 0),
    source: str = "explain backprop",
) -> BackpropExplanation:
    """Each unit's contribution to the gradient of the shared weight w[0, c, i, j]
    (``weight`` = (c, i, j)), their sum, and the engine's ``Conv2d.backward`` result.

    ``x`` (C, H, W), ``w`` (C, KH, KW), ``dy`` (OH, OW): the upstream gradient dL/d out.
    """
    where = "explain backprop"
    x, w, stride, padding, (oh, ow) = _checked_conv(where, x, w, stride, padding)
    b = _scalar(where, "b", b)
    try:
        dy = np.array(dy, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: dy must be OH x OW numbers") from None
    if dy.shape != (oh, ow):
        raise ShapeError(
            f"{where}: dy must have the output's shape {oh}x{ow}, got shape {dy.shape}"
        )
    if len(weight) != 3:
        raise ConfigError(f"{where}: weight must be (c, i, j), got {tuple(weight)!r}")
    ch, i, j = (int(v) for v in weight)
    c, kh, kw = w.shape
    if not (0 <= ch < c and 0 <= i < kh and 0 <= j < kw):
        channel = f" and --channel in 0..{c - 1}" if c > 1 else ""
        raise ConfigError(
            f"{where}: weight w[0,{ch},{i},{j}] is outside the {c}x{kh}x{kw} filter; use "
            f"--weight I J with I in 0..{kh - 1} and J in 0..{kw - 1}{channel}"
        )
    conv = _conv_layer(x, w, b, stride, padding)
    conv.forward(x[None])
    conv.backward(dy[None, None])
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    terms = []
    for p in range(oh):
        for q in range(ow):
            r, s = p * stride + i, q * stride + j
            value, g = float(padded[ch, r, s]), float(dy[p, q])
            terms.append(BackpropTerm((p, q), g, (ch, r, s), value, g * value))
    grad = conv.weight.grad[0].copy()
    for array in (x, w, dy, padded, grad):
        array.setflags(write=False)
    return BackpropExplanation(
        x,
        w,
        b,
        dy,
        stride,
        padding,
        padded,
        (ch, i, j),
        tuple(terms),
        float(conv.weight.grad[0, ch, i, j]),
        float(conv.bias.grad[0]),
        grad,
        repr(conv),
        source,
    )


# ---------------------------------------------------------------------------------------------
# The command line: cnnkit explain TOPIC


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _volume(text: str) -> tuple[int, int, int]:
    """``3x224x224`` -> (3, 224, 224); ``28x28`` -> (1, 28, 28)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (2, 3) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x224x224, got {text!r}")
    return tuple(sizes) if len(sizes) == 3 else (1, *sizes)  # type: ignore[return-value]


def _emit(explanation, args, **text_options) -> None:
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(explanation.text(**text_options))


def add_explain_parser(commands) -> argparse.ArgumentParser:
    """Register ``explain`` and its topics on the CLI's subparsers; returns the explain parser.

    Every topic sets ``run(args) -> int`` and prints to stdout; errors are cnnkit errors for
    the CLI to report.
    """
    explain = commands.add_parser(
        "explain",
        help="the lecture's ideas worked out on real numbers: conv, shape, sharing, sparse, "
        "equivariance, backprop",
        description="Work the lecture's ideas out on real numbers computed by the engine: "
        "every number printed is the engine's, with the arithmetic that reproduces it. "
        "--json gives the same numbers for tools.",
    )
    topics = explain.add_subparsers(dest="topic", metavar="TOPIC")

    def show_help(args: argparse.Namespace) -> int:
        explain.print_help()
        return 0

    explain.set_defaults(run=show_help)
    _add_conv(topics)
    _add_shape(topics)
    _add_sharing(topics)
    _add_sparse(topics)
    _add_equivariance(topics)
    _add_backprop(topics)
    return explain


def _json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def _add_conv(topics) -> None:
    conv = topics.add_parser(
        "conv",
        help="the worked example: every unit's region and dot product, building the output",
        description="The lecture's worked example (5x5x3 input, filter F0, b=1, S=2, P=1) or "
        "any small size: the zero-padded input and the filter per channel, then every "
        "computational unit's region and dot product, building the output grid unit by unit. "
        "The output is the engine's Conv2d.forward.",
    )
    conv.add_argument("--input", "-I", type=_positive, metavar="I", help="input size (5)")
    conv.add_argument("--channels", "-C", type=_positive, metavar="C", help="input depth (3)")
    conv.add_argument("--filter", "-F", type=_positive, metavar="F", help="filter size (3)")
    conv.add_argument("--stride", "-S", type=_positive, default=2, metavar="S")
    conv.add_argument("--padding", "-P", type=_non_negative, default=1, metavar="P")
    conv.add_argument(
        "--seed", type=int, help="draw small integers (input 0..2, filter and bias -1..1)"
    )
    conv.add_argument("--values", metavar="FILE", help='JSON {"x": CxHxW, "w": CxFxF, "b": number}')
    conv.add_argument("--verbose", "-v", action="store_true", help="write every product")
    conv.add_argument("--png", metavar="FILE", help="draw a picture instead (needs matplotlib)")
    _json_flag(conv)
    conv.set_defaults(run=run_conv)


def run_conv(args: argparse.Namespace) -> int:
    sizes = (args.input, args.channels, args.filter)
    if args.values is not None:
        if args.seed is not None or any(size is not None for size in sizes):
            raise ConfigError(
                "explain conv: --values FILE sets x, w and b; drop --input, --channels, "
                "--filter and --seed"
            )
        x, w, b = load_values(args.values)
        source = f"values from {args.values}"
    else:
        size, channels, kernel = (
            default if given is None else given
            for given, default in zip(sizes, (5, 3, 3), strict=True)
        )
        if args.seed is None and (size, channels, kernel) == (5, 3, 3):
            x, w, b, source = LECTURE_X, LECTURE_W, LECTURE_B, LECTURE_SOURCE
        else:
            seed = 0 if args.seed is None else args.seed
            x, w, b = random_conv_example(seed, size, channels, kernel)
            source = f"random integers (seed {seed})"
    explanation = explain_conv(x, w, b, stride=args.stride, padding=args.padding, source=source)
    if args.png is not None:
        write_conv_png(explanation, args.png)
        if not args.json:
            print(f"explain conv: wrote {args.png} (padded input, filter and output)")
            return 0
    _emit(explanation, args, verbose=args.verbose)
    return 0


def _add_shape(topics) -> None:
    shape = topics.add_parser(
        "shape",
        help="(I - F + 2P)/S + 1 step by step, with the verdict and fixes of cnnkit shape",
        description="Evaluate the lecture's formula step by step, show where the filter "
        "starts, and give the verdict and fixes (as cnnkit shape). Exit code 0: possible; "
        "1: impossible.",
    )
    shape.add_argument("I", type=_positive, help="input size")
    shape.add_argument("F", type=_positive, help="filter size")
    shape.add_argument("S", type=_positive, nargs="?", default=1, help="stride (1)")
    shape.add_argument("P", type=_non_negative, nargs="?", default=0, help="padding (0)")
    shape.add_argument(
        "--floor", action="store_true", help="round a non-whole result down, as PyTorch does"
    )
    _json_flag(shape)
    shape.set_defaults(run=run_shape)


def run_shape(args: argparse.Namespace) -> int:
    explanation = explain_shape(args.I, args.F, args.S, args.P, floor=args.floor)
    _emit(explanation, args)
    return 0 if explanation.possible else 1


def _add_spec_arguments(parser, default: str) -> None:
    parser.add_argument(
        "spec",
        metavar="SPEC|NAME",
        nargs="?",
        default=default,
        help=f"architecture string or built-in name (default: {default})",
    )
    parser.add_argument("--input", type=_volume, metavar="CxHxW", help="input volume")
    _json_flag(parser)


def _add_sharing(topics) -> None:
    sharing = topics.add_parser(
        "sharing",
        help="parameters of each CONV layer with and without parameter sharing",
        description="Per CONV layer: D*(F*F*C + 1) parameters with sharing against "
        "OH*OW*D*(F*F*C + 1) if every unit had its own filter.",
    )
    _add_spec_arguments(sharing, "alexnet-conv1")
    sharing.set_defaults(run=run_sharing)


def run_sharing(args: argparse.Namespace) -> int:
    _emit(explain_sharing(args.spec, input_shape=args.input), args)
    return 0


def _add_sparse(topics) -> None:
    sparse = topics.add_parser(
        "sparse",
        help="what one output unit is connected to (F*F*C inputs) against a fully connected one",
        description="Sparse interactions: the inputs one unit of a CONV layer reads, against "
        "a fully connected unit, and the region unit (i, j) reads.",
    )
    _add_spec_arguments(sparse, "alexnet-conv1")
    sparse.add_argument("--layer", type=_non_negative, help="index of the CONV layer (first)")
    sparse.add_argument("--unit", type=_non_negative, nargs=2, default=(0, 0), metavar=("I", "J"))
    sparse.set_defaults(run=run_sparse)


def run_sparse(args: argparse.Namespace) -> int:
    explanation = explain_sparse(
        args.spec, layer=args.layer, unit=tuple(args.unit), input_shape=args.input
    )
    _emit(explanation, args)
    return 0


def _add_equivariance(topics) -> None:
    equivariance = topics.add_parser(
        "equivariance",
        help="measure f(g(x)) against g(f(x)) per layer for shifts of 1..k pixels",
        description="Roll a random input by k = 1..K pixels and measure, per layer, "
        "max |f(g(x)) - g'(f(x))| away from the borders: zero where k is a multiple of the "
        "layer's cumulative stride J, non-zero elsewhere.",
    )
    _add_spec_arguments(equivariance, EQUIVARIANCE_DEFAULT)
    equivariance.add_argument("--shifts", type=_positive, default=4, metavar="K")
    equivariance.add_argument("--axis", choices=AXES, default="width")
    equivariance.add_argument("--seed", type=_non_negative, default=0)
    equivariance.set_defaults(run=run_equivariance)


def run_equivariance(args: argparse.Namespace) -> int:
    explanation = explain_equivariance(
        args.spec, input_shape=args.input, shifts=args.shifts, axis=args.axis, seed=args.seed
    )
    _emit(explanation, args)
    return 0


def _add_backprop(topics) -> None:
    backprop = topics.add_parser(
        "backprop",
        help="each unit's gradient for one shared weight, and their sum = the engine's",
        description="On a tiny conv layer: every unit's contribution dy[p,q] * x to the "
        "gradient of one shared weight, their sum, and the engine's weight.grad; the bias "
        "gradient is the sum of dy.",
    )
    backprop.add_argument("--input", "-I", type=_positive, default=4, metavar="I")
    backprop.add_argument("--channels", "-C", type=_positive, default=1, metavar="C")
    backprop.add_argument("--filter", "-F", type=_positive, default=3, metavar="F")
    backprop.add_argument("--stride", "-S", type=_positive, default=1, metavar="S")
    backprop.add_argument("--padding", "-P", type=_non_negative, default=0, metavar="P")
    backprop.add_argument("--seed", type=int, default=0)
    backprop.add_argument(
        "--weight", type=int, nargs=2, default=(0, 0), metavar=("I", "J"), help="w[0,c,I,J]"
    )
    backprop.add_argument("--channel", type=int, default=0, help="c of w[0,c,I,J] (0)")
    _json_flag(backprop)
    backprop.set_defaults(run=run_backprop)


def run_backprop(args: argparse.Namespace) -> int:
    where = "explain backprop"
    s, p = args.stride, args.padding
    oh, ow = _output_hw(where, (args.input, args.input), (args.filter, args.filter), s, p)
    x, w, b, dy = random_backprop_example(
        args.seed, args.input, args.channels, args.filter, (oh, ow)
    )
    explanation = explain_backprop(
        x,
        w,
        b,
        dy,
        stride=s,
        padding=p,
        weight=(args.channel, *args.weight),
        source=f"random integers, seed {args.seed}",
    )
    _emit(explanation, args)
    return 0
