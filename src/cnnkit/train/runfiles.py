"""A run directory's JSON files, read with bounds and checked: ``settings.json`` (the recipe,
the data, the classes, the input shape and normalisation) and ``history.json`` (one record
per epoch).

Both readers refuse what is not a regular file (a FIFO would block, ``/dev/zero`` never end),
read at most a stated size, parse JSON and check it field by field
(:mod:`cnnkit.train.header`): a damaged or edited file is one :class:`DataError` line naming
the file and the field, never a traceback further on.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from cnnkit.errors import DataError, TrainingError
from cnnkit.train.header import validate_history, validate_settings

MAX_SETTINGS_BYTES = 16 * 2**20
MAX_HISTORY_BYTES = 64 * 2**20
SETTINGS_FIX = "the file was edited or damaged: restore it, or start a new run in another --out"
HISTORY_FIX = (
    "the file was edited or damaged: delete it (cnnkit then uses the history in the "
    "checkpoint) or restore it"
)


def read_settings(
    run_dir: str | Path, *, required: tuple[str, ...] = ("recipe",), missing_ok: bool = False
) -> dict | None:
    """``RUN_DIR/settings.json`` as the dict ``cnnkit train`` wrote, checked; the fields in
    ``required`` must be there. Without the file: TrainingError (no run to resume here), or
    None with ``missing_ok``."""
    run_dir = Path(run_dir)
    path = run_dir / "settings.json"
    values = _read_json(path, MAX_SETTINGS_BYTES, SETTINGS_FIX)
    if values is _MISSING:
        if missing_ok:
            return None
        raise TrainingError(f"{run_dir}: no run to resume here (no settings.json)")
    return validate_settings(values, f"{path}:", SETTINGS_FIX, required)


def read_history(run_dir: str | Path, default: list | None = None) -> list[dict] | None:
    """``RUN_DIR/history.json``: one dict per epoch (the fields of
    :class:`~cnnkit.train.EpochRecord`), checked; ``default`` when the file is absent."""
    path = Path(run_dir) / "history.json"
    rows = _read_json(path, MAX_HISTORY_BYTES, HISTORY_FIX)
    if rows is _MISSING:
        return default
    return validate_history(rows, f"{path}:", HISTORY_FIX)


_MISSING = object()


def _read_json(path: Path, limit: int, fix: str):
    """The JSON value in ``path`` (at most ``limit`` bytes, a regular file), or _MISSING."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return _MISSING
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise DataError(
            f"{path}: not a regular file (a directory, device or FIFO); replace it with the "
            "file cnnkit train wrote, or remove it"
        )
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) > limit:
        raise DataError(
            f"{path}: more than {limit:,} bytes, far more than cnnkit writes there; the file "
            "is damaged or not cnnkit's: restore it or remove it"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise DataError(f"{path}: not valid JSON ({str(error)[:120]}); {fix}") from None
