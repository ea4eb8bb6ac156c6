"""Reading an ONNX file for :func:`cnnkit.interop.onnx_import.import_onnx`: bounded, parsed,
checked by ``onnx.checker``, and seen as one input, one output, constants and the nodes that
compute.

Refused in one line, naming the file: a file larger than the limit (1 GiB by default, before
anything is read), bytes that are not an ONNX model, a model the checker rejects, weights in
external files, an opset before 11, an input that is not float32 (N, C, H, W) with static C, H
and W, more than one input or output.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from cnnkit.errors import DataError
from cnnkit.interop.onnx_support import first_line

MIN_READ_OPSET = 11  # Pad's pads as an input; older files: onnx.version_converter
# Ops computed while reading when all their inputs are constants (exporters compute pads and
# shapes with them), and the largest constant they may make.
FOLDED = frozenset(
    "Add Cast Concat ConstantOfShape Div Identity Mul Neg Reshape Shape Slice Squeeze Sub "
    "Transpose Unsqueeze".split()
)
BROADCASTING = frozenset({"Add", "Div", "Mul", "Sub"})
MAX_FOLDED = 1 << 24


def read_model(onnx, path, max_bytes: int):
    """The checked ModelProto of the file at ``path``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(
                f"{path}: {size:,} bytes, more than the {max_bytes:,} import_onnx reads; pass "
                "max_bytes=... to read a larger model"
            )
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > max_bytes:  # the file grew while being read
        raise DataError(f"{path}: more than the {max_bytes:,} bytes import_onnx reads")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # protobuf's DecodeError, or what a broken file raises
        raise DataError(
            f"{path}: not an ONNX model (the bytes do not parse as one: {first_line(error)}); "
            "is the file complete?"
        ) from None
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # onnx.checker.ValidationError, or the C++ checker's own
        raise DataError(f"{path}: not a valid ONNX model ({first_line(error)})") from None
    return model


class GraphView:
    """The main graph: its input and output, constants by name (initializers and Constant
    nodes), the computing nodes in order and which nodes read each value."""

    def __init__(self, onnx, model, path) -> None:
        self.onnx, self.path = onnx, Path(path)
        self.opset = _opset(model, self.path)
        graph = model.graph
        self.constants: dict[str, np.ndarray] = {}
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                raise DataError(
                    f"{self.path}: initializer {tensor.name!r} is stored in an external file; "
                    "cnnkit reads models whose weights are inside the .onnx file (onnx.load with "
                    "load_external_data=True, then onnx.save without save_as_external_data)"
                )
            self.constants[tensor.name] = onnx.numpy_helper.to_array(tensor)
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self.constants[node.output[0]] = self._constant_value(node)
            elif self._foldable(node):
                self._fold(node)
            else:
                self.nodes.append(node)
        self.input, self.input_shape = self._input(graph)
        if len(graph.output) != 1:
            raise DataError(
                f"{self.path}: the graph has {len(graph.output)} outputs; cnnkit reads models "
                "with one (the logits)"
            )
        self.output = graph.output[0].name
        self.users: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.constants:
                    self.users[name].append(node)

    def _foldable(self, node) -> bool:
        """A node of a few shape and arithmetic ops that computes from constants only
        (PyTorch's exporter computes a Pad's pads so): folded into a constant, as ONNX's
        reference evaluator computes it, when the result stays small."""
        names = [name for name in node.input if name]
        if node.op_type not in FOLDED or not names or node.domain not in ("", "ai.onnx"):
            return False
        return all(name in self.constants for name in names)

    def _fold(self, node) -> None:
        from onnx.reference import ReferenceEvaluator

        helper = self.onnx.helper
        feeds = {name: self.constants[name] for name in node.input if name}
        label = f"ONNX node {node.name or node.output[0]!r} ({node.op_type})"
        size = _folded_size(node.op_type, list(feeds.values()))
        if size > MAX_FOLDED:
            raise DataError(
                f"{label} would compute a constant of {size:,} values from constants, more "
                f"than the {MAX_FOLDED:,} cnnkit computes while reading a file"
            )
        inputs = [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for name, v in feeds.items()
        ]
        outputs = [helper.make_tensor_value_info(name, 0, None) for name in node.output if name]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            values = ReferenceEvaluator(model).run(None, feeds)
        except Exception as error:  # the evaluator's own errors: the node is malformed
            raise DataError(
                f"{label} computes from constants, but not as ONNX's reference evaluator reads "
                f"it ({first_line(error)})"
            ) from None
        for name, value in zip([n for n in node.output if n], values, strict=True):
            self.constants[name] = np.asarray(value)

    def _constant_value(self, node) -> np.ndarray:
        if len(node.attribute) != 1:
            raise DataError(
                f"ONNX node {node.name or node.output[0]!r} (Constant) has "
                f"{len(node.attribute)} attributes; a Constant holds exactly one value"
            )
        attribute = node.attribute[0]
        value = self.onnx.helper.get_attribute_value(attribute)
        if attribute.name == "value":
            return self.onnx.numpy_helper.to_array(value)
        if attribute.name in ("value_float", "value_floats"):
            return np.asarray(value, dtype=np.float32)
        if attribute.name in ("value_int", "value_ints"):
            return np.asarray(value, dtype=np.int64)
        raise DataError(
            f"ONNX node {node.name or node.output[0]!r} (Constant): a constant given as "
            f"{attribute.name} is not read; give it as a tensor (value=...)"
        )

    def _input(self, graph) -> tuple[str, tuple[int, int, int]]:
        inputs = [value for value in graph.input if value.name not in self.constants]
        if len(inputs) != 1:
            names = ", ".join(repr(value.name) for value in inputs)
            raise DataError(
                f"{self.path}: the graph has {len(inputs)} inputs ({names}); cnnkit reads models "
                "with one, the images (N, C, H, W)"
            )
        value = inputs[0]
        tensor = value.type.tensor_type
        if tensor.elem_type != self.onnx.TensorProto.FLOAT:
            kind = self.onnx.TensorProto.DataType.Name(tensor.elem_type)
            raise DataError(
                f"{self.path}: input {value.name!r} is {kind}; cnnkit reads float32 models"
            )
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in tensor.shape.dim
        ]
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            shown = "(" + ", ".join(map(str, dims)) + ")"
            raise DataError(
                f"{self.path}: input {value.name!r} has shape {shown}; cnnkit needs images "
                "(N, C, H, W) with static C, H and W (only the batch axis may be dynamic): "
                "export the model for one image size"
            )
        return value.name, tuple(dims[1:])


def _opset(model, path: Path) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    opset = versions[0] if versions else 0
    if opset < MIN_READ_OPSET:
        raise DataError(
            f"{path}: opset {opset}; cnnkit reads opset {MIN_READ_OPSET} and later: convert it "
            "with onnx.version_converter.convert_version(model, 17)"
        )
    return opset


def _folded_size(op: str, values: list[np.ndarray]) -> int:
    """How many values folding ``op`` makes, known before computing it."""
    if op == "ConstantOfShape":
        return int(np.prod(values[0].astype(np.int64))) if values[0].size else 1
    if op in BROADCASTING:
        try:
            return int(np.prod(np.broadcast_shapes(*(v.shape for v in values))))
        except ValueError:
            return 0  # the evaluator says what is wrong
    return sum(int(v.size) for v in values)
