"""Sequential: the lecture's stack INPUT -> [CONV -> RELU -> POOL] x N -> FC as one object."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.layers.activation import ReLU
from cnnkit.layers.base import Layer
from cnnkit.layers.pool import MaxPool2d
from cnnkit.parameter import Parameter


class Sequential(Layer):
    """Layers applied in order; ``backward`` runs them in reverse.

    Errors raised by a layer name its index: ``layer 3 Conv2d(16, 32, kernel_size=3): ...``.
    Parameter names follow PyTorch's (``"0.weight"``, ``"0.bias"``, ...), so state dicts line up.
    """

    def __init__(self, *layers: Layer) -> None:
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(
                    f"Sequential: item {index} is {type(layer).__name__}, not a cnnkit layer; "
                    "pass layers such as Conv2d(...), ReLU(), MaxPool2d(2), Flatten(), Linear(...)"
                )
        self.layers = list(layers)
        self.input_shape: tuple[int, int, int] | None = None  # (C, H, W), set by from_spec
        self._order: list[int] | None = None  # the last forward's order of layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def append(self, layer: Layer) -> Sequential:
        self.layers.append(layer)
        return self

    def forward(self, x):
        """The layers in order, except that a ReLU followed by a max pool runs after it.

        Both orders give the same values (ReLU is monotone, so the largest rectified value of
        a window is the rectified largest value) and the same gradients (a window whose largest
        value is not positive passes no gradient either way), and the ReLU then touches a
        quarter of the elements behind a 2x2 pool. Each layer still sees exactly the input it
        computes its cache from, and ``backward`` runs them in the reverse of this order.
        """
        order = self._execution_order()
        for index in order:
            try:
                x = self.layers[index].forward(x)
            except CnnkitError as error:
                raise error.located(index) from None
        self._order = order
        return x

    def _execution_order(self) -> list[int]:
        order = list(range(len(self.layers)))
        for index in range(len(self.layers) - 1):
            relu, pool = self.layers[index], self.layers[index + 1]
            if type(relu) is ReLU and type(pool) is MaxPool2d and order[index] == index:
                order[index], order[index + 1] = index + 1, index
        return order

    def backward(self, dy, *, input_grad: bool = True):
        """Backward through every layer in reverse; returns dx, the gradient of the input.

        ``input_grad=False`` is for training, where nothing needs the input's gradient (PyTorch
        does not compute it for an input that does not require grad): the first layer then
        skips it (for a first Conv2d that saves most of its backward) and None is returned.
        Parameter gradients are the same either way.
        """
        order = self._order or list(range(len(self.layers)))
        for position in range(len(order) - 1, -1, -1):
            index = order[position]
            layer = self.layers[index]
            try:
                if position == 0 and not input_grad:
                    layer.backward_parameters(dy)
                    return None
                dy = layer.backward(dy)
            except CnnkitError as error:
                raise error.located(index) from None
        return dy if input_grad else None

    def backward_parameters(self, dy) -> None:
        self.backward(dy, input_grad=False)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except CnnkitError as error:
                raise error.located(index) from None
        return shape

    def parameters(self) -> Iterator[Parameter]:
        for layer in self.layers:
            yield from layer.parameters()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for index, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{index}.")

    def train(self, mode: bool = True) -> Sequential:
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter array, keyed as PyTorch would key them."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters; names, shapes and dtypes must all match."""
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ShapeError(
                f"load_state_dict: missing {missing or 'nothing'}, unexpected "
                f"{unexpected or 'nothing'}; was the state saved from another architecture?"
            )
        for name, parameter in own.items():
            value = np.asarray(state[name])
            if value.shape != parameter.data.shape:
                raise ShapeError(
                    f"load_state_dict: {name} has shape {value.shape}, the model expects "
                    f"{parameter.data.shape}"
                )
            parameter.data[...] = value.astype(parameter.data.dtype, copy=False)

    def summary(self, input_shape: tuple[int, int, int] | None = None, **options):
        """Shapes, parameters, multiply-adds and memory per layer (see ``cnnkit.summary``).

        ``input_shape`` is (C, H, W); the default is the INPUT the model was built from.
        ``options``: ``batch``, ``floor``. ``print(model.summary((1, 28, 28)).table())``.
        """
        from cnnkit.architecture import architecture_of
        from cnnkit.summary import summarize

        return summarize(architecture_of(self, input_shape), **options)

    def to_spec(self, input_shape: tuple[int, int, int] | None = None) -> str:
        """The architecture string that builds this model's layers (see ``cnnkit.spec``)."""
        from cnnkit.spec import to_spec

        return to_spec(self, input_shape)

    def __repr__(self) -> str:
        lines = [f"  ({i}): {layer!r}".replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"


LECTURE_DEPTHS = (32, 64)


def lecture_spec(
    input_shape: tuple[int, int, int], classes: int, depths: tuple[int, ...] = LECTURE_DEPTHS
) -> str:
    """The lecture's INPUT -> [CONV -> RELU -> POOL] x len(depths) -> FC as a string.

    Each CONV is 3x3 with P=1, S=1 (keeps H x W); each POOL is 2x2 max with S=2 (halves it).

    >>> lecture_spec((1, 8, 8), 10, depths=(16,))
    'INPUT(1x8x8) - CONV(D=16, F=3, P=1) - RELU - POOL(F=2) - FC(10)'
    """
    channels, height, width = input_shape
    blocks = [f"CONV(D={depth}, F=3, P=1) - RELU - POOL(F=2)" for depth in depths]
    return " - ".join([f"INPUT({channels}x{height}x{width})", *blocks, f"FC({classes})"])


def lecture_network(
    input_shape: tuple[int, int, int],
    classes: int,
    *,
    depths: tuple[int, ...] = LECTURE_DEPTHS,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
) -> Sequential:
    """The lecture's stack (:func:`lecture_spec`) for (C, H, W) images, with fresh weights.

    >>> lecture_network((1, 8, 8), 10, rng=np.random.default_rng(0)).output_shape((5, 1, 8, 8))
    (5, 10)
    """
    from cnnkit.spec import from_spec

    return from_spec(lecture_spec(input_shape, classes, depths), rng=rng, dtype=dtype)
