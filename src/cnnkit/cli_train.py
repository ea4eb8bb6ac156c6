"""``cnnkit train``, ``cnnkit evaluate`` and ``cnnkit predict``: the command-line side of training.

Every option of ``train`` has a default that suits the data: the recipe below for each kind of
data set is the one the accuracy targets are measured with, and ``--arch`` defaults to the
lecture's INPUT-[CONV-RELU-POOL]x2-FC sized to the data's images.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cnnkit.cli_args import positive
from cnnkit.errors import ConfigError, DataError, ShapeError, TrainingError
from cnnkit.model import lecture_spec

RECIPES = {
    "optdigits": {"epochs": 30, "batch_size": 32, "lr": 0.05, "augment_shift": 1},
    "mnist": {"epochs": 12, "batch_size": 64, "lr": 0.05, "augment_shift": 2},
    "cifar10": {"epochs": 30, "batch_size": 64, "lr": 0.05, "augment_shift": 4},
    "folder": {"epochs": 20, "batch_size": 32, "lr": 0.05, "augment_shift": 1},
}
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
    """The lecture's INPUT-[CONV-RELU-POOL]x2-FC for this image size (3x3 filters, P=1)."""
    height, width = input_shape[1:]
    if height % 4 or width % 4:
        raise ConfigError(
            f"the default network halves {height}x{width} twice, which needs sizes divisible "
            "by 4; give --arch, e.g. with POOL(F=2, round=floor)"
        )
    return lecture_spec(input_shape, classes)


def add_train_parsers(commands) -> None:
    """Register ``train``, ``evaluate`` and ``predict`` on the CLI's subparsers."""
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)


def _add_train(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train a network on optdigits, MNIST-format, CIFAR-10 or an image folder",
        description="Train a network and keep the run in RUN_DIR (spec, settings, history, "
        "last and best checkpoints). Options left out take the data's default recipe. "
        "Ctrl-C saves the run; --resume continues it exactly where it stopped.",
    )
    train.add_argument("--arch", metavar="SPEC|NAME", help="default: the lecture's network")
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
    train.add_argument("--warmup-epochs", type=int)
    train.add_argument("--augment-shift", type=int, help="random shifts of up to N pixels")
    train.add_argument("--validation", type=float, help="share of training data held out (0.1)")
    train.add_argument("--seed", type=int, help="seeds weights, order and augmentation (0)")
    train.add_argument(
        "--init", choices=["default", "he", "xavier"], help="weight initialisation (PyTorch's)"
    )
    train.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    train.add_argument("--out", metavar="RUN_DIR", help="default: runs/<data>-<time>")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--quiet", action="store_true", help="print only the final result")
    mode.add_argument("--jsonl", action="store_true", help="JSON lines on stdout, for scripts")
    train.set_defaults(run=run_train)


def _saved_settings(run_dir: Path) -> dict:
    path = run_dir / "settings.json"
    if not path.is_file():
        raise TrainingError(f"{run_dir}: no run to resume here (no settings.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def _plan(args) -> tuple[str, float, dict, str | None, Path]:
    """(data source, validation share, recipe values, arch or None, run dir) from the options."""
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out RUN_DIR: the run to continue")
        run_dir = Path(args.out)
        saved = _saved_settings(run_dir)
        source = args.data or saved["data"]
        validation = saved.get("validation", 0.1) if args.validation is None else args.validation
        recipe = dict(saved["recipe"])
        arch = args.arch or saved.get("spec")
    else:
        source = args.data or "optdigits"
        validation = 0.1 if args.validation is None else args.validation
        recipe = dict(RECIPES.get(_scheme(source), {}))
        arch = args.arch
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out or f"runs/{_scheme(source)}-{stamp}")
    for name in RECIPE_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            recipe[name] = value
    return source, validation, recipe, arch, run_dir


def _architecture(arch_text: str | None, data):
    """Parse ``--arch`` (or the default), fit it to the data's images and classes."""
    from cnnkit.architecture import trace
    from cnnkit.spec import parse

    classes = len(data.classes)
    arch = parse(arch_text or default_arch(data.input_shape, classes))
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
    from cnnkit.data import load_dataset
    from cnnkit.progress import JsonLinesReporter, ProgressReporter
    from cnnkit.train import Recipe, Reporter, fit, load_run

    source, validation, recipe_values, arch_text, run_dir = _plan(args)
    recipe = Recipe.from_dict(recipe_values)
    data = load_dataset(source, validation=validation, seed=recipe.seed)
    arch = _architecture(arch_text, data)
    model = arch.build(rng=np.random.default_rng([recipe.seed, 0]))
    if recipe.init != "default" and not args.resume:
        from cnnkit.init import init_model

        init_model(model, recipe.init, np.random.default_rng([recipe.seed, 2]))
    reporter = (
        JsonLinesReporter() if args.jsonl else Reporter() if args.quiet else ProgressReporter()
    )
    meta = {
        "spec": arch.text(),
        "data": source,
        "validation": validation,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
    }
    if not args.quiet and not args.jsonl:
        print(
            f"{source}: {len(data.train_images)} training, {len(data.val_images)} validation "
            f"and {len(data.test_images)} test images of {_volume_text(data.input_shape)}"
        )
        print(f"network: {arch.text()}")
        print(f"recipe: {_recipe_text(recipe)}")
    try:
        history = fit(
            model,
            data,
            recipe=recipe,
            run_dir=run_dir,
            resume=args.resume,
            reporter=reporter,
            meta=meta,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted; the run is saved in {run_dir}: continue it with "
            f"cnnkit train --out {run_dir} --resume"
        )
        return 130
    best, header = load_run(run_dir, "best")
    from cnnkit.train import evaluate

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
    else:
        seconds = sum(record.seconds for record in history)
        print(
            f"test accuracy {test_accuracy:.2%} on {len(data.test_images)} images "
            f"(best.npz: epoch {best_epoch}, chosen by validation accuracy); "
            f"training took {seconds:.1f} s"
        )
        print(f"run saved in {run_dir}")
    return 0


def _volume_text(shape) -> str:
    channels, height, width = shape
    return f"{height}x{width}x{channels}"


def _recipe_text(recipe) -> str:
    values = asdict(recipe)
    return ", ".join(f"{key}={value}" for key, value in values.items())


# ---------------------------------------------------------------------------------------------
# evaluate


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, per-class accuracy and confusion matrix of a trained run",
        description="Evaluate a run's best (or last) checkpoint on its test set or other data.",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--data", metavar="SOURCE", help="default: the data the run used")
    evaluate.add_argument("--split", choices=["test", "val", "train"], default="test")
    evaluate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.set_defaults(run=run_evaluate)


def _run_data(header: dict, source: str | None):
    """The run's data set, normalised with the run's own statistics, and the source used."""
    from cnnkit.data import load_dataset

    source = source or header["data"]
    data = load_dataset(
        source,
        validation=header.get("validation", 0.1),
        seed=header.get("recipe", {}).get("seed", 0),
    )
    if tuple(data.input_shape) != tuple(header["input_shape"]):
        raise ShapeError(
            f"{source} has {_volume_text(data.input_shape)} images but the run's network takes "
            f"{_volume_text(header['input_shape'])}"
        )
    mean = np.asarray(header["mean"], np.float32)[:, None, None]
    std = np.asarray(header["std"], np.float32)[:, None, None]
    own_mean = np.asarray(data.mean, np.float32)[:, None, None]
    own_std = np.asarray(data.std, np.float32)[:, None, None]

    def renormalise(images):
        return (((images * own_std + own_mean) - mean) / std).astype(np.float32)

    return data, source, renormalise


def run_evaluate(args: argparse.Namespace) -> int:
    from cnnkit.train import confusion_matrix, load_run, predict

    model, header = load_run(args.run_dir, args.checkpoint)
    data, source, renormalise = _run_data(header, args.data)
    images = renormalise(getattr(data, f"{args.split}_images"))
    labels = getattr(data, f"{args.split}_labels")
    if len(images) == 0:
        raise ConfigError(f"the {args.split} split of {source} is empty")
    predicted = predict(model, images).argmax(axis=1)
    classes = list(header["classes"])
    matrix = confusion_matrix(labels, predicted, len(classes))
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    accuracy = float((predicted == labels).mean())
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(args.run_dir),
                    "checkpoint": args.checkpoint,
                    "data": source,
                    "split": args.split,
                    "examples": len(labels),
                    "accuracy": accuracy,
                    "classes": classes,
                    "per_class_accuracy": [float(v) for v in per_class],
                    "confusion_matrix": matrix.tolist(),
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{args.checkpoint}.npz of {args.run_dir} on {source} ({args.split}, "
        f"{len(labels)} images): accuracy {accuracy:.2%}"
    )
    print(confusion_text(matrix, classes, per_class))
    return 0


def confusion_text(matrix: np.ndarray, classes: list[str], per_class: np.ndarray) -> str:
    """Rows: true class; columns: predicted; last column: that class's accuracy."""
    names = [name[:6] for name in classes]
    width = max(5, *(len(name) for name in names), len(str(int(matrix.max()))))
    lines = [
        "true \\ predicted".ljust(width + 2)
        + "".join(n.rjust(width + 1) for n in names)
        + "  accuracy"
    ]
    for name, row, share in zip(names, matrix, per_class, strict=True):
        cells = "".join(str(int(v)).rjust(width + 1) if v else ".".rjust(width + 1) for v in row)
        lines.append(name.ljust(width + 2) + cells + f"  {share:8.2%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# predict


def _add_predict(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="top-3 classes with probabilities for an image file or a test image",
        description="Classify IMAGE files (PNG etc., the network's input size; needs Pillow: "
        "pip install cnnkit[images]) or --index I of the run's test set.",
    )
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("images", nargs="*", metavar="IMAGE")
    predict.add_argument("--index", type=int, action="append", help="an image of --split")
    predict.add_argument("--split", choices=["test", "val", "train"], default="test")
    predict.add_argument("--checkpoint", choices=["best", "last"], default="best")
    predict.add_argument("--top", type=positive(int), default=3)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=run_predict)


def read_image(path: str, input_shape) -> np.ndarray:
    """An image file as (C, H, W) float32 in [0, 1], checked against the network's input."""
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("reading image files needs Pillow: pip install cnnkit[images]") from None
    channels, height, width = input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the image ({error})") from None
    if pixels.shape[:2] != (height, width):
        raise ShapeError(
            f"{path}: the image is {pixels.shape[0]}x{pixels.shape[1]} but the network takes "
            f"{height}x{width}; resize it first"
        )
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def run_predict(args: argparse.Namespace) -> int:
    from cnnkit.train import load_run, predict

    model, header = load_run(args.run_dir, args.checkpoint)
    classes = list(header["classes"])
    mean = np.asarray(header["mean"], np.float32)[:, None, None]
    std = np.asarray(header["std"], np.float32)[:, None, None]
    names, inputs, truths = [], [], []
    for path in args.images:
        names.append(path)
        inputs.append((read_image(path, header["input_shape"]) - mean) / std)
        truths.append(None)
    if args.index:
        data, _, renormalise = _run_data(header, None)
        images = getattr(data, f"{args.split}_images")
        labels = getattr(data, f"{args.split}_labels")
        for index in args.index:
            if not 0 <= index < len(images):
                raise ConfigError(
                    f"--index {index} is outside the {args.split} split (0..{len(images) - 1})"
                )
            names.append(f"{args.split}[{index}]")
            inputs.append(renormalise(images[index : index + 1])[0])
            truths.append(classes[int(labels[index])])
    if not inputs:
        raise ConfigError("give IMAGE files or --index I")
    scores = predict(model, np.stack(inputs).astype(np.float32))
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    results = []
    for name, truth, row in zip(names, truths, probabilities, strict=True):
        top = np.argsort(-row, kind="stable")[: args.top]
        results.append(
            {
                "input": name,
                "label": truth,
                "top": [{"class": classes[i], "probability": float(row[i])} for i in top],
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        guesses = ", ".join(f"{g['class']} {g['probability']:.1%}" for g in result["top"])
        label = f" (label {result['label']})" if result["label"] is not None else ""
        print(f"{result['input']}{label}: {guesses}")
    return 0
