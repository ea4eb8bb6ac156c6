"""What cnnkit runs on: its version, the engine, NumPy and its BLAS, the compiled kernels.

``cnnkit info`` prints this; bug reports and benchmark tables quote it.
"""

from __future__ import annotations

import importlib.util
import platform
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from cnnkit.functional.engine import engine_name
from cnnkit.functional.fast import jit


def cnnkit_version() -> str:
    try:
        return version("cnnkit")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


def blas() -> str:
    """NumPy's BLAS as built (``scipy-openblas 0.3.31``), and the kernel it runs now when
    threadpoolctl is installed (``kernel SkylakeX, 2 threads``)."""
    try:
        config = np.show_config(mode="dicts")
        found = config.get("Build Dependencies", {}).get("blas", {})
        built = f"{found.get('name', '?')} {found.get('version', '')}".strip()
    except (TypeError, AttributeError):  # NumPy < 1.25 prints instead
        built = "unknown"
    if importlib.util.find_spec("threadpoolctl") is None:
        return built
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            core = pool.get("architecture") or "?"
            return f"{built}, kernel {core}, {pool.get('num_threads')} threads"
    return built


def numba_text() -> str:
    if not jit.jit_available():
        return "not installed (the NumPy path runs)"
    state = "on" if jit.jit_enabled() else "off (CNNKIT_JIT=0)"
    return f"{version('numba')}, compiled kernels {state}"


def describe() -> dict[str, str]:
    """Everything ``cnnkit info`` prints, as (label, text) pairs in order."""
    return {
        "cnnkit": cnnkit_version(),
        "engine": f"{engine_name()} (CNNKIT_ENGINE or cnnkit.use_engine to change)",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas(),
        "numba": numba_text(),
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
    }
