"""Between architectures and live models: build one from the other, and the string of each.

>>> model = from_spec("INPUT(1x28x28) - [CONV(D=8, F=3, P=1) - RELU - POOL(F=2)] x 2 - FC(10)",
...                   rng=np.random.default_rng(0))
>>> model.output_shape((5, 1, 28, 28))
(5, 10)
>>> to_spec(model).split(" - ")[:4]
['INPUT(1x28x28)', 'CONV(D=8, F=3, S=1, P=1)', 'RELU', 'POOL(max, F=2, S=2)']
"""

from __future__ import annotations

import numpy as np

from cnnkit.arch.grammar import SpecError
from cnnkit.arch.specs import (
    FLATTEN,
    Architecture,
    InputSpec,
    LayerSpec,
    is_branch,
    parse,
    reread,
)
from cnnkit.arch.trace import Step, make_layer, trace
from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.nn import probe, registry
from cnnkit.nn.containers import Sequential
from cnnkit.nn.spec_args import REQUIRED, ArgError, arguments_of, same_value


def build(arch: Architecture, *, rng: np.random.Generator | None = None, dtype=np.float32):
    """The Sequential ``arch`` describes, with freshly initialised weights drawn from ``rng``
    layer by layer (weight before bias). Raises :class:`ShapeError` listing every problem (one
    per line) when the shapes do not work out."""
    traced = trace(arch)
    traced.raise_problems()
    rng = np.random.default_rng() if rng is None else rng
    layers = [
        make_layer(step.spec, (1, *step.input_shape), rng=rng, dtype=dtype) for step in traced.steps
    ]
    return Sequential(*layers, input_shape=arch.input.shape)


def from_spec(
    text: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
):
    """Build the Sequential an architecture string (or built-in name) describes.

    ``input_shape`` (C, H, W) replaces or supplies the INPUT volume. FC input sizes and CONV
    input channels are inferred: nobody computes a flatten size by hand.
    """
    return build(parse(text).with_input(input_shape), rng=rng, dtype=dtype)


def architecture_of(model, input_shape: tuple[int, int, int] | None = None) -> Architecture:
    """The configuration of a model (a Sequential, or one layer) of registered layers; no
    weights are read."""
    specs: list[LayerSpec] = []
    layers = model.sequence()
    for index, layer in enumerate(layers):
        keyword = registry.keyword_of(layer)
        if keyword is None:
            raise ShapeError(
                f"layer {index} {layer!r} has no architecture-string form: register its class "
                "with @cnnkit.register_layer('KEYWORD')"
            )
        config = layer.spec_config()
        args = _registered_args(layer)
        values = tuple(
            (arg.name, _branch_entries(config[arg.name]) if is_branch(arg) else config[arg.name])
            for arg in args
            if arg.name in config and (arg.key is not None or arg.infer is None)
        )
        specs.append(_written(LayerSpec(keyword, values), layer, index))
    specs = _mark_implied(specs, layers)
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is not None and len(shape) == 4:  # (N, C, H, W): the batch size plays no part
        shape = tuple(shape[1:])
    if shape is not None and (len(shape) != 3 or min(shape) < 1):
        raise ShapeError(f"input_shape must be (C, H, W), got {tuple(shape)}")
    arch = Architecture(InputSpec(*shape) if shape else None, tuple(specs))
    return _drop_inferable(arch)


def _branch_entries(branch) -> tuple[LayerSpec, ...] | None:
    """A branch (a layer or a Sequential of layers) as its layers' entries; a problem inside
    names its place."""
    if branch is None:
        return None
    return architecture_of(branch).layers


def _written(spec: LayerSpec, layer, index: int) -> LayerSpec:
    """``spec``, once its text is known to read back as exactly the layer's settings (a
    value that would come back changed is refused here, not found wrong after training)."""
    label = f"layer {index} {spec.keyword}"
    config = {  # a value at its default is not written, so it needs no text
        name: value for name, value in spec.config if not _at_default(spec, name, value)
    }
    for arg in spec.args:
        if arg.name in config:
            try:
                arg.kind.text(config[arg.name])
            except ArgError as error:
                raise ConfigError(
                    f"{label}: {arg.name}={config[arg.name]!r}: {error}; keep arrays as buffers "
                    "(register_buffer) or parameters, or give the layer a get_config() of "
                    "such values"
                ) from None
    try:
        back = reread(spec)
    except SpecError as error:
        raise ConfigError(f"{label}: its text {spec.text()} does not read back ({error})") from None
    for name, value in config.items():
        again = back.get(name)
        if not same_value(value, again):
            raise ConfigError(
                f"{label}: {name}={value!r} would come back from {spec.text()} as {again!r}; "
                "store the setting as the type strings read back, or declare its spec_args"
            )
    return spec


def _at_default(spec: LayerSpec, name: str, value) -> bool:
    arg = next((a for a in spec.args if a.name == name), None)
    if arg is None or arg.always or arg.default is REQUIRED:
        return False
    try:
        return same_value(value, arg.default)
    except Exception:  # a value that cannot even be compared is not the default
        return False


def _registered_args(layer):
    for klass in type(layer).__mro__:
        if klass.__dict__.get("_keyword") is not None:
            return arguments_of(klass)
    return ()


def _mark_implied(specs: list[LayerSpec], layers: list) -> list[LayerSpec]:
    """A default FLATTEN right before the first layer that needs a flat input is implied."""
    for index, spec in enumerate(specs):
        if spec.keyword == FLATTEN:
            following = layers[index + 1] if index + 1 < len(layers) else None
            if spec.text() == FLATTEN and getattr(following, "flat_input", False):
                specs[index] = LayerSpec(spec.keyword, spec.config, implied=True)
            break
    return specs


def _drop_inferable(arch: Architecture) -> Architecture:
    """Write FC(10) rather than FC(in=128, 10) where the traced shapes give 128 anyway."""
    if arch.input is None:
        return arch
    traced = trace(arch)
    if traced.problems:
        return arch
    layers = list(arch.layers)
    for step in traced.steps:
        for arg in step.spec.args:
            value = step.spec.get(arg.name)
            if arg.infer is not None and value == arg.infer((1, *step.input_shape)):
                layers[step.index] = layers[step.index].without(arg.name)
    return Architecture(arch.input, tuple(layers))


def layer_spec_of(layer, input_shape=None) -> LayerSpec | None:
    """One layer as an architecture-string entry (arguments its input shape gives away left
    out), or None for a layer whose class is not registered."""
    if registry.keyword_of(layer) is None:
        return None
    spec = architecture_of(layer).layers[0]
    if input_shape is not None:
        for arg in spec.args:
            if arg.infer is not None and spec.get(arg.name) == arg.infer(tuple(input_shape)):
                spec = spec.without(arg.name)
    return spec


def _spec_or_none(layer, input_shape=None) -> LayerSpec | None:
    """The layer's entry, or None where it has none or its settings have no exact text (a
    summary or an explanation then shows its repr; only ``to_spec`` refuses)."""
    try:
        return layer_spec_of(layer, input_shape)
    except ConfigError:
        return None


def describe(layer, input_shape=None) -> str:
    """``CONV(D=8, F=3, S=1, P=1)`` for a registered layer, ``[CONV(...) - RELU]`` for a
    container of layers in order (a nested Sequential), its repr on one line otherwise."""
    spec = _spec_or_none(layer, input_shape)
    if spec is not None:
        return spec.text()
    inner = layer.sequence()
    if len(inner) != 1 or inner[0] is not layer:
        return "[" + " - ".join(describe(item) for item in inner) + "]"
    return " ".join(repr(layer).split())


def network_text(model, input_shape=None) -> str:
    """The model's architecture string, or (with a layer that has none) its layers' texts."""
    try:
        return architecture_of(model, input_shape).text()
    except CnnkitError:
        head = [f"INPUT({'x'.join(map(str, input_shape))})"] if input_shape else []
        return " - ".join([*head, *(describe(layer) for layer in model.sequence())])


def to_spec(model, input_shape: tuple[int, int, int] | None = None) -> str:
    """The architecture string that builds a model of the same layers and shapes."""
    return architecture_of(model, input_shape).text()


def model_input(model, input_shape=None, *, where: str = "summarize") -> tuple[int, int, int]:
    """The (C, H, W) a live model is asked about: ``input_shape`` or the model's own."""
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ShapeError(
            f"{where}: the model has no input size; pass input_shape=(C, H, W), e.g. "
            "input_shape=(1, 28, 28)"
        )
    shape = tuple(shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeError(f"{where}: input_shape must be (C, H, W), got {shape}")
    return shape


def live_steps(model, shape: tuple[int, int, int]) -> tuple[Step, ...]:
    """A live model's own layers (a model's ``sequence()``, or one layer) with the shapes
    each receives and gives, per example; a layer's error names its position."""
    steps = []
    current = (1, *shape)
    for index, layer in enumerate(model.sequence()):
        try:
            probe.build_once(layer, current)
            out = tuple(layer.output_shape(current))
        except CnnkitError as error:
            raise error.located(index) from None
        steps.append(Step(index, _spec_or_none(layer, current), layer, current[1:], out[1:]))
        current = out
    return tuple(steps)
