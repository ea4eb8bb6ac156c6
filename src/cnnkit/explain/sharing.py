"""``explain sharing`` and ``explain sparse``: parameter sharing and sparse interactions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnkit.arch.specs import Architecture
from cnnkit.arch.trace import trace
from cnnkit.display import TextDisplay
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
    groups: int = 1  # a filter reads C/groups channels (groups == C: depthwise)

    @property
    def depth_read(self) -> int:
        """Input channels one filter reads: C/groups."""
        return self.input_shape[0] // self.groups

    @property
    def per_filter(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.depth_read + int(self.bias)

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
        text = f"{kh}*{kw}*{self.depth_read}"
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
            "groups": self.groups,
            "per_filter": self.per_filter,
            "shared": self.shared,
            "units": self.units,
            "unshared": self.unshared,
            "shared_formula": self.shared_formula(),
            "unshared_formula": self.unshared_formula(),
        }


@dataclass(frozen=True, repr=False)
class SharingExplanation(TextDisplay):
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
                *_groups_line(layer.groups, c),
                f"  one filter: {kh}*{kw}*{layer.depth_read} weights{bias} = "
                f"{layer.per_filter} parameters",
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


def _groups_line(groups: int, channels: int) -> list[str]:
    """The line saying how many channels a filter of a grouped layer reads (none for groups=1)."""
    if groups == 1:
        return []
    if groups == channels:
        return [f"  groups={groups}, a depthwise conv: each filter reads one depth slice"]
    return [f"  groups={groups}: each filter reads the {channels // groups} channels of its group"]


def explain_sharing(spec="alexnet-conv1", *, input_shape=None) -> SharingExplanation:
    """Per CONV layer of ``spec`` (a string, built-in name, Architecture or model), the parameters
    with sharing, D*(F*F*C/g + 1), and without, OH*OW*D*(F*F*C/g + 1) (g = groups, 1 unless
    the layer groups its channels)."""
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
            int(step.layer.get_config().get("groups", 1)),
        )
        for step in _conv_steps(where, arch)
    )
    return SharingExplanation(arch.text(), layers)


@dataclass(frozen=True, repr=False)
class SparseExplanation(TextDisplay):
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
    dilation: tuple[int, int] = (1, 1)  # taps d apart
    groups: int = 1  # a unit reads the C/groups channels of its filter's group
    padding_mode: str = "zeros"  # what the padding holds

    @property
    def depth_read(self) -> int:
        return self.input_shape[0] // self.groups

    @property
    def connections(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.depth_read

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
        return first, first + self.dilation[axis] * (self.kernel[axis] - 1)

    def reads(self, axis: int, pixel: int) -> bool:
        """Whether the unit reads input row (axis 0) or column (axis 1) ``pixel``: inside its
        extent, on a tap (every d-th pixel when dilated)."""
        first, last = self.extent(axis)
        return first <= pixel <= last and (pixel - first) % self.dilation[axis] == 0

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.sparse/1",
            "architecture": self.architecture,
            "index": self.index,
            "layer": self.layer,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "padding_mode": self.padding_mode,
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
        depth = self.depth_read
        fraction = self.connections / self.fc_connections
        lines = [
            f"sparse interactions: layer {self.index} {self.layer}, {h}x{w}x{c} -> {oh}x{ow}x{d}",
            "",
            f"one output unit reads {_article(f'{kh}')} {kh}x{kw}x{depth} region"
            f"{self._taps_note()}: {kh}*{kw}*{depth} = {_thousands(self.connections)} inputs "
            "(plus its bias)",
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
        channels = f"in all {c} channels" if self.groups == 1 else self._group_channels()
        lines.append(f"unit ({i}, {j}) of every depth slice reads, {channels}:")
        lines += [self._axis_line(axis) for axis in (0, 1)]
        if h <= 32 and w <= 32:
            lines += ["", f"the input ({h}x{w}, one channel shown); # = read by unit ({i}, {j}):"]
            for r in range(h):
                row = ["#" if self.reads(0, r) and self.reads(1, q) else "." for q in range(w)]
                lines.append("  " + " ".join(row))
        return "\n".join(lines)

    def _taps_note(self) -> str:
        """How a dilated filter's taps spread (empty without dilation)."""
        if self.dilation == (1, 1):
            return ""
        dh, dw = self.dilation
        spans = [d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel, strict=True)]
        apart = f"{dh}" if dh == dw else f"{dh} and {dw}"
        return f" (dilation: taps {apart} apart, spanning {spans[0]}x{spans[1]} inputs)"

    def _group_channels(self) -> str:
        c, depth = self.input_shape[0], self.depth_read
        if depth == 1:
            return f"in one of the {c} channels (groups={self.groups}: depthwise)"
        return f"in the {depth} channels of its filter's group (groups={self.groups})"

    def _axis_line(self, axis: int) -> str:
        """Which rows (axis 0) or columns (axis 1) the unit reads, and the arithmetic."""
        name, size, letter = (
            ("row", self.input_shape[1], "i"),
            ("column", self.input_shape[2], "j"),
        )[axis]
        first, last = self.extent(axis)
        read = [n for n in range(first, last + 1) if self.reads(axis, n)]
        padding = [n for n in read if n < 0 or n >= size]
        note = ""
        if padding:
            where = f"{padding[0]}..{padding[-1]}" if self.dilation[axis] == 1 else None
            if len(padding) == 1 or where is None:
                where = ", ".join(map(str, padding))
            verb = f"{name} {where} is" if len(padding) == 1 else f"{name}s {where} are"
            kind = "zero" if self.padding_mode == "zeros" else self.padding_mode
            note = f" ({verb} {kind} padding)"
        s, p, f = self.stride[axis], self.sides[axis][0], self.kernel[axis]
        d = self.dilation[axis]
        span = f"{first}..{last}" if d == 1 else f"{first}..{last} in steps of {d}"
        last_text = (
            f"last = first + F - 1 = {first} + {f} - 1 = {last}"
            if d == 1
            else f"last = first + d(F - 1) = {first} + {d}*({f} - 1) = {last}"
        )
        return (
            f"  {name}s {span}{note}: first = {letter}*S - P = "
            f"{self.unit[axis]}*{s} - {p} = {first}, {last_text}"
        )


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
    window, config = step.layer.window, step.layer.get_config()
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
        window.dilation,
        int(config.get("groups", 1)),
        str(config.get("padding_mode", "zeros")),
    )
