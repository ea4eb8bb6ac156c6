"""What both directions of the PyTorch conversion share: importing torch (an extra), naming a
layer or module by its path in the model, and the torch classes a layer class names.

A cnnkit layer class takes part through hooks on the class itself (see
:mod:`cnnkit.interop.torch_export` and :mod:`cnnkit.interop.torch_import`):

- ``torch_classes``: the torch classes it corresponds to, as names in ``torch.nn``
  (``("Conv2d",)``), dotted paths (``"mypackage.modules.Scale"``) or the classes themselves;
  the first is the one ``to_torch`` builds;
- ``torch_module(self, convert)``: the ``torch.nn.Module`` computing what the layer computes;
- ``from_torch_module(cls, module, convert)`` (a classmethod): the layer computing what a
  module of one of its ``torch_classes`` computes;
- optionally ``torch_matches(cls, module)`` (a classmethod): whether a module of a class not
  named anywhere is one this class takes (Residual: a module with children ``body`` and
  ``shortcut``).
"""

from __future__ import annotations

import copy
import importlib

from cnnkit.errors import ConfigError

INSTALL = "pip install cnnkit[torch]"


def import_torch(what: str):
    """The ``torch`` package, or one ConfigError line saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ConfigError(f"{what} needs PyTorch, which is not installed; {INSTALL}") from None
    return torch


def layer_paths(root, children) -> dict[int, str]:
    """{id(item): its path from ``root``} (``"3"``, ``"2.body.0"``; ``""`` for ``root``),
    parents first, an item used twice under its first path; ``children(item)`` gives
    (name, child) pairs."""
    paths: dict[int, str] = {}
    stack = [("", root)]
    while stack:
        path, item = stack.pop()
        if id(item) in paths:
            continue
        paths[id(item)] = path
        for name, child in reversed(list(children(item))):
            stack.append((f"{path}.{name}" if path else str(name), child))
    return paths


def layer_name(layer, path: str) -> str:
    """``layer 3 (Conv2d)``, or ``the model (Conv2d)`` for the model itself."""
    kind = type(layer).__name__
    return f"layer {path} ({kind})" if path else f"the model ({kind})"


def module_name(module, path: str) -> str:
    """``Hardswish at features.1``, or ``Hardswish (the model itself)``."""
    kind = type(module).__name__
    return f"{kind} at {path}" if path else f"{kind} (the model itself)"


def torch_class(torch, owner: type, entry):
    """The torch class that ``entry`` of ``owner.torch_classes`` names: a name in
    ``torch.nn``, a dotted path to a class, or a class."""
    if isinstance(entry, type):
        return entry
    found = None
    if isinstance(entry, str) and "." not in entry:
        found = getattr(torch.nn, entry, None)
    elif isinstance(entry, str):
        module_path, _, name = entry.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_path), name, None)
        except ImportError:
            found = None
    if not isinstance(found, type):
        raise ConfigError(
            f"{owner.__name__}.torch_classes names {entry!r}, which is no torch class; give "
            "a name in torch.nn ('Conv2d'), a dotted path to a class, or the class itself"
        )
    return found


def vouching_class(cls: type) -> type | None:
    """The class whose hooks ``cls`` uses: the first in its MRO that names torch classes or
    defines ``torch_module`` itself."""
    for klass in cls.__mro__:
        if "torch_classes" in klass.__dict__ or "torch_module" in klass.__dict__:
            return klass
    return None


def own_forward(cls: type) -> type | None:
    """The class in ``cls``'s MRO whose ``forward`` it runs."""
    for klass in cls.__mro__:
        if "forward" in klass.__dict__:
            return klass
    return None


def located(message: str, error: Exception | None = None) -> Exception:
    """A one-line error already naming where it happened (``error``'s class, else
    ConfigError), so outer conversions pass it on unchanged."""
    if error is None:
        found = ConfigError(message)
    else:
        found = copy.copy(error)
        found.args = (message,)
        found.message = message
    found.interop_located = True
    return found


def relocated(error: Exception, where: str) -> Exception:
    """``error`` as it should leave a conversion: itself when it already names its place,
    else a copy starting with ``where``."""
    if getattr(error, "interop_located", False):
        return error
    return located(f"{where}: {error}", error)
