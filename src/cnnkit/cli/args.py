"""Argument types shared by every ``cnnkit`` subcommand, so each is checked the same way."""

from __future__ import annotations

import argparse


def positive(kind):
    """An argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def volume(text: str) -> tuple[int, int, int]:
    """``3x224x224`` -> (3, 224, 224); ``28x28`` -> (1, 28, 28)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (2, 3) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x224x224, got {text!r}")
    return tuple(sizes) if len(sizes) == 3 else (1, *sizes)  # type: ignore[return-value]
