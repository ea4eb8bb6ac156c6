"""Reading the files of a data set: bytes (gunzipped), directories, splits, pixel scaling."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

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


def _read(path: Path) -> bytes:
    """A file's bytes, decompressed when they start with gzip's magic bytes 1f 8b."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path.name}: the gzip data is damaged ({exc}); download the file again"
        ) from None


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
