"""Sequential: the lecture's stack INPUT -> [CONV -> RELU -> POOL] x N -> FC as one object."""

from __future__ import annotations

from collections.abc import Iterator

from cnnkit.display import pre
from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.nn import probe
from cnnkit.nn.layer import Layer


class Sequential(Layer):
    """Layers applied in the order listed; ``backward`` runs them in reverse.

    Errors raised by a layer name its index: ``layer 3 Conv2d(16, 32, kernel_size=3): ...``.
    Parameter names follow PyTorch's (``"0.weight"``, ``"0.bias"``, ...), so state dicts line up.
    One layer may appear several times (a ReLU reused, tied weights): each use has its own
    forward state, gradients add up over the uses, and ``parameters()`` yields a shared
    parameter once. ``input_shape`` (C, H, W), when known (``from_spec`` sets it), is checked
    at the input, where a wrong image size is best explained.
    """

    def __init__(self, *layers: Layer, input_shape: tuple[int, int, int] | None = None) -> None:
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(
                    f"Sequential: item {index} is {type(layer).__name__}, not a cnnkit layer; "
                    "pass layers such as Conv2d(...), ReLU(), MaxPool2d(2), Flatten(), Linear(...)"
                )
        self.layers = list(layers)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.built = all(layer.built for layer in self.layers)

    torch_classes = ("Sequential",)

    def torch_module(self, convert):
        return convert.torch_class(self)(*(convert(layer) for layer in self.layers))

    @classmethod
    def from_torch_module(cls, module, convert):
        return cls(*(convert(child) for child in module))  # each use, repeats included

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        for index, layer in enumerate(self.layers):
            yield str(index), layer

    def sequence(self) -> list[Layer]:
        return list(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def append(self, layer: Layer) -> Sequential:
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential.append: {type(layer).__name__} is not a cnnkit layer")
        if any(module is self for module in layer.modules()):
            raise ConfigError(
                "Sequential.append: the layer contains this Sequential, and a network cannot "
                "contain itself; append a new layer (or a copy: copy.deepcopy(layer))"
            )
        self.layers.append(layer)
        self.built = self.built and layer.built
        return self

    def get_config(self) -> dict:
        return {}

    def onnx_nodes(self, graph, x):  # ONNX (cnnkit.interop): its layers' nodes in order
        for index, layer in enumerate(self.layers):
            x = graph.emit(layer, x, str(index))
        return x

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Build every layer that waits for its input shape, passing the shapes along; a
        layer given no dtype of its own builds in the model's (the first input's)."""
        shape = tuple(input_shape)
        for index, layer in enumerate(self.layers):
            try:
                probe.build_once(layer, shape, self.dtype)
                shape = layer.output_shape(shape)
            except CnnkitError as error:
                raise error.located(index) from None
        self.built = True

    def forward(self, x):
        """x through every layer, in the order listed."""
        if self.input_shape is not None:
            _check_input(self.input_shape, x)
        shapes = []
        for index, layer in enumerate(self.layers):
            shapes.append(x.shape)
            try:
                x = layer.forward(x)
            except CnnkitError as error:
                raise error.located(index) from None
        self.save_for_backward(shapes)  # each layer's dx must come back shaped like its x
        return x

    def backward(self, dy):
        """Backward through every layer in reverse; returns dx, the gradient of the input.

        ``backward(dy, input_grad=False)`` is for training, where nothing needs the input's
        gradient (PyTorch does not compute it for an input that does not require grad): the
        first layer then skips it (for a first Conv2d that saves most of its backward) and
        None is returned. Parameter gradients are the same either way.
        """
        wanted = self._local.call.needs_input_grad
        layers = self.layers
        (shapes,) = self.saved_tensors
        for index in range(len(layers) - 1, -1, -1):
            try:
                dy = layers[index].backward(dy, input_grad=index > 0 or wanted)
            except CnnkitError as error:
                raise error.located(index) from None
            if dy is not None and getattr(dy, "shape", None) != shapes[index]:
                raise _wrong_gradient(layers[index], dy, shapes[index]).located(index)
        return dy

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except CnnkitError as error:
                raise error.located(index) from None
        return shape

    def _shapes(self, input_shape):
        """(layer, the shape it receives) in order."""
        shape = tuple(input_shape)
        for layer in self.layers:
            yield layer, shape
            shape = layer.output_shape(shape)

    def macs(self, input_shape) -> int:
        """The multiply-adds of its layers (a Sequential inside a model is one summary row)."""
        return sum(int(layer.macs(shape)) for layer, shape in self._shapes(input_shape))

    def unshared_parameters(self, input_shape) -> int:
        """Its layers' parameters as they would be without parameter sharing."""
        total = 0
        for layer, shape in self._shapes(input_shape):
            ask = getattr(layer, "unshared_parameters", None)
            total += ask(shape) if ask is not None else sum(p.size for p in layer.parameters())
        return total

    def memory(self, input_shape, dtype_bytes: int, layout):
        """The new memory of all its layers' outputs, and what they all keep for backward."""
        out, kept = 0, 0
        for layer, shape in self._shapes(input_shape):
            layer_out, layer_kept, after = layer.memory(shape, dtype_bytes, layout)
            out += layer_out
            kept = None if kept is None or layer_kept is None else kept + layer_kept
            layout = after or layout
        return out, kept, layout

    def field_after(self, field):
        for layer in self.layers:
            if field is None:
                return None
            field = layer.field_after(field)
        return field

    def summary(self, input_shape: tuple[int, int, int] | None = None, **options):
        """Shapes, parameters, multiply-adds and memory per layer (see ``cnnkit.summary``).

        ``input_shape`` is (C, H, W); the default is the model's own ``input_shape``.
        ``options``: ``batch``, ``floor``. ``print(model.summary((1, 28, 28)).table())``.
        """
        import cnnkit  # the public API: the summary is built on top of the layers

        return cnnkit.summarize(self, input_shape=input_shape, **options)

    def to_spec(self, input_shape: tuple[int, int, int] | None = None) -> str:
        """The architecture string that builds this model's layers (see ``cnnkit.arch``)."""
        import cnnkit

        return cnnkit.to_spec(self, input_shape)

    def __repr__(self) -> str:
        lines = [f"  ({i}): {layer!r}".replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"

    def _repr_html_(self) -> str:
        """What a notebook shows: the layers, then the summary table when the input size is
        known (``Sequential(..., input_shape=(C, H, W))`` or a model from an architecture)."""
        parts = [pre(repr(self))]
        if self.input_shape is not None:
            try:
                parts.append(self.summary()._repr_html_())
            except CnnkitError as error:  # a layer that cannot say its shapes
                parts.append(pre(f"no summary: {error}"))
        return "\n".join(parts)


def _check_input(expected: tuple[int, ...], x) -> None:
    """Images of the size the network was built for, or one message at the input."""
    if not hasattr(x, "shape"):
        return  # not an array: the first layer says what it expects
    shape = tuple(x.shape)
    if shape[1:] == expected:
        return
    c, h, w = expected
    volume = "x".join(map(str, expected))
    head = f"the network takes (N, {c}, {h}, {w}) images ({volume}), got shape {shape}"
    if shape == expected:
        raise ShapeError(f"{head}; add a batch axis with x[None]")
    if len(shape) == 4 and (shape[3], shape[1], shape[2]) == expected:
        raise ShapeError(f"{head}; the array is channels-last: use x.transpose(0, 3, 1, 2)")
    if len(shape) == 4 and shape[1] == c:
        raise ShapeError(
            f"{head}; resize the images to {h}x{w}, or build the network for "
            f"{shape[2]}x{shape[3]} (from_spec(..., input_shape=({c}, {shape[2]}, {shape[3]})))"
        )
    raise ShapeError(f"{head}; reshape the batch to (N, {c}, {h}, {w})")


def _wrong_gradient(layer, dx, shape) -> ShapeError:
    got = f"shape {tuple(dx.shape)}" if hasattr(dx, "shape") else type(dx).__name__
    return ShapeError(
        f"{type(layer).__name__}: backward returned dx of {got}, but its input had shape "
        f"{tuple(shape)}; return the gradient of the loss for each input value, shaped like x"
    )
