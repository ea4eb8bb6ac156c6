"""Optimizers: update parameters from their accumulated gradients, with PyTorch's update rules."""

from __future__ import annotations

from collections.abc import Iterable

from cnnkit.errors import ConfigError
from cnnkit.parameter import Parameter


class SGD:
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    PyTorch's rule: g = grad + weight_decay * p; buf = momentum * buf + g (buf = g at the first
    step); g = g + momentum * buf if nesterov else buf; p -= lr * g.
    """

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.parameters = list(parameters)
        if not self.parameters:
            raise ConfigError("SGD: got no parameters to optimise; pass model.parameters()")
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not value >= 0:
                raise ConfigError(f"SGD: {name} must be >= 0, got {value}")
        if nesterov and momentum == 0:
            raise ConfigError("SGD: nesterov=True needs momentum > 0")
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.buffers: list = [None] * len(self.parameters)

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.zero_grad()

    def step(self) -> None:
        for index, parameter in enumerate(self.parameters):
            grad = parameter.grad
            if self.weight_decay:
                grad = grad + self.weight_decay * parameter.data
            if self.momentum:
                buffer = self.buffers[index]
                if buffer is None:
                    buffer = self.buffers[index] = grad.copy()
                else:
                    buffer *= self.momentum
                    buffer += grad
                grad = grad + self.momentum * buffer if self.nesterov else buffer
            parameter.data -= self.lr * grad
