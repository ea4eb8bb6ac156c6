"""The builder cnnkit's layers write their ONNX nodes into.

Every layer class that can be exported has a method ``onnx_nodes(self, graph, x) -> str``: it
adds the nodes that compute its output from the value named ``x`` and returns the name of that
output. ``graph`` is an :class:`OnnxGraph`: unique names, ``add_node``, ``add_initializer`` from
a NumPy array (named by the layer's ``state_dict`` key, ``"2.body.0.weight"``), the shape of a
value (batch 1), ``emit`` for a container's children, and the helpers several layers share
(ONNX's ``pads`` order, an explicit ``Pad``, a pooling window's attributes). A layer class
without the method is refused by name::

    layer 3 (MyLayer): no ONNX exporter; give the class an onnx_nodes() method

What a layer writes is what it computes in evaluation mode (Dropout is the identity there,
BatchNorm uses its running statistics).
"""

from __future__ import annotations

import itertools

import numpy as np

from cnnkit.errors import CnnkitError, ConfigError

PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class OnnxGraph:
    """Nodes and initializers of one graph under construction, for one input shape."""

    def __init__(self, onnx, opset: int, input_shape: tuple[int, ...]) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._shapes: dict[str, tuple[int, ...]] = {"input": (1, *input_shape)}
        self._taken: set[str] = {"input", "logits"}
        self._path: list[str] = []

    # -- names and values ------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2``, ... when it is taken."""
        found, count = name, 0
        while found in self._taken:
            count += 1
            found = f"{name}_{count}"
        self._taken.add(found)
        return found

    @property
    def where(self) -> str:
        """The path of the layer being written, as ``state_dict`` keys spell it (``2.body.0``)."""
        return ".".join(self._path)

    def shape(self, value: str) -> tuple[int, ...]:
        """The shape of ``value`` for a batch of one, (1, C, H, W) or (1, F)."""
        return self._shapes[value]

    def add_initializer(self, array, name: str = "weight") -> str:
        """A constant tensor named after the layer (``"3.weight"``); floats are stored as
        float32, integers as int64."""
        array = np.asarray(array)
        array = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
        key = self.unique(f"{self.where}.{name}" if self.where else name)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, key))
        return key

    def add_node(self, op: str, inputs, **attributes) -> str:
        """One node of type ``op`` reading ``inputs`` (names); returns its output's name."""
        name = self.unique("/" + "/".join([*self._path, op]))
        output = self.unique(f"{name}_output_0")
        node = self.onnx.helper.make_node(op, list(inputs), [output], name=name, **attributes)
        self.nodes.append(node)
        return output

    # -- layers ----------------------------------------------------------------------------------
    def emit(self, layer, x: str, where: str | None = None) -> str:
        """Write ``layer`` reading ``x``; ``where`` is its name inside its container (``"3"``,
        ``"body"``), for names and messages. Errors come back located (``layer 2.body.0``)."""
        if where is not None:
            self._path.append(str(where))
        try:
            hook = self._exporter(layer)
            shape = tuple(layer.output_shape(self._shapes[x]))
            y = hook(layer, self, x)
            self._shapes.setdefault(y, shape)
            return y
        except CnnkitError as error:
            raise (error if where is None else error.located(where)) from None
        finally:
            if where is not None:
                self._path.pop()

    def _exporter(self, layer):
        """The class's ``onnx_nodes``, unless it has none or inherits it from a class whose
        forward it overrides (it would be written as that class computes)."""
        mro = type(layer).__mro__
        owner = next((k for k in mro if "onnx_nodes" in k.__dict__), None)
        if owner is None:
            raise self.refusal(layer, "no ONNX exporter; give the class an onnx_nodes() method")
        computes = next(k for k in mro if "forward" in k.__dict__)
        if mro.index(computes) < mro.index(owner):
            raise self.refusal(
                layer,
                f"its forward differs from {owner.__name__}'s, whose ONNX exporter it inherits; "
                "give the class an onnx_nodes() method of its own",
            )
        return owner.__dict__["onnx_nodes"]

    def add_arrays(self, layer, *names: str) -> list[str]:
        """Initializers of the layer's arrays ``names`` (Parameters or buffers), those it has:
        ``graph.add_arrays(self, "weight", "bias")`` leaves out a bias of None."""
        found = []
        for name in names:
            value = getattr(layer, name, None)
            if value is not None:
                found.append(self.add_initializer(getattr(value, "data", value), name))
        return found

    def refusal(self, layer, why: str) -> ConfigError:
        """The error for a layer that cannot be written: ``(Name): why``, which ``emit``
        prefixes with ``layer 3`` (``the model`` for a model that is one layer)."""
        head = f"({type(layer).__name__})" if self._path else f"the model ({type(layer).__name__})"
        return ConfigError(f"{head}: {why}")

    # -- what several layers share ----------------------------------------------------------------
    @staticmethod
    def pads(sides) -> list[int]:
        """((top, bottom), (left, right)) -> ONNX's order [top, left, bottom, right]."""
        (top, bottom), (left, right) = sides
        return [int(top), int(left), int(bottom), int(right)]

    def pad(self, layer, x: str, sides, mode: str) -> str:
        """An explicit ``Pad`` of the spatial axes: zeros, reflect, replicate (ONNX's edge) or
        circular (ONNX's wrap, opset 19 and later)."""
        if mode == "circular" and self.opset < 19:
            raise self.refusal(
                layer,
                f"circular padding is ONNX's Pad mode 'wrap', which needs opset 19 or later, "
                f"not {self.opset}; export with opset=19",
            )
        top, left, bottom, right = self.pads(sides)
        widths = self.add_initializer(np.array([0, 0, top, left, 0, 0, bottom, right]), "pads")
        return self.add_node("Pad", [x, widths], mode=PAD_MODES[mode])

    def window(self, layer, x: str, *, ceil_mode: bool = False) -> dict:
        """kernel_shape, strides, pads, dilations (and a pool's ceil_mode) of a sliding window
        layer (``kernel_size``, ``stride``, ``sides``, ``dilation``), for its input ``x``.

        Before opset 22 ONNX's shape inference rounds up without PyTorch's rule that the last
        window starts inside the input or its left padding (onnxruntime follows the rule), so
        ceil_mode is written only where rounding up gives the layer's size on both axes; where
        rounding down does, 0."""
        kernel, stride, dilation = layer.kernel_size, layer.stride, layer.dilation
        attributes = {
            "kernel_shape": list(kernel),
            "strides": list(stride),
            "pads": self.pads(layer.sides),
        }
        if tuple(dilation) != (1, 1):
            attributes["dilations"] = list(dilation)
        if ceil_mode:
            attributes["ceil_mode"] = self._ceil_flag(layer, x)
        return attributes

    def _ceil_flag(self, layer, x: str) -> int:
        shape = self.shape(x)
        out = layer.output_shape(shape)[2:]
        counts = {"floor": [], "ceil": []}
        for size, sides, k, s, d, o in zip(
            shape[2:],
            layer.sides,
            layer.kernel_size,
            layer.stride,
            layer.dilation,
            out,
            strict=True,
        ):
            room = size + sum(sides) - d * (k - 1) - 1
            counts["floor"].append(room // s + 1 == o)
            counts["ceil"].append(-(-room // s) + 1 == o)
        wanted = int(layer.ceil_mode)
        if self.opset >= 22 or all(counts["ceil" if wanted else "floor"]):
            return wanted
        if all(counts["ceil" if not wanted else "floor"]):
            return 1 - wanted
        raise self.refusal(
            layer,
            f"ceil_mode rounds up on one axis only for a {shape[2]}x{shape[3]} input, which ONNX "
            "before opset 22 cannot say with one ceil_mode; export with opset=22 (onnxruntime "
            "1.20 or later)",
        )

    def uniform_windows(self, layer, x: str, output_size) -> dict:
        """An AveragePool's attributes for an adaptive average pool whose windows on this
        input are all one size, one stride apart (7x7 -> 1x1, 8x8 -> 2x2, 3 -> 2); refused
        where PyTorch's windows differ in size (7 -> 3: 3, 3, 3 from 0, 2, 4 is fine; 5 -> 3
        gives 2, 3, 2)."""
        kernel, stride = [], []
        for size, out in zip(self.shape(x)[2:], output_size, strict=True):
            starts = [i * size // out for i in range(out)]
            sizes = [-(-(i + 1) * size // out) - start for i, start in enumerate(starts)]
            steps = {b - a for a, b in itertools.pairwise(starts)} or {sizes[0]}
            if len(set(sizes)) != 1 or len(steps) != 1:
                raise self.refusal(
                    layer,
                    f"on {size} inputs its {out} windows are {sizes} wide from {starts}, not "
                    "one size one stride apart, so no ONNX AveragePool computes it (ONNX has no "
                    "adaptive pool); choose an output size that divides the input, or 1 "
                    "(GlobalAveragePool)",
                )
            kernel.append(sizes[0])
            stride.append(steps.pop())
        return {"kernel_shape": kernel, "strides": stride, "pads": [0, 0, 0, 0]}

    def output_shape_of(self, value: str) -> list:
        """The declared shape of a graph output: the batch axis symbolic (``"N"``)."""
        return ["N", *self.shape(value)[1:]]
