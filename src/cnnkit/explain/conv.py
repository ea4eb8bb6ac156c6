"""``explain conv``: every computational unit's region and dot product, and a picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit import shapes
from cnnkit.atomic import write_atomically
from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError, WriteError
from cnnkit.explain._format import (
    LINE,
    _check_printable,
    _close,
    _factor,
    _grid,
    _num,
    _side_by_side,
    _span,
    _sum_text,
    _width,
)
from cnnkit.explain._inputs import _checked_conv, _conv_layer, _scalar, check_example


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


def random_conv_example(
    seed: int, size: int = 5, channels: int = 3, kernel: int = 3
) -> tuple[np.ndarray, np.ndarray, float]:
    """Small integers like the lecture's: input 0..2, filter and bias -1..1; sizes beyond
    what explain handles are refused before anything is drawn."""
    check_example("explain conv", size, channels, kernel)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(channels, size, size)).astype(np.float64)
    w = rng.integers(-1, 2, size=(channels, kernel, kernel)).astype(np.float64)
    b = float(rng.integers(-1, 2))
    return x, w, b


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


@dataclass(frozen=True, eq=False, repr=False)
class ConvExplanation(TextDisplay):
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

    The output comes from the engine's :class:`~cnnkit.nn.Conv2d` (float64); each unit's
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


def _png_path(where: str, path) -> Path:
    """``path`` as a PNG file to write: ending in .png and not a directory."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{where} {path}: is a directory; give a file name such as {path / 'conv.png'}"
        )
    if path.suffix.lower() != ".png":
        raise ConfigError(
            f"{where} {path}: the picture is a PNG file, its name must end in .png; use "
            f"{path.with_suffix('.png') if path.name else 'conv.png'}"
        )
    return path


def write_conv_png(explanation: ConvExplanation, path) -> None:
    """Draw the padded input, the filter and the output grid into the PNG file ``path``
    (needs matplotlib), atomically: a failed write leaves no file and raises one
    :class:`~cnnkit.errors.WriteError`."""
    where = "explain conv --png"
    path = _png_path(where, path)
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
        write_atomically(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    except WriteError as error:
        raise WriteError(f"{where} {error}", error.errno) from None
