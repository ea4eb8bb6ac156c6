"""Checkpoints: one ``.npz`` file (read with ``allow_pickle=False``): a JSON header and arrays.

Layout of a checkpoint file:

- ``__header__``: a uint8 array of UTF-8 JSON: ``{"format": "cnnkit.checkpoint/1", "spec": ...,
  "epoch": ..., "step": ..., ...}`` (whatever the caller stores; :func:`save` adds ``format``).
- ``model/<name>``: every parameter and buffer, named as in ``state_dict()`` (``0.weight``, ...).
- ``optimizer/<key>``: the array entries of ``optimizer.state_dict()``; its scalars go in the
  header under ``"optimizer"``.
- any further arrays the caller passes (``extra/<key>``), e.g. the current epoch's shuffled order.

Writes are atomic: the file is written next to its destination under a temporary name, flushed
and fsynced, then renamed over the destination, so a crash mid-write leaves the previous
checkpoint intact. Nothing is ever unpickled: a file that is not such an archive is refused.
Reads are bounded: :func:`load` checks every member's declared size, shape and dtype, and the
header's claims, before it reads any array (see :mod:`cnnkit.train.archive` and
:mod:`cnnkit.train.header`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.atomic import write_atomically
from cnnkit.errors import DataError
from cnnkit.nn.state import buffer_problems, buffer_slots
from cnnkit.train import archive, generators
from cnnkit.train.archive import HEADER_KEY
from cnnkit.train.header import FORMAT, validate_header, validate_resume

__all__ = [
    "FORMAT",
    "HEADER_KEY",
    "Checkpoint",
    "load",
    "optimizer_state",
    "read_header",
    "restore",
    "resume_state",
    "save",
]


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load` returns: the header and the arrays, grouped by prefix."""

    path: Path
    header: dict
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]


def save(
    path: str | os.PathLike,
    header: dict,
    model_state: dict[str, np.ndarray],
    optimizer_state: dict | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    ``optimizer_state`` is an optimizer's flat ``state_dict()``: arrays are stored as arrays, and
    the scalars (ints, floats, strings, bools) in the header's ``"optimizer"`` entry.
    """
    path = Path(path)
    arrays = {f"model/{name}": np.asarray(value) for name, value in model_state.items()}
    scalars = {}
    for key, value in (optimizer_state or {}).items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer/{key}"] = value
        else:
            scalars[key] = value
    for key, value in (extra or {}).items():
        arrays[f"extra/{key}"] = np.asarray(value)
    full_header = {"format": FORMAT, **header, "optimizer": scalars}
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(full_header).encode("utf-8"), dtype=np.uint8)
    _write_atomically(path, arrays)
    return path


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The archive, whole or not at all (see :mod:`cnnkit.atomic`); a failed write raises
    WriteError naming the file and leaves the previous checkpoint as it was."""
    write_atomically(path, lambda stream: np.savez(stream, **arrays))


def load(
    path: str | os.PathLike, model=None, *, examples: int | None = None, extras: bool = True
) -> Checkpoint:
    """Read a checkpoint written by :func:`save`; a damaged, foreign or lying file raises
    DataError naming it.

    Nothing is read before it is checked: every member's declared shape, dtype and size
    (:mod:`cnnkit.train.archive`), then the header's fields
    (:func:`cnnkit.train.header.validate_header`). With ``model`` (a built layer: the one the
    weights are for), the arrays must be exactly its ``state_dict()``'s names, shapes and kinds
    of dtype, optimizer buffers shaped as its parameters, extras only those a training run
    writes, and the header's generator states those of its generators
    (:mod:`cnnkit.train.generators`), all before any array is read. Weights and optimizer
    state must be finite, also in the model's dtype. ``examples``: the training set's size,
    which the epoch's order must have (checked before it is read); ``extras=False`` leaves the
    extras unread (a model only).
    """
    path = Path(path)
    with archive.open_archive(path) as opened:
        header = validate_header(_decode_header(path, opened.read_header_bytes()), path)
        groups = opened.groups()
        archive.check_members(path, groups, model)
        if model is not None:
            generators.check(path, header, model)
        _check_order(path, groups["extra"].get("order"), examples)
        if not extras:
            groups["extra"] = {}
        arrays = {
            group: {key: opened.read(member) for key, member in members.items()}
            for group, members in groups.items()
        }
    dtypes = {} if model is None else {k: v.dtype for k, v in model.state_dict().items()}
    for group in ("model", "optimizer"):
        for key, value in arrays[group].items():
            _check_finite(path, f"{group}/{key}", value, dtypes.get(key, value.dtype))
    layered = model is not None and hasattr(model, "buffer_problem")  # a cnnkit layer
    problem = buffer_problems(buffer_slots(model), arrays["model"]) if layered else None
    if problem is not None:
        raise DataError(
            f"{path}: model/{problem}; the checkpoint is damaged: use the run's other "
            "checkpoint or train again"
        )
    return Checkpoint(path, header, arrays["model"], arrays["optimizer"], arrays["extra"])


def restore(model, checkpoint: Checkpoint) -> None:
    """Put ``checkpoint`` (loaded for ``model``) into ``model``: every parameter and buffer,
    and the state of each of its generators (a checkpoint older than those: weights only)."""
    model.load_state_dict(checkpoint.model)
    generators.restore(model, checkpoint.header)


def _check_order(path: Path, member, examples: int | None) -> None:
    if member is None or examples is None or member.shape == (examples,):
        return
    raise DataError(
        f"{path}: extra/order has {math.prod(member.shape):,} entries, but the training set has "
        f"{examples:,} examples; the checkpoint belongs to other data or is damaged: use the "
        "run's other checkpoint or train again"
    )


def _check_finite(path: Path, name: str, value: np.ndarray, dtype) -> None:
    """Refuse NaN or infinite values, also those a cast to the model's dtype would make."""
    if value.dtype.kind != "f":
        return
    if np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize < value.dtype.itemsize:
        with np.errstate(over="ignore"):
            value = value.astype(dtype)
    finite = np.isfinite(value)
    if not finite.all():
        bad = int(value.size - finite.sum())
        raise DataError(
            f"{path}: {name} holds {bad} NaN or infinite values of {value.size} (as "
            f"{np.dtype(dtype).name}); the file is damaged (or saved from a diverged model): "
            "use the run's other checkpoint or train again"
        )


def read_header(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    """A checkpoint's header, checked as :func:`load` checks it (and with the fields in
    ``required`` present), reading no array but the header."""
    path = Path(path)
    with archive.open_archive(path) as opened:
        header = _decode_header(path, opened.read_header_bytes())
    return validate_header(header, path, required)


def resume_state(checkpoint: Checkpoint) -> tuple[dict, np.ndarray | None]:
    """(header, the epoch's example order or None) for resuming: every training-state field
    present and checked, the order a permutation (:func:`cnnkit.train.header.validate_resume`)."""
    return validate_resume(checkpoint.header, checkpoint.extra.get("order"), checkpoint.path)


def _decode_header(path: Path, data: bytes):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise DataError(
            f"{path}: the checkpoint header is damaged ({str(error)[:120]}); use the run's "
            "other checkpoint or train again"
        ) from None


def optimizer_state(checkpoint: Checkpoint) -> dict:
    """The optimizer's flat state_dict again: header scalars plus the stored arrays."""
    return {**(checkpoint.header.get("optimizer") or {}), **checkpoint.optimizer}
