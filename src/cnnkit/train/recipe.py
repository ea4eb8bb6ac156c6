"""How to train (:class:`Recipe`), what an epoch leaves (:class:`EpochRecord`), and the events a
training run reports (:class:`Reporter`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields

from cnnkit.errors import ConfigError

MAX_EPOCHS = 1_000_000  # a run longer than any machine keeps running is a typing slip
_INTS = {
    "epochs": 1,
    "batch_size": 1,
    "warmup_epochs": 0,
    "augment_shift": 0,
    "seed": 0,
    "checkpoint_every": 0,
}
_CHOICES = {
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("constant", "step", "cosine"),
    "init": ("default", "he", "xavier"),
}


@dataclass(frozen=True)
class Recipe:
    """How to train; the defaults are the recipe the accuracy targets are measured with."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adam | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # constant | step | cosine
    warmup_epochs: int = 0
    augment_shift: int = 1  # random shifts of up to this many pixels; 0 turns it off
    seed: int = 0
    init: str = "default"  # default (PyTorch's) | he | xavier: applied when the model is built
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: only at epoch ends

    def __post_init__(self) -> None:
        for name, low in _INTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "a positive int" if low == 1 else "an int >= 0"
                raise ConfigError(f"Recipe: {name} must be {kind}, got {value!r}")
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"Recipe: epochs must be at most {MAX_EPOCHS:,}, got {self.epochs:,}")
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"Recipe: seed must be from 0 to 2**64 - 1, got {self.seed}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"Recipe: lr must be a finite number > 0, got {self.lr!r}")
        for name, high, shown in (("momentum", 1.0, "[0, 1)"), ("weight_decay", 1.0, "[0, 1]")):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and math.isfinite(value)
            if not (number and 0 <= value <= high) or (name == "momentum" and value == high):
                raise ConfigError(f"Recipe: {name} must be a number in {shown}, got {value!r}")
        if 0 < self.epochs <= self.warmup_epochs:
            raise ConfigError(
                f"Recipe: warmup_epochs must be less than epochs = {self.epochs}, "
                f"got {self.warmup_epochs}"
            )
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"Recipe: {name} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of history. Losses are means over the examples; accuracies are fractions."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float
    examples_per_second: float


# ---------------------------------------------------------------------------------------------
# Progress reporting


class Reporter:
    """Receives training events; the default does nothing (``--quiet``)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, done: int, steps: int, loss: float, accuracy: float, rate: float) -> None: ...

    def epoch_end(self, record: EpochRecord, epochs: int) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class _StepClock:
    """Examples per second over the current epoch, for the bar and the ETA."""

    start: float = field(default_factory=time.perf_counter)
    examples: int = 0

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.examples / elapsed if elapsed > 0 else 0.0
