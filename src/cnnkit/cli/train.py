"""``cnnkit train``, ``cnnkit evaluate`` and ``cnnkit predict``: the command-line side of training.

Every option of ``train`` has a default that suits the data: the recipe below for each kind of
data set is the one the accuracy targets are measured with. ``--arch`` defaults to the built-in
``mnist-bn`` (CONV-BN-RELU blocks and DROPOUT, with its own recipe) for 28x28 one-channel
images such as MNIST's, and to the lecture's INPUT-[CONV-RELU-POOL]x2-FC sized to the images
for any other size (the embedded 8x8 optdigits of ``cnnkit demo`` among them).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cnnkit.arch.catalog import ARCHITECTURES
from cnnkit.arch.named import lecture_spec
from cnnkit.cli.args import home_path, non_negative, positive
from cnnkit.errors import ConfigError, ShapeError
from cnnkit.train.runfiles import read_settings

RECIPES = {
    "optdigits": {"epochs": 30, "batch_size": 32, "lr": 0.05, "augment_shift": 1},
    "mnist": {"epochs": 12, "batch_size": 64, "lr": 0.05, "augment_shift": 2},
    "cifar10": {"epochs": 30, "batch_size": 64, "lr": 0.05, "augment_shift": 4},
    "folder": {"epochs": 20, "batch_size": 32, "lr": 0.05, "augment_shift": 1},
}
# A built-in network's own recipe, for where it is the default or named by --arch: it replaces
# the data's recipe above for the options given here; options given on the command line still
# win. mnist-bn's is what benchmarks/mnist_modern.py measures (>= 99.5 % on MNIST's test set).
NETWORK_RECIPES = {
    "mnist-bn": {"epochs": 10, "batch_size": 64, "lr": 0.05, "augment_shift": 2},
}
# The default network for images of this (C, H, W); any other size takes the lecture's.
DEFAULT_NETWORKS = {(1, 28, 28): "mnist-bn"}
RECIPE_OPTIONS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "augment_shift",
    "seed",
    "init",
    "checkpoint_every",
)


def _scheme(source: str) -> str:
    return source.split(":", 1)[0].lower()


def default_arch(input_shape: tuple[int, int, int], classes: int) -> str:
    """The network ``train`` uses without ``--arch``, as a string: for 28x28 one-channel images
    the built-in mnist-bn (ending in FC(classes)), for any other size the lecture's
    INPUT-[CONV-RELU-POOL]x2-FC for that size (3x3 filters, P=1).

    >>> default_arch((1, 8, 8), 10) == lecture_spec((1, 8, 8), 10)
    True
    >>> default_arch((1, 28, 28), 26).endswith(" - FC(26)")
    True
    """
    name = DEFAULT_NETWORKS.get(tuple(input_shape))
    if name is not None:
        spec = ARCHITECTURES[name]
        assert spec.endswith(" - FC(10)"), name  # its classifier is the last layer
        return spec.removesuffix("FC(10)") + f"FC({classes})"
    height, width = input_shape[1:]
    if height % 4 or width % 4:
        raise ConfigError(
            f"the default network halves {height}x{width} twice, which needs sizes divisible "
            "by 4; give --arch, e.g. with POOL(F=2, round=floor)"
        )
    return lecture_spec(input_shape, classes)


def add_train_parser(commands) -> None:
    """Register ``train`` on the CLI's subparsers."""
    train = commands.add_parser(
        "train",
        help="train a network on optdigits, MNIST-format, CIFAR-10 or an image folder",
        description="Train a network and keep the run in RUN_DIR (spec, settings, history, "
        "last and best checkpoints). Options left out take the data's default recipe, or "
        "the network's own where it has one (mnist-bn). "
        "Ctrl-C saves the run; --resume continues it exactly where it stopped.",
    )
    train.add_argument(
        "--arch",
        metavar="SPEC|NAME",
        help="default: mnist-bn for 28x28 one-channel images (with its recipe: "
        f"{_recipe_flags(NETWORK_RECIPES['mnist-bn'])}), else the lecture's network",
    )
    train.add_argument(
        "--data",
        metavar="SOURCE",
        help="optdigits (default, embedded), mnist:DIR, cifar10:DIR or folder:DIR",
    )
    train.add_argument("--epochs", type=positive(int))
    train.add_argument("--batch-size", type=positive(int))
    train.add_argument("--lr", type=positive(float), help="learning rate (peak, with a schedule)")
    train.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    train.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    train.add_argument("--weight-decay", type=float, help="default 5e-4")
    train.add_argument("--schedule", choices=["constant", "step", "cosine"], help="default cosine")
    train.add_argument("--warmup-epochs", type=non_negative)
    train.add_argument("--augment-shift", type=non_negative, help="random shifts of up to N pixels")
    train.add_argument(
        "--validation", type=_share, help="share of training data held out, 0 to < 1 (0.1)"
    )
    train.add_argument(
        "--seed", type=non_negative, help="seeds weights, order and augmentation (0)"
    )
    train.add_argument(
        "--init", choices=["default", "he", "xavier"], help="weight initialisation (PyTorch's)"
    )
    train.add_argument(
        "--checkpoint-every", type=non_negative, help="also checkpoint every N steps"
    )
    train.add_argument("--out", metavar="RUN_DIR", help="default: runs/<data>-<time>")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--force", action="store_true", help="replace the run that --out holds (its files go)"
    )
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--quiet", action="store_true", help="print only the final result")
    mode.add_argument("--jsonl", action="store_true", help="JSON lines on stdout, for scripts")
    train.set_defaults(run=run_train)


def resolved_source(source: str) -> str:
    """``mnist:data/mnist`` -> ``mnist:/abs/path/data/mnist``: a run stores where its data is
    so that ``evaluate`` finds it from any directory."""
    scheme, colon, location = source.partition(":")
    if not colon or not location.strip():
        return source
    return f"{scheme}:{home_path(location, source).resolve()}"


def _plan(args) -> tuple[str, float, dict, str | None, Path]:
    """(data source, validation share, recipe values, arch or None, run dir) from the options."""
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out '': an empty path; give the run directory, e.g. --out runs/mine")
    if args.resume and args.force:
        raise ConfigError("--resume continues the run in --out and --force replaces it: give one")
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out RUN_DIR: the run to continue")
        run_dir = home_path(args.out, f"--out {args.out}")
        saved = read_settings(run_dir, required=("recipe",) if args.data else ("recipe", "data"))
        source = args.data or saved["data"]
        validation = saved.get("validation", 0.1) if args.validation is None else args.validation
        recipe = dict(saved["recipe"])
        arch = args.arch or saved.get("spec")
    else:
        source = resolved_source(args.data or "optdigits")
        validation = 0.1 if args.validation is None else args.validation
        recipe = dict(RECIPES.get(_scheme(source), {}))
        arch = args.arch
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = home_path(args.out or f"runs/{_scheme(source)}-{stamp}", f"--out {args.out}")
    for name in RECIPE_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            recipe[name] = value
    return source, validation, recipe, arch, run_dir


def _architecture(arch_text: str | None, data, label: str = "--arch"):
    """Parse ``--arch`` (or the default), fit it to the data's images and classes."""
    from cnnkit.arch import SpecError, parse, trace

    classes = len(data.classes)
    text = arch_text or default_arch(data.input_shape, classes)
    try:
        arch = parse(text)
    except SpecError as error:
        if Path(text).exists():
            raise ConfigError(
                f"--arch {text}: is a path; --arch takes an architecture string such as "
                "'CONV(D=8, F=3) - RELU - FC(10)' or a built-in name (lenet5, alexnet, ...: "
                "see cnnkit summary --help)"
            ) from None
        hint = ""
        if label != "--arch" and "unknown layer" in str(error):
            hint = "; pass --import with the module that defines its layers"
        raise ConfigError(f"{label} {text!r}: {error}{hint}") from None
    if arch.input is not None and arch.input.shape != tuple(data.input_shape):
        raise ShapeError(
            f"--arch starts with {arch.input.text()} but the data's images are "
            f"{'x'.join(map(str, data.input_shape))}; drop INPUT(...) or match it"
        )
    arch = arch.with_input(tuple(data.input_shape))
    traced = trace(arch)
    traced.raise_problems()
    output = traced.steps[-1].output_shape if traced.steps else arch.input.shape
    if output != (classes,):
        raise ShapeError(
            f"the network's output is {'x'.join(map(str, output))} but the data has {classes} "
            f"classes; end --arch with FC({classes})"
        )
    return arch


def run_train(args: argparse.Namespace) -> int:
    from cnnkit.arch import build
    from cnnkit.cli.progress import JsonLinesReporter, ProgressReporter
    from cnnkit.data import load_dataset
    from cnnkit.train import Recipe, Reporter, fit

    source, validation, recipe_values, arch_text, run_dir = _plan(args)
    recipe = _recipe(Recipe, recipe_values)
    data = load_dataset(source, validation=validation, seed=recipe.seed)
    network = None if args.resume else _network_name(arch_text, data.input_shape)
    if network in NETWORK_RECIPES:  # a fresh run of a network with its own recipe
        recipe = _recipe(Recipe, _with_network_recipe(recipe_values, network, args))
    label = "the run's architecture" if args.resume and args.arch is None else "--arch"
    arch = _architecture(arch_text, data, label)
    model = build(arch, rng=np.random.default_rng([recipe.seed, 0]))
    if recipe.init != "default" and not args.resume:
        from cnnkit.init import init_model

        init_model(model, recipe.init, np.random.default_rng([recipe.seed, 2]))
    reporter = (
        JsonLinesReporter() if args.jsonl else Reporter() if args.quiet else ProgressReporter()
    )
    meta = {"spec": arch.text(), "data": source, "validation": validation}
    if not args.quiet and not args.jsonl:
        print(
            f"{source}: {len(data.train_images)} training, {len(data.val_images)} validation "
            f"and {len(data.test_images)} test images of {_volume_text(data.input_shape)}"
        )
        named = f"{network} ({'--arch' if arch_text else 'the default'}): " if network else ""
        print(f"network: {named}{arch.text()}")
        print(f"recipe: {_recipe_text(recipe)}")
    try:
        history = fit(
            model,
            data,
            recipe=recipe,
            run_dir=run_dir,
            resume=args.resume,
            force=args.force,
            reporter=reporter,
            meta=meta,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted; the run is saved in {run_dir}: continue it with "
            f"cnnkit train --out {run_dir} --resume"
        )
        return 130
    _report_result(args, reporter, run_dir, data, history)
    return 0


def _report_result(args, reporter, run_dir: Path, data, history) -> None:
    """The best checkpoint's score on the test split, as a line or a JSON event."""
    from cnnkit.train import evaluate, load_network

    best, header = load_network(run_dir, "best")
    test_loss, test_accuracy = evaluate(best, data.test_images, data.test_labels)
    best_epoch = header["epoch"]
    if args.jsonl:
        reporter.emit(
            "done",
            test_accuracy=test_accuracy,
            test_loss=test_loss,
            best_epoch=best_epoch,
            run_dir=str(run_dir),
            epochs=len(history),
        )
        return
    seconds = sum(record.seconds for record in history)
    print(
        f"test accuracy {test_accuracy:.2%} on {len(data.test_images)} images "
        f"(best.npz: epoch {best_epoch}, chosen by validation accuracy); "
        f"training took {seconds:.1f} s"
    )
    print(f"run saved in {run_dir}")


def _network_name(arch_text: str | None, input_shape) -> str | None:
    """The built-in name of the network to train: the default's for these images, or the
    name ``--arch`` gave; None for an architecture string."""
    if arch_text is None:
        return DEFAULT_NETWORKS.get(tuple(input_shape))
    name = arch_text.strip().lower()
    return name if name in ARCHITECTURES else None


def _with_network_recipe(values: dict, network: str, args) -> dict:
    """The recipe values with the network's own recipe over the data's, except for the
    options that the command line gave."""
    given = {name for name in RECIPE_OPTIONS if getattr(args, name) is not None}
    own = {key: value for key, value in NETWORK_RECIPES[network].items() if key not in given}
    return {**values, **own}


def _recipe(recipe_class, values: dict):
    """A Recipe from the values, its errors naming the options that set them."""
    try:
        return recipe_class.from_dict(values)
    except ConfigError as error:  # Recipe's field names as the options that set them
        raise ConfigError(re.sub(r"^Recipe: (\w+)", _option, str(error))) from None


def _recipe_flags(values: dict) -> str:
    """``{"epochs": 6, "batch_size": 64}`` -> ``--epochs 6 --batch-size 64``."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in values.items())


def _share(text: str) -> float:
    """An argparse type: a share of the training data, 0 <= value < 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a share from 0 to below 1 such as 0.1, got {text!r}"
        )
    return value


def _option(match: re.Match) -> str:
    return "--" + match.group(1).replace("_", "-")


def _volume_text(shape) -> str:
    channels, height, width = shape
    return f"{height}x{width}x{channels}"


def _recipe_text(recipe) -> str:
    values = asdict(recipe)
    return ", ".join(f"{key}={value}" for key, value in values.items())
