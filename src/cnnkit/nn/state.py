"""Loading state into a layer and converting its dtype: the arrays behind ``load_state_dict``
and ``to``, for any layer (they walk ``Layer._state_items``)."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.nn.checks import FLOAT_DTYPES


def load_state(layer, state) -> None:
    """Copy ``state``'s arrays into ``layer``'s parameters and buffers, by name."""
    if not hasattr(state, "keys"):
        raise DTypeError(
            f"load_state_dict: expected a mapping of names to arrays (a state_dict()), got "
            f"{type(state).__name__}"
        )
    own = {name: (value, kind) for name, value, kind in layer._state_items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ShapeError(
            f"load_state_dict: missing {missing or 'nothing'}, unexpected "
            f"{unexpected or 'nothing'}; was the state saved from another architecture?"
        )
    slots = dict(_buffer_slots(layer))
    for name, (target, kind) in own.items():
        array = target.data if kind == "parameter" else np.asarray(target)
        value = np.asarray(state[name])
        if value.shape != array.shape:
            raise ShapeError(
                f"load_state_dict: {name} has shape {value.shape}, the model expects {array.shape}"
            )
        if kind == "parameter" or _writable_array(target):
            array[...] = value.astype(array.dtype, copy=False)
        else:  # a buffer held as a number (count = count + 1): replaced by the loaded value
            module, attribute = slots[name]
            setattr(module, attribute, value.astype(array.dtype, copy=True))


def _writable_array(value) -> bool:
    return isinstance(value, np.ndarray) and value.flags.writeable


def _buffer_slots(layer, prefix: str = ""):
    """(state_dict name, module, attribute) of every buffer."""
    for name, _ in layer._own_buffers():
        yield prefix + name, (layer, name)
    for name, child in layer.named_children():
        yield from _buffer_slots(child, f"{prefix}{name}.")


def buffer_value(layer, name: str, value):
    """What ``register_buffer(name, value)`` keeps: an array (a number becomes a 0-d array);
    anything else (a string, a dict) is refused, since checkpoints hold arrays only."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    array = np.asarray(value) if isinstance(value, int | float | bool | list | tuple) else None
    if array is None or array.dtype.kind not in "biuf":
        raise ConfigError(
            f"{type(layer).__name__}.register_buffer({name!r}, ...): a buffer is an array or "
            f"a number, got {type(value).__name__}; keep other settings as plain attributes "
            "(get_config() returns them)"
        )
    return array


def convert(layer, dtype) -> None:
    """Every parameter and floating buffer of ``layer`` and its children as ``dtype``."""
    resolved = np.dtype(dtype) if _is_dtype(dtype) else None
    if resolved not in FLOAT_DTYPES:
        raise DTypeError(
            f"{type(layer).__name__}.to: dtype must be float32 or float64, got {dtype!r}; "
            "use np.float32 or np.float64"
        )
    for module in layer.modules():
        module.dtype = resolved
        for _, parameter in module._own_parameters():
            parameter.data = parameter.data.astype(resolved)
            parameter.grad = np.zeros_like(parameter.data)
        for name, buffer in list(module._own_buffers()):
            if np.asarray(buffer).dtype.kind == "f":
                setattr(module, name, np.asarray(buffer).astype(resolved))


def _is_dtype(value) -> bool:
    if value is None:
        return False
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True
