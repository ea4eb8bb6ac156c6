"""The ``cnnkit`` command: argument parsing and printing only.

Every cnnkit error becomes one line on stderr and exit code 2 (anything else, a bug, one line
and exit code 1; ``CNNKIT_DEBUG=1`` shows its traceback); output cut short by a closed pipe
(``cnnkit summary vgg16 | head``) ends quietly. ``cnnkit --import mylayers.py ...`` imports a
user's module first, so the layers it registers work in strings and trained runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cnnkit.cli.args import Parser, import_user_module
from cnnkit.cli.evaluate import add_evaluate_parsers
from cnnkit.cli.explain import add_explain_parser
from cnnkit.cli.explore import add_explore_parser
from cnnkit.cli.export import add_export_parser
from cnnkit.cli.summary import add_summary_parsers
from cnnkit.cli.train import add_train_parser
from cnnkit.cli.viz import add_viz_parsers
from cnnkit.errors import CnnkitError, ConfigError
from cnnkit.functional.engine import current as current_engine
from cnnkit.functional.fast.jit import setting_problem as jit_setting_problem


def _version_text() -> str:
    from cnnkit import info

    facts = info.describe()
    return (
        f"cnnkit {facts['cnnkit']} (engine {info.engine_name()}; NumPy {facts['numpy']}, "
        f"BLAS {facts['blas']}; numba {facts['numba']})"
    )


class _Version(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cnnkit",
        description="Convolutional neural networks from scratch on NumPy, explained.",
    )
    parser.add_argument(
        "--version", action=_Version, help="the version, the engine, NumPy and its BLAS"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module or .py file first, so the layers it registers "
        "(@cnnkit.register_layer) work in strings and runs; repeatable",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train the lecture's INPUT-[CONV-RELU-POOL]x2-FC network on the embedded digits",
        description="Train the lecture's network on the embedded optdigits set (8x8 digits) "
        "with the default recipe, print the loss per epoch and the test accuracy, and say "
        "where the run is. The same as `cnnkit train` with no options.",
    )
    demo.add_argument("--out", metavar="RUN_DIR", help="default: runs/optdigits-<time>")
    demo.set_defaults(run=run_demo)
    add_train_parser(commands)
    add_evaluate_parsers(commands)
    add_export_parser(commands)
    add_summary_parsers(commands)
    add_explain_parser(commands)
    add_viz_parsers(commands)
    add_explore_parser(commands)
    info = commands.add_parser(
        "info",
        help="what cnnkit runs on: version, engine, NumPy and its BLAS, compiled kernels",
        description="Print cnnkit's version, the engine computing the layers, NumPy and the "
        "BLAS it calls, and whether the compiled kernels (numba) are on.",
    )
    info.set_defaults(run=run_info)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """``cnnkit train`` with the defaults, then the pictures of the run."""
    from cnnkit.viz import demo_pictures

    out = args.out or f"runs/optdigits-{time.strftime('%Y%m%d-%H%M%S')}"
    train_args = build_parser().parse_args(["train", "--out", out])
    status = train_args.run(train_args)
    if status == 0:
        demo_pictures(out)
    return status


def run_info(args: argparse.Namespace) -> int:
    from cnnkit import info

    facts = info.describe()
    width = max(len(label) for label in facts)
    for label, text in facts.items():
        print(f"{label.ljust(width)}  {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        current_engine()  # a wrong CNNKIT_ENGINE (or CNNKIT_JIT) is one line, whatever the command
        if jit_setting_problem():
            raise ConfigError(jit_setting_problem())
        args = parser.parse_args(argv)
        for name in args.imports:
            import_user_module(name)
        if args.command is None:
            parser.print_help()
            return 0
        return args.run(args)
    except CnnkitError as error:
        for line in str(error).splitlines():  # several problems: one line each
            print(f"cnnkit: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except MemoryError:
        print(
            "cnnkit: error: out of memory; use a smaller batch, input or network",
            file=sys.stderr,
        )
        return 2
    except OSError as error:  # the system refused a path (too long, no permission, ...)
        if os.environ.get("CNNKIT_DEBUG") or error.errno is None:
            raise
        print(f"cnnkit: error: {_os_error_text(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug, here or in a layer it was given: still one line
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        first = str(error).splitlines()[0] if str(error) else ""
        print(
            f"cnnkit: internal error: {type(error).__name__}: {first} (a bug in cnnkit or in "
            "a layer it ran; CNNKIT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _os_error_text(error: OSError) -> str:
    """``NAME: file name too long; check the path`` (names cut to 80 characters)."""
    name = os.fsdecode(error.filename) if error.filename is not None else ""
    name = name if len(name) <= 80 else name[:77] + "..."
    reason = (error.strerror or str(error)).lower()
    return f"{name + ': ' if name else ''}{reason}; check the path and its permissions"


def _silence_stdout() -> None:
    """The reader went away (``| head``): send what is left to /dev/null, so that the final
    flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
