"""``cnnkit viz`` and ``cnnkit report``: pictures of a trained run, and its HTML page."""

from __future__ import annotations

import argparse

from cnnkit.cli.args import non_negative, output_directory, output_file, run_directory


def add_viz_parsers(commands) -> None:
    """Register ``viz`` and ``report`` on the CLI's subparsers."""
    viz = commands.add_parser(
        "viz",
        help="pictures of a trained run: filters, feature maps, curves, confusion, mistakes",
        description="Write PNG pictures of a run (needs matplotlib: pip install cnnkit[viz]): "
        "the first CONV layer's filters, one test image's feature maps after every CONV, RELU "
        "and POOL layer, the training curves, the test confusion matrix and misclassified "
        "test images. Prints one path per line.",
    )
    viz.add_argument("run_dir", metavar="RUN_DIR")
    viz.add_argument(
        "--out", type=output_directory, metavar="DIR", help="default: RUN_DIR/pictures"
    )
    _common(viz)
    viz.set_defaults(run=run_viz)
    report = commands.add_parser(
        "report",
        help="one self-contained HTML page of a run: summary, curves, pictures, equivariance",
        description="Write one HTML file with everything embedded (no network needed to view "
        "it): the run's spec and recipe, test accuracy, the summary table, the pictures of "
        "cnnkit viz and the equivariance measurements of the trained network. Needs "
        "matplotlib. Prints the path.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument(
        "--out", type=output_file(".html"), metavar="FILE", help="default: RUN_DIR/report.html"
    )
    _common(report)
    report.set_defaults(run=run_report)


def _common(parser) -> None:
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument(
        "--index",
        type=non_negative,
        default=0,
        metavar="I",
        help="test image for the feature maps (0)",
    )


def run_viz(args: argparse.Namespace) -> int:
    from cnnkit.viz import write_pictures

    run_dir = run_directory(args.run_dir)
    paths = write_pictures(run_dir, out_dir=args.out, which=args.checkpoint, index=args.index)
    for path in paths.values():
        print(path)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from cnnkit.viz.report import write_report

    run_dir = run_directory(args.run_dir)
    print(write_report(run_dir, args.out, which=args.checkpoint, index=args.index))
    return 0
