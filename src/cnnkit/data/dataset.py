"""Dataset: three normalised splits of one source; load_dataset, channel_stats, normalize."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from cnnkit.data._split import _check_fraction, _stratified_pick
from cnnkit.data.cifar import cifar10_classes, load_cifar10_dir
from cnnkit.data.folder import image_folder_classes, load_image_folder
from cnnkit.data.idx import load_mnist_dir
from cnnkit.data.optdigits import load_optdigits
from cnnkit.errors import DataError, DTypeError, ShapeError

SOURCES = ("optdigits", "mnist:DIR", "cifar10:DIR", "folder:DIR")
DIGITS = tuple(str(digit) for digit in range(10))
STD_FLOOR = 1e-3  # a (nearly) constant channel is divided by this rather than by ~0


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
    training split only; unless ``normalized`` is False); labels are int64 indices into
    ``classes``. Arrays are read-only.
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
    normalized: bool = True  # False: images as the loader returns them, mean/std not applied
    validation: float | None = None  # how load_dataset split it: the share held out ...
    split_seed: int | None = None  # ... and the seed that drew it (None: not from a source)

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


def load_dataset(
    source: str, *, validation: float = 0.1, seed: int = 0, normalize: bool = True
) -> Dataset:
    """Read ``source`` (``optdigits``, ``mnist:DIR``, ``cifar10:DIR`` or ``folder:DIR``).

    A stratified share ``validation`` of the training set (rounded to whole images; 0 gives
    empty arrays), chosen by ``seed``, becomes the validation split; the test split is the
    source's own. Mean and std come from what remains for training. ``normalize=False`` keeps
    the images as the loader returns them (values in [0, 1]; what a loaded run's model takes),
    with the same statistics in ``mean`` and ``std``.

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
    for i in (0, 2, 4) if normalize else ():  # in place: fresh copies (test: our own array)
        arrays[i] -= mean.reshape(-1, 1, 1)
        arrays[i] /= std.reshape(-1, 1, 1)
    for array in (*arrays, mean, std):
        array.setflags(write=False)
    c, h, w = images.shape[1:]
    return Dataset(
        source, classes, (c, h, w), *arrays, mean, std, fingerprint, normalize, validation, seed
    )
