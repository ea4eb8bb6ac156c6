"""Argument types shared by every ``cnnkit`` subcommand, so each is checked the same way."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from cnnkit.errors import CnnkitError, ConfigError

_NAMES = {int: "a whole number", float: "a number"}


def positive(kind):
    """An argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str):
        value = _read(kind, text, "> 0")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def non_negative(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    value = _read(int, text, ">= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _read(kind, text: str, bound: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {_NAMES.get(kind, kind.__name__)} {bound}, got {text!r}"
        ) from None
    if kind is float and value != value:  # NaN compares with nothing
        raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors as cnnkit's: one line on stderr, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"cnnkit: error: {self.prog}: {message}; see {self.prog} --help\n")


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


def import_user_module(name: str) -> None:
    """``--import``: a module name (``mylayers``, found from the current directory too) or a
    ``.py`` file; its import errors become one cnnkit error."""
    try:
        if name.endswith(".py") or "/" in name:
            path = Path(name)
            if not path.is_file():
                raise ConfigError(f"--import {name}: no such file")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules.setdefault(path.stem, module)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            importlib.import_module(name)
    except CnnkitError:
        raise
    except Exception as error:
        raise ConfigError(f"--import {name}: {type(error).__name__}: {error}") from None


def network_source(text: str):
    """A command's SPEC argument: a run directory's trained model, or the string itself (an
    architecture or built-in name). A path that is not there is said to be so."""
    if text.strip() and Path(text).is_dir():
        from cnnkit.train import load_run

        return load_run(text)[0]
    if text.strip() and _looks_like_path(text) and not Path(text).exists():
        raise ConfigError(
            f"{text}: no such run directory (an architecture string such as "
            "'INPUT(1x28x28) - CONV(D=8, F=3) - FC(10)', a built-in name, or a run's directory)"
        )
    return text


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or text.endswith(".npz")
