"""``explain sharing`` and ``explain sparse``: parameter sharing and sparse interactions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnkit.arch.specs import Architecture
from cnnkit.arch.trace import trace
from cnnkit.errors import ConfigError
from cnnkit.explain._format import _article, _thousands
from cnnkit.explain._inputs import _architecture


def _shares_filters(layer) -> bool:
    """A layer whose units share filters over positions (a CONV): it has a window and says
    how many parameters it would have without sharing."""
    return getattr(layer, "window", None) is not None and hasattr(layer, "unshared_parameters")


def _conv_steps(where: str, arch: Architecture):
    traced = trace(arch)
    traced.raise_problems()
    steps = [step for step in traced.steps if _shares_filters(step.layer)]
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
    """Per CONV layer of ``spec`` (a string, built-in name, Architecture or model), the parameters
    with sharing, D*(F*F*C + 1), and without, OH*OW*D*(F*F*C + 1)."""
    where = "explain sharing"
    arch = _architecture(where, spec, input_shape)
    layers = tuple(
        SharingLayer(
            step.index,
            step.spec.text(),
            step.input_shape,
            step.output_shape,
            step.layer.window.kernel,
            bool(step.layer.get_config().get("bias", True)),
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
    window = step.layer.window
    return SparseExplanation(
        arch.text(),
        step.index,
        step.spec.text(),
        step.input_shape,
        step.output_shape,
        window.kernel,
        window.stride,
        window.sides,
        (i, j),
    )
