"""cnnkit -> PyTorch: :func:`to_torch` gives a ``torch.nn.Module`` of the same structure,
``state_dict`` keys, numbers, dtype and train/eval mode as a cnnkit model.

Each layer says how it becomes a torch module, with a method on its class::

    def torch_module(self, convert):
        return convert.torch_layer(self)  # torch.nn.<torch_classes[0]>(**self.get_config())

``convert(child)`` converts a child layer (containers recurse with it),
``convert.torch_class(self)`` is the torch class the layer's ``torch_classes`` names first, and
``convert.torch_layer(self, drop=(...))`` builds it from the layer's config, leaving out
cnnkit-only settings. The machinery here copies every parameter and buffer afterwards, by
``state_dict`` key (the keys must be cnnkit's), and carries each layer's mode. A layer whose
class has no ``torch_module`` is refused naming it: ``layer 3 (MyLayer): no torch exporter;
give the class a torch_module() method``.
"""

from __future__ import annotations

from cnnkit.errors import CnnkitError, ConfigError
from cnnkit.interop import torch_common
from cnnkit.interop.torch_common import layer_name, located


class ToTorch:
    """What a layer's ``torch_module(convert)`` is given."""

    def __init__(self, torch, model) -> None:
        self.torch = torch
        self.nn = torch.nn
        self._paths = torch_common.layer_paths(model, lambda layer: layer.named_children())
        self._done: dict[int, object] = {}

    def __call__(self, layer):
        """The torch module for ``layer`` (one module for a layer used twice)."""
        done = self._done.get(id(layer))
        if done is not None:
            return done[1]
        where = layer_name(layer, self._paths.get(id(layer), "?"))
        hook = getattr(type(layer), "torch_module", None)
        if hook is None:
            raise located(f"{where}: no torch exporter; give the class a torch_module() method")
        _check_vouched(type(layer), where)
        try:
            module = hook(layer, self)
        except CnnkitError as error:
            raise torch_common.relocated(error, where) from None
        except Exception as error:
            first = (str(error).splitlines() or [""])[0]
            raise located(
                f"{where}: its torch_module() failed ({type(error).__name__}: {first}); fix "
                f"{type(layer).__name__}.torch_module"
            ) from None
        if not isinstance(module, self.nn.Module):
            raise located(
                f"{where}: torch_module() returned {type(module).__name__}, not a "
                "torch.nn.Module; return the module computing what the layer computes"
            )
        module.training = bool(layer.training)  # this module's own mode, not its children's
        self._done[id(layer)] = (layer, module)
        return module

    def name(self, key: int) -> str:
        layer, _ = self._done[key]
        return layer_name(layer, self._paths.get(key, "?"))

    def depth(self, key: int) -> int:
        path = self._paths.get(key, "")
        return path.count(".") + 1 if path else 0

    def torch_class(self, layer):
        """The torch class ``type(layer).torch_classes`` names first."""
        owner = type(layer)
        entries = getattr(owner, "torch_classes", ())
        if not entries:
            raise ConfigError(
                f"{owner.__name__} names no torch_classes; give the class torch_classes = "
                "('TorchClassName',)"
            )
        return torch_common.torch_class(self.torch, owner, entries[0])

    def torch_layer(self, layer, drop: tuple[str, ...] = ()):
        """``torch_class(layer)(**config)`` with the layer's ``get_config()`` (PyTorch's
        argument names), less the cnnkit-only settings in ``drop``."""
        config = {k: v for k, v in layer.get_config().items() if k not in drop}
        return self.torch_class(layer)(**config)


def _check_vouched(cls: type, where: str) -> None:
    """A subclass that computes differently (its own forward) below the class whose hooks it
    inherits would be exported as its parent: refused."""
    vouching, forward = torch_common.vouching_class(cls), torch_common.own_forward(cls)
    if vouching is not None and forward is not None and not issubclass(vouching, forward):
        raise located(
            f"{where}: it defines its own forward() but its torch_module() comes from "
            f"{vouching.__name__}, which computes something else; give {cls.__name__} its "
            "own torch_module() method and torch_classes"
        )


def to_torch(model):
    """A ``torch.nn.Module`` computing what ``model`` (a built cnnkit layer or Sequential)
    computes: the same structure (``Sequential`` -> ``torch.nn.Sequential``, ``Residual`` ->
    :class:`cnnkit.interop.torch_modules.Residual`, ...), the same ``state_dict`` keys and
    order, every parameter and buffer copied in its dtype (float32 or float64), and each
    layer's train/eval mode. Needs PyTorch (``pip install cnnkit[torch]``).
    """
    torch = torch_common.import_torch("to_torch")
    layer_like = callable(getattr(model, "backward", None)) and hasattr(model, "named_children")
    if isinstance(model, torch.nn.Module) or not layer_like:
        raise ConfigError(
            f"to_torch: expected a cnnkit model (a Layer or Sequential), got "
            f"{type(model).__name__}; for a torch module use cnnkit.from_torch"
        )
    state = model.state_dict()  # refuses an unbuilt model, naming the layer
    convert = ToTorch(torch, model)
    module = convert(model)
    _check_keys(convert, model, module, state)
    tensors = {name: torch.from_numpy(value) for name, value in state.items()}
    module.load_state_dict(tensors, assign=True)  # the arrays' own dtypes
    return module


def _check_keys(convert: ToTorch, model, module, state) -> None:
    """The torch module's ``state_dict`` keys are cnnkit's, in cnnkit's order, or one line
    naming the first layer whose module differs."""
    theirs = list(module.state_dict())
    if theirs == list(state):
        return
    done = sorted(convert._done.items(), key=lambda item: -convert.depth(item[0]))
    for key, (layer, made) in done:
        ours, got = list(layer.state_dict()), list(made.state_dict())
        if ours != got:
            raise ConfigError(
                f"{convert.name(key)}: its torch module's state_dict keys are "
                f"{got[:6]}, cnnkit's are {ours[:6]}; make torch_module() give a module with "
                "the layer's parameter and buffer names, in its order"
            )
    raise ConfigError(  # pragma: no cover - a difference no layer accounts for
        f"to_torch: the torch module's state_dict keys {theirs[:6]} differ from cnnkit's "
        f"{list(state)[:6]}"
    )
