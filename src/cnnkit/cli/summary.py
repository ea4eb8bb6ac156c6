"""``cnnkit summary`` and ``cnnkit shape``: the lecture's arithmetic on the command line."""

from __future__ import annotations

import argparse

from cnnkit.cli.args import add_window_options, network_source, non_negative, positive, volume


def add_summary_parsers(commands) -> None:
    _add_summary(commands)
    _add_shape(commands)


def _add_summary(commands) -> None:
    from cnnkit.arch import ARCHITECTURES

    summary = commands.add_parser(
        "summary",
        help="shapes, parameters, multiply-adds and memory of a network, layer by layer",
        description="Explain every number of a network given as an architecture string "
        "(e.g. 'INPUT(3x227x227) - CONV(D=96, F=11, S=4) - RELU - POOL(F=3, S=2) - FC(10)') "
        f"or a built-in name ({', '.join(sorted(ARCHITECTURES))}). Impossible stacks exit "
        "with code 2 and one line per problem.",
    )
    summary.add_argument("spec", metavar="SPEC|NAME|RUN_DIR")
    summary.add_argument("--input", type=volume, metavar="CxHxW", help="input volume")
    summary.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    summary.add_argument("--batch", type=positive(int), default=1, help="batch size for memory")
    summary.add_argument(
        "--floor", action="store_true", help="round non-whole sizes down, as PyTorch does"
    )
    summary.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from cnnkit.summary import summarize

    network = network_source(args.spec)  # a run directory: its trained model
    result = summarize(network, input_shape=args.input, batch=args.batch, floor=args.floor)
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
        "whether the configuration is possible (a whole number, or rounding down that loses "
        "no input: only padding, or the gap a stride larger than F skips, goes unread). With "
        "--output, list every small (F, S, P) that maps I to that output that way (F <= 11, "
        "S <= min(F, 4), P <= F/2); a --filter, "
        "--stride or --padding given with --output fixes that letter, and only the ways "
        "with it are listed. Exit code 0: possible; 1: impossible.",
    )
    shape.add_argument("--input", "-I", type=positive(int), required=True, metavar="I")
    shape.add_argument("--filter", "-F", type=positive(int), metavar="F")
    shape.add_argument("--stride", "-S", type=positive(int), metavar="S", help="1")
    shape.add_argument("--padding", "-P", type=non_negative, metavar="P", help="0")
    shape.add_argument("--output", "-O", type=positive(int), metavar="O")
    shape.add_argument(
        "--floor", action="store_true", help="round a non-whole result down, as PyTorch does"
    )
    add_window_options(shape)
    shape.set_defaults(run=run_shape)


def _search(args: argparse.Namespace) -> int:
    """``cnnkit shape --output O``: the ways (F, S, P), those given fixed."""
    from cnnkit import shapes

    given = {"F": args.filter, "S": args.stride, "P": args.padding}
    found = shapes.solutions(
        args.input, args.output, kernel=args.filter, stride=args.stride, padding=args.padding
    )
    fixed = "".join(
        f" and {letter} = {value}" for letter, value in given.items() if value is not None
    )
    ways = "1 way" if len(found) == 1 else f"{len(found)} ways"
    print(f"(I - F + 2P)/S + 1 = {args.output} for I = {args.input}{fixed}: {ways}")
    for s in found:
        arithmetic = shapes.formula(args.input, s.kernel, s.stride, s.padding)
        left = args.input + 2 * s.padding - s.kernel
        value = f"{args.output}"
        if left % s.stride:  # rounded down, losing no input (the strict rule)
            value = f"{shapes.exact_text(left, s.stride)} -> {args.output} ({_unread(left, s)})"
        print(f"  F={s.kernel} S={s.stride} P={s.padding}   {arithmetic} = {value}")
    return 0 if found else 1


def _unread(left: int, way) -> str:
    """What rounding down leaves unread: padding, rows in the stride's gap, or both."""
    rows = left % way.stride
    padding = min(rows, way.padding)
    if rows == padding:
        return "only padding unread"
    return "only the stride's gap unread" if padding == 0 else "padding and the stride's gap unread"


def run_shape(args: argparse.Namespace) -> int:
    """The verdict of :class:`cnnkit.explain.shape.ShapeExplanation` (one rule, one text):
    possible (a whole number, or rounding down that loses no real input), possible with
    --floor, or impossible with the fixes."""
    from cnnkit.errors import ConfigError
    from cnnkit.explain.shape import explain_shape

    if args.output is not None:
        if args.dilation != 1 or args.ceil:
            raise ConfigError(
                "cnnkit shape --output searches plain windows: leave out --dilation and --ceil"
            )
        return _search(args)
    if args.filter is None:
        raise ConfigError("cnnkit shape: give --filter F (or --output O to search)")
    stride = 1 if args.stride is None else args.stride
    padding = 0 if args.padding is None else args.padding
    explained = explain_shape(
        args.input,
        args.filter,
        stride,
        padding,
        floor=args.floor,
        dilation=args.dilation,
        ceil=args.ceil,
    )
    verdict, advice = explained.verdict()
    print(verdict)
    if advice is not None:
        print(advice)
    return 0 if explained.possible else 1
