"""PyTorch -> cnnkit: :func:`from_torch` gives a built cnnkit ``Sequential`` computing what a
``torch.nn`` module computes, with its weights, buffers, dtype and train/eval mode.

Which cnnkit class takes a torch module is read from the layer classes themselves: a class
naming a torch class in ``torch_classes`` takes modules of exactly that class, and a class with
a ``torch_matches(module)`` classmethod takes the modules it says yes to (Residual: see below).
The classes are those of the layer registry (``@cnnkit.register_layer``, a user's included),
their subclasses, and ``Sequential``. The class's ``from_torch_module(module, convert)`` builds
the layer:

- ``convert(child)``: the next layer of a sequence (the shape flows on from it);
  ``convert.branch(child)``: a branch that sees the same input as its siblings;
- ``convert.arguments(cls, module)``: ``cls``'s positional arguments read from the module's
  attributes of the same names (PyTorch's names: ``kernel_size``, ``stride``, ...);
- ``convert.rounded(make)``: ``make("strict")``, or ``make("floor")`` where cnnkit's strict
  rounding would refuse the size this module sees and PyTorch floors;
- ``convert.require(module, name, value, why)``: refuse a setting cnnkit has no equivalent of.

The weights and buffers are copied afterwards by ``state_dict`` key. A residual block is any
module with exactly the children ``body`` and ``shortcut`` (or ``body`` and an attribute
``shortcut = None``) and no parameters of its own: it is read as ``body(x) + x`` or
``body(x) + shortcut(x)``, whatever its ``forward`` says, so a module named so that computes
something else converts wrongly. Anything else is refused naming its class and path
(``Hardswish at features.1``).
"""

from __future__ import annotations

import inspect

import numpy as np

from cnnkit.errors import CnnkitError, ConfigError, ShapeError
from cnnkit.interop import torch_common
from cnnkit.interop.torch_common import located, module_name
from cnnkit.nn import registry
from cnnkit.nn.containers import Sequential

_ARGUMENTS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def class_map(torch) -> tuple[dict, list]:
    """({torch class: cnnkit class}, [cnnkit classes with torch_matches]) from the registry's
    classes, their subclasses and Sequential; a torch class claimed by two classes of
    different definitions is refused naming both."""
    found = [registry.lookup(keyword)[1] for keyword in registry.keywords()]
    exact: dict[type, type] = {}
    matchers: list[type] = []
    seen: set[type] = set()
    stack = [*reversed(found), Sequential]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(reversed(cls.__subclasses__()))
        for entry in cls.__dict__.get("torch_classes", ()):
            target = torch_common.torch_class(torch, cls, entry)
            other = exact.get(target)
            if other is not None and _label(other) != _label(cls):
                raise ConfigError(
                    f"from_torch: {_label(other)} and {_label(cls)} both take "
                    f"{target.__module__}.{target.__name__} (torch_classes); remove it from "
                    "one of them"
                )
            exact[target] = cls
        if "torch_matches" in cls.__dict__:
            matchers.append(cls)
    return exact, matchers


def _label(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class FromTorch:
    """What a class's ``from_torch_module(module, convert)`` is given."""

    def __init__(self, torch, root, input_shape: tuple[int, int, int]) -> None:
        self.torch = torch
        self.exact, self.matchers = class_map(torch)
        self.shape = (1, *input_shape)  # what the module being converted receives
        self._paths = torch_common.layer_paths(root, lambda module: module._modules.items())
        self.done: dict[int, tuple] = {}  # id(module) -> (module, layer)

    def where(self, module) -> str:
        return module_name(module, self._paths.get(id(module), "?"))

    def __call__(self, module):
        """The cnnkit layer for ``module``, the next in a sequence."""
        start = self.shape
        if id(module) in self.done:
            layer = self.done[id(module)][1]
        else:
            layer = self._convert(module)
            self.done[id(module)] = (module, layer)
        try:
            self.shape = tuple(layer.output_shape(start))
        except CnnkitError as error:
            raise torch_common.relocated(error, self.where(module)) from None
        return layer

    def branch(self, module):
        """The cnnkit layer for ``module``, a branch: its siblings see the same input."""
        start = self.shape
        layer = self(module)
        self.shape = start
        return layer

    def _convert(self, module):
        where = self.where(module)
        cls = self._class_for(module, where)
        start = self.shape
        try:
            layer = cls.from_torch_module(module, self)
        except CnnkitError as error:
            raise torch_common.relocated(error, where) from None
        except Exception as error:
            first = (str(error).splitlines() or [""])[0]
            raise located(
                f"{where}: {cls.__name__}.from_torch_module failed ({type(error).__name__}: "
                f"{first}); fix the hook"
            ) from None
        if not callable(getattr(layer, "output_shape", None)):
            raise located(
                f"{where}: {cls.__name__}.from_torch_module returned {type(layer).__name__}, "
                "not a cnnkit layer"
            )
        self.shape = start
        layer.training = bool(module.training)  # its own mode, not its children's
        return layer

    def _class_for(self, module, where: str):
        cls = self.exact.get(type(module))
        if cls is None:
            cls = next((c for c in self.matchers if c.torch_matches(module)), None)
        if cls is None:
            names = ", ".join(sorted({klass.__name__ for klass in self.exact}))
            raise located(
                f"{where}: no cnnkit layer takes {type(module).__name__}; cnnkit converts "
                f"{names} and residual blocks (children body and shortcut); a layer class "
                "takes a torch class by naming it in torch_classes and defining "
                "from_torch_module"
            )
        if not callable(getattr(cls, "from_torch_module", None)):
            raise located(
                f"{where}: {cls.__name__} takes {type(module).__name__} but has no "
                f"from_torch_module(); give {cls.__name__} a from_torch_module classmethod"
            )
        return cls

    # -- helpers for the hooks ----------------------------------------------------------------
    def arguments(self, cls, module) -> dict:
        """``cls``'s positional ``__init__`` arguments, read from the module's attributes of
        the same names: a tensor or None where the argument is a flag (``bias``) says
        whether it is there; another tensor becomes an array; a name the module lacks keeps
        its default."""
        values = {}
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        for parameter in parameters:
            if parameter.kind not in _ARGUMENTS:
                continue
            name, default = parameter.name, parameter.default
            if not hasattr(module, name):
                if default is parameter.empty:
                    raise located(
                        f"{self.where(module)}: it has no attribute {name!r}, which "
                        f"{cls.__name__} needs; give {cls.__name__} its own from_torch_module"
                    )
                continue
            value = getattr(module, name)
            if isinstance(default, bool) and (value is None or self._tensor(value)):
                value = value is not None
            elif self._tensor(value):
                value = value.detach().cpu().numpy().copy()
            values[name] = value
        return values

    def _tensor(self, value) -> bool:
        return isinstance(value, self.torch.Tensor)

    def rounded(self, make):
        """``make("strict")``, or ``make("floor")`` when the strict layer refuses the input
        this module receives (PyTorch always floors)."""
        layer = make("strict")
        try:
            layer.output_shape(self.shape)
        except ShapeError:
            return make("floor")
        return layer

    def require(self, module, name: str, expected, why: str) -> None:
        """Refuse ``module`` unless its attribute ``name`` is ``expected``."""
        value = getattr(module, name, expected)
        if value != expected:
            raise located(
                f"{self.where(module)}: {name}={value!r} is not supported: {why}; use "
                f"{name}={expected!r}"
            )


def from_torch(module, input_shape):
    """A built cnnkit ``Sequential`` computing what ``module`` (a ``torch.nn.Module``) computes
    on (N, C, H, W) inputs of ``input_shape`` (C, H, W): the same layers (a torch
    ``Sequential`` becomes the model itself, any other module its only layer), every
    parameter and buffer copied (float32 or float64), each module's train/eval mode, and
    ``input_shape`` set. Needs PyTorch (``pip install cnnkit[torch]``).
    """
    torch = torch_common.import_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(
            f"from_torch: expected a torch.nn.Module, got {type(module).__name__}; for a "
            "cnnkit model use cnnkit.to_torch"
        )
    shape = _checked_shape(input_shape)
    dtype = _dtype_of(module)
    convert = FromTorch(torch, module, shape)
    layer = convert(module)
    top = type(module) is torch.nn.Sequential
    model = Sequential(*(layer.sequence() if top else [layer]), input_shape=shape)
    model.training = bool(module.training)
    model.build((1, *shape))
    if dtype == np.float64:
        model.to(np.float64)
    prefix = "" if top else "0."
    state = {prefix + k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    _check_keys(convert, model, state)
    model.load_state_dict(state)
    return model


def _checked_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(size) for size in input_shape)
        whole = all(int(size) == size for size in input_shape)
    except (TypeError, ValueError):
        shape, whole = (), False
    if len(shape) != 3 or not whole or min(shape) < 1:
        raise ConfigError(
            f"from_torch: input_shape must be (C, H, W), three whole numbers >= 1, got "
            f"{input_shape!r}; e.g. input_shape=(1, 28, 28)"
        )
    return shape


def _dtype_of(module):
    """float32 or float64: the floating dtype of every parameter and buffer."""
    found = {str(v.dtype) for v in module.state_dict().values() if v.is_floating_point()}
    if found <= {"torch.float32"}:
        return np.float32
    if found == {"torch.float64"}:
        return np.float64
    listed = ", ".join(sorted(name.replace("torch.", "") for name in found))
    raise ConfigError(
        f"from_torch: the module holds {listed} parameters or buffers; cnnkit computes in "
        "float32 or float64: convert it first with module.float() (or module.double())"
    )


def _check_keys(convert: FromTorch, model, state: dict) -> None:
    """The model's ``state_dict`` keys are the module's, in its order, or one line naming
    the innermost module whose layer differs."""
    ours = list(model.state_dict())
    if ours == list(state):
        return
    depth = {key: convert.where(module).count(".") for key, (module, _) in convert.done.items()}
    for key in sorted(convert.done, key=lambda k: -depth[k]):
        module, layer = convert.done[key]
        theirs, got = list(module.state_dict()), list(layer.state_dict())
        if theirs != got:
            raise ConfigError(
                f"{convert.where(module)}: its cnnkit layer's state_dict keys are {got[:6]}, "
                f"the module's are {theirs[:6]}; make {type(layer).__name__}.from_torch_module "
                "give a layer with the module's parameter and buffer names, in its order"
            )
    raise ConfigError(  # pragma: no cover - a difference no module accounts for
        f"from_torch: the model's state_dict keys {ours[:6]} differ from the module's "
        f"{list(state)[:6]}"
    )
