"""One ONNX node as a layer class's ``from_onnx`` sees it.

A layer class that reads ONNX names the ops in ``onnx_ops`` and has a classmethod
``from_onnx(cls, node) -> layer``; ``node`` is an :class:`OnnxNode`: its op and attributes, its
constant inputs (initializers or Constant nodes), the shape it receives (batch 1), what the
patterns before it found (a ``Pad``'s padding and mode, the bias of an ``Add`` after a
``MatMul``, the divisor of a ``Div`` after a ``Sub``), and helpers: a window's cnnkit arguments
from ONNX's pads, strides and dilations; ``build`` (strict rounding, else ``rounding="floor"``,
and the output size checked against ONNX's); ``load`` (weights by ``state_dict`` key);
``refuse`` (the one-line error naming the node).
"""

from __future__ import annotations

import inspect

import numpy as np

from cnnkit.errors import CnnkitError, DataError, ShapeError


class OnnxNode:
    """``node`` of ``graph`` receiving ``input_shape``; ``pad`` is ``(begins, ends, mode)``
    of a Pad absorbed before it."""

    def __init__(self, graph, node, input_shape, *, pad=None, bias=None, divisor=None) -> None:
        self.graph, self.proto = graph, node
        self.op = node.op_type
        self.input_shape = tuple(input_shape)
        self.pad = pad
        self.bias, self.divisor = bias, divisor
        self._expected: tuple[int, int] | None = None

    # -- what the node is ----------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"ONNX node {self.proto.name or self.proto.output[0]!r} ({self.op})"

    def refuse(self, why: str) -> DataError:
        """``ONNX node 'conv3' (Conv): why`` (raise it)."""
        return DataError(f"{self.label}: {why}")

    @property
    def padded(self) -> bool:
        """Whether an explicit Pad came before this node."""
        return self.pad is not None

    @property
    def padding_mode(self) -> str:
        """cnnkit's padding mode of the Pad before it (``"zeros"`` without one)."""
        return "zeros" if self.pad is None else self.pad[2]

    def attr(self, name: str, default=None):
        """An attribute's value: ints, floats (as float32 writes them: 1e-05), strings, lists."""
        for attribute in self.proto.attribute:
            if attribute.name == name:
                value = self.graph.onnx.helper.get_attribute_value(attribute)
                if isinstance(value, bytes):
                    return value.decode()
                if isinstance(value, float):
                    return float(str(np.float32(value)))
                return list(value) if isinstance(value, list | tuple) else value
        return default

    def constant(self, index: int, optional: bool = False):
        """Input ``index`` as an array (floats as float32), or None for an absent optional one;
        refused when it is computed rather than stored."""
        name = self.proto.input[index] if index < len(self.proto.input) else ""
        if not name:
            if optional:
                return None
            raise self.refuse(f"has no input {index}; the file is incomplete")
        value = self.graph.constants.get(name)
        if value is None:
            raise self.refuse(
                f"input {index} ({name!r}) is computed, not stored; cnnkit reads weights that "
                "are initializers or Constant nodes"
            )
        return value.astype(np.float32) if value.dtype.kind == "f" else value

    def channel_constant(self, index: int) -> np.ndarray:
        """A per-channel constant, (C,), from shape (), (1,), (C,), (C, 1, 1) or (1, C, 1, 1)."""
        value, channels = self.constant(index), self.input_shape[1]
        if value.size == 1:
            return np.full(channels, value.reshape(-1)[0], np.float32)
        if value.shape in ((channels,), (channels, 1, 1), (1, channels, 1, 1)):
            return value.reshape(-1)
        raise self.refuse(
            f"its constant has shape {value.shape}; cnnkit reads one value per channel "
            f"({channels}, 1, 1) here"
        )

    # -- windows, weights, the layer -------------------------------------------------------------
    def window(self, kernel, *, dilation: bool = True) -> dict:
        """kernel_size, stride, padding and dilation (``dilation=False``: none allowed) of a
        Conv or pooling node, with the Pad before it; pads equal on both sides are cnnkit's
        padding, PyTorch's split of 'same' is ``"same"``, other pads the top/left ones (the
        output size, checked in :meth:`build`, shows whether the other side is read)."""
        kernel = tuple(int(k) for k in kernel or ())
        if len(kernel) != 2 or (self.attr("kernel_shape") not in (None, list(kernel))):
            raise self.refuse(f"its window is {list(kernel)}; cnnkit reads 2-D windows (KH, KW)")
        strides = self._pair("strides", 1)
        dilations = self._pair("dilations", 1)
        if len(self.attr("pads", [0, 0, 0, 0])) != 4 or min(self.attr("pads", [0])) < 0:
            raise self.refuse(f"pads {self.attr('pads')}: give four values >= 0 (T, L, B, R)")
        if not dilation and dilations != (1, 1):
            raise self.refuse(f"dilations {list(dilations)}: cnnkit's AvgPool2d has none")
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]
        begins, ends = self._own_pads(spans, strides)
        sizes = list(self.input_shape[2:])
        if self.pad is not None:
            if any(begins + ends) and (self.padding_mode != "zeros" or self.op != "Conv"):
                raise self.refuse("pads both in the Pad before it and in its own pads")
            sizes = [s + b + e for s, b, e in zip(sizes, *self.pad[:2], strict=True)]
        self._expected = self._onnx_size(sizes, spans, strides, begins, ends)
        if self.pad is not None:
            begins = [b + p for b, p in zip(begins, self.pad[0], strict=True)]
            ends = [e + p for e, p in zip(ends, self.pad[1], strict=True)]
        padding = self._padding(begins, ends, spans, strides)
        found = {"kernel_size": kernel, "stride": strides, "padding": padding}
        if dilation:
            found["dilation"] = dilations
        return found

    def _pair(self, name: str, low: int) -> tuple[int, int]:
        """A 2-D attribute (strides, dilations) of two integers >= ``low``, or one line."""
        value = self.attr(name, [1, 1])
        if not isinstance(value, list) or len(value) != 2 or min(value) < low:
            raise self.refuse(f"{name} {value}: give two integers >= {low} (H, W)")
        return tuple(int(v) for v in value)

    def _own_pads(self, spans, strides) -> tuple[list[int], list[int]]:
        auto = self.attr("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            begins, ends = [], []
            for size, span, stride in zip(self.input_shape[2:], spans, strides, strict=True):
                total = max((-(-size // stride) - 1) * stride + span - size, 0)
                small, large = total // 2, total - total // 2
                begins.append(small if auto == "SAME_UPPER" else large)
                ends.append(large if auto == "SAME_UPPER" else small)
            return begins, ends
        pads = [0, 0, 0, 0] if auto == "VALID" else list(self.attr("pads", [0, 0, 0, 0]))
        return pads[:2], pads[2:]

    def _onnx_size(self, sizes, spans, strides, begins, ends) -> tuple[int, int]:
        """What onnxruntime computes: floor, or with ceil_mode rounding up unless the last
        window would start past the input and its top/left padding (PyTorch's rule)."""
        ceil = bool(self.attr("ceil_mode", 0))
        found = []
        for size, span, stride, begin, end in zip(sizes, spans, strides, begins, ends, strict=True):
            room = size + begin + end - span
            count = (-(-room // stride) if ceil else room // stride) + 1
            if ceil and (count - 1) * stride >= size + begin:
                count -= 1
            found.append(count)
        return tuple(found)

    def _padding(self, begins, ends, spans, strides):
        if begins == ends:
            return tuple(begins)
        same = [(span - 1) // 2 for span in spans], [span - 1 - (span - 1) // 2 for span in spans]
        if self.op == "Conv" and strides == (1, 1) and (begins, ends) == same:
            return "same"  # PyTorch's split: the bottom and right get the odd one
        if self.op == "AveragePool" and (self.padded or self.attr("count_include_pad", 0)):
            raise self.refuse(
                f"pads {[*begins, *ends]} differ on the two sides, and the padding counts in its "
                "averages; cnnkit's AvgPool2d pads both sides alike"
            )
        return tuple(begins)

    def linear_weights(self):
        """(weight (out, in), bias (out,) or None) of a Gemm (alpha, beta and transB folded
        in) or of a MatMul with the bias of the Add after it."""
        if self.op == "MatMul":
            w = self.constant(1)
            if w.ndim != 2:
                raise self.refuse(f"its weight has shape {w.shape}; cnnkit reads (in, out)")
            return np.ascontiguousarray(w.T), self._row(self.bias, w.shape[1])
        if self.attr("transA", 0):
            raise self.refuse("transA=1 transposes the input; cnnkit reads transA=0")
        w = self.constant(1)
        w = (w if self.attr("transB", 0) else w.T) * np.float32(self.attr("alpha", 1.0))
        c = self.constant(2, optional=True)
        c = None if c is None else c * np.float32(self.attr("beta", 1.0))
        return np.ascontiguousarray(w), self._row(c, w.shape[0])

    def _row(self, value, size: int):
        if value is None:
            return None
        if value.size == 1:
            return np.full(size, value.reshape(-1)[0], np.float32)
        if value.size == size and value.shape in ((size,), (1, size)):
            return value.reshape(-1).astype(np.float32)
        raise self.refuse(f"its bias has shape {value.shape}; cnnkit reads ({size},) here")

    def build(self, cls, *args, **kwargs):
        """``cls(*args, **kwargs)`` for this node's input shape: with cnnkit's strict rounding
        when that accepts the size, else ``rounding="floor"`` (ONNX rounds down); its output
        size must be the one ONNX computes."""
        try:
            try:
                layer = cls(*args, **kwargs)
                shape = layer.output_shape(self.input_shape)
            except ShapeError:
                if "rounding" not in inspect.signature(cls).parameters:
                    raise
                layer = cls(*args, rounding="floor", **kwargs)
                shape = layer.output_shape(self.input_shape)
        except CnnkitError as error:
            raise self.refuse(f"cnnkit cannot build it: {error}") from None
        if self._expected is not None and tuple(shape[2:]) != self._expected:
            raise self.refuse(
                "gives {}x{} in ONNX but {}x{} as cnnkit's {!r}, which pads both sides alike; "
                "export it with symmetric pads".format(*self._expected, *shape[2:], layer)
            )
        return layer

    def load(self, layer, **arrays):
        """``layer`` with its arrays (``weight=...``, a buffer ``running_mean=...``) replaced
        by the node's; None leaves one out."""
        state = layer.state_dict()
        for name, value in arrays.items():
            if value is None:
                continue
            if name not in state or state[name].shape != value.shape:
                expected = state[name].shape if name in state else "none"
                raise self.refuse(
                    f"its {name} has shape {value.shape}; cnnkit's {layer!r} takes {expected}"
                )
            state[name] = value
        try:
            layer.load_state_dict(state)
        except CnnkitError as error:
            raise self.refuse(str(error)) from None
        return layer
