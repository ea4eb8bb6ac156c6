"""Building a layer once its input is known, and measuring it without changing it.

A layer that creates its parameters in ``build`` is built on its first forward, or when a
summary, a trace or ``Sequential.build`` asks for its shapes. :func:`build_once` does it under
one lock (two threads running an unbuilt model build it once, and both use those weights) and
isolated from any call in flight (:func:`cnnkit.nn.modes.isolated`).

A shape question answered by running ``forward`` on zeros (the default ``output_shape``) runs
inside :func:`probing`: evaluation mode, nothing recorded, and every buffer put back as it was
afterwards, so a summary, an explanation or a lazy build never moves a layer's running
statistics or counters.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from cnnkit.nn import modes

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_BUILD_LOCK = threading.RLock()  # builds are rare; one lock keeps them simple and whole


def build_call(function):
    """A layer's ``build``: run once (a built layer's ``build`` does nothing), under the build
    lock, isolated from any call in flight; the layer is marked built afterwards."""

    @functools.wraps(function)
    def build(layer, input_shape):
        with _BUILD_LOCK:
            if layer.built:
                return
            with modes.isolated():
                function(layer, tuple(int(size) for size in input_shape))
            layer.built = True

    build._cnnkit_call = True
    return build


def build_once(layer, shape: tuple[int, ...], dtype=None) -> None:
    """``layer.build(shape)`` unless it is built already; a layer given no dtype of its own
    takes ``dtype`` (the input's, float32 or float64)."""
    with _BUILD_LOCK:
        if layer.built:
            return
        if dtype is not None and "dtype" not in layer.__dict__:
            resolved = np.dtype(dtype)
            if resolved in FLOAT_DTYPES:
                layer.dtype = resolved
        layer.build(shape)
        layer.built = True  # a build() not wrapped by the Layer class (set on an instance)


@contextlib.contextmanager
def evaluating(layer):
    """``layer`` and every layer inside it in evaluation mode for the block; afterwards each
    is put back in the mode it had (a layer frozen in evaluation mode stays so)."""
    modules = list(layer.modules())
    modes = [module.training for module in modules]
    for module in modules:
        module.training = False
    try:
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.training = mode


def input_dtype(layer):
    """The dtype a probe feeds ``layer``: its own when it was given one, else that of the first
    parameter it holds (a block of float64 children), else its default."""
    if "dtype" not in layer.__dict__:
        first = next(iter(layer.parameters()), None)
        if first is not None and first.data.dtype in FLOAT_DTYPES:
            return first.data.dtype
    return layer.dtype


@contextlib.contextmanager
def probing(layer):
    """A forward that only measures: ``layer`` and its children in evaluation mode, nothing
    recorded, buffers restored, and the layer's record of its last real forward kept."""
    buffers = [
        (module, name, value, _copy(value))
        for module in layer.modules()
        for name, value in module._own_buffers()
    ]
    last = layer._local.last
    try:
        with evaluating(layer), modes.isolated():
            yield
    finally:
        for module, name, value, copy in buffers:
            if isinstance(value, np.ndarray) and value.flags.writeable:
                value[...] = copy  # changed in place: undone in place
            setattr(module, name, value)  # replaced: the original back
        layer._local.last = last


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value
