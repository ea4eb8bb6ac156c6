"""The messages of the call bookkeeping (:mod:`cnnkit.nn.context`): a backward without its
forward, or a gradient of the wrong shape or dtype, named by the layer and with the fix."""

from __future__ import annotations

from cnnkit.errors import DTypeError, ShapeError

MAX_PENDING = 4  # top-level forwards kept per layer and thread while waiting for backward


def _name(layer) -> str:
    """The layer's repr, or its class name when the repr runs over several lines (a model)."""
    text = repr(layer)
    return text if "\n" not in text else f"{type(layer).__name__}(...)"


def no_forward(layer, parent) -> str:
    name = _name(layer)
    if parent is not None:
        return (
            f"{name}: backward() found no forward of this layer in this call to go with it; "
            "a container's backward must call each layer's backward once per forward, in "
            "reverse order"
        )
    local = layer._local
    last = local.last
    if last == "nested":
        return (
            f"{name}: backward() has no forward of its own to go with: its last forward ran "
            "inside another layer's forward (a Sequential's); call that layer's backward, "
            "which runs this one's"
        )
    if last == "unrecorded":
        return (
            f"{name}: backward() after a forward that saved nothing (evaluation mode or "
            "no_grad()); call model.train() before forward, or run the forward inside "
            "`with cnnkit.enable_grad():`"
        )
    if local.pruned:
        return (
            f"{name}: backward() has no forward left to go with: a later forward replaced one "
            "whose output was no longer held; keep each output (y = layer.forward(x)) until its "
            "backward, or call backward before the next forward"
        )
    if local.dropped:
        return (
            f"{name}: backward() has no forward left to go with: only the last "
            f"{MAX_PENDING} forwards wait for a backward; call backward after each forward, "
            "or run forwards that need no gradient inside `with cnnkit.no_grad():`"
        )
    if last == "recorded":
        return (
            f"{name}: a second backward() after one forward(); each forward is matched by "
            "exactly one backward: call forward(x) again first"
        )
    return (
        f"{name}: backward() was called before forward(); call forward(x) first, then "
        "backward(dy) with dy shaped like its output"
    )


class _Named:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def check_gradient(layer, dy, output) -> None:
    """``dy`` is shaped and typed like what forward returned: checked once, for every layer."""
    shape, dtype = output
    got_shape = getattr(dy, "shape", None)
    if got_shape != shape:
        layer = _Named(_name(layer))
        got = tuple(got_shape) if got_shape is not None else type(dy).__name__
        raise ShapeError(
            f"{layer!r}: backward expected dy of shape {tuple(shape)} (the forward output), "
            f"got {got}"
        )
    got_dtype = getattr(dy, "dtype", None)
    if dtype is not None and got_dtype != dtype:
        layer = _Named(_name(layer))
        raise DTypeError(
            f"{layer!r}: backward got dy of dtype {got_dtype} but the forward returned "
            f"{dtype}; pass dy.astype(np.{dtype}) (cnnkit never converts silently)"
        )
