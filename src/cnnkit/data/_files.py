"""Reading the files of a data set: bounded reads of regular files only (gunzipped in pieces),
directories, splits, pixel scaling."""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnkit.data.memory import check_memory
from cnnkit.errors import ConfigError, DataError


def _check_split(split: str, where: str) -> str:
    if split not in ("train", "test"):
        raise ConfigError(f"{where}: split must be 'train' or 'test', got {split!r}")
    return split


def _unit_float(pixels: np.ndarray, top: int = 255) -> np.ndarray:
    """Integer pixels 0..top as a new float32 array in [0, 1] (one pass; no float64 copy)."""
    images = pixels.astype(np.float32)
    images /= np.float32(top)
    return images


MAX_FILE_BYTES = 2**32  # 4 GiB: the most read from, or inflated out of, one data file
MAX_INFLATE_RATIO = 1032  # deflate never inflates one byte into more than 1032
_CHUNK = 1 << 20  # gzip is inflated 1 MiB at a time
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for reading bytes, refused in one DataError unless it is a regular file.

    The file is opened with O_NONBLOCK and checked with fstat before anything is read, so a
    FIFO never blocks and a device such as /dev/zero is never read (either may never end).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot be read ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        why = "" if stat.S_ISDIR(mode) else " (pipes and devices are never read: they may not end)"
        raise DataError(
            f"{path}: is {_file_kind(mode)}, not a regular file; give the path of a file{why}"
        )
    return os.fdopen(fd, "rb")


def _too_large(path, size: int | None, limit: int, what: str, fix: str) -> DataError:
    """``size`` None: the file turned out larger while it was read (or inflated)."""
    found = f"{size:,} bytes, more" if size is not None else "holds more"
    return DataError(f"{path}: {found} than the {limit:,} bytes {what}; {fix}")


def read_bounded(path: str | Path, limit: int, what: str, fix: str) -> bytes:
    """A regular file's bytes, refused before reading when it holds more than ``limit``.

    ``what`` ends the sentence "more than the N bytes ..." (e.g. "a values file may hold"),
    ``fix`` says what to do. A file that grows while it is read is cut at ``limit + 1`` bytes
    and refused the same way.
    """
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise _too_large(path, size, limit, what, fix)
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise _too_large(path, None, limit, what, fix)
    return data


@contextmanager
def open_data(path: Path) -> Iterator[tuple[BinaryIO, int, bool]]:
    """(stream, bytes on disk, gzipped) of a data file: gzip, recognised by its first two bytes
    1f 8b, is inflated as it is read, so a caller that reads in bounded pieces never holds more
    than it asked for. Damaged gzip data raises one DataError naming the file."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        try:
            gzipped = file.read(2) == b"\x1f\x8b"
            file.seek(0)
            if not gzipped:
                yield file, size, False
                return
            with gzip.GzipFile(fileobj=file, mode="rb") as stream:
                yield stream, size, True
        except (OSError, EOFError, zlib.error) as exc:
            if isinstance(exc, OSError) and not gzipped:
                raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
            raise DataError(
                f"{path.name}: the gzip data is damaged ({exc}); download the file again"
            ) from None


def read_into(stream: BinaryIO, count: int) -> np.ndarray:
    """Up to ``count`` bytes of ``stream`` as a uint8 array, read in 1 MiB pieces into one
    buffer of ``count`` bytes (the caller has checked that size); shorter at the end of the
    stream."""
    buffer = np.empty(count, np.uint8)
    view, filled = memoryview(buffer), 0
    while filled < count:
        got = stream.readinto(view[filled : filled + _CHUNK])
        if not got:
            break
        filled += got
    return buffer[:filled]


def _read(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A data file's bytes (gunzipped when it starts with 1f 8b), refused in one DataError as
    soon as they exceed ``limit`` on disk or inflated: gzip is inflated 1 MiB at a time."""
    what = "cnnkit reads from one data file"
    fix = "is it the right file? split it into smaller files"
    pieces, total = [], 0
    with open_data(path) as (stream, size, gzipped):
        if not gzipped and size > limit:
            raise _too_large(path.name, size, limit, what, fix)
        if not gzipped:
            check_memory(path.name, size, "its bytes", "free memory, or use a smaller file")
        while total <= limit:
            piece = stream.read(min(_CHUNK, limit + 1 - total))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    if total > limit:
        raise _too_large(path.name, None, limit, "cnnkit inflates out of one data file", fix)
    return b"".join(pieces)


def _directory(directory: str | Path, scheme: str) -> Path:
    path = Path(directory).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DataError(
            f"{scheme}:{directory}: {path} is a file, expected a directory; "
            "if it is an archive, extract it and pass the folder"
        )
    raise DataError(f"{scheme}:{directory}: no such directory {path}; check the path")
