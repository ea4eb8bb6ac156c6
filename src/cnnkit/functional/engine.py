"""Which engine computes every layer: ``fast`` (the default) or ``reference`` (the readable one).

``use_engine("reference")`` switches for the whole process; used as a context manager it
switches for the block and switches back after it. The environment variable
``CNNKIT_ENGINE=reference`` sets the starting choice. This is cnnkit's only global setting.
A layer's backward always runs on the engine its forward ran on.

>>> with use_engine("reference"):
...     engine_name()
'reference'
>>> engine_name()
'fast'
"""

from __future__ import annotations

import os

from cnnkit.errors import ConfigError
from cnnkit.functional import fast, reference

ENGINES = {"fast": fast, "reference": reference}
_state = {"name": os.environ.get("CNNKIT_ENGINE", "fast").strip().lower() or "fast"}
_active = [None]  # the selected module, once the name has been checked (every layer asks)


def _checked(name, where: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in ENGINES:
        raise ConfigError(
            f"{where}: unknown engine {name!r}; use one of {', '.join(ENGINES)} "
            "(fast is the default, reference the readable one)"
        )
    return name.strip().lower()


def current():
    """The module whose functions compute layers now (see the engines' shared contract)."""
    module = _active[0]
    if module is None:
        module = _active[0] = ENGINES[_checked(_state["name"], "CNNKIT_ENGINE")]
    return module


def engine_name() -> str:
    return current().NAME


class use_engine:
    """Select the engine for every layer; as a context manager, for one block only."""

    def __init__(self, name: str) -> None:
        self.name = _checked(name, "use_engine")
        self.previous = _state["name"], _active[0]
        _state["name"], _active[0] = self.name, ENGINES[self.name]

    def __enter__(self) -> use_engine:
        return self

    def __exit__(self, *exc) -> None:
        _state["name"], _active[0] = self.previous

    def __repr__(self) -> str:
        return f"use_engine({self.name!r})"
