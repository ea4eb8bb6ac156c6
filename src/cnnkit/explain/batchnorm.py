"""``explain batchnorm``: one channel of a small batch through BatchNorm2d, number by number.

The engine's own :class:`~cnnkit.BatchNorm2d` (float64) normalises a seeded batch of small
integers in training mode, then in evaluation mode; this module writes out the arithmetic
that reproduces its numbers for one channel: the M = N*H*W values, their mean, the biased
variance training normalises with, x_hat, the affine map, the running update with the
unbiased variance, and what evaluation then computes from the running statistics.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np

from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError
from cnnkit.explain._format import LINE, _grid, _num, _side_by_side, _sum_text, _width
from cnnkit.nn.batchnorm import BatchNorm2d
from cnnkit.nn.modes import no_grad

MAX_IMAGES, MAX_SIDE, MAX_CHANNELS = 8, 4, 4  # what still prints as readable grids
MAX_TERMS = 16  # sums of more values are written with their first terms only


@dataclass(frozen=True, eq=False, repr=False)
class BatchNormExplanation(TextDisplay):
    """The batch, one channel's arithmetic, and the layer's own outputs and buffers."""

    x: np.ndarray  # (N, C, H, W) the whole batch
    channel: int
    eps: float
    momentum: float
    weight: float
    bias: float
    y: np.ndarray  # (N, H, W): the layer's training-mode output for the channel
    running_mean: float  # the layer's buffers after the step
    running_var: float
    eval_y: np.ndarray  # (N, H, W): the layer's evaluation-mode output afterwards
    layer: str
    source: str

    @property
    def values(self) -> np.ndarray:
        """The channel's M values, (N, H, W)."""
        return self.x[:, self.channel]

    @property
    def count(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.sum()) / self.count

    @property
    def squares(self) -> float:
        """The sum of squared deviations from the mean."""
        return float(((self.values - self.mean) ** 2).sum())

    @property
    def var(self) -> float:
        """Biased: divided by M (what training normalises with)."""
        return self.squares / self.count

    @property
    def unbiased(self) -> float:
        """Divided by M - 1 (what the running variance moves towards)."""
        return self.squares / (self.count - 1)

    @property
    def x_hat(self) -> np.ndarray:
        return (self.values - self.mean) / math.sqrt(self.var + self.eps)

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.batchnorm/1",
            "source": self.source,
            "layer": self.layer,
            "x": self.x.tolist(),
            "channel": self.channel,
            "count": self.count,
            "values": self.values.tolist(),
            "sum": float(self.values.sum()),
            "mean": self.mean,
            "squares": self.squares,
            "var": self.var,
            "unbiased_var": self.unbiased,
            "eps": self.eps,
            "x_hat": self.x_hat.tolist(),
            "weight": self.weight,
            "bias": self.bias,
            "y": self.y.tolist(),
            "momentum": self.momentum,
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "eval_y": self.eval_y.tolist(),
        }

    def text(self) -> str:
        n, c, h, w = self.x.shape
        k, m, mom = self.channel, self.count, self.momentum
        mean, var, unbiased = self.mean, self.var, self.unbiased
        std = math.sqrt(var + self.eps)
        flat = [float(v) for v in self.values.flat]
        lines = [
            f"{self.layer} on a batch of {n} images of {h}x{w}x{c} ({self.source}); weight "
            f"{_num(self.weight)} and bias {_num(self.bias)} in every channel (a new layer "
            "starts at 1 and 0)",
            "",
            f"training: channel {k} is normalised with the statistics of its M = N*H*W = "
            f"{n}*{h}*{w} = {m} values in the batch",
        ]
        lines += self._grids(f"x[{{i}}, {k}]", self.values)
        deviations = [(v - mean) ** 2 for v in flat]
        lines += [
            "",
            f"mean = ({_terms(flat)}) / {m} = {_num(sum(flat))} / {m} = {_num(mean)}",
            f"biased variance = sum((x - {_num(mean)})^2) / M = ({_terms(deviations)}) / {m} = "
            f"{_num(self.squares)} / {m} = {_num(var)}",
            f"x_hat = (x - mean) / sqrt(var + eps) = (x - {_num(mean)}) / sqrt({_num(var)} + "
            f"{self.eps:g}) = (x - {_num(mean)}) / {_num(std)}",
        ]
        lines += self._grids("x_hat", self.x_hat)
        affine = f"y = weight * x_hat + bias = {_num(self.weight)} * x_hat + {_num(self.bias)}"
        lines += ["", f"{affine}: the layer's output"]
        lines += self._grids("y", self.y)
        new_mean = (1 - mom) * 0.0 + mom * mean
        new_var = (1 - mom) * 1.0 + mom * unbiased
        lines += [
            "",
            f"running statistics (momentum {_num(mom)}; a new layer starts at mean 0, var 1), "
            "with the UNBIASED variance:",
            f"  unbiased variance = {_num(self.squares)} / (M - 1) = {_num(self.squares)} / "
            f"{m - 1} = {_num(unbiased)}",
            f"  running_mean = (1 - {_num(mom)}) * 0 + {_num(mom)} * {_num(mean)} = "
            f"{_num(new_mean)}   (the layer's: {_num(self.running_mean)})",
            f"  running_var  = (1 - {_num(mom)}) * 1 + {_num(mom)} * {_num(unbiased)} = "
            f"{_num(new_var)}   (the layer's: {_num(self.running_var)})",
            "",
            "evaluation (model.eval()): the running statistics replace the batch's and nothing "
            "moves; every image is normalised on its own, whatever else is in the batch:",
            f"  y = {_num(self.weight)} * (x - {_num(self.running_mean)}) / sqrt("
            f"{_num(self.running_var)} + {self.eps:g}) + {_num(self.bias)}",
        ]
        lines += self._grids("y (eval)", self.eval_y)
        return "\n".join(_wrapped(lines))

    def _grids(self, title: str, values: np.ndarray) -> list[str]:
        cell = _width(values)
        name = title if "{i}" in title else f"{title}[{{i}}]"
        blocks = [(name.format(i=i), _grid(image, cell)) for i, image in enumerate(values)]
        return _side_by_side(blocks)


def _wrapped(lines: list[str]) -> list[str]:
    """Lines past :data:`LINE` broken between words, continued a little further in."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out += textwrap.wrap(line, LINE, subsequent_indent=indent) if len(line) > LINE else [line]
    return out


def _terms(values: list[float]) -> str:
    if len(values) <= MAX_TERMS:
        return _sum_text(values)
    return _sum_text(values[: MAX_TERMS - 2]) + f" + ... ({len(values) - MAX_TERMS + 2} more)"


def random_batch(seed: int, images: int, channels: int, size: int) -> np.ndarray:
    """Small integers 0..9, (images, channels, size, size), float64: sums a reader can check."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, (images, channels, size, size)).astype(np.float64)


def explain_batchnorm(
    *,
    seed: int = 0,
    images: int = 4,
    channels: int = 2,
    size: int = 2,
    channel: int = 0,
    momentum: float = 0.1,
    eps: float = 1e-5,
    weight: float = 2.0,
    bias: float = 0.5,
) -> BatchNormExplanation:
    """One training step and one evaluation of the engine's BatchNorm2d on a seeded batch of
    small integers (``images`` x ``channels`` x ``size`` x ``size``), explained for one
    ``channel``. ``weight`` and ``bias`` are set in every channel to show the affine map."""
    _check("images", images, 2, MAX_IMAGES, "a batch of one has no variance to normalise with")
    _check("channels", channels, 1, MAX_CHANNELS, "more do not print")
    _check("size", size, 1, MAX_SIDE, "larger images do not print")
    _check("channel", channel, 0, channels - 1, f"the batch has channels 0..{channels - 1}")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 < momentum <= 1:
        raise ConfigError(
            f"explain batchnorm: momentum must be a number in (0, 1], got {momentum!r}; e.g. 0.1 "
            "(PyTorch's default)"
        )
    layer = BatchNorm2d(channels, eps=eps, momentum=momentum, dtype=np.float64)
    layer.weight.data[...] = weight
    layer.bias.data[...] = bias
    x = random_batch(seed, images, channels, size)
    with no_grad():  # nothing to keep for a backward; training mode still moves the statistics
        y = layer.train().forward(x)
        eval_y = layer.eval().forward(x)
    return BatchNormExplanation(
        x=x,
        channel=channel,
        eps=layer.eps,
        momentum=layer.momentum,
        weight=float(layer.weight.data[channel]),
        bias=float(layer.bias.data[channel]),
        y=np.array(y[:, channel]),
        running_mean=float(layer.running_mean[channel]),
        running_var=float(layer.running_var[channel]),
        eval_y=np.array(eval_y[:, channel]),
        layer=repr(layer),
        source=f"random integers 0..9, seed {seed}",
    )


def _check(name: str, value, low: int, high: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"explain batchnorm: {name} must be a whole number in {low}..{high} ({why}), got "
            f"{value!r}"
        )
