"""``cnnkit explain dropout`` and ``cnnkit explain batchnorm``: the layers that behave
differently in training and in evaluation, on numbers the engine computes."""

from __future__ import annotations

import argparse

from cnnkit.cli.args import emit_explanation as _emit
from cnnkit.cli.args import json_flag as _json_flag
from cnnkit.cli.args import non_negative, positive
from cnnkit.explain.batchnorm import explain_batchnorm
from cnnkit.explain.dropout import explain_dropout


def add_dropout(topics) -> None:
    dropout = topics.add_parser(
        "dropout",
        help="one real mask, the 1/(1 - p) scaling, the unchanged expected value, eval = identity",
        description="The engine's Dropout on small integers: the mask its forward draws, the "
        "kept values scaled by 1/(1 - p), the gradient through the same mask, the mean of many "
        "forwards (the expected value is the input) and evaluation mode (the identity).",
    )
    dropout.add_argument("--p", type=float, default=0.5, help="drop probability, in [0, 1) (0.5)")
    dropout.add_argument("--input", "-I", type=positive(int), default=4, metavar="I")
    dropout.add_argument("--channels", "-C", type=positive(int), default=1, metavar="C")
    dropout.add_argument("--seed", type=non_negative, default=0)
    dropout.add_argument(
        "--2d", dest="channel_wise", action="store_true", help="Dropout2d: whole depth slices"
    )
    _json_flag(dropout)
    dropout.set_defaults(run=run_dropout)


def run_dropout(args: argparse.Namespace) -> int:
    explanation = explain_dropout(
        args.p,
        size=args.input,
        channels=args.channels,
        seed=args.seed,
        channel_wise=args.channel_wise,
    )
    _emit(explanation, args)
    return 0


def add_batchnorm(topics) -> None:
    batchnorm = topics.add_parser(
        "batchnorm",
        help="one channel of a small batch through BN: mean, variance, x_hat, y, running update",
        description="The engine's BatchNorm2d on a seeded batch of small integers, for one "
        "channel: its mean and biased variance, x_hat, the affine output, the running update "
        "with the unbiased variance, then what evaluation mode computes instead.",
    )
    batchnorm.add_argument("--images", "-N", type=positive(int), default=4, metavar="N")
    batchnorm.add_argument("--channels", "-C", type=positive(int), default=2, metavar="C")
    batchnorm.add_argument(
        "--size", type=positive(int), default=2, metavar="H", help="image height and width (2)"
    )
    batchnorm.add_argument("--channel", type=non_negative, default=0, help="the channel shown (0)")
    batchnorm.add_argument("--momentum", type=positive(float), default=0.1, help="(0.1)")
    batchnorm.add_argument("--seed", type=non_negative, default=0)
    _json_flag(batchnorm)
    batchnorm.set_defaults(run=run_batchnorm)


def run_batchnorm(args: argparse.Namespace) -> int:
    explanation = explain_batchnorm(
        seed=args.seed,
        images=args.images,
        channels=args.channels,
        size=args.size,
        channel=args.channel,
        momentum=args.momentum,
    )
    _emit(explanation, args)
    return 0
