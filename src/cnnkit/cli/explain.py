"""The command line: ``cnnkit explain TOPIC``, registered by :func:`add_explain_parser`."""

from __future__ import annotations

import argparse

from cnnkit.cli.args import (
    add_window_options,
    network_source,
    non_negative,
    output_file,
    positive,
    volume,
)
from cnnkit.cli.args import (
    emit_explanation as _emit,
)
from cnnkit.cli.args import (
    json_flag as _json_flag,
)
from cnnkit.cli.explain_layers import add_batchnorm, add_dropout
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.explain._inputs import _output_hw, load_values
from cnnkit.explain.backprop import explain_backprop, random_backprop_example
from cnnkit.explain.conv import (
    LECTURE_B,
    LECTURE_SOURCE,
    LECTURE_W,
    LECTURE_X,
    explain_conv,
    random_conv_example,
    write_conv_png,
)
from cnnkit.explain.equivariance import AXES, EQUIVARIANCE_DEFAULT, explain_equivariance
from cnnkit.explain.layers import explain_layers
from cnnkit.explain.residual import explain_residual_backprop
from cnnkit.explain.shape import explain_shape
from cnnkit.explain.sharing import explain_sharing, explain_sparse


def add_explain_parser(commands) -> argparse.ArgumentParser:
    """Register ``explain`` and its topics on the CLI's subparsers; returns the explain parser.

    Every topic sets ``run(args) -> int`` and prints to stdout; errors are cnnkit errors for
    the CLI to report.
    """
    explain = commands.add_parser(
        "explain",
        help="the lecture's ideas worked out on real numbers: conv, shape, sharing, sparse, "
        "equivariance, layers, backprop, dropout, batchnorm",
        description="Work the lecture's ideas out on real numbers computed by the engine: "
        "every number printed is the engine's, with the arithmetic that reproduces it. "
        "--json gives the same numbers for tools.",
    )
    topics = explain.add_subparsers(dest="topic", metavar="TOPIC")

    def show_help(args: argparse.Namespace) -> int:
        explain.print_help()
        return 0

    explain.set_defaults(run=show_help)
    _add_conv(topics)
    _add_shape(topics)
    _add_sharing(topics)
    _add_sparse(topics)
    _add_equivariance(topics)
    _add_layers(topics)
    _add_backprop(topics)
    add_dropout(topics)
    add_batchnorm(topics)
    return explain


def _add_conv(topics) -> None:
    conv = topics.add_parser(
        "conv",
        help="the worked example: every unit's region and dot product, building the output",
        description="The lecture's worked example (5x5x3 input, filter F0, b=1, S=2, P=1) or "
        "any small size: the zero-padded input and the filter per channel, then every "
        "computational unit's region and dot product, building the output grid unit by unit. "
        "The output is the engine's Conv2d.forward.",
    )
    conv.add_argument("--input", "-I", type=positive(int), metavar="I", help="input size (5)")
    conv.add_argument("--channels", "-C", type=positive(int), metavar="C", help="input depth (3)")
    conv.add_argument("--filter", "-F", type=positive(int), metavar="F", help="filter size (3)")
    conv.add_argument(
        "--stride", "-S", type=positive(int), metavar="S", help="stride (2, the worked example's)"
    )
    conv.add_argument(
        "--padding",
        "-P",
        type=non_negative,
        metavar="P",
        help="zero padding (1, the worked example's)",
    )
    conv.add_argument(
        "--seed", type=non_negative, help="draw small integers (input 0..2, filter and bias -1..1)"
    )
    conv.add_argument("--values", metavar="FILE", help='JSON {"x": CxHxW, "w": CxFxF, "b": number}')
    conv.add_argument("--verbose", "-v", action="store_true", help="write every product")
    conv.add_argument(
        "--png",
        type=output_file(".png"),
        metavar="FILE.png",
        help="draw a picture instead (needs matplotlib)",
    )
    _json_flag(conv)
    conv.set_defaults(run=run_conv)


def run_conv(args: argparse.Namespace) -> int:
    sizes = (args.input, args.channels, args.filter)
    if args.values is not None:
        if args.seed is not None or any(size is not None for size in sizes):
            raise ConfigError(
                "explain conv: --values FILE sets x, w and b; drop --input, --channels, "
                "--filter and --seed"
            )
        x, w, b = load_values(args.values)
        source = f"values from {args.values}"
    else:
        size, channels, kernel = (
            default if given is None else given
            for given, default in zip(sizes, (5, 3, 3), strict=True)
        )
        if args.seed is None and (size, channels, kernel) == (5, 3, 3):
            x, w, b, source = LECTURE_X, LECTURE_W, LECTURE_B, LECTURE_SOURCE
        else:
            seed = 0 if args.seed is None else args.seed
            x, w, b = random_conv_example(seed, size, channels, kernel)
            source = f"random integers (seed {seed})"
    stride = 2 if args.stride is None else args.stride
    padding = 1 if args.padding is None else args.padding
    try:
        explanation = explain_conv(x, w, b, stride=stride, padding=padding, source=source)
    except ShapeError as error:
        kept = [f"S={stride}"] if args.stride is None else []
        kept += [f"P={padding}"] if args.padding is None else []
        if not kept:
            raise
        raise ShapeError(
            f"{error}; {' and '.join(kept)} {'are' if len(kept) > 1 else 'is'} the worked "
            "example's, kept because only the size changed: give --stride and --padding too"
        ) from None
    if args.png is not None:
        write_conv_png(explanation, args.png)
        if not args.json:
            print(f"explain conv: wrote {args.png} (padded input, filter and output)")
            return 0
    _emit(explanation, args, verbose=args.verbose)
    return 0


def _add_shape(topics) -> None:
    shape = topics.add_parser(
        "shape",
        help="(I - F + 2P)/S + 1 step by step, with the verdict and fixes of cnnkit shape",
        description="Evaluate the lecture's formula step by step, show where the filter "
        "starts, and give the verdict and fixes (as cnnkit shape). Exit code 0: possible; "
        "1: impossible.",
    )
    shape.add_argument("I", type=positive(int), help="input size")
    shape.add_argument("F", type=positive(int), help="filter size")
    shape.add_argument("S", type=positive(int), nargs="?", default=1, help="stride (1)")
    shape.add_argument("P", type=non_negative, nargs="?", default=0, help="padding (0)")
    shape.add_argument(
        "--floor", action="store_true", help="round a non-whole result down, as PyTorch does"
    )
    add_window_options(shape)
    _json_flag(shape)
    shape.set_defaults(run=run_shape)


def run_shape(args: argparse.Namespace) -> int:
    explanation = explain_shape(
        args.I, args.F, args.S, args.P, floor=args.floor, dilation=args.dilation, ceil=args.ceil
    )
    _emit(explanation, args)
    return 0 if explanation.possible else 1


def _add_spec_arguments(parser, default: str, *, run_dir: bool = False) -> None:
    parser.add_argument(
        "spec",
        metavar="RUN_DIR|SPEC|NAME" if run_dir else "SPEC|NAME",
        nargs="?",
        default=default,
        help=("a trained run, " if run_dir else "")
        + f"architecture string or built-in name (default: {default})",
    )
    parser.add_argument("--input", type=volume, metavar="CxHxW", help="input volume")
    _json_flag(parser)


def _add_sharing(topics) -> None:
    sharing = topics.add_parser(
        "sharing",
        help="parameters of each CONV layer with and without parameter sharing",
        description="Per CONV layer: D*(F*F*C + 1) parameters with sharing against "
        "OH*OW*D*(F*F*C + 1) if every unit had its own filter.",
    )
    _add_spec_arguments(sharing, "alexnet-conv1", run_dir=True)
    sharing.set_defaults(run=run_sharing)


def run_sharing(args: argparse.Namespace) -> int:
    _emit(explain_sharing(network_source(args.spec), input_shape=args.input), args)
    return 0


def _add_sparse(topics) -> None:
    sparse = topics.add_parser(
        "sparse",
        help="what one output unit is connected to (F*F*C inputs) against a fully connected one",
        description="Sparse interactions: the inputs one unit of a CONV layer reads, against "
        "a fully connected unit, and the region unit (i, j) reads.",
    )
    _add_spec_arguments(sparse, "alexnet-conv1", run_dir=True)
    sparse.add_argument("--layer", type=non_negative, help="index of the CONV layer (first)")
    sparse.add_argument("--unit", type=non_negative, nargs=2, default=(0, 0), metavar=("I", "J"))
    sparse.set_defaults(run=run_sparse)


def run_sparse(args: argparse.Namespace) -> int:
    explanation = explain_sparse(
        network_source(args.spec), layer=args.layer, unit=tuple(args.unit), input_shape=args.input
    )
    _emit(explanation, args)
    return 0


def _add_equivariance(topics) -> None:
    equivariance = topics.add_parser(
        "equivariance",
        help="measure f(g(x)) against g(f(x)) per layer for shifts of 1..k pixels",
        description="Roll a random input by k = 1..K pixels and measure, per layer, "
        "max |f(g(x)) - g'(f(x))| away from the borders: zero where k is a multiple of the "
        "layer's cumulative stride J, non-zero elsewhere.",
    )
    _add_spec_arguments(equivariance, EQUIVARIANCE_DEFAULT, run_dir=True)
    equivariance.add_argument("--shifts", type=positive(int), default=4, metavar="K")
    equivariance.add_argument("--axis", choices=AXES, default="width")
    equivariance.add_argument("--seed", type=non_negative, default=0)
    equivariance.set_defaults(run=run_equivariance)


def run_equivariance(args: argparse.Namespace) -> int:
    network = network_source(args.spec)  # a run directory: the trained model itself
    explanation = explain_equivariance(
        network, input_shape=args.input, shifts=args.shifts, axis=args.axis, seed=args.seed
    )
    _emit(explanation, args)
    return 0


def _add_layers(topics) -> None:
    layers = topics.add_parser(
        "layers",
        help="every layer says what it does to its input, in its own words",
        description="One paragraph per layer, written by the layer itself (Layer.explain): "
        "the lecture's formula, parameters with and without sharing, what is computed.",
    )
    _add_spec_arguments(layers, "lecture", run_dir=True)
    layers.set_defaults(run=run_layers)


def run_layers(args: argparse.Namespace) -> int:
    explanation = explain_layers(network_source(args.spec), input_shape=args.input)
    _emit(explanation, args)
    return 0


def _add_backprop(topics) -> None:
    backprop = topics.add_parser(
        "backprop",
        help="each unit's gradient for one shared weight, and their sum = the engine's",
        description="On a tiny conv layer: every unit's contribution dy[p,q] * x to the "
        "gradient of one shared weight, their sum, and the engine's weight.grad; the bias "
        "gradient is the sum of dy.",
    )
    backprop.add_argument("--input", "-I", type=positive(int), default=4, metavar="I")
    backprop.add_argument("--channels", "-C", type=positive(int), default=1, metavar="C")
    backprop.add_argument("--filter", "-F", type=positive(int), default=3, metavar="F")
    backprop.add_argument("--stride", "-S", type=positive(int), default=1, metavar="S")
    backprop.add_argument("--padding", "-P", type=non_negative, default=0, metavar="P")
    backprop.add_argument("--seed", type=non_negative, default=0)
    backprop.add_argument(
        "--weight", type=int, nargs=2, default=(0, 0), metavar=("I", "J"), help="w[0,c,I,J]"
    )
    backprop.add_argument("--channel", type=int, default=0, help="c of w[0,c,I,J] (0)")
    backprop.add_argument(
        "--residual",
        action="store_true",
        help="through a residual block y = body(x) + x instead: dy goes down both branches",
    )
    _json_flag(backprop)
    backprop.set_defaults(run=run_backprop)


def _check_residual_options(args) -> None:
    """--residual explains one fixed block (3x3 CONVs, P=1, one channel) on an I x I input."""
    fixed = {"--filter": (args.filter, 3), "--stride": (args.stride, 1)}
    fixed |= {"--padding": (args.padding, 0), "--channels": (args.channels, 1)}
    fixed |= {"--channel": (args.channel, 0), "--weight": (tuple(args.weight), (0, 0))}
    given = [name for name, (value, default) in fixed.items() if value != default]
    if given:
        raise ConfigError(
            f"explain backprop --residual: {', '.join(given)} do not apply: it explains one "
            "block RES[CONV(F=3, P=1) - RELU - CONV(F=3, P=1)] on one channel; give --input "
            "and --seed only"
        )


def run_backprop(args: argparse.Namespace) -> int:
    where = "explain backprop"
    if args.residual:
        _check_residual_options(args)
        _emit(explain_residual_backprop(args.input, args.seed), args)
        return 0
    s, p = args.stride, args.padding
    oh, ow = _output_hw(where, (args.input, args.input), (args.filter, args.filter), s, p)
    x, w, b, dy = random_backprop_example(
        args.seed, args.input, args.channels, args.filter, (oh, ow)
    )
    explanation = explain_backprop(
        x,
        w,
        b,
        dy,
        stride=s,
        padding=p,
        weight=(args.channel, *args.weight),
        source=f"random integers, seed {args.seed}",
    )
    _emit(explanation, args)
    return 0
