"""Learning-rate schedules, with PyTorch's formulas.

A schedule is a pure function of the global step index: before each step the training loop sets
``optimizer.lr = schedule(step)``; nothing else needs saving to resume.

>>> schedule = WarmupLR(CosineLR(0.1, total_steps=90), warmup_steps=10)
>>> [round(schedule(step), 4) for step in (0, 5, 10, 55, 100)]
[0.0333, 0.0667, 0.1, 0.05, 0.0]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from cnnkit.errors import ConfigError, DTypeError
from cnnkit.optim._checks import _integer, _number


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
