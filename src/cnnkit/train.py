"""Mini-batch training and evaluation loops for a model and a loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit.losses import CrossEntropyLoss


@dataclass
class EpochResult:
    loss: float
    accuracy: float


def train_epoch(model, loss_fn: CrossEntropyLoss, optimizer, images, labels, *, batch_size, rng):
    """One pass over ``images`` (N, C, H, W) in a shuffled order drawn from ``rng``."""
    model.train()
    order = rng.permutation(len(images))
    total_loss = 0.0
    correct = 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        logits = model.forward(images[batch])
        total_loss += loss_fn.forward(logits, labels[batch]) * len(batch)
        correct += int((logits.argmax(axis=1) == labels[batch]).sum())
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    return EpochResult(total_loss / len(order), correct / len(order))


def predict(model, images, *, batch_size: int = 512) -> np.ndarray:
    """Class scores (N, K) in evaluation mode, a batch at a time."""
    model.eval()
    return np.concatenate(
        [
            model.forward(images[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        ]
    )


def accuracy(model, images, labels, *, batch_size: int = 512) -> float:
    """Share of ``images`` whose highest-scoring class equals the label."""
    return float((predict(model, images, batch_size=batch_size).argmax(axis=1) == labels).mean())
