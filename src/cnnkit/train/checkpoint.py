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
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import DataError

FORMAT = "cnnkit.checkpoint/1"
HEADER_KEY = "__header__"


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


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, opened for writing, with the permissions every other file of
    the run gets (0666 less the umask; ``tempfile.mkstemp`` would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(name, flags, 0o666), str(name)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name")


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save`; a damaged or foreign file raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise DataError(
            f"{path}: not a readable cnnkit checkpoint (the .npz archive is truncated or is "
            f"another kind of file: {error})"
        ) from None
    if HEADER_KEY not in arrays:
        raise DataError(f"{path}: an .npz archive, but not a cnnkit checkpoint (no header)")
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: the checkpoint header is damaged ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise DataError(f"{path}: checkpoint format {found!r} is not {FORMAT!r}")
    groups: dict[str, dict[str, np.ndarray]] = {"model": {}, "optimizer": {}, "extra": {}}
    for name, value in arrays.items():
        prefix, _, key = name.partition("/")
        if prefix not in groups or not key:
            raise DataError(f"{path}: unexpected entry {name!r} in the checkpoint")
        groups[prefix][key] = value
    return Checkpoint(path, header, groups["model"], groups["optimizer"], groups["extra"])


def optimizer_state(checkpoint: Checkpoint) -> dict:
    """The optimizer's flat state_dict again: header scalars plus the stored arrays."""
    return {**checkpoint.header.get("optimizer", {}), **checkpoint.optimizer}
