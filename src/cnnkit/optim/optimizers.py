"""Optimizers, with PyTorch's update rules.

An optimizer reads every ``Parameter.grad`` (summed by backward) and updates ``Parameter.data`` in
place. Its buffers (momentum, moment estimates) are arrays of the parameter's dtype updated in
place, so float32 training stays float32. ``state_dict()`` is flat (string keys; values are
arrays or Python scalars), so a checkpoint can store it as an .npz plus a JSON header, and
``load_state_dict`` continues the run bit for bit.


>>> import numpy as np
>>> from cnnkit.nn.parameter import Parameter
>>> w = Parameter(np.ones(3, np.float32))
>>> optimizer = Adam([w], lr=0.1)
>>> w.grad[...] = [1.0, -2.0, 0.0]
>>> optimizer.step()
>>> w.data.round(4)  # the first Adam step moves each weight by lr against its gradient's sign
array([0.9, 1.1, 1. ], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cnnkit.backend import get_array_module, is_array
from cnnkit.errors import ConfigError, DTypeError, ShapeError
from cnnkit.nn.parameter import Parameter
from cnnkit.optim._checks import _flag, _integer, _number, _parameter_list, _python_scalar


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
