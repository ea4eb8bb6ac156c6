"""The UCI optdigits set, embedded in the package (``src/cnnkit/datasets/``)."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import numpy as np

from cnnkit.errors import ConfigError, DataError

OPTDIGITS_SHA256 = {
    "train": "e1b683cc211604fe8fd8c4417e6a69f31380e0c61d4af22e93cc21e9257ffedd",
    "test": "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
}
_OPTDIGITS_FILES = {"train": "optdigits.tra.gz", "test": "optdigits.tes.gz"}
OPTDIGITS_MAX = 16  # each pixel counts set bits in a 4x4 block of the 32x32 bitmap


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
