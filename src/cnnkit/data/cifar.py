"""CIFAR-10's binary version (``data_batch_N.bin``, ``test_batch.bin``); never the pickles."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cnnkit.data._files import _check_split, _directory, _read, _unit_float
from cnnkit.data.memory import check_memory
from cnnkit.errors import DataError

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
CIFAR10_RECORD_PIXELS = 3 * 32 * 32
MAX_META_BYTES = 1 << 16  # batches.meta.txt: ten class names
MAX_BATCH_BYTES = 1 << 28  # 256 MiB (87,000 records) per file; CIFAR-10's hold 10,000 each


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
    A file may be gzip-compressed; no file is read (or inflated) beyond 256 MiB.
    """
    _check_split(split, "load_cifar10_dir")
    pixel_parts, label_parts = [], []
    for path in _cifar10_files(_cifar10_root(directory), split):
        raw = _read(path, MAX_BATCH_BYTES)
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
    count = sum(len(part) for part in pixel_parts)
    check_memory(
        f"cifar10:{directory}",
        4 * CIFAR10_RECORD_PIXELS * count,
        f"{count:,} images of 3x32x32 as float32 ({count} x 3 x 32 x 32 x 4 bytes)",
        "free memory, or use fewer data_batch_N.bin files",
    )
    pixels = np.concatenate(pixel_parts)
    return _unit_float(pixels), np.concatenate(label_parts).astype(np.int64)


def cifar10_classes(directory: str | Path) -> list[str]:
    """Class names from ``batches.meta.txt`` (one a line) when present, else CIFAR-10's ten."""
    meta = _cifar10_root(directory) / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    text = _read(meta, MAX_META_BYTES).decode("utf-8", "replace")
    names = [line.strip() for line in text.splitlines()]
    names = [name for name in names if name]
    if len(names) != 10:
        raise DataError(
            f"{meta.name}: {len(names)} class names, expected 10 (one a line); fix the file or "
            "delete it to use CIFAR-10's standard names"
        )
    return names
