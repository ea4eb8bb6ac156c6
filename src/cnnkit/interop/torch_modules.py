"""``torch.nn`` modules for the cnnkit layers that PyTorch has no class for: a residual block
and the input normalisation. Their ``state_dict`` keys and shapes are cnnkit's (``body.0.weight``,
``mean``, ``std``), so weights copy across by key.

The classes are made on first use (``torch_modules.Residual``), so importing this module
imports no torch; they pickle as ``cnnkit.interop.torch_modules.Residual`` and so on.
"""

from __future__ import annotations

import functools

import numpy as np

from cnnkit.interop.torch_common import import_torch

NAMES = ("Normalize", "Residual")


def __getattr__(name: str):
    if name in NAMES:
        classes = _classes()
        globals().update(classes)
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _classes() -> dict[str, type]:
    torch = import_torch("cnnkit.interop.torch_modules")

    class Residual(torch.nn.Module):
        """``body(x) + x``, or ``body(x) + shortcut(x)``: cnnkit's ``Residual``. The children
        are ``body`` and ``shortcut`` (``None``: the identity)."""

        def __init__(self, body, shortcut=None) -> None:
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    class Normalize(torch.nn.Module):
        """``(x - mean[c]) / std[c]`` per channel of an (N, C, H, W) input: cnnkit's
        ``Normalize``. The buffers ``mean`` and ``std`` are (C,), as cnnkit keeps them."""

        def __init__(self, mean, std) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(np.array(mean).reshape(-1)))
            self.register_buffer("std", torch.from_numpy(np.array(std).reshape(-1)))

        def forward(self, x):
            return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

        def extra_repr(self) -> str:
            return f"mean={self.mean.tolist()}, std={self.std.tolist()}"

    classes = {"Normalize": Normalize, "Residual": Residual}
    for cls in classes.values():
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return classes
