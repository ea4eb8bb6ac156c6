"""MaxPool2d and AvgPool2d: downsample each depth slice independently, with no parameters."""

from __future__ import annotations

import math

from cnnkit import shapes
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.functional.engine import current
from cnnkit.functional.fast.pool import max_pool_kept_bytes
from cnnkit.nn.checks import check_array, check_rounding, int_pair, short
from cnnkit.nn.context import keep
from cnnkit.nn.layer import Layer
from cnnkit.nn.registry import register_layer
from cnnkit.nn.spec_args import Arg, Choice, Size


@register_layer("POOL", aliases={"MAXPOOL": {"kind": "max"}, "AVGPOOL": {"kind": "avg"}})
class _Pool2d(Layer):
    """Shared shell: an F x F window (``kernel_size``) moved by S (``stride``, default F)."""

    kind = ""
    spec_args = (
        Arg("kind", "kind", Choice("max", "avg"), "max", positional=True, always=True),
        Arg("kernel_size", "F", Size(), meaning="window size"),
        Arg("stride", "S", Size(), always=True, default_from="kernel_size"),
        Arg("padding", "P", Size(0), 0),
        Arg("rounding", "round", Choice("strict", "floor"), "strict"),
    )
    spec_example = "POOL(F=2)"

    def __init__(self, kernel_size, stride=None, padding=0, *, rounding: str = "strict") -> None:
        owner = type(self).__name__
        self.kernel_size = int_pair(owner, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else int_pair(owner, "stride", stride, 1)
        self.padding = int_pair(owner, "padding", padding, minimum=0)
        for axis, (p, k) in enumerate(zip(self.padding, self.kernel_size, strict=True)):
            if p > k // 2:
                raise ConfigError(
                    f"{owner}(kernel_size={short(self.kernel_size)}): padding must be at most half "
                    f"the window ({k}//2 = {k // 2}) so every window holds an input value, "
                    f"got padding={self.padding[axis]}; use padding<={k // 2}"
                )
        self.rounding = check_rounding(owner, rounding)
        self.window = shapes.Window(
            self.kernel_size,
            self.stride,
            tuple((p, p) for p in self.padding),
            self.rounding,
            kind="window",
            max_padding=(self.kernel_size[0] // 2, self.kernel_size[1] // 2),
        )

    @classmethod
    def spec_class(cls, config: dict):
        return MaxPool2d if config.get("kind", "max") == "max" else AvgPool2d

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
        return problems

    def spec_config(self) -> dict:
        return {"kind": self.kind, **self.get_config()}

    @property
    def sides(self):
        return tuple((p, p) for p in self.padding)

    def get_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "rounding": self.rounding,
        }

    def extra_repr(self) -> str:
        text = f"kernel_size={short(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={short(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={short(self.padding)}"
        if self.rounding != "strict":
            text += f", rounding={self.rounding!r}"
        return text

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, C, H, W) -> (N, C, OH, OW) with OH = (H - F + 2P)/S + 1."""
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self!r}: expected a 4-D input (N, C, H, W), got shape {tuple(input_shape)}"
            )
        n, c, h, w = input_shape
        oh, ow = self.window.output_hw(self, (h, w))
        return (n, c, oh, ow)

    def _engine_calls(self, engine):
        raise NotImplementedError

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        check_array(self, x, 4, "(N, C, H, W)")
        self.output_shape(x.shape)
        engine = current()
        forward, _ = self._engine_calls(engine)
        y, saved = forward(
            x,
            kernel=self.kernel_size,
            stride=self.stride,
            padding=self.sides,
            workspace=self._local.workspace,
        )
        keep(self._local.call, engine, saved)
        return y

    def backward(self, dy):
        """dy (N, C, OH, OW) -> dx (N, C, H, W)."""
        engine, saved = self._local.call.saved
        _, backward = self._engine_calls(engine)
        return backward(dy, saved, self._local.workspace)

    # -- what the summary and the explanations ask ------------------------------------------------
    def connections(self, input_shape) -> tuple[int, None]:
        """Inputs one unit reads: F*F values of one depth slice."""
        return self.window.taps, None

    def field_after(self, field):
        return self.window.field_after(field)

    def explain(self, input_shape) -> str:
        _, c, h, w = input_shape
        _, _, oh, ow = self.output_shape(input_shape)
        formula = self.window.formula((h, w), (oh, ow))
        what = "largest value" if self.kind == "max" else "mean"
        return (
            f"POOL ({self.kind}): the {what} of each {short(self.kernel_size)}x"
            f"{short(self.kernel_size)} window, moved by S={short(self.stride)}, in each of the "
            f"{c} depth slices on its own: {formula}, so {h}x{w}x{c} -> {oh}x{ow}x{c}; no "
            "parameters."
        )


class MaxPool2d(_Pool2d):
    """Largest value of each window; backward routes the gradient to that value's position.

    Padding is -inf (never chosen) and may be at most half the window, as in PyTorch.
    """

    kind = "max"

    def _engine_calls(self, engine):
        return engine.max_pool2d_forward, engine.max_pool2d_backward

    def memory(self, input_shape, dtype_bytes: int, layout):
        out = self.output_shape(input_shape)
        kept = max_pool_kept_bytes(out[1], out[2:], self.kernel_size, self.stride)
        return math.prod(out[1:]) * dtype_bytes, kept, layout


class AvgPool2d(_Pool2d):
    """Mean of each window; zero padding counts in the divisor (PyTorch's default)."""

    kind = "avg"

    def _engine_calls(self, engine):
        return engine.avg_pool2d_forward, engine.avg_pool2d_backward

    def memory(self, input_shape, dtype_bytes: int, layout):
        out = self.output_shape(input_shape)
        return math.prod(out[1:]) * dtype_bytes, 0, layout
