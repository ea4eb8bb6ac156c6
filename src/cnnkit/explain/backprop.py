"""``explain backprop``: each unit's share of one shared weight's gradient, and their sum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError, DataError, ShapeError
from cnnkit.explain._format import (
    _check_printable,
    _close,
    _factor,
    _grid,
    _num,
    _offset,
    _side_by_side,
    _span,
    _sum_text,
    _width,
)
from cnnkit.explain._inputs import _checked_conv, _conv_layer, _scalar, check_example


@dataclass(frozen=True)
class BackpropTerm:
    """One unit's share of the gradient of the shared weight: dy[p, q] * the input it read."""

    position: tuple[int, int]  # (p, q) in the output
    dy: float
    input: tuple[int, int, int]  # (c, row, col) of the padded input that the weight multiplies
    x: float
    contribution: float  # dy * x


@dataclass(frozen=True, eq=False, repr=False)
class BackpropExplanation(TextDisplay):
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
    """Small integers: input 0..2, filter and bias -1..1, upstream gradient -2..2; sizes
    beyond what explain handles are refused before anything is drawn."""
    check_example("explain backprop", size, channels, kernel, output_hw)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(channels, size, size)).astype(np.float64)
    w = rng.integers(-1, 2, size=(channels, kernel, kernel)).astype(np.float64)
    b = float(rng.integers(-1, 2))
    dy = rng.integers(-2, 3, size=output_hw).astype(np.float64)
    return x, w, b, dy


def _checked_dy(where: str, dy, out_hw) -> np.ndarray:
    try:
        dy = np.array(dy, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: dy must be OH x OW numbers") from None
    if dy.shape != tuple(out_hw):
        oh, ow = out_hw
        raise ShapeError(
            f"{where}: dy must have the output's shape {oh}x{ow}, got shape {dy.shape}"
        )
    return dy


def _checked_weight(where: str, weight, filter_shape) -> tuple[int, int, int]:
    if len(weight) != 3:
        raise ConfigError(f"{where}: weight must be (c, i, j), got {tuple(weight)!r}")
    ch, i, j = (int(v) for v in weight)
    c, kh, kw = filter_shape
    if not (0 <= ch < c and 0 <= i < kh and 0 <= j < kw):
        channel = f" and --channel in 0..{c - 1}" if c > 1 else ""
        raise ConfigError(
            f"{where}: weight w[0,{ch},{i},{j}] is outside the {c}x{kh}x{kw} filter; use "
            f"--weight I J with I in 0..{kh - 1} and J in 0..{kw - 1}{channel}"
        )
    return ch, i, j


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
    dy = _checked_dy(where, dy, (oh, ow))
    ch, i, j = _checked_weight(where, weight, w.shape)
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
