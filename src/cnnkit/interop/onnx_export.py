"""cnnkit -> ONNX: :func:`export_onnx` writes a model as an ONNX file that ONNX Runtime runs to
the numbers cnnkit computes in evaluation mode.

Each layer writes its own nodes (its ``onnx_nodes`` method, see :mod:`cnnkit.interop.onnx_graph`);
this module sets up the graph around them, checks it with ``onnx.checker`` and writes the file
atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnkit.atomic import write_atomically
from cnnkit.errors import ConfigError, DTypeError
from cnnkit.info import cnnkit_version
from cnnkit.interop.onnx_graph import OnnxGraph
from cnnkit.interop.onnx_support import checked_opset, first_line, require_onnx


def export_onnx(model, path, input_shape=None, *, opset: int | None = None) -> Path:
    """Write ``model`` to ``path`` as ONNX; returns the path.

    ``input_shape`` is (C, H, W), by default the model's own ``input_shape`` (``from_spec``
    and ``load_run`` set it). The graph's input is ``input``, float32 (N, C, H, W) with a
    dynamic batch axis ``N``; its output ``logits``. ``opset`` is the ONNX operator set,
    by default 19 (onnxruntime 1.18 and later run it; circular padding needs 19, Pad's
    ``wrap`` mode). The file holds what the model computes in evaluation mode: Dropout is left
    out, BatchNorm is ``BatchNormalization`` with the running statistics, a padding mode other
    than zeros is a ``Pad`` before the ``Conv``, Normalize is ``Sub`` and ``Div``.

    Float32 only: a float64 model is refused (ONNX Runtime's CPU convolution is float32, and
    cnnkit never changes a dtype silently); export a float32 copy,
    ``copy.deepcopy(model).to(np.float32)``. A layer class without an ``onnx_nodes`` method is
    refused naming it. The file passes ``onnx.checker.check_model(..., full_check=True)`` and is
    written atomically (a temporary file renamed over ``path``).
    """
    onnx = require_onnx()
    opset = checked_opset(onnx, opset)
    shape = _input_shape(model, input_shape)
    model.build((1, *shape))  # a layer that waits for its input shape creates its weights
    _check_float32(model)
    graph = OnnxGraph(onnx, opset, shape)
    y = graph.emit(model, "input")
    proto = _model(onnx, graph, shape, y)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ConfigError(
            f"export_onnx: the graph the layers wrote fails ONNX's checker ({first_line(error)}); "
            "check the onnx_nodes() methods of the model's own layers"
        ) from None
    data = proto.SerializeToString()
    return write_atomically(os.fspath(path), lambda stream: stream.write(data))


def _input_shape(model, input_shape) -> tuple[int, int, int]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError(
            f"export_onnx: {type(model).__name__} does not know its input size; pass "
            "input_shape=(C, H, W), e.g. input_shape=(1, 8, 8)"
        )
    try:
        sizes = tuple(int(size) for size in shape)
    except (TypeError, ValueError):
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1 or sizes != tuple(shape):
        raise ConfigError(
            f"export_onnx: input_shape must be (C, H, W), three whole numbers > 0, got {shape!r}"
        )
    return sizes


def _check_float32(model) -> None:
    arrays = [p.data for p in model.parameters()] + list(model.buffers())
    if any(getattr(a, "dtype", None) == np.float64 for a in arrays) or model.dtype == np.float64:
        raise DTypeError(
            f"export_onnx: {type(model).__name__} is float64, and the ONNX file holds float32 "
            "(what ONNX Runtime's CPU kernels compute); export a float32 copy: "
            "copy.deepcopy(model).to(np.float32)"
        )


def _model(onnx, graph: OnnxGraph, shape, y: str):
    """The ModelProto around the layers' nodes: input, output ``logits``, opset, IR version."""
    helper = onnx.helper
    float32 = onnx.TensorProto.FLOAT
    output_shape = graph.output_shape_of(y)
    if y == "input" or y in {i.name for i in graph.initializers}:
        y = graph.add_node("Identity", [y])  # a model that computes nothing still has a node
    for node in graph.nodes:  # the last value is the output, named logits
        node.output[:] = ["logits" if name == y else name for name in node.output]
        node.input[:] = ["logits" if name == y else name for name in node.input]
    body = helper.make_graph(
        graph.nodes,
        "cnnkit",
        [helper.make_tensor_value_info("input", float32, ["N", *shape])],
        [helper.make_tensor_value_info("logits", float32, output_shape)],
        graph.initializers,
    )
    opsets = [helper.make_opsetid("", graph.opset)]
    return helper.make_model(
        body,
        opset_imports=opsets,
        producer_name="cnnkit",
        producer_version=cnnkit_version(),
        ir_version=helper.find_min_ir_version_for(opsets),
    )
