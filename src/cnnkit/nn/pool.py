"""MaxPool2d and AvgPool2d: downsample each depth slice independently, with no parameters.

PyTorch's arguments and semantics: ``dilation`` (max pooling only: F taps d apart, a window
spanning d(F - 1) + 1 inputs), ``ceil_mode`` (count windows rounding up; the last one may run
past the bottom/right padding, where nothing is read, and must start inside the input or its
left padding) and ``count_include_pad`` (average pooling only: whether zero padding counts in
the divisor). ``rounding`` is cnnkit's: "strict" refuses an output size that is not a whole
number where rounding down would lose input, "floor" rounds down as PyTorch does.

In architecture strings: ``POOL(max, F=3, S=2, ceil=true)``, ``POOL(avg, F=3, S=2, P=1,
count_include_pad=false)``, ``POOL(max, F=3, dilation=2)``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from cnnkit import shapes
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.engine import current
from cnnkit.functional.fast.pool import max_pool_kept_bytes
from cnnkit.nn.checks import check_array, check_rounding, int_pair, short
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Choice, Flag, Size


def _flag(owner: str, name: str, value) -> bool:
    if value is not True and value is not False:
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


@register_layer("POOL", aliases={"MAXPOOL": {"kind": "max"}, "AVGPOOL": {"kind": "avg"}})
class _Pool2d(Layer):
    """Shared shell: an F x F window (``kernel_size``) moved by S (``stride``, default F)."""

    kind = ""
    dilation = (1, 1)  # average pooling has none
    count_include_pad = True  # max pooling never counts
    spec_args = (
        Arg("kind", "kind", Choice("max", "avg"), "max", positional=True, always=True),
        Arg("kernel_size", "F", Size(), meaning="window size"),
        Arg("stride", "S", Size(), always=True, default_from="kernel_size"),
        Arg("padding", "P", Size(0), 0),
        Arg("dilation", "dilation", Size(), 1),
        Arg("ceil_mode", "ceil", Flag(), False),
        Arg("count_include_pad", "count_include_pad", Flag(), True),
        Arg("rounding", "round", Choice("strict", "floor"), "strict"),
    )
    spec_example = "POOL(F=2)"

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode, rounding) -> None:
        owner = type(self).__name__
        self.kernel_size = int_pair(owner, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else int_pair(owner, "stride", stride, 1)
        self.padding = int_pair(owner, "padding", padding, minimum=0)
        self.dilation = int_pair(owner, "dilation", dilation, minimum=1)
        for axis, (p, k) in enumerate(zip(self.padding, self.kernel_size, strict=True)):
            if p > k // 2:  # PyTorch's bound, with the undilated window
                raise ConfigError(
                    f"{owner}(kernel_size={short(self.kernel_size)}): padding must be at most half "
                    f"the window ({k}//2 = {k // 2}) so every window holds an input value, "
                    f"got padding={self.padding[axis]}; use padding<={k // 2}"
                )
        self.ceil_mode = _flag(owner, "ceil_mode", ceil_mode)
        self.rounding = check_rounding(owner, rounding)
        self.window = shapes.Window(
            self.kernel_size,
            self.stride,
            tuple((p, p) for p in self.padding),
            self.rounding,
            kind="window",
            max_padding=(self.kernel_size[0] // 2, self.kernel_size[1] // 2),
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
        )

    @classmethod
    def spec_class(cls, config: dict):
        return MaxPool2d if config.get("kind", "max") == "max" else AvgPool2d

    torch_fixed: tuple = ()  # (torch attribute, the value cnnkit needs, why)

    def torch_module(self, convert):
        """``torch.nn.MaxPool2d`` / ``AvgPool2d`` of the same config (``rounding`` only refuses)."""
        return convert.torch_layer(self, drop=("rounding",))

    @classmethod
    def from_torch_module(cls, module, convert):
        for name, value, why in cls.torch_fixed:
            convert.require(module, name, value, why)
        return convert.rounded(
            lambda rounding: cls(**convert.arguments(cls, module), rounding=rounding)
        )

    @classmethod
    def spec_problems(cls, config: dict) -> list[tuple[str, str]]:
        """Checks across arguments, for architecture strings: (argument, message)."""
        problems = []
        for k, p in zip(config["kernel_size"], config.get("padding", (0, 0)), strict=True):
            if p > k // 2:
                problems.append(
                    ("padding", f"POOL padding must be at most F/2 = {k // 2}, got {p}")
                )
                break
        kind = config.get("kind", "max")
        if kind == "avg" and config.get("dilation", (1, 1)) != (1, 1):
            problems.append(
                (
                    "dilation",
                    "POOL(avg) has no dilation (PyTorch's AvgPool2d has none); remove dilation "
                    "or use POOL(max, ...)",
                )
            )
        if kind == "max" and config.get("count_include_pad", True) is not True:
            problems.append(
                (
                    "count_include_pad",
                    "count_include_pad is for POOL(avg, ...): a max pool never counts its "
                    "padding (it is -inf); remove count_include_pad",
                )
            )
        return problems

    def spec_config(self) -> dict:
        return {"kind": self.kind, **self.get_config()}

    @property
    def sides(self):
        return tuple((p, p) for p in self.padding)

    def extra_repr(self) -> str:
        text = f"kernel_size={short(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={short(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={short(self.padding)}"
        if self.dilation != (1, 1):
            text += f", dilation={short(self.dilation)}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        if self.rounding != "strict":
            text += f", rounding={self.rounding!r}"
        return text

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, C, H, W) -> (N, C, OH, OW) with OH = (H - F + 2P)/S + 1 (F the window's span,
        d(F - 1) + 1 when dilated; rounded up with ``ceil_mode``)."""
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self!r}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}"
            )
        n, c, h, w = input_shape
        try:
            oh, ow = self.window.output_hw(self, (h, w))
        except ShapeError as error:
            raise self._with_ceil_fix(error, (h, w)) from None
        empty = self.window.padding_only((h, w)) if self.dilation != (1, 1) else None
        if empty is not None:
            raise ShapeError(f"{self!r}: on {h}x{w}, {empty}; use padding=0 or a smaller dilation")
        return (n, c, oh, ow)

    def _with_ceil_fix(self, error: ShapeError, input_hw) -> ShapeError:
        """``error``, offering ``ceil_mode=True`` too where rounding up fits."""
        if self.ceil_mode or any(p.too_large for p in getattr(error, "problems", ())):
            return error
        try:
            oh, ow = replace(self.window, ceil_mode=True).output_hw(self, input_hw)
        except ShapeError:
            return error
        found = ShapeError(f"{error}; or ceil_mode=True (-> {oh}x{ow}, rounding up)")
        found.problems = getattr(error, "problems", ())
        return found

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): MaxPool or AveragePool
        attributes = graph.window(self, x, ceil_mode=True)
        if self.kind == "avg":
            attributes["count_include_pad"] = int(self.count_include_pad)
        return graph.add_node(self.onnx_ops[0], [x], **attributes)

    def _forward(self, engine, x, workspace):
        raise NotImplementedError

    def _backward(self, engine):
        raise NotImplementedError

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        self.output_shape(x.shape)
        engine = current()
        y, saved = self._forward(engine, x, self._local.workspace)
        keep(self._local.call, engine, saved)
        return y

    def backward(self, dy):
        """dy (N, C, OH, OW) -> dx (N, C, H, W)."""
        engine, saved = self._local.call.saved
        return self._backward(engine)(dy, saved, self._local.workspace)

    # -- what the summary and the explanations ask ------------------------------------------------
    def connections(self, input_shape) -> tuple[int, None]:
        """Inputs one unit reads: F*F values of one depth slice."""
        return self.window.taps, None

    def field_after(self, field):
        return self.window.field_after(field)

    def _what(self) -> str:
        raise NotImplementedError

    def explain(self, input_shape) -> str:
        _, c, h, w = input_shape
        _, _, oh, ow = self.output_shape(input_shape)
        formula = self.window.formula((h, w), (oh, ow))
        size = f"{self.kernel_size[0]}x{self.kernel_size[1]}"
        if self.dilation != (1, 1):
            extent = self.window.spans
            size += f" (taps {short(self.dilation)} apart, spanning {extent[0]}x{extent[1]})"
        text = (
            f"POOL ({self.kind}): the {self._what()} of each {size} window, moved by "
            f"S={short(self.stride)}, in each of the {c} depth slices on its own: {formula}, so "
            f"{h}x{w}x{c} -> {oh}x{ow}x{c}; no parameters."
        )
        notes = self.window.unread_notes((h, w))
        return " ".join([text, *(note[0].upper() + note[1:] + "." for note in notes)])


class MaxPool2d(_Pool2d):
    """Largest value of each window; backward routes the gradient to that value's position.

    Padding is -inf (never chosen) and may be at most half the window, as in PyTorch;
    ``dilation`` spaces the window's taps, ``ceil_mode`` counts windows rounding up.
    """

    kind = "max"
    onnx_ops = ("MaxPool",)

    @classmethod
    def from_onnx(cls, node):
        window = node.window(node.attr("kernel_shape"))
        return node.build(cls, **window, ceil_mode=bool(node.attr("ceil_mode", 0)))

    torch_classes = ("MaxPool2d",)
    torch_fixed = (("return_indices", False, "cnnkit's MaxPool2d returns the pooled values only"),)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode: bool = False,
        *,
        rounding: str = "strict",
    ) -> None:
        self._setup(kernel_size, stride, padding, dilation, ceil_mode, rounding)

    def get_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
            "rounding": self.rounding,
        }

    def _forward(self, engine, x, workspace):
        return engine.max_pool2d_forward(
            x,
            kernel=self.kernel_size,
            stride=self.stride,
            padding=self.sides,
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
            workspace=workspace,
        )

    def _backward(self, engine):
        return engine.max_pool2d_backward

    def _what(self) -> str:
        return "largest value"

    def memory(self, input_shape, dtype_bytes: int, layout):
        out = self.output_shape(input_shape)
        kept = max_pool_kept_bytes(out[1], out[2:], self.kernel_size, self.stride, self.dilation)
        return math.prod(out[1:]) * dtype_bytes, kept, layout


class AvgPool2d(_Pool2d):
    """Mean of each window; zero padding counts in the divisor (``count_include_pad=True``,
    PyTorch's default) or not; with ``ceil_mode`` positions past the padding never count."""

    kind = "avg"
    onnx_ops = ("AveragePool",)

    @classmethod
    def from_onnx(cls, node):  # after an explicit zero Pad, the padding counts
        window = node.window(node.attr("kernel_shape"), dilation=False)
        counts = (
            node.padded or bool(node.attr("count_include_pad", 0)) or not any(window["padding"])
        )
        ceil_mode = bool(node.attr("ceil_mode", 0))
        return node.build(cls, **window, ceil_mode=ceil_mode, count_include_pad=counts)

    torch_classes = ("AvgPool2d",)
    torch_fixed = (("divisor_override", None, "cnnkit divides by the window's size"),)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        *,
        rounding: str = "strict",
    ) -> None:
        self._setup(kernel_size, stride, padding, 1, ceil_mode, rounding)
        self.count_include_pad = _flag(type(self).__name__, "count_include_pad", count_include_pad)

    def get_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "rounding": self.rounding,
        }

    def _forward(self, engine, x, workspace):
        return engine.avg_pool2d_forward(
            x,
            kernel=self.kernel_size,
            stride=self.stride,
            padding=self.sides,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            workspace=workspace,
        )

    def _backward(self, engine):
        return engine.avg_pool2d_backward

    def _what(self) -> str:
        return "mean" if self.count_include_pad else "mean of the input values (not the padding)"

    def memory(self, input_shape, dtype_bytes: int, layout):
        out = self.output_shape(input_shape)
        return math.prod(out[1:]) * dtype_bytes, 0, layout
