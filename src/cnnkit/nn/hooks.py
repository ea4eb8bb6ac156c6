"""Forward hooks: a function called with a layer's input and output after each forward.

``handle = layer.register_forward_hook(hook)`` calls ``hook(layer, (x,), y)`` after every
forward of ``layer`` (PyTorch's signature), each use of a reused layer included;
``handle.remove()`` takes it away again. Hooks observe: they run after the layer's call is over
and isolated from it (what a hook computes records nothing and is not part of any backward), and
one that returns something is refused, since backward would not know of the change (a layer
that changes the output is a layer: write one).

>>> import numpy as np
>>> from cnnkit.nn import ReLU
>>> relu, seen = ReLU(), []
>>> handle = relu.register_forward_hook(lambda layer, inputs, output: seen.append(output.shape))
>>> _ = relu.forward(np.ones((2, 3), np.float32))
>>> handle.remove()
>>> _ = relu.forward(np.ones((4, 3), np.float32))
>>> seen
[(2, 3)]
"""

from __future__ import annotations

from cnnkit.errors import ConfigError
from cnnkit.nn.modes import isolated


class HookHandle:
    """What ``register_forward_hook`` returns: ``remove()`` takes the hook away."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register(layer, hook) -> HookHandle:
    if not callable(hook):
        raise ConfigError(
            f"{layer!r}: register_forward_hook expects a function hook(layer, inputs, output), "
            f"got {type(hook).__name__}"
        )
    hooks = layer.__dict__.get("_forward_hooks")
    if hooks is None:
        hooks = layer.__dict__["_forward_hooks"] = []
    hooks.append(hook)
    return HookHandle(hooks, hook)


def run(layer, hooks: list, x, y):
    """Every hook on (x, y), in the order registered; ``y`` itself is returned."""
    with isolated():
        for hook in list(hooks):
            if hook(layer, (x,), y) is not None:
                raise ConfigError(
                    f"{layer!r}: a forward hook returned a value; hooks only look (backward "
                    "would not know of a changed output): return None, or write a layer that "
                    "makes the change"
                )
    return y
