"""The layer contract every cnnkit layer follows, the user's own included.

A layer defines ``forward(x)`` and ``backward(dy)``. In ``forward`` it saves what backward
needs with ``self.save_for_backward(...)``; in ``backward`` it reads ``self.saved_tensors``,
adds its parameters' gradients into ``Parameter.grad`` (``+=``: uses accumulate) and returns
dx. What is saved lives in a per-call context (:mod:`cnnkit.nn.context`), never on the layer,
so a layer can be used twice in one network and from several threads.

Optional: ``build(input_shape)`` creates parameters once the input shape (N, C, H, W) is known
(called before the first forward); ``output_shape(input_shape)`` (default: one dry forward on
a batch of one); ``get_config()`` (default: the ``__init__`` arguments, read back from
attributes of the same names); ``extra_repr()``; ``macs(input_shape)``; ``field_after(field)``
(the receptive field, default pointwise); ``memory(...)`` for the summary. Parameters are the
layer's :class:`Parameter` attributes and child layers in definition order; non-trainable
state is a buffer (:meth:`Layer.register_buffer`): in ``state_dict()``, not in
``parameters()``; a layer that draws random numbers registers its generator
(:meth:`Layer.register_generator`), whose state training checkpoints keep.

>>> import numpy as np
>>> class Double(Layer):
...     def forward(self, x):
...         return 2 * x
...     def backward(self, dy):
...         return 2 * dy
>>> layer = Double()
>>> layer.forward(np.ones((1, 2), np.float32)).tolist()
[[2.0, 2.0]]
>>> layer.backward(np.ones((1, 2), np.float32)).tolist()
[[2.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnnkit.errors import DTypeError, StateError
from cnnkit.functional.fast.layout import Workspace
from cnnkit.nn import config, context, hooks, probe
from cnnkit.nn.parameter import Parameter
from cnnkit.nn.state import buffer_value, convert, generator_items, generator_value, load_state
from cnnkit.shapes import Field


class Layer:
    """Base class of every layer: the contract above, modes, parameters, buffers, state."""

    training: bool = True
    _forward_hooks: tuple | list = ()  # register_forward_hook makes the layer its own list
    dtype = np.dtype(np.float32)  # what build() should create parameters as
    _keyword: str | None = None

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.__dict__["_local"] = context.LayerLocal()
        self.__dict__["built"] = cls.build is Layer.build
        return self

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name, wrap in (
            ("forward", context.forward_call),
            ("backward", context.backward_call),
            ("build", probe.build_call),
        ):
            function = cls.__dict__.get(name)
            if function is not None and not getattr(function, "_cnnkit_call", False):
                setattr(cls, name, wrap(function))

    # -- the contract --------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, dy, *, input_grad: bool = True, retain_graph: bool = False):
        raise NotImplementedError(
            f"{type(self).__name__} defines no backward(dy), so it cannot be trained through"
        )

    def __call__(self, x):
        return self.forward(x)

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Create parameters for inputs of ``input_shape`` (N, C, H, W). Runs once: on the
        first forward, or when called; a built layer's ``build`` does nothing."""

    def _build_for(self, x) -> None:
        """Build for the first input; a layer given no dtype takes the input's (float32 or
        float64), so a float64 gradient check builds float64 parameters."""
        shape = getattr(x, "shape", None)
        if shape is None:
            raise DTypeError(
                f"{self!r}: expected an array (N, C, H, W), got {type(x).__name__}; convert "
                "with np.asarray(x, dtype=np.float32)"
            )
        probe.build_once(self, tuple(shape), getattr(x, "dtype", None))

    def save_for_backward(self, *items) -> None:
        """Keep ``items`` for this call's backward (inside ``forward`` only)."""
        frame = context.current_context(self)
        if frame is None:
            raise StateError(f"{self!r}: save_for_backward() is only valid inside forward()")
        context.keep(frame, *items)

    @property
    def saved_tensors(self) -> tuple:
        """What this call's forward passed to ``save_for_backward`` (inside ``backward``)."""
        frame = context.current_context(self)
        if frame is None:
            raise StateError(f"{self!r}: saved_tensors is only valid inside backward()")
        return frame.saved

    @property
    def needs_input_grad(self) -> bool:
        """False when the caller of this backward does not need dx (a first layer)."""
        frame = context.current_context(self)
        return True if frame is None else frame.needs_input_grad

    @property
    def recording(self) -> bool:
        """Whether the forward running now saves anything for backward."""
        frame = context.current_context(self)
        return frame is not None and frame.record

    def register_forward_hook(self, hook) -> hooks.HookHandle:
        """Call ``hook(layer, (x,), y)`` after every forward (see :mod:`cnnkit.nn.hooks`);
        ``.remove()`` on the returned handle takes it away."""
        return hooks.register(self, hook)

    def workspace(self) -> Workspace:
        """Scratch arrays this layer reuses between its calls, one set per thread."""
        return self._local.workspace

    # -- shapes, costs and knowledge for summaries and explanations --------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape forward returns for ``input_shape``; by default, measured by one forward
        of zeros for a batch of one."""
        shape = tuple(int(size) for size in input_shape)
        probe.build_once(self, shape)
        zeros = np.zeros((1, *shape[1:]), dtype=probe.input_dtype(self))
        with probe.probing(self):  # evaluation mode, nothing recorded, buffers put back
            y = self.forward(zeros)
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            raise DTypeError(
                f"{type(self).__name__}: forward returned {type(y).__name__}, not an array; "
                "return an array of shape (N, ...)"
            )
        return (shape[0], *tuple(y.shape)[1:])

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-adds per example (default 0)."""
        return 0

    def field_after(self, field: Field) -> Field | None:
        """The receptive field of this layer's units, given the one of its inputs' (``None``:
        every unit sees the whole input). The default: pointwise, like an activation."""
        return field

    def memory(self, input_shape, dtype_bytes: int, layout):
        """(bytes of the output, bytes kept for backward or None if unknown, output layout),
        per example, for the summary. The default knows only the output."""
        elements = int(np.prod(self.output_shape(input_shape)[1:]))
        return elements * dtype_bytes, None, None

    def explain(self, input_shape: tuple[int, ...]) -> str:
        """A sentence or two on what this layer does to ``input_shape`` (N, C, H, W)."""
        out = self.output_shape(input_shape)
        count = sum(p.size for p in self.parameters())
        return (
            f"{self!r} maps {'x'.join(map(str, input_shape))} to {'x'.join(map(str, out))} with "
            f"{count:,} "
            "parameters"
        )

    # -- configuration --------------------------------------------------------------------------
    @classmethod
    def spec_class(cls, config: dict):
        """The class a registered keyword builds for ``config`` (pooling picks max or avg)."""
        return cls

    @classmethod
    def spec_problems(cls, config: dict) -> list[tuple[str, str]]:
        """Checks across arguments for architecture strings: (argument name, message)."""
        return []

    def spec_config(self) -> dict:
        """The config as architecture strings see it (default: :meth:`get_config`)."""
        return self.get_config()

    def get_config(self) -> dict:
        """The keyword arguments that rebuild this layer (default: the ``__init__`` arguments,
        read from attributes of the same names)."""
        return config.default_config(self)

    def extra_repr(self) -> str:
        """What the repr shows inside the parentheses: the non-default config values."""
        return config.default_extra_repr(self)

    def __repr__(self) -> str:
        try:
            extra = self.extra_repr()
        except Exception:  # a repr is in every error message: it must not raise itself
            extra = "..."
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [f"  ({name}): {child!r}".replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}({extra}\n" + "\n".join(lines) + "\n)"

    # -- structure: children, parameters, buffers -----------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """Child layers in definition order (attributes, and lists of layers as ``name.i``)."""
        for name, value in self.__dict__.items():
            if isinstance(value, Layer):
                yield name, value
            elif (
                type(value) in (list, tuple)
                and value
                and isinstance(value[0], Layer)
                and all(isinstance(item, Layer) for item in value)
            ):
                for index, item in enumerate(value):
                    yield f"{name}.{index}", item

    def sequence(self) -> list[Layer]:
        """The layers this one runs one after the other, as summaries and architecture strings
        list them: the layer itself (a container of layers in order says otherwise)."""
        return [self]

    def children(self) -> Iterator[Layer]:
        for _, child in self.named_children():
            yield child

    def modules(self) -> Iterator[Layer]:
        """This layer and every layer inside it, each once, parents first."""
        seen: set[int] = set()
        stack = [self]
        while stack:
            layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield layer
            stack.extend(reversed(list(layer.children())))

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Parameter attributes (and lists of them, as ``name.i``) in definition order."""
        for name, value in self.__dict__.items():
            if isinstance(value, Parameter):
                yield name, value
            elif (
                type(value) in (list, tuple)
                and value
                and isinstance(value[0], Parameter)
                and all(isinstance(item, Parameter) for item in value)
            ):
                for index, item in enumerate(value):
                    yield f"{name}.{index}", item

    def register_buffer(self, name: str, array) -> None:
        """Keep ``array`` as non-trainable state: an attribute ``name``, in ``state_dict()``
        and checkpoints, not in ``parameters()`` (BatchNorm's running statistics)."""
        array = buffer_value(self, name, array)
        names = self.__dict__.setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)
        setattr(self, name, array)

    def register_generator(self, name: str, generator) -> None:
        """Keep ``generator`` (a numpy Generator on PCG64) as random state: an attribute
        ``name``, in ``named_generators()``, its state saved with every training checkpoint and
        restored on resume, so a resumed run draws what an uninterrupted one does (Dropout's
        masks). Not in ``state_dict()``, which holds arrays only."""
        generator = generator_value(self, name, generator)
        names = self.__dict__.setdefault("_generator_names", [])
        if name not in names:
            names.append(name)
        setattr(self, name, generator)

    def named_generators(self, prefix: str = "") -> Iterator[tuple[str, np.random.Generator]]:
        """(name, generator) of every registered generator, named as ``state_dict`` keys are
        (``"3.rng"``; ``"5.body.2.rng"`` inside containers); each generator once."""
        yield from generator_items(self, prefix)

    def buffer_problem(self, name: str, value) -> str | None:
        """Why ``value`` cannot be this layer's buffer ``name`` (checked before a state dict
        or a checkpoint is loaded), or None; e.g. BatchNorm refuses a negative variance."""
        return None

    def _own_buffers(self) -> Iterator[tuple[str, object]]:
        for name in self.__dict__.get("_buffer_names", ()):
            yield name, getattr(self, name)

    def named_parameters(
        self, prefix: str = "", *, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) with PyTorch's names (``"0.weight"``); a parameter used by several
        layers (tied weights) once, under its first name."""
        self._require_built()
        seen: set[int] = set()
        for name, parameter, kind in self._state_items(prefix):
            if kind != "parameter" or (remove_duplicate and id(parameter) in seen):
                continue
            seen.add(id(parameter))
            yield name, parameter

    def parameters(self) -> Iterator[Parameter]:
        """The trainable parameters, each once, in a fixed order (``weight`` before ``bias``)."""
        for _, parameter in self.named_parameters():
            yield parameter

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, object]]:
        for name, value, kind in self._state_items(prefix):
            if kind == "buffer":
                yield name, value

    def buffers(self) -> Iterator[object]:
        for _, value in self.named_buffers():
            yield value

    def _state_items(self, prefix: str = "", seen: set | None = None):
        """(name, value, kind) of every parameter and buffer, each module's own first, then
        its children's, as PyTorch orders ``state_dict`` keys."""
        for name, parameter in self._own_parameters():
            yield prefix + name, parameter, "parameter"
        for name, buffer in self._own_buffers():
            yield prefix + name, buffer, "buffer"
        for name, child in self.named_children():
            yield from child._state_items(f"{prefix}{name}.")

    def _require_built(self) -> None:
        unbuilt = [layer for layer in self.modules() if not layer.built]
        leaves = [layer for layer in unbuilt if not any(True for _ in layer.children())]
        for layer in leaves or unbuilt:
            raise StateError(
                f"{layer!r} is not built yet: its parameters exist once it knows its input "
                "shape; call model.build((N, C, H, W)) or run one forward first"
            )

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.zero_grad()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer array, keyed as PyTorch keys them."""
        self._require_built()
        return {
            name: (value.data if kind == "parameter" else np.asarray(value)).copy()
            for name, value, kind in self._state_items()
        }

    def load_state_dict(self, state) -> None:
        """Copy arrays into the parameters and buffers; names and shapes must all match. Values
        are converted to each parameter's dtype (a float32 checkpoint into a float64 model)."""
        self._require_built()
        load_state(self, state)

    # -- modes and dtype -------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        """Training mode (``mode=True``) or evaluation mode, for this layer and its children."""
        mode = bool(mode)
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def to(self, dtype) -> Layer:
        """Convert every parameter and floating buffer to ``dtype`` (float32 or float64), in
        place; gradients restart at zero. ``model.to(np.float64)`` before a gradient check."""
        convert(self, dtype)
        return self

    # -- copies ------------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_local", None)  # calls in flight and scratch memory are not part of a layer
        state.pop("_unrecorded", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__["_local"] = context.LayerLocal()
