"""A folder of images per class, ``DIR/<class>/*.png``, decoded with Pillow (optional) by the
reader that ``cnnkit predict`` uses too (:mod:`cnnkit.data.images`)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnnkit.data._files import _check_split, _directory
from cnnkit.data._split import _check_fraction, _stratified_pick
from cnnkit.data.images import GRAY_MODES, check_mode, image_pixels, import_pillow, open_image
from cnnkit.data.memory import check_memory
from cnnkit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FOLDER_TEST_FRACTION = 0.2  # folder:DIR without train/ and test/: this share becomes the test set


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
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir()
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


def _probe(image_module, paths: list[Path]) -> tuple[tuple[int, int], bool]:
    """The one (width, height) of every image, and whether all of them are grayscale; read
    from the headers only (no pixel is decoded)."""
    size, first, gray = None, None, True
    for path in paths:
        with open_image(image_module, path) as img:
            found, mode = img.size, img.mode
        check_mode(path, mode)
        if size is None:
            size, first = found, path
        elif found != size:
            raise DataError(
                f"{path}: {found[0]}x{found[1]} pixels (width x height), but {first} is "
                f"{size[0]}x{size[1]}; every image must have one size, resize them first "
                "(for example with Pillow's Image.resize)"
            )
        gray = gray and mode in GRAY_MODES
    return size, gray


def _check_decoded_size(root, count: int, size: tuple[int, int], gray: bool) -> None:
    """Refuse, from the headers alone, a split whose decoded images exceed the free memory."""
    width, height = size
    channels = 1 if gray else 3
    check_memory(
        f"folder:{root}",
        4 * count * channels * height * width,
        f"{count:,} images of {channels}x{height}x{width} as float32 "
        f"({count} x {channels} x {height} x {width} x 4 bytes)",
        "use smaller images (resize them, for example with Pillow's Image.resize) or fewer",
    )


def _decode(image_module, paths: list[Path], size: tuple[int, int], gray: bool) -> np.ndarray:
    width, height = size
    images = np.empty((len(paths), 1 if gray else 3, height, width), np.float32)
    for i, path in enumerate(paths):
        with open_image(image_module, path) as img:
            images[i] = image_pixels(img, 1 if gray else 3)
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
    image_module = import_pillow("folder:DIR")
    root = _directory(directory, "folder")
    layout = _folder_layout(root)
    size, gray = _probe(image_module, [p for p, _ in layout.train + (layout.test or [])])
    if layout.test is None:
        labels = np.array([label for _, label in layout.train], np.int64)
        test_idx = _stratified_pick(labels, test_fraction, np.random.default_rng(seed))
        chosen = test_idx if split == "test" else np.setdiff1d(np.arange(len(labels)), test_idx)
        items = [layout.train[i] for i in chosen]
    else:
        items = layout.train if split == "train" else layout.test
    _check_decoded_size(root, len(items), size, gray)
    images = _decode(image_module, [path for path, _ in items], size, gray)
    return images, np.array([label for _, label in items], np.int64)
