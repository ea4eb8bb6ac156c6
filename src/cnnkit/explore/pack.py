"""Arrays packed into one little-endian binary block, written into the page as base64.

Each array is described by ``{"offset", "dtype", "size", "shape"}`` (``dtype`` ``"f4"`` or
``"f2"``; offsets are multiples of 4, so the page reads float32 arrays as views). With
``half=True`` every array of at least :data:`HALF_MIN` values (the large weight matrices) is
stored as float16; biases, BatchNorm statistics, normalisation and images stay float32.

>>> import numpy as np
>>> data, entries = pack([np.arange(3, dtype=np.float32)])
>>> len(data), entries
(12, [{'offset': 0, 'dtype': 'f4', 'size': 3, 'shape': [3]}])
"""

from __future__ import annotations

import base64

import numpy as np

from cnnkit.errors import ConfigError

HALF_MIN = 1024  # arrays at least this large become float16 when the page must be smaller
HALF_MAX = 65504.0  # the largest finite float16


def pack(arrays, *, half: bool = False) -> tuple[bytes, list[dict]]:
    """(the bytes, one entry per array in order)."""
    chunks: list[bytes] = []
    entries: list[dict] = []
    offset = 0
    for array in arrays:
        array = np.asarray(array)
        small = not half or array.size < HALF_MIN
        dtype = "<f4" if small else "<f2"
        if not small and np.abs(array).max(initial=0.0) > HALF_MAX:
            raise ConfigError(
                f"a weight array of shape {array.shape} holds values beyond float16's "
                f"{HALF_MAX:g}; give the page more room (--max-mb) so it keeps float32"
            )
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        data += b"\0" * (-len(data) % 4)
        entries.append(
            {
                "offset": offset,
                "dtype": dtype[1:],
                "size": int(array.size),
                "shape": [int(n) for n in array.shape],
            }
        )
        chunks.append(data)
        offset += len(data)
    return b"".join(chunks), entries


def rounded(array, *, half: bool) -> np.ndarray:
    """``array`` as the page reads it back: float16-rounded where :func:`pack` stores it so."""
    array = np.asarray(array)
    if half and array.size >= HALF_MIN:
        return array.astype(np.float16).astype(array.dtype)
    return array


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
