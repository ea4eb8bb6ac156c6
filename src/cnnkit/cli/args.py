"""Argument types shared by every ``cnnkit`` subcommand, so each is checked the same way."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path

from cnnkit.errors import CnnkitError, ConfigError

_NAMES = {int: "a whole number", float: "a number"}


def positive(kind):
    """An argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str):
        value = _read(kind, text, "> 0")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
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


def home_path(text: str, what: str) -> Path:
    """``~/x`` and ``~user/x`` expanded; an unknown user is one line naming ``what``."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text.split("/", 1)[0]
        raise ConfigError(
            f"{what}: no user {user[1:]!r} to find {user} of; give the path"
        ) from None


def output_file(suffix: str):
    """An argparse type: a file to write, ``~`` expanded, that is not a directory and whose
    name ends in ``suffix`` (``.png``: the format written is the one its name says)."""

    def parse(text: str) -> Path:
        path = _expanded(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(
                f"{text} is a directory; give a file name such as {path / ('out' + suffix)}"
            )
        if path.suffix.lower() != suffix:
            fixed = path.with_suffix(suffix) if path.name else f"out{suffix}"
            raise argparse.ArgumentTypeError(
                f"{text}: the file written is {suffix[1:].upper()}, its name must end in "
                f"{suffix}; use {fixed}"
            )
        return path

    return parse


def output_directory(text: str) -> Path:
    """An argparse type: a directory to write into (made when missing), ``~`` expanded."""
    path = _expanded(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory; choose another")
    return path


def _expanded(text: str) -> Path:
    try:
        return home_path(text, text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error).split(": ", 1)[1]) from None


def run_directory(text: str) -> str:
    """A command's RUN_DIR: ``~`` expanded, and a file or a missing path said to be so."""
    path = home_path(text, f"RUN_DIR {text}")
    if not path.exists():
        raise ConfigError(
            f"RUN_DIR {text}: no such run directory; give the RUN_DIR that cnnkit train wrote "
            "(its --out)"
        )
    if not path.is_dir():
        raise ConfigError(
            f"RUN_DIR {text}: is a file, not a run directory; give the RUN_DIR that cnnkit "
            "train wrote (its --out)"
        )
    return str(path)


def import_user_module(name: str) -> None:
    """``--import``: a module name (``mylayers``, found from the current directory too) or a
    ``.py`` file; its import errors become one cnnkit error."""
    try:
        if name.endswith(".py") or "/" in name or Path(name).is_file():
            path = home_path(name, f"--import {name}")
            if not path.is_file():
                raise ConfigError(f"--import {name}: no such file")
            if path.suffix != ".py":
                raise ConfigError(
                    f"--import {name}: not a .py file; give a Python file (mylayers.py) or a "
                    "module name (mylayers)"
                )
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
    if not text.strip() or not (_looks_like_path(text) or _is_dir(Path(text))):
        return text
    path = home_path(text, text)
    if path.is_dir():
        from cnnkit.train import load_run

        return load_run(path)[0]
    expected = (
        "an architecture string such as 'INPUT(1x28x28) - CONV(D=8, F=3) - FC(10)', a "
        "built-in name, or a run's directory"
    )
    if path.exists():
        raise ConfigError(f"{text}: is a file, not a run directory; give {expected}")
    raise ConfigError(f"{text}: no such run directory ({expected})")


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the system cannot even look (a name too long)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or text.endswith(".npz")


def add_window_options(parser) -> None:
    """``--dilation d`` and ``--ceil`` for the one-axis calculators (shape, explain shape)."""
    parser.add_argument(
        "--dilation",
        type=positive(int),
        default=1,
        metavar="d",
        help="taps d apart: the window spans d(F - 1) + 1 inputs (1)",
    )
    parser.add_argument(
        "--ceil", action="store_true", help="round up, as a pool's ceil_mode=True does"
    )


def emit_explanation(explanation, args, **text_options) -> None:
    """An explanation as JSON (``--json``) or as its text."""
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(explanation.text(**text_options))


def json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
