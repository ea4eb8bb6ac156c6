"""Scores of a model on images: class scores, loss and accuracy, the confusion matrix.

Evaluation switches the model to evaluation mode for the moment it runs (no forward state is
kept) and puts it back in the mode it was in.
"""

from __future__ import annotations

import numpy as np

from cnnkit.nn.loss import CrossEntropyLoss
from cnnkit.nn.modes import no_grad
from cnnkit.nn.probe import evaluating


def predict(model, images, *, batch_size: int = 512) -> np.ndarray:
    """Class scores (N, K) in evaluation mode, a batch at a time; afterwards every layer is
    back in the mode it was in."""
    with evaluating(model), no_grad():
        scores = [
            model.forward(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
        ]
    return np.concatenate(scores) if scores else np.zeros((0, 0), np.float32)


def evaluate(model, images, labels, *, batch_size: int = 512) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``images`` (N, C, H, W) and ``labels``."""
    if len(images) == 0:
        return float("nan"), float("nan")
    scores = predict(model, images, batch_size=batch_size)
    loss = CrossEntropyLoss().forward(scores, labels)
    return loss, float((scores.argmax(axis=1) == labels).mean())


def accuracy(model, images, labels, *, batch_size: int = 512) -> float:
    """Share of ``images`` whose highest-scoring class equals the label."""
    return evaluate(model, images, labels, batch_size=batch_size)[1]


def confusion_matrix(labels, predicted, classes: int) -> np.ndarray:
    """(classes, classes) counts; row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix
