"""Optimizers and learning-rate schedules, with PyTorch's update rules and formulas.

An optimizer reads every ``Parameter.grad`` (summed by backward) and updates ``Parameter.data`` in
place. Its buffers (momentum, moment estimates) are arrays of the parameter's dtype updated in
place, so float32 training stays float32. ``state_dict()`` is flat (string keys; values are
arrays or Python scalars), so a checkpoint can store it as an .npz plus a JSON header, and
``load_state_dict`` continues the run bit for bit.

A schedule is a pure function of the global step index: before each step the training loop sets
``optimizer.lr = schedule(step)``; nothing else needs saving to resume.

>>> import numpy as np
>>> from cnnkit.parameter import Parameter
>>> w = Parameter(np.ones(3, np.float32))
>>> optimizer = Adam([w], lr=0.1)
>>> w.grad[...] = [1.0, -2.0, 0.0]
>>> optimizer.step()
>>> w.data.round(4)  # the first Adam step moves each weight by lr against its gradient's sign
array([0.9, 1.1, 1. ], dtype=float32)
>>> schedule = WarmupLR(CosineLR(0.1, total_steps=90), warmup_steps=10)
>>> [round(schedule(step), 4) for step in (0, 5, 10, 55, 100)]
[0.0333, 0.0667, 0.1, 0.05, 0.0]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cnnkit.backend import get_array_module, is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.parameter import Parameter

# ---------------------------------------------------------------------------------------------
# argument checks


def _number(owner: str, name: str, value, *, low: float = 0.0, below: float | None = None) -> float:
    """A finite real >= ``low`` (and < ``below`` when given), as a Python float.

    Python floats keep float32 arrays float32 in arithmetic; a NumPy float64 scalar would not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DTypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    if below is not None and not low <= value < below:
        raise ConfigError(f"{owner}: {name} must be in [{low:g}, {below:g}), got {value}")
    if not (math.isfinite(value) and value >= low):
        raise ConfigError(f"{owner}: {name} must be a finite number >= {low:g}, got {value}")
    return value


def _integer(owner: str, name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < low:
        raise ConfigError(f"{owner}: {name} must be >= {low}, got {value}")
    return int(value)


def _flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise DTypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def _python_scalar(value):
    """A 0-d array or NumPy scalar (as an .npz round trip may give) -> the Python scalar."""
    if is_array(value):
        return value.item() if value.ndim == 0 else value
    return value.item() if hasattr(value, "item") else value


def _parameter_list(owner: str, parameters) -> list[Parameter]:
    parameters = list(parameters)
    if not parameters:
        raise ConfigError(f"{owner}: got no parameters to optimise; pass model.parameters()")
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, Parameter):
            raise DTypeError(
                f"{owner}: item {index} of parameters is {type(parameter).__name__}, not a "
                "cnnkit Parameter; pass model.parameters()"
            )
    if len({id(parameter) for parameter in parameters}) != len(parameters):
        raise ConfigError(
            f"{owner}: a parameter appears more than once, so it would be updated twice per "
            "step; pass each parameter once"
        )
    return parameters


# ---------------------------------------------------------------------------------------------
# optimizers


class Optimizer:
    """Base class: ``zero_grad()``, ``step()``, a settable ``lr``, ``state_dict()``.

    A subclass names its hyperparameters (the state-dict keys besides ``lr``), checks them in
    ``_check`` (a dict in, a validated dict out, nothing assigned), names its per-parameter
    buffers in ``_buffer_names`` and updates one parameter in ``_update``. Buffers are allocated
    at construction, zero-filled, one per parameter, with its shape and dtype.
    """

    hyperparameters: tuple[str, ...] = ()

    def __init__(self, parameters: Iterable[Parameter], lr: float, **hyperparameters) -> None:
        self.parameters = _parameter_list(type(self).__name__, parameters)
        self.lr = lr
        values = self._check(hyperparameters, type(self).__name__)
        self.__dict__.update(values)
        self.steps = 0
        self.state: dict[str, list] = {
            name: [get_array_module(p.data).zeros_like(p.data) for p in self.parameters]
            for name in self._buffer_names(values)
        }

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _number(type(self).__name__, "lr", value)

    def _check(self, values: dict, owner: str) -> dict:
        raise NotImplementedError

    def _buffer_names(self, values: dict) -> tuple[str, ...]:
        raise NotImplementedError

    def _update(self, index: int, parameter: Parameter) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.zero_grad()

    def step(self) -> None:
        """Update every parameter once from its current ``grad``."""
        self.steps += 1
        for index, parameter in enumerate(self.parameters):
            self._update(index, parameter)

    def state_dict(self) -> dict:
        """``{"type", "step", "num_parameters", "lr", <hyperparameters>, "<buffer>.<i>": array}``.

        Arrays are copies: stepping on does not change a saved state.
        """
        state = {
            "type": type(self).__name__,
            "step": self.steps,
            "num_parameters": len(self.parameters),
            "lr": self.lr,
        }
        state.update({name: getattr(self, name) for name in self.hyperparameters})
        for name, arrays in self.state.items():
            for index, array in enumerate(arrays):
                state[f"{name}.{index}"] = array.copy()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore step count, ``lr``, hyperparameters and buffers (as PyTorch does), after
        checking everything: nothing changes if anything is refused."""
        kind = type(self).__name__
        owner = f"{kind}.load_state_dict"
        if not isinstance(state, Mapping):
            raise DTypeError(
                f"{owner}: expected a dict from state_dict(), got {type(state).__name__}"
            )
        found = _python_scalar(state.get("type"))
        if not isinstance(found, str):
            raise ConfigError(
                f"{owner}: the state has no 'type' entry; pass a dict made by {kind}.state_dict()"
            )
        if found != kind:
            raise ConfigError(
                f"{owner}: the state was saved by {found}, not {kind}; "
                f"build {found}(...) to resume it"
            )
        scalar_keys = ("type", "step", "num_parameters", "lr", *self.hyperparameters)
        for key in scalar_keys:
            if key not in state:
                raise ConfigError(
                    f"{owner}: the state has no {key!r} entry; pass a dict made by "
                    f"{kind}.state_dict()"
                )
        scalars = {key: _python_scalar(state[key]) for key in scalar_keys}
        count = _integer(owner, "num_parameters", scalars["num_parameters"], low=0)
        if count != len(self.parameters):
            raise ConfigError(
                f"{owner}: the state holds {count} parameters, this optimizer has "
                f"{len(self.parameters)}; build the optimizer from the same model's parameters"
            )
        steps = _integer(owner, "step", scalars["step"], low=0)
        lr = _number(owner, "lr", scalars["lr"])
        values = self._check({name: scalars[name] for name in self.hyperparameters}, owner)
        names = self._buffer_names(values)
        expected = {f"{name}.{index}" for name in names for index in range(count)}
        unexpected = sorted(map(str, set(state) - expected - set(scalar_keys)))
        if unexpected:
            raise ConfigError(
                f"{owner}: unexpected entries {unexpected[:4]} for {kind} with "
                f"{', '.join(f'{k}={v}' for k, v in values.items())}; the state is from a "
                "differently configured optimizer"
            )
        for name in names:
            for index, parameter in enumerate(self.parameters):
                self._check_buffer(owner, f"{name}.{index}", state, parameter, index)
        self.steps, self.lr = steps, lr
        self.__dict__.update(values)
        self.state = {
            name: [
                get_array_module(p.data).array(state[f"{name}.{index}"], dtype=p.data.dtype)
                for index, p in enumerate(self.parameters)
            ]
            for name in names
        }

    @staticmethod
    def _check_buffer(owner: str, key: str, state: Mapping, parameter: Parameter, index: int):
        where = f"parameter {index}" + (f" ({parameter.name})" if parameter.name else "")
        if key not in state:
            raise ConfigError(f"{owner}: the state has no {key!r} entry for {where}")
        array = state[key]
        if not is_array(array):
            raise DTypeError(f"{owner}: {key!r} must be an array, got {type(array).__name__}")
        if tuple(array.shape) != tuple(parameter.shape):
            raise ShapeError(
                f"{owner}: {key!r} has shape {tuple(array.shape)} but {where} has shape "
                f"{tuple(parameter.shape)}; the state is from a different model"
            )
        if array.dtype != parameter.data.dtype:
            raise DTypeError(
                f"{owner}: {key!r} is {array.dtype} but {where} is {parameter.data.dtype}; "
                "build the model with the dtype it was trained with"
            )

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)}" for k in ("lr", *self.hyperparameters))
        return f"{type(self).__name__}({len(self.parameters)} parameters, {settings})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    PyTorch's rule (``torch.optim.SGD`` with dampening 0): g = grad + weight_decay * p;
    buf = momentum * buf + g (buf = g at the first step); g = g + momentum * buf if nesterov
    else buf; p -= lr * g. State: ``momentum_buffer.<i>`` when momentum > 0.
    """

    hyperparameters = ("momentum", "weight_decay", "nesterov")

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            parameters, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )

    def _check(self, values: dict, owner: str) -> dict:
        checked = {
            "momentum": _number(owner, "momentum", values["momentum"]),
            "weight_decay": _number(owner, "weight_decay", values["weight_decay"]),
            "nesterov": _flag(owner, "nesterov", values["nesterov"]),
        }
        if checked["nesterov"] and checked["momentum"] == 0:
            raise ConfigError(f"{owner}: nesterov=True needs momentum > 0, got momentum=0.0")
        return checked

    def _buffer_names(self, values: dict) -> tuple[str, ...]:
        return ("momentum_buffer",) if values["momentum"] else ()

    def _update(self, index: int, parameter: Parameter) -> None:
        p, grad = parameter.data, parameter.grad
        fresh = False  # whether ``grad`` is a temporary we may overwrite
        if self.weight_decay:
            grad = grad + self.weight_decay * p
            fresh = True
        if self.momentum:
            buffer = self.state["momentum_buffer"][index]
            if self.steps == 1:
                buffer[...] = grad
            else:
                buffer *= self.momentum
                buffer += grad
            if self.nesterov:
                grad = grad + self.momentum * buffer
                fresh = True
            else:
                grad, fresh = buffer, False
        if fresh:
            grad *= self.lr
            p -= grad
        else:
            p -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's formulas (``torch.optim.Adam``).

    g = grad + weight_decay * p (L2 penalty); m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g²; (amsgrad: v_max = max(v_max, v), used instead of v);
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    State: ``exp_avg.<i>``, ``exp_avg_sq.<i>`` and, with amsgrad, ``max_exp_avg_sq.<i>``.
    """

    hyperparameters = ("beta1", "beta2", "eps", "weight_decay", "amsgrad")
    decoupled_weight_decay = False

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        kind = type(self).__name__
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ConfigError(f"{kind}: betas must be a pair (beta1, beta2), got {betas!r}")
        super().__init__(
            parameters,
            lr,
            beta1=betas[0],
            beta2=betas[1],
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )

    @property
    def betas(self) -> tuple[float, float]:
        return (self.beta1, self.beta2)

    def _check(self, values: dict, owner: str) -> dict:
        return {
            "beta1": _number(owner, "beta1", values["beta1"], below=1.0),
            "beta2": _number(owner, "beta2", values["beta2"], below=1.0),
            "eps": _number(owner, "eps", values["eps"]),
            "weight_decay": _number(owner, "weight_decay", values["weight_decay"]),
            "amsgrad": _flag(owner, "amsgrad", values["amsgrad"]),
        }

    def _buffer_names(self, values: dict) -> tuple[str, ...]:
        names = ("exp_avg", "exp_avg_sq")
        return (*names, "max_exp_avg_sq") if values["amsgrad"] else names

    def _update(self, index: int, parameter: Parameter) -> None:
        xp = get_array_module(parameter.data)
        p, grad = parameter.data, parameter.grad
        beta1, beta2, state = self.beta1, self.beta2, self.state
        if self.weight_decay:
            if self.decoupled_weight_decay:
                p *= 1 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * p
        exp_avg, exp_avg_sq = state["exp_avg"][index], state["exp_avg_sq"][index]
        scratch = grad - exp_avg  # exp_avg.lerp_(grad, 1 - beta1), as PyTorch computes it
        scratch *= 1 - beta1
        exp_avg += scratch
        exp_avg_sq *= beta2
        xp.multiply(grad, 1 - beta2, out=scratch)
        scratch *= grad
        exp_avg_sq += scratch
        second = exp_avg_sq
        if self.amsgrad:
            second = state["max_exp_avg_sq"][index]
            xp.maximum(second, exp_avg_sq, out=second)
        step_size = self.lr / (1 - beta1**self.steps)
        xp.sqrt(second, out=scratch)  # denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        scratch /= (1 - beta2**self.steps) ** 0.5
        scratch += self.eps
        xp.divide(exp_avg, scratch, out=scratch)
        scratch *= -step_size
        p += scratch


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``:
    p *= 1 - lr * weight_decay, then the Adam step on the raw gradient."""

    decoupled_weight_decay = True

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(parameters, lr, betas, eps, weight_decay, amsgrad)


OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(
    name: str,
    parameters: Iterable[Parameter],
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    """The optimizer the CLI names: "sgd" (uses momentum, nesterov), "adam" or "adamw"."""
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"make_optimizer: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if name == "sgd":
        return SGD(parameters, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if nesterov:
        raise ConfigError(
            f"make_optimizer: nesterov=True applies to 'sgd' only, not {name!r}; drop it"
        )
    kind = Adam if name == "adam" else AdamW
    return kind(parameters, lr, weight_decay=weight_decay)


# ---------------------------------------------------------------------------------------------
# learning-rate schedules: pure functions of the global step index


def _check_step(owner: str, step) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise DTypeError(f"{owner}: step must be an int, got {step!r}")
    if step < 0:
        raise ConfigError(f"{owner}: step must be >= 0, got {step}")
    return int(step)


def _freeze(schedule, name: str, value) -> None:
    object.__setattr__(schedule, name, value)


@dataclass(frozen=True)
class ConstantLR:
    """``lr`` at every step. (Not ``torch.optim.lr_scheduler.ConstantLR``, which scales the
    first steps by a factor: use :class:`WarmupLR` for that.)"""

    lr: float

    def __post_init__(self) -> None:
        _freeze(self, "lr", _number("ConstantLR", "lr", self.lr))

    def __call__(self, step: int) -> float:
        _check_step("ConstantLR", step)
        return self.lr


@dataclass(frozen=True)
class StepLR:
    """lr · gamma^(step // step_size), as ``torch.optim.lr_scheduler.StepLR``."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _freeze(self, "lr", _number("StepLR", "lr", self.lr))
        _freeze(self, "step_size", _integer("StepLR", "step_size", self.step_size, low=1))
        gamma = _number("StepLR", "gamma", self.gamma)
        if gamma == 0:
            raise ConfigError("StepLR: gamma must be > 0, got 0.0; use gamma=0.1 (the default)")
        _freeze(self, "gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (_check_step("StepLR", step) // self.step_size)


@dataclass(frozen=True)
class CosineLR:
    """min_lr + (lr - min_lr) · (1 + cos(π · step / total_steps)) / 2, the closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` (T_max = total_steps, eta_min = min_lr).

    After ``total_steps`` it stays at ``min_lr`` (PyTorch's would rise again along the cosine).
    """

    lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        lr = _number("CosineLR", "lr", self.lr)
        _freeze(self, "lr", lr)
        _freeze(self, "total_steps", _integer("CosineLR", "total_steps", self.total_steps, low=1))
        min_lr = _number("CosineLR", "min_lr", self.min_lr)
        if min_lr > lr:
            raise ConfigError(f"CosineLR: min_lr must be <= lr = {lr}, got {min_lr}")
        _freeze(self, "min_lr", min_lr)

    def __call__(self, step: int) -> float:
        step = _check_step("CosineLR", step)
        if step >= self.total_steps:
            return self.min_lr
        cosine = 1 + math.cos(math.pi * step / self.total_steps)
        return self.min_lr + (self.lr - self.min_lr) * cosine / 2


@dataclass(frozen=True)
class WarmupLR:
    """A linear warm-up of ``warmup_steps`` steps from ``start_factor · schedule(0)`` to
    ``schedule(0)``, then ``schedule(step - warmup_steps)``: PyTorch's
    ``SequentialLR([LinearLR(start_factor, total_iters=warmup_steps), schedule],
    milestones=[warmup_steps])``. ``start_factor`` defaults to LinearLR's 1/3.
    """

    schedule: Callable[[int], float]
    warmup_steps: int
    start_factor: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        if not callable(self.schedule):
            raise DTypeError(
                f"WarmupLR: schedule must be a schedule such as CosineLR(...), got "
                f"{self.schedule!r}"
            )
        _freeze(
            self, "warmup_steps", _integer("WarmupLR", "warmup_steps", self.warmup_steps, low=1)
        )
        factor = _number("WarmupLR", "start_factor", self.start_factor)
        if not 0 < factor <= 1:
            raise ConfigError(f"WarmupLR: start_factor must be in (0, 1], got {factor}")
        _freeze(self, "start_factor", factor)

    def __call__(self, step: int) -> float:
        step = _check_step("WarmupLR", step)
        if step >= self.warmup_steps:
            return self.schedule(step - self.warmup_steps)
        fraction = step / self.warmup_steps
        return self.schedule(0) * (self.start_factor + (1 - self.start_factor) * fraction)


SCHEDULES = ("constant", "step", "cosine")


def make_schedule(
    name: str,
    lr: float,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """The schedule the CLI names, over ``total_steps`` steps of which the first
    ``warmup_steps`` warm up linearly; "cosine" reaches 0 at ``total_steps``."""
    owner = "make_schedule"
    if name not in SCHEDULES:
        raise ConfigError(
            f"{owner}: unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}"
        )
    total_steps = _integer(owner, "total_steps", total_steps, low=1)
    warmup_steps = _integer(owner, "warmup_steps", warmup_steps, low=0)
    if warmup_steps >= total_steps:
        raise ConfigError(
            f"{owner}: warmup_steps must be < total_steps = {total_steps}, got {warmup_steps}"
        )
    if name == "step":
        if step_size is None:
            raise ConfigError(
                f"{owner}: schedule 'step' needs step_size (steps between lr drops); "
                f"e.g. step_size={max(1, (total_steps - warmup_steps) // 3)}"
            )
        schedule = StepLR(lr, step_size, gamma)
    elif name == "cosine":
        schedule = CosineLR(lr, total_steps - warmup_steps)
    else:
        schedule = ConstantLR(lr)
    return WarmupLR(schedule, warmup_steps) if warmup_steps else schedule
