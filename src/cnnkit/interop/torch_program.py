"""A cnnkit model as a ``torch.export`` program file (``.pt2``): what ``cnnkit export --format
torch`` writes. The file holds the graph of ATen operations and the weights, and runs where
PyTorch is, without cnnkit::

    program = torch.export.load("model.pt2").module()
    logits = program(images)  # (N, C, H, W) float32, any N >= 1

The model is exported in evaluation mode (Dropout is the identity, BatchNorm uses its running
statistics), with a dynamic batch axis.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnkit.atomic import write_atomically
from cnnkit.errors import CnnkitError, ConfigError
from cnnkit.interop.torch_common import import_torch
from cnnkit.interop.torch_export import to_torch

EXAMPLE_BATCH = 2  # torch.export specialises a batch of 1 into the graph; 2 keeps it dynamic


def save_program(model, path: str | os.PathLike, input_shape=None) -> Path:
    """Write ``model`` (a built cnnkit model) to ``path`` as a ``torch.export`` program taking
    (N, C, H, W) inputs of ``input_shape`` (C, H, W; by default the model's own), N dynamic;
    atomically (a temporary file beside ``path``, renamed over it). Returns the path."""
    torch = import_torch("exporting a torch program")
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None or len(tuple(shape)) != 3:
        raise ConfigError(
            f"save_program: {type(model).__name__} does not know its input size (C, H, W); "
            "pass input_shape=(C, H, W)"
        )
    module = to_torch(model).eval()
    floats = (v.dtype for v in module.state_dict().values() if v.is_floating_point())
    dtype = next(floats, torch.float32)
    example = torch.zeros((EXAMPLE_BATCH, *tuple(shape)), dtype=dtype)
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except CnnkitError:
        raise
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"torch.export could not export the model ({type(error).__name__}: {first}); "
            "export it as ONNX (--format onnx) or convert it in Python with cnnkit.to_torch"
        ) from None
    return write_atomically(path, lambda stream: torch.export.save(program, stream))
