"""How to train (:class:`Recipe`), what an epoch leaves (:class:`EpochRecord`), and the events a
training run reports (:class:`Reporter`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

from cnnkit.errors import ConfigError


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
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(
                    f"Recipe: {name} must be a positive int, got {getattr(self, name)!r}"
                )
        if not self.lr > 0:
            raise ConfigError(f"Recipe: lr must be > 0, got {self.lr!r}")
        for name in ("warmup_epochs", "augment_shift", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(
                    f"Recipe: {name} must be an int >= 0, got {getattr(self, name)!r}"
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
