"""``explain backprop --residual``: the gradient through a residual block, y = body(x) + x.

The derivative of a sum is 1 for each term, so the block's backward sends the same dy down
both branches: the body turns it into its own dx (through its CONV and RELU), the identity
shortcut passes it on unchanged, and the two are added at x. The numbers are the engine's: the
block's forward and backward (:class:`cnnkit.Residual`), and its body run alone on the same x
and dy for the body's share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.display import TextDisplay
from cnnkit.errors import ConfigError
from cnnkit.explain._format import _grid, _side_by_side, _width
from cnnkit.functional.engine import engine_name

MAX_SIDE = 8


@dataclass(frozen=True, eq=False, repr=False)
class ResidualBackprop(TextDisplay):
    """One channel of a tiny residual block's forward and backward, as the engine computed."""

    x: np.ndarray  # (H, W): the input (one channel)
    body_out: np.ndarray  # (H, W): body(x)
    y: np.ndarray  # (H, W): the block's output, body(x) + x
    dy: np.ndarray  # (H, W): the gradient arriving at y
    body_dx: np.ndarray  # (H, W): what the body's backward returns for dy
    shortcut_dx: np.ndarray  # (H, W): what the identity returns: dy itself
    dx: np.ndarray  # (H, W): the block's backward, the engine's
    layer: str
    source: str
    engine: str

    @property
    def matches(self) -> bool:
        return bool(np.allclose(self.body_dx + self.shortcut_dx, self.dx, rtol=1e-6, atol=1e-9))

    def to_dict(self) -> dict:
        return {
            "schema": "cnnkit.explain.residual/1",
            "source": self.source,
            "layer": self.layer,
            "engine": self.engine,
            **{
                name: getattr(self, name).tolist()
                for name in ("x", "body_out", "y", "dy", "body_dx", "shortcut_dx", "dx")
            },
            "matches": self.matches,
        }

    def text(self) -> str:
        width = _width(self.x, self.body_out, self.y, self.dy, self.body_dx, self.dx)
        forward = _side_by_side(
            [
                ("x", _grid(self.x, width)),
                ("body(x)", _grid(self.body_out, width)),
                ("y = body(x) + x", _grid(self.y, width)),
            ]
        )
        backward = _side_by_side(
            [
                ("dy (arrives at y)", _grid(self.dy, width)),
                ("body's dx", _grid(self.body_dx, width)),
                ("shortcut's dx = dy", _grid(self.shortcut_dx, width)),
                ("dx = their sum", _grid(self.dx, width)),
            ]
        )
        verdict = "equals" if self.matches else "DOES NOT equal"
        return "\n".join(
            [
                f"Backprop through a residual block ({self.source}, {self.engine} engine):",
                f"  {self.layer}",
                "",
                "Forward: the block adds its body's output to its input.",
                *forward,
                "",
                "Backward: d(body(x) + x)/dx = d body/dx + 1, so dy goes down BOTH branches",
                "unchanged; the body turns it into its own dx, the identity passes it on, and",
                "the two are added where they meet at x.",
                *backward,
                "",
                f"body's dx + dy {verdict} the block's dx computed by the engine. The identity "
                "term",
                "is why a deep stack of such blocks still trains: dy reaches early layers even",
                "where the body's own gradient is small.",
            ]
        )


def explain_residual_backprop(size: int = 4, seed: int = 0) -> ResidualBackprop:
    """A one-channel block RES[CONV(F=3, P=1) - RELU - CONV(F=3, P=1)] with small integer
    weights on a ``size`` x ``size`` input, and an upstream gradient dy, drawn from ``seed``."""
    import cnnkit  # the public layers: an explanation runs what users run

    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= MAX_SIDE:
        raise ConfigError(
            f"explain backprop --residual: the input side must be 2..{MAX_SIDE}, got {size!r}"
        )
    rng = np.random.default_rng(seed)
    convs = [cnnkit.Conv2d(1, 1, 3, padding=1, dtype=np.float64) for _ in range(2)]
    for conv in convs:
        conv.weight.data[...] = rng.integers(-1, 2, conv.weight.shape)
        conv.bias.data[...] = rng.integers(-1, 2, conv.bias.shape)
    body = cnnkit.Sequential(convs[0], cnnkit.ReLU(), convs[1])
    block = cnnkit.Residual(body)
    x = rng.integers(-2, 3, (1, 1, size, size)).astype(np.float64)
    dy = rng.integers(-2, 3, (1, 1, size, size)).astype(np.float64)
    with cnnkit.enable_grad():
        body_out = body.forward(x)
        body_dx = body.backward(dy)
        y = block.forward(x)
        dx = block.backward(dy)
    return ResidualBackprop(
        x=x[0, 0],
        body_out=body_out[0, 0],
        y=y[0, 0],
        dy=dy[0, 0],
        body_dx=body_dx[0, 0],
        shortcut_dx=dy[0, 0].copy(),
        dx=dx[0, 0],
        layer="RES[CONV(D=1, F=3, S=1, P=1) - RELU - CONV(D=1, F=3, S=1, P=1)]",
        source=f"random integers, seed {seed}",
        engine=engine_name(),
    )
