"""``cnnkit explore``: a trained run in one self-contained browser page."""

from __future__ import annotations

import argparse

from cnnkit.cli.args import output_file, positive, run_directory


def add_explore_parser(commands) -> None:
    """Register ``explore`` on the CLI's subparsers."""
    explore = commands.add_parser(
        "explore",
        help="one self-contained HTML page that runs the trained network in the browser",
        description="Write one HTML file holding the run's weights, a few test images and all "
        "the code (no network request: it works opened from a file, offline). The page "
        "computes the network itself: draw a digit or pick a test image and the prediction "
        "and every layer's feature maps follow; click a unit for its dot product and "
        "receptive field; a playground works out (I - F + 2P)/S + 1 and the parameters with "
        "and without sharing; the first layer's filters and the training curves. Prints the "
        "path, the size and what was reduced to fit --max-mb.",
    )
    explore.add_argument("run_dir", metavar="RUN_DIR")
    explore.add_argument(
        "--out",
        type=output_file(".html"),
        metavar="PAGE.html",
        help="default: RUN_DIR/explore.html",
    )
    explore.add_argument("--checkpoint", choices=["best", "last"], default="best")
    explore.add_argument(
        "--max-mb",
        type=positive(float),
        default=3.0,
        metavar="MB",
        help="largest page in MB (10^6 bytes; 3): beyond it the large weight arrays are "
        "stored as float16, then fewer test images are kept",
    )
    explore.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    from cnnkit.explore import write_explorer

    run_dir = run_directory(args.run_dir)
    page = write_explorer(
        run_dir,
        args.out,
        which=args.checkpoint,
        max_bytes=int(min(args.max_mb, 1e6) * 1_000_000),  # past a terabyte: no limit
    )
    print(page.path)
    print(
        f"{page.size / 1e6:.2f} MB: weights as {page.weights}, {page.samples} test "
        f"image{'s' if page.samples != 1 else ''}"
    )
    for line in [*page.notes, *page.unsupported]:
        print(f"note: {line}")
    return 0
