"""Optimizers (:mod:`.optimizers`: SGD, Adam, AdamW) and learning-rate schedules
(:mod:`.schedules`), with PyTorch's update rules and formulas."""

from cnnkit.optim.optimizers import SGD, Adam, AdamW, Optimizer, make_optimizer
from cnnkit.optim.schedules import ConstantLR, CosineLR, StepLR, WarmupLR, make_schedule

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ConstantLR",
    "CosineLR",
    "Optimizer",
    "StepLR",
    "WarmupLR",
    "make_optimizer",
    "make_schedule",
]
