"""How much memory is available, and a one-line refusal when a load would need more.

Anything that is about to allocate a large array from what a file declares (IDX headers, image
sizes, a batch) asks :func:`check_memory` first, so a lying or simply too large file ends in one
:class:`~cnnkit.errors.DataError` with the arithmetic instead of a MemoryError or the OOM killer.
"""

from __future__ import annotations

import os

from cnnkit.errors import DataError

_CGROUP = "/sys/fs/cgroup"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            text = file.read(1 << 16)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    return None


def _cgroup_available() -> int | None:
    """What the cgroup (v2) of this process may still allocate, when it has a limit."""
    try:
        with open(f"{_CGROUP}/memory.max", encoding="ascii") as file:
            limit = file.read(64).strip()
        with open(f"{_CGROUP}/memory.current", encoding="ascii") as file:
            current = int(file.read(64).strip())
    except (OSError, ValueError):
        return None
    if not limit.isdigit():
        return None  # "max": no limit
    return max(0, int(limit) - current)


def available_memory() -> int | None:
    """Bytes of memory this process can still take: the smaller of the kernel's MemAvailable
    (``/proc/meminfo``; elsewhere ``SC_AVPHYS_PAGES * SC_PAGE_SIZE``) and what a cgroup memory
    limit leaves; ``None`` where neither is known."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            found = None
    cgroup = _cgroup_available()
    known = [value for value in (found, cgroup) if value is not None]
    return min(known) if known else None


def describe_bytes(count: int) -> str:
    """``12,582,912 bytes (12.0 MiB)``: the exact count and a readable size."""
    size, unit = float(count), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024:
            break
        size, unit = size / 1024, name
    readable = f" ({size:.1f} {unit})" if unit != "bytes" else ""
    return f"{count:,} bytes{readable}"


def check_memory(where: str, need: int, what: str, fix: str) -> None:
    """Raise one DataError when ``need`` bytes (for ``what``) exceed the memory available.

    ``what`` says where the number comes from, with its arithmetic, e.g.
    ``"12 images of 3x9000x9000 as float32 (12 x 3 x 9000 x 9000 x 4 bytes)"``.
    """
    available = available_memory()
    if available is None or need <= available:
        return
    raise DataError(
        f"{where}: {what} need {describe_bytes(need)}, but only {describe_bytes(available)} of "
        f"memory is available; {fix}"
    )
