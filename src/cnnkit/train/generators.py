"""The model's own random generators in checkpoints: a resumed run draws what an uninterrupted
one does.

A layer that draws random numbers while training (Dropout's masks) registers its generator
(:meth:`cnnkit.Layer.register_generator`); every checkpoint's header holds the state of each,
by name, as ``"generators": {"3.rng": <bit_generator.state>, ...}`` (PCG64 states: JSON
numbers, each checked field by field by :mod:`cnnkit.train.header`). Reading a checkpoint for
a model, the names must be exactly the model's (:func:`check`, before anything is read or
changed); resuming sets each generator to its saved state (:func:`restore`). A checkpoint
written before generators were saved has no such field: it loads into a model that has none.
"""

from __future__ import annotations

from pathlib import Path

from cnnkit.errors import DataError
from cnnkit.nn.state import generator_states, load_generator_states
from cnnkit.train.header import CHECKPOINT_FIX

FIELD = "generators"


def states(model) -> dict[str, dict]:
    """``{name: state}`` of the model's registered generators (``{}`` for a model without
    any, or one that is not a cnnkit layer)."""
    if not hasattr(model, "named_generators"):
        return {}
    return generator_states(model)


def with_states(header: dict, model) -> dict:
    """``header`` with the model's generator states under ``"generators"``."""
    return {**header, FIELD: states(model)}


def check(path: Path, header: dict, model) -> None:
    """The header's generators are the model's, by name (a header that passed
    :func:`cnnkit.train.header.validate_header`, so each state is a PCG64 state)."""
    expected = sorted(name for name, _ in _named(model))
    saved = header.get(FIELD)
    if saved is None:
        if expected:
            raise DataError(
                f"{path}: header field {FIELD} is missing, but the model's layers draw from "
                f"generators {_names(expected)}; {CHECKPOINT_FIX}"
            )
        return
    if sorted(saved) != expected:
        raise DataError(
            f"{path}: header field {FIELD} holds {_names(sorted(saved))}, but the model's "
            f"generators are {_names(expected)}; {CHECKPOINT_FIX}"
        )


def restore(model, header: dict) -> None:
    """Set the model's generators to the states in ``header`` (checked by :func:`check`);
    a header without generators leaves them as they are."""
    saved = header.get(FIELD)
    if saved is not None and hasattr(model, "named_generators"):
        load_generator_states(model, saved)


def _named(model):
    return model.named_generators() if hasattr(model, "named_generators") else ()


def _names(names: list[str]) -> str:
    shown = ", ".join(name[:40] for name in names[:6])
    if len(names) > 6:
        shown += f", ... ({len(names)} in all)"
    return f"[{shown}]"
