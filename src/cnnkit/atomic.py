"""Files written whole or not at all: a temporary file beside the target, flushed, fsynced and
renamed over it, then the directory fsynced, so a crash at any moment leaves either the old
file or the new one, never a mix.

A kill mid-write can leave the temporary file itself behind: it is named
``.<target name>.<8 hex digits>.tmp`` (:func:`is_temporary`), and a run directory removes its
own when it is next opened (:func:`cnnkit.train.rundir.remove_temporaries`).

A write that fails (a full disk, no permission) removes its temporary file and raises
:class:`WriteError`, one line naming the file and the reason.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cnnkit.errors import WriteError

TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files (``.last.npz.1a2b3c4d.tmp``)."""
    return TEMPORARY.match(name) is not None


def reason(error: OSError) -> str:
    """``no space left on device`` for an ENOSPC, the system's words otherwise."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    return error.strerror.lower() if error.strerror else str(error)


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, opened for writing, with the permissions every other file
    gets (0666 less the umask; ``tempfile.mkstemp`` would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(name, flags, 0o666), str(name)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"{path.parent}: no free temporary file name")


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(stream)`` on a temporary file beside ``path``, then put it in place."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = _temporary(path)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        temporary = None
        _sync_directory(path.parent)
    except OSError as error:
        if isinstance(error, WriteError):
            raise
        raise WriteError(f"{path}: could not be written ({reason(error)})", error.errno) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path


def _sync_directory(directory: Path) -> None:
    """Make a rename durable (where the system lets a directory be opened)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomically(path, lambda stream: stream.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented JSON (and a final newline) to ``path`` atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")
