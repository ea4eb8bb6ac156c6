"""What ONNX export and import share: the optional ``onnx`` package, imported on first use, and
the opsets cnnkit writes.

The core of cnnkit never imports ``onnx``; these functions do, when a file is written or read,
and refuse in one line where it is not installed.
"""

from __future__ import annotations

from cnnkit.errors import ConfigError

DEFAULT_OPSET = 19  # Pad's "wrap" mode (circular padding) needs 19; onnxruntime 1.18+ runs it
MIN_OPSET = 13  # Pad, Dropout, Softmax and Flatten as cnnkit writes them
MAX_BYTES = 1 << 30  # import_onnx refuses larger files before reading them (1 GiB)


def require_onnx():
    """The ``onnx`` module, or a one-line error saying how to install it."""
    try:
        import onnx
        import onnx.numpy_helper
        import onnx.shape_inference
    except ImportError:
        raise ConfigError(
            "ONNX export and import need the onnx package, which is not installed; "
            "pip install cnnkit[onnx]"
        ) from None
    return onnx


def checked_opset(onnx, opset) -> int:
    """``opset`` (default :data:`DEFAULT_OPSET`) if cnnkit can write it and onnx knows it."""
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(
            f"export_onnx: opset must be an int from {MIN_OPSET} to {newest} (the newest the "
            f"installed onnx knows), got {opset!r}; the default is {DEFAULT_OPSET}"
        )
    return opset


def first_line(error: Exception) -> str:
    """An exception's message on one line (ONNX's checker writes several)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
