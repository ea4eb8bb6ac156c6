"""``explain dropout``: one real mask, the scaling by 1/(1 - p), why the expected value is
unchanged, and why evaluation is the identity, with every number the layer's own.

The example runs the engine's :class:`~cnnkit.Dropout` (or :class:`~cnnkit.Dropout2d`) on small
integers: its forward in training mode gives the output, the mask is the one that forward
saved for its backward, the gradient is its backward of dy = 1, the mean is that of the same
layer's outputs for many copies of the input, and evaluation mode is the same layer after
``eval()``.

>>> e = explain_dropout(0.5, size=3, seed=0)
>>> bool(((e.output == 0) | (e.output == 2 * e.x)).all())
True
>>> bool((e.grad == e.mask * 2).all()), bool((e.eval_output == e.x).all())
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.explain._format import MAX_PRINT_CHANNELS, MAX_PRINT_SIDE, _grid, _num, _side_by_side
from cnnkit.nn.context import saved_by
from cnnkit.nn.dropout import Dropout, Dropout2d
from cnnkit.nn.modes import no_grad

SAMPLES = 10_000  # forwards averaged for the measured expected value


@dataclass(frozen=True, eq=False, repr=False)
class DropoutExplanation(TextDisplay):
    layer: str  # the engine layer's repr
    p: float
    seed: int
    channel_wise: bool  # Dropout2d: one decision per depth slice
    x: np.ndarray  # (C, H, W) the input
    mask: np.ndarray  # (C, H, W) bool, the mask the layer's forward drew (broadcast for 2d)
    output: np.ndarray  # (C, H, W) the layer's forward in training mode
    grad: np.ndarray  # (C, H, W) the layer's backward of dy = 1
    samples: int
    mean: np.ndarray  # (C, H, W) the mean of the layer's outputs over ``samples`` forwards
    eval_output: np.ndarray  # (C, H, W) the layer's forward in evaluation mode

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.p)

    @property
    def largest_error(self) -> float:
        return float(np.abs(self.mean - self.x).max())

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.dropout/1",
            "layer": self.layer,
            "p": self.p,
            "seed": self.seed,
            "channel_wise": self.channel_wise,
            "scale": self.scale,
            "x": self.x.tolist(),
            "mask": self.mask.astype(int).tolist(),
            "output": self.output.tolist(),
            "grad": self.grad.tolist(),
            "kept": int(self.mask.sum()),
            "samples": self.samples,
            "mean": self.mean.tolist(),
            "largest_error": self.largest_error,
            "eval_output": self.eval_output.tolist(),
        }

    def text(self) -> str:
        c, h, w = self.x.shape
        p, scale = _num(self.p), _num(self.scale)
        unit = "depth slice" if self.channel_wise else "value"
        decisions = self.mask[:, 0, 0] if self.channel_wise else self.mask
        lines = [f"{self.layer} on a {h}x{w}x{c} input, training mode (seed {self.seed})", ""]
        shown = [("x", self.x)]
        if not self.channel_wise:
            shown.append(("mask (1 = kept)", self.mask.astype(int)))
        lines += _blocks([*shown, ("out", self.output)])
        if self.channel_wise:
            kept = ", ".join(str(int(v)) for v in decisions)
            lines += ["", f"mask, one per depth slice (1 = kept): [{kept}]"]
        lines += [
            "",
            f"out = x * mask / (1 - p): each {unit} is kept with probability 1 - p = "
            f"{_num(1 - self.p)},",
            f"zeroed with probability p = {p}; the kept ones are scaled by 1/(1 - {p}) = {scale}",
            f"this forward kept {int(decisions.sum())} of {decisions.size} {unit}s; every "
            "forward draws a new mask",
            *_worked_units(self),
            "",
            "backward (dy = 1): dx = dy * mask / (1 - p), with the mask of the same forward",
        ]
        lines += _blocks([("dx", self.grad)])
        lines += [
            "",
            "expected value: E[out] = (1 - p) * x / (1 - p) + p * 0 = x: the next layer sees",
            "inputs of the same size on average as without dropout. Measured: the mean of",
            f"{self.samples:,} forwards of this layer (largest |mean - x| = "
            f"{self.largest_error:.3g})",
        ]
        lines += _blocks([("mean of out", np.round(self.mean, 2))])
        lines += [
            "",
            "evaluation mode (layer.eval()): out = x, the input itself",
        ]
        lines += _blocks([("out", self.eval_output)])
        lines += [
            "every unit is present at test time, and the 1/(1 - p) of training already made",
            "each value's expected output x, so nothing is rescaled (inverted dropout; the",
            "original dropout multiplied by 1 - p at test time instead)",
        ]
        return "\n".join(lines)


def _blocks(named: list[tuple[str, np.ndarray]]) -> list[str]:
    """Each (C, H, W) array as titled grids, one per depth slice, side by side."""
    cell = max(2, *(len(_num(v)) for _, array in named for v in np.asarray(array).flat))
    blocks = []
    for title, array in named:
        for k in range(array.shape[0]):
            label = f"{title}[{k}]" if array.shape[0] > 1 else title
            blocks.append((label, _grid(array[k], cell)))
    return _side_by_side(blocks)


def _worked_units(e: DropoutExplanation) -> list[str]:
    """One kept and one zeroed value, worked out."""
    lines = []
    for kept in (True, False):
        where = np.argwhere(e.mask == kept)
        if len(where):
            c, i, j = (int(v) for v in where[0])
            value, out = _num(e.x[c, i, j]), _num(e.output[c, i, j])
            how = f"kept, {value} * {_num(e.scale)} = {out}" if kept else f"zeroed, out = {out}"
            lines.append(f"  x[{c},{i},{j}] = {value}: {how}")
    return lines


def explain_dropout(
    p: float = 0.5,
    *,
    size: int = 4,
    channels: int = 1,
    seed: int = 0,
    channel_wise: bool = False,
    samples: int = SAMPLES,
) -> DropoutExplanation:
    """Dropout (``channel_wise``: Dropout2d) with drop probability ``p`` on a ``channels`` x
    ``size`` x ``size`` input of integers 1..9 drawn with ``seed``; the layer's generator is
    a child of the same seed's (see :func:`cnnkit.nn.state.derive_generator`)."""
    where = "explain dropout"
    if not 1 <= size <= MAX_PRINT_SIDE or not 1 <= channels <= MAX_PRINT_CHANNELS:
        raise ShapeError(
            f"{where}: a {size}x{size}x{channels} input is too large to show (at most "
            f"{MAX_PRINT_SIDE}x{MAX_PRINT_SIDE}x{MAX_PRINT_CHANNELS}); use a smaller --input "
            "or --channels"
        )
    if not isinstance(samples, int) or not 1 <= samples <= 100_000:
        raise ConfigError(f"{where}: samples must be 1..100000, got {samples!r}")
    rng = np.random.default_rng(seed)
    layer = (Dropout2d if channel_wise else Dropout)(p, rng=rng)  # a child generator of rng's
    x = rng.integers(1, 10, size=(channels, size, size)).astype(np.float64)
    output = layer.forward(x[None])
    _, mask, _ = saved_by(layer)  # the mask this very forward keeps for its backward
    if mask is None:  # p = 0: nothing is drawn, everything kept
        mask = np.ones(output.shape, bool)
    grad = layer.backward(np.ones_like(output))
    with no_grad():
        batch = np.broadcast_to(x, (samples, *x.shape))
        mean = layer.forward(batch).mean(axis=0)
    layer.eval()
    eval_output = layer.forward(x[None])
    return DropoutExplanation(
        layer=repr(layer),
        p=layer.p,
        seed=seed,
        channel_wise=channel_wise,
        x=x,
        mask=np.broadcast_to(mask[0], x.shape).copy(),
        output=output[0],
        grad=grad[0],
        samples=samples,
        mean=mean,
        eval_output=eval_output[0],
    )
