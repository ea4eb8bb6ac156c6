"""The ``cnnkit`` command. Every cnnkit error becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
import time
from importlib.metadata import PackageNotFoundError, version

from cnnkit.cli_args import positive, volume
from cnnkit.cli_train import add_train_parsers
from cnnkit.errors import CnnkitError
from cnnkit.explain import add_explain_parser
from cnnkit.viz import add_viz_parsers


def _version() -> str:
    try:
        return version("cnnkit")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit",
        description="Convolutional neural networks from scratch on NumPy, explained.",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {_version()}")
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
    add_train_parsers(commands)
    _add_summary(commands)
    _add_shape(commands)
    add_explain_parser(commands)
    add_viz_parsers(commands)
    return parser


def _add_summary(commands) -> None:
    from cnnkit.spec import ARCHITECTURES

    summary = commands.add_parser(
        "summary",
        help="shapes, parameters, multiply-adds and memory of a network, layer by layer",
        description="Explain every number of a network given as an architecture string "
        "(e.g. 'INPUT(3x227x227) - CONV(D=96, F=11, S=4) - RELU - POOL(F=3, S=2) - FC(10)') "
        f"or a built-in name ({', '.join(sorted(ARCHITECTURES))}). Impossible stacks exit "
        "with code 2 and one line per problem.",
    )
    summary.add_argument("spec", metavar="SPEC|NAME")
    summary.add_argument("--input", type=volume, metavar="CxHxW", help="input volume")
    summary.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    summary.add_argument("--batch", type=positive(int), default=1, help="batch size for memory")
    summary.add_argument(
        "--floor", action="store_true", help="round non-whole sizes down, as PyTorch does"
    )
    summary.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from cnnkit.spec import parse
    from cnnkit.summary import summarize

    arch = parse(args.spec).with_input(args.input)
    result = summarize(arch, batch=args.batch, floor=args.floor)
    render = {
        "table": result.table,
        "markdown": result.markdown,
        "json": result.to_json,
        "csv": result.csv,
    }[args.format]
    print(render().rstrip("\n"))
    return 0


def _add_shape(commands) -> None:
    shape = commands.add_parser(
        "shape",
        help="evaluate (I - F + 2P)/S + 1, or list every (F, S, P) that gives an output size",
        description="Evaluate the lecture's formula (I - F + 2P)/S + 1 for one axis and say "
        "whether the configuration is possible. With --output, list every small (F, S, P) "
        "that maps I to that output. Exit code 0: possible; 1: impossible.",
    )
    shape.add_argument("--input", "-I", type=positive(int), required=True, metavar="I")
    shape.add_argument("--filter", "-F", type=positive(int), metavar="F")
    shape.add_argument("--stride", "-S", type=positive(int), default=1, metavar="S")
    shape.add_argument("--padding", "-P", type=int, default=0, metavar="P")
    shape.add_argument("--output", "-O", type=positive(int), metavar="O")
    shape.add_argument(
        "--floor", action="store_true", help="round a non-whole result down, as PyTorch does"
    )
    shape.set_defaults(run=run_shape)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.4g}"


def run_shape(args: argparse.Namespace) -> int:
    from cnnkit import shapes
    from cnnkit.errors import ConfigError

    if args.output is not None:
        found = shapes.solutions(args.input, args.output)
        print(f"(I - F + 2P)/S + 1 = {args.output} for I = {args.input}: {len(found)} ways")
        for s in found:
            arithmetic = shapes.formula(args.input, s.kernel, s.stride, s.padding)
            print(f"  F={s.kernel} S={s.stride} P={s.padding}   {arithmetic} = {args.output}")
        return 0 if found else 1
    if args.filter is None:
        raise ConfigError("cnnkit shape: give --filter F (or --output O to search)")
    if args.padding < 0:
        raise ConfigError(f"cnnkit shape: --padding must be >= 0, got {args.padding}")
    arithmetic = shapes.formula(args.input, args.filter, args.stride, args.padding)
    problem = shapes.axis_problem("size", args.input, args.filter, args.stride, args.padding)
    if problem is not None and args.floor and not problem.too_large:
        print(
            f"{arithmetic} = {_number(problem.exact)} -> floor {problem.floor_output} "
            "(as PyTorch): "
            f"the last {problem.dropped} of the {problem.padded_size} padded input positions "
            "are never read"
        )
        return 0
    if problem is None:
        result = shapes.output_size(args.input, args.filter, args.stride, args.padding)
        print(f"{arithmetic} = {result}: possible, {result} units along this axis")
        return 0
    print(f"{problem.describe()}: impossible")
    print(problem.advice(letters=True))
    return 1


def run_demo(args: argparse.Namespace) -> int:
    """``cnnkit train`` with the defaults, then the pictures of the run."""
    from cnnkit.viz import demo_pictures

    out = args.out or f"runs/optdigits-{time.strftime('%Y%m%d-%H%M%S')}"
    train_args = build_parser().parse_args(["train", "--out", out])
    status = train_args.run(train_args)
    if status == 0:
        demo_pictures(out)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except CnnkitError as error:
        for line in str(error).splitlines():  # several problems: one line each
            print(f"cnnkit: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
