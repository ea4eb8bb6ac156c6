"""The one image reader of cnnkit: ``folder:DIR`` training data and ``cnnkit predict`` both read
image files here, so a picture gives the network the same numbers in training and prediction.

Every Pillow mode becomes float32 (C, H, W) in [0, 1]: 8-bit modes (1, L, LA, P, RGB, RGBA, ...)
are divided by 255, 16-bit grayscale (I;16) by 65535; alpha is dropped; C is 1 (grayscale,
colour turned to luma by Pillow) or 3 (RGB, grayscale repeated). Only regular files of at most
:data:`MAX_IMAGE_FILE_BYTES` are opened, and Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``) refuses an image in one line, before any pixel is decoded.
Pillow is an optional extra (``pip install 'cnnkit[images]'``), imported only here, when needed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cnnkit.data._files import _unit_float, open_regular
from cnnkit.data.memory import check_memory
from cnnkit.errors import CnnkitError, DataError, ShapeError

MAX_IMAGE_FILE_BYTES = 1 << 28  # 256 MiB: the largest image file cnnkit opens
GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = frozenset({"I", "F"})  # 32-bit pixels: no range to scale by


def import_pillow(where: str):
    """``PIL.Image``, or one DataError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            f"{where} reads images with Pillow, which is not installed; "
            "pip install 'cnnkit[images]'"
        ) from None
    return Image


@contextmanager
def open_image(image_module, path: str | Path) -> Iterator:
    """A PIL image of ``path`` (header read, pixels not yet decoded), with every failure of
    opening or decoding it, Pillow's decompression-bomb warning included, as one DataError."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise DataError(
                f"{path}: {size:,} bytes, more than the {MAX_IMAGE_FILE_BYTES:,} bytes an image "
                "file may hold; use a smaller image"
            )
        bombs = (image_module.DecompressionBombError, image_module.DecompressionBombWarning)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", image_module.DecompressionBombWarning)
                with image_module.open(file) as img:
                    yield img
        except CnnkitError:
            raise
        except bombs as exc:
            raise DataError(
                f"{path}: refused by Pillow's decompression-bomb check: {str(exc).rstrip('.')}; "
                "use a smaller image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
            ) from None
        except image_module.UnidentifiedImageError:
            raise DataError(
                f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM); "
                "give an image file"
            ) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise DataError(f"{path}: cannot be read as an image ({exc}); replace it") from None


def check_mode(path, mode: str) -> None:
    """Refuse 32-bit modes (I, F), which have no range to scale into [0, 1]."""
    if mode in _WIDE_MODES:
        raise DataError(
            f"{path}: mode {mode} (32-bit pixels) is not supported; save the image with 8 "
            "or 16 bits per channel"
        )


def image_pixels(img, channels: int) -> np.ndarray:
    """One opened PIL image as float32 (C, H, W) in [0, 1] with C = ``channels`` (1 or 3).

    16-bit grayscale keeps its 16 bits (divided by 65535); every other mode is converted by
    Pillow to L (C = 1) or RGB (C = 3) and divided by 255.
    """
    if img.mode.startswith("I;16"):
        channel = _unit_float(np.asarray(img), 65535)[None]  # (1, H, W)
        return channel if channels == 1 else np.repeat(channel, 3, axis=0)
    if channels == 1:
        return _unit_float(np.asarray(img.convert("L")))[None]  # (1, H, W)
    return _unit_float(np.asarray(img.convert("RGB"))).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)


def _resized(image_module, pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, H, W) float32 scaled to (C, height, width) channel by channel (bilinear, in float,
    so 16-bit images keep their precision)."""
    planes = [
        np.asarray(
            image_module.fromarray(np.ascontiguousarray(plane, np.float32)).resize(
                (width, height), image_module.Resampling.BILINEAR
            )
        )
        for plane in pixels
    ]
    return np.clip(np.stack(planes), 0.0, 1.0).astype(np.float32)  # (C, H, W)


def read_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None = None,
    *,
    resize: bool = False,
    where: str = "reading an image",
) -> np.ndarray:
    """An image file as float32 (C, H, W) in [0, 1], C = ``channels`` (1 or 3).

    ``size`` is the (height, width) the caller needs: another size is refused naming both,
    unless ``resize`` scales the picture to it (bilinear). Needs Pillow.
    """
    if channels not in (1, 3):
        raise ShapeError(
            f"{path}: the network takes {channels} channels, but an image gives 1 (grayscale) "
            "or 3 (RGB); give the network 1 or 3 input channels"
        )
    image_module = import_pillow(where)
    with open_image(image_module, path) as img:
        check_mode(path, img.mode)
        width, height = img.size
        if size is not None and (height, width) != tuple(size) and not resize:
            raise ShapeError(
                f"{path}: the image is {height}x{width} but the network takes "
                f"{size[0]}x{size[1]}; resize it first, or pass --resize to scale it to "
                f"{size[0]}x{size[1]}"
            )
        check_memory(
            str(path),
            4 * width * height * (channels + len(img.getbands())),
            f"its {width}x{height} pixels decoded as float32",
            "use a smaller image",
        )
        pixels = image_pixels(img, channels)
    if size is not None and (height, width) != tuple(size):
        pixels = _resized(image_module, pixels, *size)
    return pixels
