"""IDX files (MNIST's format) and MNIST-format folders."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from cnnkit.data._files import (
    _CHUNK,
    MAX_FILE_BYTES,
    MAX_INFLATE_RATIO,
    _check_split,
    _directory,
    _unit_float,
    open_data,
    read_into,
)
from cnnkit.data.memory import check_memory
from cnnkit.errors import DataError

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32"}
_IDX_KINDS = {1: "labels", 3: "images"}
_MAX_NDIM = 64  # NumPy's limit
_MNIST_PREFIXES = {"train": "train", "test": "t10k"}


def _idx_kind(ndim: int) -> str:
    return {1: "a label file", 3: "an image file"}.get(ndim, f"an IDX file of {ndim} dimensions")


def _idx_header(name: str, stream, ndim: int | None) -> tuple[int, tuple[int, ...]]:
    """(header length, dims) from the first 4 + 4 * NN bytes of an IDX stream."""
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(
            f"{name}: {len(head)} bytes is too short for an IDX file, expected a 4-byte magic "
            "number and the dimensions; the file is truncated, download it again"
        )
    magic = int.from_bytes(head, "big")
    type_byte, found_ndim = head[2], head[3]
    if head[0] or head[1] or found_ndim == 0:
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
    if found_ndim > _MAX_NDIM:
        raise DataError(
            f"{name}: magic number {magic} declares {found_ndim} dimensions, more than the "
            f"{_MAX_NDIM} an array can have; is it a file in MNIST's format?"
        )
    header = 4 + 4 * found_ndim
    sizes = stream.read(header - 4)
    if len(sizes) < header - 4:
        raise DataError(
            f"{name}: the header is cut short at {4 + len(sizes)} bytes, expected {header} for "
            f"{found_ndim} dimensions; the file is truncated, download it again"
        )
    return header, struct.unpack(f">{found_ndim}I", sizes)


def _check_declared(name: str, dims, header: int, size: int, gzipped: bool) -> None:
    """Refuse, before anything is allocated, a payload that the file cannot hold or that is
    too large: a raw file's size must match exactly; gzip inflates at most 1032:1."""
    expected, shape = math.prod(dims), "x".join(map(str, dims))
    found = size - header
    if not gzipped and found < expected:
        raise DataError(
            f"{name}: truncated: {found:,} data bytes after the header, expected {expected:,} "
            f"({shape}); download the file again"
        )
    if not gzipped and found > expected:
        raise DataError(
            f"{name}: {found - expected:,} unexpected bytes after the {expected:,} data bytes "
            f"that the header declares ({shape}); the file is damaged, download it again"
        )
    if gzipped and header + expected > MAX_INFLATE_RATIO * size:
        raise DataError(
            f"{name}: the header declares {shape} = {expected:,} data bytes, but {size:,} bytes "
            f"of gzip data inflate to at most {MAX_INFLATE_RATIO * size:,} (deflate's limit is "
            f"{MAX_INFLATE_RATIO}:1); the file is truncated or damaged, download it again"
        )
    if math.prod(d for d in dims if d) > np.iinfo(np.intp).max:
        raise DataError(
            f"{name}: the header declares {shape}, more elements than an array can index even "
            "when one size is 0; the header is damaged, download the file again"
        )
    if expected > MAX_FILE_BYTES:
        raise DataError(
            f"{name}: the header declares {shape} = {expected:,} data bytes, more than the "
            f"{MAX_FILE_BYTES:,} bytes cnnkit reads from one data file; is it the right file?"
        )
    check_memory(
        name,
        expected,
        f"the {shape} data bytes that the header declares",
        "free memory, or use a smaller data set",
    )


def load_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """An IDX file (MNIST's format) as a read-only uint8 array of the dimensions it declares.

    The file may be raw or gzip-compressed; gzip is recognised by its first two bytes (1f 8b),
    not by the name. The header is a magic number ``0x0000TTNN`` (TT = 0x08 for unsigned bytes,
    NN = the number of dimensions: 0x0803 = 2051 for images, 0x0801 = 2049 for labels), then NN
    big-endian uint32 sizes; the payload must hold exactly their product in bytes. ``ndim``, when
    given, is the number of dimensions the caller expects (3 for images, 1 for labels).

    Nothing is allocated before the header has been checked against the file: a raw file's size
    must match it, a gzip file must be able to inflate to it (at most 1032:1), and the payload
    must fit in 4 GiB and in the memory available. Gzip is inflated 1 MiB at a time, and
    reading stops at the declared size.
    """
    path = Path(path)
    name = path.name
    with open_data(path) as (stream, size, gzipped):
        header, dims = _idx_header(name, stream, ndim)
        _check_declared(name, dims, header, size, gzipped)
        expected, shape = math.prod(dims), "x".join(map(str, dims))
        data = read_into(stream, expected)
        if len(data) < expected:
            raise DataError(
                f"{name}: truncated: {len(data):,} data bytes after the header, expected "
                f"{expected:,} ({shape}); download the file again"
            )
        extra = len(stream.read(_CHUNK))
    if extra:
        count = f"{extra:,}" if extra < _CHUNK else f"at least {extra:,}"
        raise DataError(
            f"{name}: {count} unexpected bytes after the {expected:,} data bytes that the "
            f"header declares ({shape}); the file is damaged, download it again"
        )
    data.flags.writeable = False
    return data.reshape(dims)


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
    check_memory(
        image_path.name,
        4 * n * h * w,
        f"{n:,} images of {h}x{w} as float32 ({n} x {h} x {w} x 4 bytes)",
        "free memory, or use a smaller data set",
    )
    return _unit_float(pixels.reshape(n, 1, h, w)), labels.astype(np.int64)  # (N, 1, H, W)
