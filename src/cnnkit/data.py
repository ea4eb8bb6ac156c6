"""Data sets as NCHW float32 images and int64 labels; nothing is downloaded at run time.

``load_dataset(source)`` reads one of four sources and returns a :class:`Dataset` with training,
validation and test splits, normalised with per-channel statistics of the training split:

- ``optdigits``: the UCI optdigits set, shipped inside the package (E. Alpaydin, C. Kaynak, 1998,
  CC BY 4.0, https://doi.org/10.24432/C50P49): 8x8 digits with block counts 0..16, 3,823 training
  images from 30 writers and 1,797 test images from 13 others.
- ``mnist:DIR``: any data set in MNIST's IDX format whose four files carry MNIST's original names
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``), each raw or gzip-compressed.
- ``cifar10:DIR``: CIFAR-10's binary version (``data_batch_N.bin``, ``test_batch.bin``). The
  pickled python version is refused: unpickling a file can run arbitrary code.
- ``folder:DIR``: ``DIR/<class>/*.png`` (or .jpg, .bmp, ...) through Pillow, an optional extra
  (``pip install 'cnnkit[images]'``).

Files are parsed with ``np.frombuffer``; nothing is unpickled. Every problem with a file raises
:class:`~cnnkit.errors.DataError` naming the file, what was expected, what was found and a fix.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import struct
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnkit.errors import ConfigError, DataError, DTypeError, ShapeError

OPTDIGITS_SHA256 = {
    "train": "e1b683cc211604fe8fd8c4417e6a69f31380e0c61d4af22e93cc21e9257ffedd",
    "test": "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
}
_OPTDIGITS_FILES = {"train": "optdigits.tra.gz", "test": "optdigits.tes.gz"}
OPTDIGITS_MAX = 16  # each pixel counts set bits in a 4x4 block of the 32x32 bitmap

SOURCES = ("optdigits", "mnist:DIR", "cifar10:DIR", "folder:DIR")
DIGITS = tuple(str(digit) for digit in range(10))
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FOLDER_TEST_FRACTION = 0.2  # folder:DIR without train/ and test/: this share becomes the test set
STD_FLOOR = 1e-3  # a (nearly) constant channel is divided by this rather than by ~0

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32"}
_IDX_KINDS = {1: "labels", 3: "images"}
_MNIST_PREFIXES = {"train": "train", "test": "t10k"}
_GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N"})


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


# ---------------------------------------------------------------------------------------------
# optdigits (embedded)


def load_optdigits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The embedded optdigits split: images (N, 1, 8, 8) float32 in [0, 1], labels (N,) int64.

    >>> images, labels = load_optdigits("test")
    >>> images.shape, labels.shape
    ((1797, 1, 8, 8), (1797,))
    """
    if split not in _OPTDIGITS_FILES:
        raise ConfigError(f"load_optdigits: split must be 'train' or 'test', got {split!r}")
    packed = resources.files("cnnkit").joinpath("datasets", _OPTDIGITS_FILES[split]).read_bytes()
    text = gzip.decompress(packed)
    if hashlib.sha256(text).hexdigest() != OPTDIGITS_SHA256[split]:
        raise DataError(
            f"load_optdigits: the embedded {split} file fails its sha256 check; reinstall cnnkit"
        )
    table = np.loadtxt(text.decode("ascii").splitlines(), delimiter=",", dtype=np.int64)
    images = (table[:, :64] / OPTDIGITS_MAX).astype(np.float32).reshape(-1, 1, 8, 8)
    return images, table[:, 64].copy()


# ---------------------------------------------------------------------------------------------
# IDX (MNIST's format)


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


# ---------------------------------------------------------------------------------------------
# CIFAR-10, binary version


def _cifar10_root(directory: str | Path) -> Path:
    root = _directory(directory, "cifar10")
    if (root / "cifar-10-batches-bin").is_dir():
        return root / "cifar-10-batches-bin"
    return root


def _cifar10_files(root: Path, split: str) -> list[Path]:
    if split == "test":
        files = [root / "test_batch.bin"] if (root / "test_batch.bin").is_file() else []
    else:
        numbered = [(re.fullmatch(r"data_batch_(\d+)\.bin", p.name), p) for p in root.iterdir()]
        files = [p for match, p in sorted(numbered, key=_batch_number) if match and p.is_file()]
    if files:
        return files
    pickled = root / "cifar-10-batches-py"
    if root.name == "cifar-10-batches-py" or pickled.is_dir() or (root / "data_batch_1").exists():
        raise DataError(
            f"cifar10:{root}: this is CIFAR-10's pickled python version, which cnnkit never reads "
            "(unpickling a file can run arbitrary code); download the binary version "
            "(cifar-10-binary.tar.gz) and pass its cifar-10-batches-bin folder"
        )
    wanted = "test_batch.bin" if split == "test" else "data_batch_1.bin .. data_batch_5.bin"
    raise DataError(
        f"cifar10:{root}: no {wanted} here or in a cifar-10-batches-bin subfolder; cifar10:DIR "
        "reads CIFAR-10's binary version (cifar-10-binary.tar.gz, extracted)"
    )


def _batch_number(item: tuple[re.Match[str] | None, Path]) -> tuple[int, str]:
    match, path = item
    return (int(match.group(1)) if match else -1, path.name)


def load_cifar10_dir(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """A split of CIFAR-10's binary version: images (N, 3, 32, 32) float32 in [0, 1], labels int64.

    ``directory`` holds ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, or a
    ``cifar-10-batches-bin`` subfolder that does. 'train' concatenates every ``data_batch_N.bin``
    present, in order of N; 'test' reads ``test_batch.bin``. Each file is a run of 3,073-byte
    records: a label byte 0..9, then 1,024 red, 1,024 green and 1,024 blue bytes (CHW order).
    """
    _check_split(split, "load_cifar10_dir")
    pixel_parts, label_parts = [], []
    for path in _cifar10_files(_cifar10_root(directory), split):
        raw = _read(path)
        if not raw or len(raw) % CIFAR10_RECORD:
            count, rest = divmod(len(raw), CIFAR10_RECORD)
            raise DataError(
                f"{path.name}: {len(raw):,} bytes is not a whole number of 3,073-byte records "
                f"(1 label byte + 3,072 pixel bytes): {count} records and {rest} bytes over; the "
                "file is truncated or not CIFAR-10's binary version, download it again"
            )
        records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD)  # (N, 1 + 3*32*32)
        if records[:, 0].max() > 9:
            index = int(np.argmax(records[:, 0] > 9))
            raise DataError(
                f"{path.name}: record {index} has label {records[index, 0]}, expected 0..9; the "
                "file is damaged or not CIFAR-10 (CIFAR-100 is not supported)"
            )
        label_parts.append(records[:, 0])
        pixel_parts.append(records[:, 1:].reshape(-1, 3, 32, 32))  # (N, C, H, W)
    pixels = np.concatenate(pixel_parts)
    return _unit_float(pixels), np.concatenate(label_parts).astype(np.int64)


def cifar10_classes(directory: str | Path) -> list[str]:
    """Class names from ``batches.meta.txt`` (one a line) when present, else CIFAR-10's ten."""
    meta = _cifar10_root(directory) / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    names = [line.strip() for line in _read(meta).decode("utf-8", "replace").splitlines()]
    names = [name for name in names if name]
    if len(names) != 10:
        raise DataError(
            f"{meta.name}: {len(names)} class names, expected 10 (one a line); fix the file or "
            "delete it to use CIFAR-10's standard names"
        )
    return names


# ---------------------------------------------------------------------------------------------
# A folder of images per class (Pillow)


class _FolderLayout(NamedTuple):
    classes: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]] | None  # None: carve the test set out of `train`


def _subfolders(root: Path) -> list[Path]:
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: p.name)


def _image_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: p.name)


def _scan_classes(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    folders = _subfolders(root)
    if not folders:
        loose = len(_image_files(root))
        found = f" (found {loose} images directly in it)" if loose else ""
        raise DataError(
            f"folder:{root}: no class folders{found}; put each class's images in DIR/<class>/"
        )
    items = []
    for folder in folders:
        if folder.name not in classes:
            raise DataError(
                f"folder:{folder}: class {folder.name!r} has no training folder; every test "
                "class must also be a training class"
            )
        files = _image_files(folder)
        if not files:
            raise DataError(
                f"folder:{folder}: no images (looked for {', '.join(IMAGE_SUFFIXES)}); add "
                "images or remove the folder"
            )
        items.extend((path, classes.index(folder.name)) for path in files)
    return items


def _folder_layout(root: Path) -> _FolderLayout:
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        classes = [p.name for p in _subfolders(train_dir)]
        return _FolderLayout(
            classes, _scan_classes(train_dir, classes), _scan_classes(test_dir, classes)
        )
    if train_dir.is_dir() or test_dir.is_dir():
        present, absent = ("train", "test") if train_dir.is_dir() else ("test", "train")
        raise DataError(
            f"folder:{root}: has {present}/ but no {absent}/; add {absent}/ with the same class "
            f"folders, or drop the {present}/ level to carve the test set out of the whole folder"
        )
    classes = [p.name for p in _subfolders(root)]
    return _FolderLayout(classes, _scan_classes(root, classes), None)


def _import_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "folder:DIR reads images with Pillow, which is not installed; "
            "pip install 'cnnkit[images]'"
        ) from None
    return Image


def _probe(image_module, paths: list[Path]) -> tuple[tuple[int, int], bool]:
    """The one (width, height) of every image, and whether all of them are grayscale."""
    size, first, gray = None, None, True
    for path in paths:
        try:
            with image_module.open(path) as img:
                found, mode = img.size, img.mode
        except (OSError, ValueError, image_module.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot be read as an image ({exc}); replace it") from None
        if mode in ("I", "F"):
            raise DataError(
                f"{path}: mode {mode} (32-bit pixels) is not supported; save the image with 8 "
                "or 16 bits per channel"
            )
        if size is None:
            size, first = found, path
        elif found != size:
            raise DataError(
                f"{path}: {found[0]}x{found[1]} pixels (width x height), but {first} is "
                f"{size[0]}x{size[1]}; every image must have one size, resize them first "
                "(for example with Pillow's Image.resize)"
            )
        gray = gray and mode in _GRAY_MODES
    return size, gray


def _pixels(img, gray: bool) -> np.ndarray:
    """One PIL image as float32 (C, H, W) in [0, 1]; 16-bit grayscale keeps its 16 bits."""
    if img.mode.startswith("I;16"):
        channel = _unit_float(np.asarray(img), 65535)[None]  # (1, H, W)
        return channel if gray else np.repeat(channel, 3, axis=0)
    if gray:
        return _unit_float(np.asarray(img.convert("L")))[None]  # (1, H, W)
    return _unit_float(np.asarray(img.convert("RGB"))).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)


def _decode(image_module, paths: list[Path], size: tuple[int, int], gray: bool) -> np.ndarray:
    width, height = size
    images = np.empty((len(paths), 1 if gray else 3, height, width), np.float32)
    for i, path in enumerate(paths):
        try:
            with image_module.open(path) as img:
                images[i] = _pixels(img, gray)
        except (OSError, ValueError, image_module.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot be read as an image ({exc}); replace it") from None
    return images


def image_folder_classes(directory: str | Path) -> list[str]:
    """The class names of a ``folder:DIR`` data set: its class folders' names, sorted."""
    return _folder_layout(_directory(directory, "folder")).classes


def load_image_folder(
    directory: str | Path,
    split: str = "train",
    *,
    test_fraction: float = FOLDER_TEST_FRACTION,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A split of ``DIR/<class>/*.png`` images: (N, C, H, W) float32 in [0, 1], labels int64.

    Labels index the class folders sorted by name (``image_folder_classes``). Every image must
    have one size; C is 1 when every image is grayscale (modes 1, L, LA, 16-bit I;16) and 3
    otherwise (alpha is dropped). Both splits are probed so that they agree on size and C.

    When DIR has ``train/`` and ``test/`` subfolders, each holds the class folders of its split.
    Otherwise DIR itself holds the class folders, and a stratified share ``test_fraction``
    (rounded to the nearest whole image per data set), chosen by ``seed``, is the test set;
    ``load_dataset`` keeps the defaults (20%, seed 0) so every run is tested on the same images.
    Needs Pillow: ``pip install 'cnnkit[images]'``.
    """
    _check_split(split, "load_image_folder")
    _check_fraction(test_fraction, "load_image_folder: test_fraction")
    image_module = _import_pillow()
    layout = _folder_layout(_directory(directory, "folder"))
    size, gray = _probe(image_module, [p for p, _ in layout.train + (layout.test or [])])
    if layout.test is None:
        labels = np.array([label for _, label in layout.train], np.int64)
        test_idx = _stratified_pick(labels, test_fraction, np.random.default_rng(seed))
        chosen = test_idx if split == "test" else np.setdiff1d(np.arange(len(labels)), test_idx)
        items = [layout.train[i] for i in chosen]
    else:
        items = layout.train if split == "train" else layout.test
    images = _decode(image_module, [path for path, _ in items], size, gray)
    return images, np.array([label for _, label in items], np.int64)


# ---------------------------------------------------------------------------------------------
# Splits, statistics and normalisation


def _check_fraction(fraction: float, where: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise DTypeError(f"{where} must be a number in [0, 1), got {fraction!r}")
    if not 0 <= fraction < 1:
        raise ConfigError(f"{where} must be in [0, 1), got {fraction!r}; use 0.1 for 10%")
    return float(fraction)


def _stratified_pick(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of round(fraction * N) items, spread over the classes in proportion.

    Items are visited in a random order; the k-th of its class (of n_c) gets the key
    (k + 0.5) / n_c, and the smallest keys are taken, so every class gives its share, +-1.
    """
    n = len(labels)
    take = int(fraction * n + 0.5)
    if take == 0:
        return np.zeros(0, np.int64)
    order = rng.permutation(n)
    shuffled = labels[order]
    counts = np.bincount(shuffled)
    by_class = np.argsort(shuffled, kind="stable")
    rank = np.empty(n, np.int64)
    rank[by_class] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    keys = (rank + 0.5) / counts[shuffled]
    return np.sort(order[np.argsort(keys, kind="stable")[:take]])


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of NCHW images, float32 arrays of shape (C,).

    Sums run in float64 over chunks, so a full MNIST needs no float64 copy. A std below
    ``STD_FLOOR`` (a nearly constant channel) is raised to it.
    """
    n, c, h, w = images.shape
    if n * h * w == 0:
        raise DataError(f"channel_stats: no pixels in images of shape {images.shape}")
    chunk = max(1, (1 << 22) // max(1, c * h * w))
    total = np.zeros(c)
    for start in range(0, n, chunk):
        total += images[start : start + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / (n * h * w)
    squares = np.zeros(c)
    centre = mean.astype(images.dtype).reshape(c, 1, 1)
    for start in range(0, n, chunk):
        block = images[start : start + chunk] - centre
        block *= block
        squares += block.sum(axis=(0, 2, 3), dtype=np.float64)
    std = np.maximum(np.sqrt(squares / (n * h * w)), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(images - mean) / std`` per channel, as a new float32 array; NCHW or CHW images.

    Use the training set's ``Dataset.mean`` and ``Dataset.std`` for new images (scaled to
    [0, 1] first).

    >>> normalize(np.ones((2, 1, 3, 3), np.float32), [0.5], [0.25])[0, 0, 0, 0]
    np.float32(2.0)
    """
    images = np.asarray(images)
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    if not np.issubdtype(images.dtype, np.floating):
        raise DTypeError(
            f"normalize: images are {images.dtype}, expected floats in [0, 1]; "
            "scale them first, e.g. images.astype(np.float32) / 255"
        )
    if images.ndim not in (3, 4) or images.shape[-3] != mean.size or std.size != mean.size:
        raise ShapeError(
            f"normalize: images of shape {images.shape} with mean of {mean.size} and std of "
            f"{std.size} values; expected NCHW or CHW images with one mean and one std per "
            "channel (axis -3)"
        )
    out = images.astype(np.float32, copy=True)
    out -= mean.reshape(-1, 1, 1)
    out /= std.reshape(-1, 1, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Dataset


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Three normalised splits of one source, with what is needed to treat new images alike.

    Images are float32 NCHW already normalised with ``mean``/``std`` (per channel, from the
    training split only); labels are int64 indices into ``classes``. Arrays are read-only.
    ``fingerprint`` is 16 hex digits of a sha256 over the classes and every split's images and
    labels before normalisation: a checkpoint resumed on other data, or on another validation
    split, sees a different one.
    """

    name: str
    classes: list[str]
    input_shape: tuple[int, int, int]
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    fingerprint: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Dataset({self.name!r}, {len(self.classes)} classes, {c}x{h}x{w}, "
            f"train={len(self.train_labels)}, val={len(self.val_labels)}, "
            f"test={len(self.test_labels)}, fingerprint={self.fingerprint!r})"
        )


def _fingerprint(classes: list[str], arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256("\n".join(classes).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"|{array.dtype.str}{array.shape}|".encode())
        digest.update(array.data)
    return digest.hexdigest()[:16]


def _read_source(source: str) -> tuple[list[str], tuple, tuple]:
    """(classes, (train images, labels), (test images, labels)) for a source string."""
    scheme, colon, location = source.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "optdigits" and not colon:
        return list(DIGITS), load_optdigits("train"), load_optdigits("test")
    if not colon or scheme not in ("mnist", "cifar10", "folder"):
        raise DataError(f"unknown data source {source!r}; use one of: {', '.join(SOURCES)}")
    if not location.strip():
        raise DataError(
            f"data source {source!r} names no directory; write {scheme}:DIR, "
            f"for example {scheme}:data/{scheme}"
        )
    if scheme == "mnist":
        return list(DIGITS), load_mnist_dir(location, "train"), load_mnist_dir(location, "test")
    if scheme == "cifar10":
        classes = cifar10_classes(location)
        return classes, load_cifar10_dir(location, "train"), load_cifar10_dir(location, "test")
    classes = image_folder_classes(location)
    return classes, load_image_folder(location, "train"), load_image_folder(location, "test")


def load_dataset(source: str, *, validation: float = 0.1, seed: int = 0) -> Dataset:
    """Read ``source`` (``optdigits``, ``mnist:DIR``, ``cifar10:DIR`` or ``folder:DIR``).

    A stratified share ``validation`` of the training set (rounded to whole images; 0 gives
    empty arrays), chosen by ``seed``, becomes the validation split; the test split is the
    source's own. Mean and std come from what remains for training.

    >>> data = load_dataset("optdigits", validation=0.1, seed=0)
    >>> data.input_shape, len(data.train_labels), len(data.val_labels), len(data.test_labels)
    ((1, 8, 8), 3441, 382, 1797)
    """
    if not isinstance(source, str):
        raise DTypeError(
            f"load_dataset: source must be a string such as 'optdigits', got {source!r}"
        )
    validation = _check_fraction(validation, "load_dataset: validation")
    classes, (images, labels), (test_images, test_labels) = _read_source(source)
    if images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{source}: training images are {'x'.join(map(str, images.shape[1:]))} but test "
            f"images are {'x'.join(map(str, test_images.shape[1:]))}; both splits must share "
            "one size"
        )
    val_idx = _stratified_pick(labels, validation, np.random.default_rng(seed))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if len(train_idx) == 0:
        raise DataError(
            f"{source}: validation={validation} leaves none of {len(labels)} images for "
            "training; use a smaller fraction"
        )
    arrays = [images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]]
    arrays += [test_images, test_labels]
    fingerprint = _fingerprint(classes, arrays)
    mean, std = channel_stats(arrays[0])
    for i in (0, 2, 4):  # in place: the split arrays are fresh copies (test: our own array)
        arrays[i] -= mean.reshape(-1, 1, 1)
        arrays[i] /= std.reshape(-1, 1, 1)
    for array in (*arrays, mean, std):
        array.setflags(write=False)
    c, h, w = images.shape[1:]
    return Dataset(source, classes, (c, h, w), *arrays, mean, std, fingerprint)


# ---------------------------------------------------------------------------------------------
# Mini-batches and augmentation


def batches(count: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index arrays covering ``range(count)`` once, in a permutation drawn from ``rng``.

    The last batch keeps the remainder. ``rng=None`` keeps the order (for evaluation).

    >>> [b.tolist() for b in batches(5, 2, None)]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DTypeError(f"batches: batch_size must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ConfigError(f"batches: batch_size must be at least 1, got {batch_size}")
    if count < 0:
        raise ConfigError(f"batches: count must be at least 0, got {count}")
    order = np.arange(count) if rng is None else rng.permutation(count)
    return [order[start : start + batch_size] for start in range(0, count, batch_size)]


def random_shift(
    images: np.ndarray,
    max_shift: int,
    rng: np.random.Generator,
    *,
    fill: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Each NCHW image moved by whole pixels, a new array of the same shape and dtype.

    Offsets ``(dy, dx) = rng.integers(-max_shift, max_shift + 1, size=(N, 2))`` (one draw per
    call): ``out[n, c, y, x] = images[n, c, y - dy, x - dx]``, and ``fill`` where that falls
    outside (a scalar or one value per channel). On normalised images the background is not 0:
    pass ``fill=-mean / std`` to fill with normalised black. ``max_shift=0`` returns a copy and
    draws nothing. Vectorised: one padded copy, then one gather through a sliding-window view.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ShapeError(f"random_shift: images of shape {images.shape}, expected NCHW (4 axes)")
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)):
        raise DTypeError(f"random_shift: max_shift must be an integer, got {max_shift!r}")
    if max_shift < 0:
        raise ConfigError(f"random_shift: max_shift must be at least 0, got {max_shift}")
    n, c, h, w = images.shape
    if max_shift == 0 or n == 0:
        return images.copy()
    m = int(max_shift)
    offsets = rng.integers(-m, m + 1, size=(n, 2))  # (N, 2): dy, dx
    fill = np.asarray(fill, images.dtype).reshape(-1, 1, 1)  # (1 or C, 1, 1)
    if len(fill) not in (1, c):
        raise ShapeError(
            f"random_shift: fill has {len(fill)} values for {c} channels; pass one number or "
            "one value per channel"
        )
    padded = np.empty((n, c, h + 2 * m, w + 2 * m), images.dtype)
    padded[...] = fill
    padded[:, :, m : m + h, m : m + w] = images
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 2m+1, 2m+1, H, W)
    return windows[np.arange(n), :, m - offsets[:, 0], m - offsets[:, 1]]  # (N, C, H, W)
