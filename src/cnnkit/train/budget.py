"""What a run needs, asked before it starts: layers that can be trained, shifts that keep the
image in view, and a training step that fits in memory (from the summary's arithmetic).

A step at batch size B needs, by the summary (:func:`cnnkit.summarize`): the parameters, what
backward keeps (the layers' caches and the parameter gradients), every layer's new output and
the input batch. That grows linearly in B, so two summaries (B = 1 and 2) give the cost of one
example and of the rest; the refusal names the memory needed, what is available and the
largest batch size that fits in it (with a quarter kept free for the transient buffers that
the summary does not count).
"""

from __future__ import annotations

import numpy as np

from cnnkit.data.memory import available_memory, describe_bytes
from cnnkit.errors import CnnkitError, ConfigError, ShapeError, TrainingError
from cnnkit.nn import probe
from cnnkit.nn.layer import Layer
from cnnkit.summary import summarize

HEADROOM = 0.75  # of the available memory, for what the summary counts


def step_bytes(model, input_shape, batch: int) -> int | None:
    """Bytes of one training step at ``batch`` by the summary; None where a layer's memory is
    not known (a user's layer that does not report what it keeps)."""
    try:
        totals = summarize(model, input_shape=tuple(input_shape), batch=batch).totals
    except CnnkitError:
        return None
    if totals.unreported_cache:
        return None
    image = int(np.prod(input_shape)) * batch * 4
    return totals.training_bytes + totals.activation_bytes + image


def check_batch(model, input_shape, batch_size: int, examples: int) -> None:
    """Refuse (TrainingError) a batch size whose step cannot fit in the memory available."""
    batch = min(batch_size, examples)  # the largest batch an epoch takes
    available = available_memory()
    one, two = step_bytes(model, input_shape, 1), step_bytes(model, input_shape, 2)
    if available is None or one is None or two is None:
        return
    per_example, fixed = two - one, 2 * one - two
    need = fixed + per_example * batch
    if need <= available * HEADROOM:
        return
    fits = int((available * HEADROOM - fixed) // per_example) if per_example > 0 else 0
    fix = (
        f"use --batch-size {fits} or less"
        if fits >= 1
        else "the model's parameters alone do not fit; use a smaller model"
    )
    raise TrainingError(
        f"--batch-size {batch_size}: a training step of {batch} examples needs about "
        f"{describe_bytes(need)} ({describe_bytes(per_example)} per example, by the summary: "
        f"outputs, what backward keeps, the input), but {describe_bytes(available)} of memory "
        f"is available; {fix}"
    )


def check_shift(shift: int, input_shape) -> None:
    """Refuse random shifts that can move the whole image out of view."""
    if shift >= min(input_shape[1:]):
        raise ConfigError(
            f"augment_shift {shift}: shifts of up to {shift} pixels can move "
            f"{input_shape[1]}x{input_shape[2]} images out of view; use at most "
            f"{min(input_shape[1:]) - 1} (--augment-shift)"
        )


def check_backward(model) -> None:
    """Refuse a model with a layer that defines no backward: it could run forward but never
    train (found now, not as an error at the first step)."""
    for index, layer in enumerate(model.sequence()):
        if type(layer).backward is Layer.backward:
            raise TrainingError(
                f"layer {index} {type(layer).__name__}: defines no backward(dy), so the model "
                "cannot be trained; give the layer a backward (see docs/write-your-own-layer.md)"
            )


def check_shapes(model, input_shape, classes: int) -> None:
    """Build what is still lazy with the data's image shape and check that the model gives one
    score per class: a model that does not fit the data is refused before training, its
    layer named."""
    probe.build_once(model, (1, *input_shape))
    output = tuple(model.output_shape((1, *input_shape)))
    if output != (1, classes):
        shown = "x".join(map(str, output[1:]))
        raise ShapeError(
            f"the model's output is {shown} per image but the data has {classes} classes; "
            f"end the model with a Linear(..., {classes}) (FC({classes}))"
        )
