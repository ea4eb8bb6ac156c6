"""IDX files (MNIST's format) and MNIST-format folders."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from cnnkit.data._files import _check_split, _directory, _read, _unit_float
from cnnkit.errors import DataError

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32"}
_IDX_KINDS = {1: "labels", 3: "images"}
_MNIST_PREFIXES = {"train": "train", "test": "t10k"}


def _idx_kind(ndim: int) -> str:
    return {1: "a label file", 3: "an image file"}.get(ndim, f"an IDX file of {ndim} dimensions")


def load_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """An IDX file (MNIST's format) as a read-only uint8 array of the dimensions it declares.

    The file may be raw or gzip-compressed; gzip is recognised by its first two bytes (1f 8b),
    not by the name. The header is a magic number ``0x0000TTNN`` (TT = 0x08 for unsigned bytes,
    NN = the number of dimensions: 0x0803 = 2051 for images, 0x0801 = 2049 for labels), then NN
    big-endian uint32 sizes; the payload must hold exactly their product in bytes. ``ndim``, when
    given, is the number of dimensions the caller expects (3 for images, 1 for labels).
    """
    path = Path(path)
    raw = _read(path)
    name = path.name
    if len(raw) < 4:
        raise DataError(
            f"{name}: {len(raw)} bytes is too short for an IDX file, expected a 4-byte magic "
            "number and the dimensions; the file is truncated, download it again"
        )
    magic = int.from_bytes(raw[:4], "big")
    type_byte, found_ndim = raw[2], raw[3]
    if raw[0] or raw[1] or found_ndim == 0:
        raise DataError(
            f"{name}: magic number {magic} (0x{magic:08x}) is not an IDX magic number, expected "
            "2051 (images) or 2049 (labels); is it a file in MNIST's format?"
        )
    if type_byte != 0x08:
        kind = _IDX_TYPES.get(type_byte, "an unknown type")
        raise DataError(
            f"{name}: IDX type byte 0x{type_byte:02x} ({kind}) is not supported, expected 0x08 "
            "(unsigned bytes); store the data as uint8"
        )
    if ndim is not None and found_ndim != ndim:
        swapped = found_ndim in _IDX_KINDS and ndim in _IDX_KINDS
        raise DataError(
            f"{name}: magic number {magic} is {_idx_kind(found_ndim)}, expected {0x800 + ndim} "
            f"({_IDX_KINDS.get(ndim, f'{ndim} dimensions')}); "
            + ("are the files swapped?" if swapped else "is it the right file?")
        )
    header = 4 + 4 * found_ndim
    if len(raw) < header:
        raise DataError(
            f"{name}: the header is cut short at {len(raw)} bytes, expected {header} for "
            f"{found_ndim} dimensions; the file is truncated, download it again"
        )
    dims = struct.unpack(f">{found_ndim}I", raw[4:header])
    expected, found = math.prod(dims), len(raw) - header
    shape = "x".join(map(str, dims))
    if found < expected:
        raise DataError(
            f"{name}: truncated: {found:,} data bytes after the header, expected {expected:,} "
            f"({shape}); download the file again"
        )
    if found > expected:
        raise DataError(
            f"{name}: {found - expected:,} unexpected bytes after the {expected:,} data bytes "
            f"that the header declares ({shape}); the file is damaged, download it again"
        )
    return np.frombuffer(raw, np.uint8, count=expected, offset=header).reshape(dims)


def _mnist_file(directory: Path, base: str) -> Path:
    for candidate in (base, base + ".gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    prefix = base.split("-")[0] + "-"
    near = sorted(p.name for p in directory.iterdir() if p.name.startswith(prefix))
    found = f" (found {', '.join(near)}: rename it)" if near else ""
    raise DataError(
        f"mnist:{directory}: missing {base}: looked for {base} and {base}.gz{found}; mnist:DIR "
        "needs MNIST's four file names: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz"
    )


def load_mnist_dir(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """A split of an MNIST-format folder: images (N, 1, H, W) float32 in [0, 1], labels (N,) int64.

    ``split`` 'train' reads ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``, 'test'
    reads ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``.
    Labels must number one per image and lie in 0..9.
    """
    prefix = _MNIST_PREFIXES[_check_split(split, "load_mnist_dir")]
    root = _directory(directory, "mnist")
    image_path = _mnist_file(root, f"{prefix}-images-idx3-ubyte")
    label_path = _mnist_file(root, f"{prefix}-labels-idx1-ubyte")
    pixels = load_idx(image_path, ndim=3)
    labels = load_idx(label_path, ndim=1)
    n, h, w = pixels.shape
    if min(n, h, w) == 0:
        raise DataError(
            f"{image_path.name}: the header declares {n}x{h}x{w} images, expected at least one "
            "image of at least 1x1 pixels; download the file again"
        )
    if len(labels) != n:
        raise DataError(
            f"{label_path.name}: {len(labels):,} labels, but {image_path.name} has {n:,} images; "
            "expected one label per image, are the two files from different data sets?"
        )
    if labels.max() > 9:
        index = int(np.argmax(labels > 9))
        raise DataError(
            f"{label_path.name}: label {labels[index]} at position {index} is out of range, "
            "expected 0..9; the file is damaged or holds more than 10 classes"
        )
    return _unit_float(pixels.reshape(n, 1, h, w)), labels.astype(np.int64)  # (N, 1, H, W)
