"""The ``cnnkit`` command. Every cnnkit error becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from cnnkit.errors import CnnkitError


def _version() -> str:
    try:
        return version("cnnkit")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


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
        description="Train INPUT-[CONV-RELU-POOL]x2-FC on the embedded optdigits set (8x8 "
        "digits) and print the loss per epoch and the test accuracy.",
    )
    demo.add_argument("--epochs", type=_positive(int), default=15, help="passes over the data")
    demo.add_argument("--batch-size", type=_positive(int), default=32)
    demo.add_argument("--lr", type=_positive(float), default=0.05, help="SGD learning rate")
    demo.add_argument("--momentum", type=float, default=0.9)
    demo.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling")
    demo.set_defaults(run=run_demo)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    from cnnkit.data import load_optdigits
    from cnnkit.losses import CrossEntropyLoss
    from cnnkit.model import lecture_network
    from cnnkit.optim import SGD
    from cnnkit.train import accuracy, train_epoch

    train_images, train_labels = load_optdigits("train")
    test_images, test_labels = load_optdigits("test")
    rng = np.random.default_rng(args.seed)
    model = lecture_network(train_images.shape[1:], 10, rng=rng)
    print(f"optdigits: {len(train_images)} training and {len(test_images)} test images, 1x8x8")
    print(model)
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        result = train_epoch(
            model,
            loss_fn,
            optimizer,
            train_images,
            train_labels,
            batch_size=args.batch_size,
            rng=rng,
        )
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {result.loss:.4f}  "
            f"train accuracy {result.accuracy:.2%}  ({time.perf_counter() - start:.1f} s)"
        )
    test_accuracy = accuracy(model, test_images, test_labels)
    print(f"test accuracy {test_accuracy:.2%} on {len(test_images)} images from unseen writers")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except CnnkitError as error:
        print(f"cnnkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
