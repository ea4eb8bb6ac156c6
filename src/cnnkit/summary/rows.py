"""Counting: one row per layer, from what each layer says about itself, and the totals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cnnkit.arch.convert import (
    architecture_of,
    describe,
    live_steps,
    model_input,
    network_text,
)
from cnnkit.arch.specs import Architecture, parse
from cnnkit.arch.trace import Step, trace, volume_text
from cnnkit.errors import CnnkitError, ConfigError, DTypeError
from cnnkit.functional.fast.layout import NCHW
from cnnkit.nn.layer import Layer
from cnnkit.shapes import Field
from cnnkit.summary.data import Row, Summary, Totals


def summarize(
    network,
    *,
    input_shape: tuple[int, int, int] | None = None,
    batch: int = 1,
    floor: bool = False,
    dtype_bytes: int | None = None,
) -> Summary:
    """The summary of ``network``: an architecture string or built-in name, an
    :class:`~cnnkit.arch.Architecture`, or a live model (a Sequential or one layer).

    ``input_shape`` (C, H, W) supplies or replaces the input volume; ``batch`` scales the
    totals and ``output_shape``; ``floor`` rounds non-whole output sizes down as PyTorch does;
    ``dtype_bytes`` is the size of one value (4 = float32; by default a live model's own, 4
    for strings). Raises
    :class:`~cnnkit.errors.ShapeError` with one line per problem when the shapes do not work
    out, or when there is no input size.
    """
    _check_positive("batch", batch)
    if dtype_bytes is None:
        dtype_bytes = _dtype_bytes(network) if isinstance(network, Layer) else 4
    _check_positive("dtype_bytes", dtype_bytes)
    if isinstance(network, str):
        network = parse(network)
    if isinstance(network, Layer) and floor:
        network = architecture_of(network, input_shape)  # rebuilt with PyTorch's rounding
    if isinstance(network, Architecture):
        arch = network.with_input(input_shape)
        traced = trace(arch, floor=floor)
        traced.raise_problems()
        steps, text, shape = traced.steps, arch.text(), arch.input.shape
    elif isinstance(network, Layer):
        shape = model_input(network, input_shape)
        steps = live_steps(network, shape)
        text = network_text(network, shape)
    else:
        raise DTypeError(
            f"summarize: expected an architecture string, an Architecture or a model, got "
            f"{type(network).__name__}; e.g. summarize('lenet5') or summarize(model)"
        )
    rows = _rows(steps, batch, dtype_bytes, floor)
    return Summary(
        text,
        tuple(shape),
        batch,
        dtype_bytes,
        floor,
        rows,
        _totals(rows, steps, batch, dtype_bytes),
    )


def _dtype_bytes(model) -> int:
    """The size of one value of a live model: its parameters' (or its dtype's)."""
    for module in model.modules():
        for _, parameter in module._own_parameters():
            return int(parameter.dtype.itemsize)
    return int(np.dtype(model.dtype).itemsize)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"summarize: {name} must be a whole number >= 1, got {value!r}; e.g. {name}=4"
        )


def _rows(steps, batch: int, dtype_bytes: int, floor: bool) -> tuple[Row, ...]:
    rows = []
    field: Field | None = Field()
    layout = NCHW  # how the engine stores the volume reaching each layer
    seen: dict[int, int] = {}  # parameter -> index of the first row that has it
    for step in steps:
        layer = step.layer
        try:
            entering, before = field, dict(seen)
            field = None if field is None else layer.field_after(field)
            shape = (1, *step.input_shape)
            out_bytes, kept, layout_after = layer.memory(shape, dtype_bytes, layout)
            rows.append(_row(step, batch, floor, field, seen, out_bytes, kept))
            context = (batch, dtype_bytes, floor, entering, before, layout)
            rows += _branch_rows(step, context, 1, str(step.index))
        except CnnkitError as error:
            raise error.located(step.index) from None
        layout = layout_after or layout
    return tuple(rows)


def _branch_rows(step: Step, context, depth: int, path: str) -> list[Row]:
    """One row per layer inside each branch of ``step``'s layer (none for most layers),
    indented under it: ``path`` and ``depth`` say where. Parameters were counted in the
    layer's own row, so the rows inside count them afresh from what the layer had seen."""
    batch, dtype_bytes, floor, entering, seen, layout = context
    rows: list[Row] = []
    for name, branch in getattr(step.layer, "named_branches", list)():
        if branch is None:
            continue
        field, inner_seen, inner_layout = entering, dict(seen), layout
        for inner in live_steps(branch, step.input_shape):
            where = f"{path}.{name}.{inner.index}"
            inner = replace(inner, index=step.index)
            before, start = dict(inner_seen), field
            field = None if field is None else inner.layer.field_after(field)
            out_bytes, kept, after = inner.layer.memory(
                (1, *inner.input_shape), dtype_bytes, inner_layout
            )
            row = _row(inner, batch, floor, field, inner_seen, out_bytes, kept)
            rows.append(replace(row, depth=depth, path=where))
            deeper = (batch, dtype_bytes, floor, start, before, inner_layout)
            rows += _branch_rows(inner, deeper, depth + 1, where)
            inner_layout = after or inner_layout
    return rows


def _row(step: Step, batch, floor, field, seen: dict, out_bytes, kept) -> Row:
    layer, shape = step.layer, (1, *step.input_shape)
    own = list(layer.named_parameters())
    shared = [(name, p, seen[id(p)]) for name, p in own if id(p) in seen]
    for _, parameter in own:
        seen.setdefault(id(parameter), step.index)
    params = sum(p.size for _, p in own) - sum(p.size for _, p, _ in shared)
    notes = step.notes or _unread_notes(layer, step)
    if shared:
        names = ", ".join(name for name, _, _ in shared)
        earlier = ", ".join(sorted({str(index) for _, _, index in shared}))
        notes = (*notes, f"shares {names} with layer {earlier}")
    branches = getattr(layer, "named_branches", list)()
    notes = (*notes, *(f"{name}: the identity (x itself)" for name, b in branches if b is None))
    connections, fc_connections = _connections(layer, shape)
    unshared = getattr(layer, "unshared_parameters", None)
    return Row(
        index=step.index,
        layer=step.spec.text() if step.spec is not None else describe(layer),
        kind=step.spec.keyword if step.spec is not None else type(layer).__name__,
        output=volume_text(step.output_shape),
        output_shape=(batch, *step.output_shape),
        formula=_formula(layer, step, floor),
        params=params,
        shared_params=sum(p.size for _, p, _ in shared),
        buffers=_buffer_values(layer),
        unshared_params=unshared(shape) if unshared else sum(p.size for _, p in own),
        connections=connections,
        fc_connections=fc_connections,
        macs=int(layer.macs(shape)),
        activation_bytes=int(out_bytes),
        cache_bytes=None if kept is None else int(kept),
        receptive_field=None if field is None else field.size,
        jump=None if field is None else field.jump,
        notes=notes,
        path=str(step.index),
        branches=tuple(name for name, branch in branches if branch is not None),
    )


def _buffer_values(layer) -> int:
    """Values of the layer's floating-point buffers (BN's running mean and variance); integer
    ones are counters (BN's num_batches_tracked), not parameters of any kind: not counted."""
    return sum(
        int(getattr(buffer, "size", 1))
        for buffer in layer.buffers()
        if getattr(buffer, "dtype", np.dtype(np.float64)).kind == "f"
    )


def _connections(layer, shape) -> tuple[int, int | None]:
    ask = getattr(layer, "connections", None)
    return ask(shape) if ask is not None else (1, None)


def _unread_notes(layer, step: Step) -> tuple[str, ...]:
    """What the layer's window leaves unread, or reads past (a live model's steps carry no
    notes of their own; an architecture's have them from the trace)."""
    unread = getattr(getattr(layer, "window", None), "unread_notes", None)
    if unread is None or len(step.input_shape) != 3:
        return ()
    return unread(step.input_shape[1:])


def _formula(layer, step: Step, floor: bool) -> str | None:
    window = getattr(layer, "window", None)
    if window is None or len(step.input_shape) != 3:
        return None
    return window.formula(step.input_shape[1:], step.output_shape[1:], floor=floor)


def _totals(rows: tuple[Row, ...], steps, batch: int, dtype_bytes: int) -> Totals:
    rows = tuple(row for row in rows if row.depth == 0)  # a branch's rows are in its layer's
    trainable = sum(row.params for row in rows)
    buffers = sum(row.buffers for row in rows)
    gradient_bytes = trainable * dtype_bytes
    param_bytes = (trainable + buffers) * dtype_bytes
    cache = batch * sum(row.cache_bytes or 0 for row in rows)
    macs = sum(row.macs for row in rows)
    return Totals(
        params=trainable + buffers,
        trainable_params=trainable,
        non_trainable_params=buffers,
        unshared_params=sum(row.unshared_params for row in rows),
        macs_per_example=macs,
        macs=batch * macs,
        param_bytes=param_bytes,
        gradient_bytes=gradient_bytes,
        activation_bytes=batch * sum(row.activation_bytes for row in rows),
        cache_bytes=cache,
        backward_bytes=cache + gradient_bytes,
        training_bytes=param_bytes + gradient_bytes + cache,
        unreported_cache=tuple(row.index for row in rows if row.cache_bytes is None),
    )
