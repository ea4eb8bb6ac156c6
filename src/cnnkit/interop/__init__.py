"""Conversions between cnnkit models and other frameworks (the ``torch`` and ``onnx`` extras).

- :func:`to_torch` / :func:`from_torch`: a cnnkit model as a ``torch.nn.Module`` of the same
  structure, names and numbers, and back (``pip install cnnkit[torch]``);
- :func:`export_onnx` / :func:`import_onnx`: a cnnkit model as an ONNX file, and back
  (``pip install cnnkit[onnx]``).

Each layer carries its own conversion (hook methods on its class: ``torch_module`` and
``from_torch_module`` for PyTorch); this package holds the shared machinery. Importing it
imports neither torch nor onnx: the names are loaded on first use.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "to_torch": "cnnkit.interop.torch_export",
    "from_torch": "cnnkit.interop.torch_import",
    "export_onnx": "cnnkit.interop.onnx_export",
    "import_onnx": "cnnkit.interop.onnx_import",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
