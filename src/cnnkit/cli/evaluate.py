"""``cnnkit evaluate`` and ``cnnkit predict``: a trained run on its test set, or on images.

Both load the run's model (``cnnkit.load_run``), which takes images as the loaders return them.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from cnnkit.cli.args import positive, run_directory
from cnnkit.cli.train import resolved_source
from cnnkit.errors import ConfigError


def add_evaluate_parsers(commands) -> None:
    """Register ``evaluate`` and ``predict`` on the CLI's subparsers."""
    _add_evaluate(commands)
    _add_predict(commands)


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


def run_evaluate(args: argparse.Namespace) -> int:
    from cnnkit.train import confusion_matrix, load_run, predict, run_data

    model, header = load_run(run_directory(args.run_dir), args.checkpoint)
    data, source = run_data(header, args.data and resolved_source(args.data))
    images = getattr(data, f"{args.split}_images")
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
        description="Classify IMAGE files (PNG etc., the network's input size, or any size "
        "with --resize; read exactly as folder:DIR reads training images, 16-bit included; "
        "needs Pillow: pip install cnnkit[images]) or --index I of the run's test set.",
    )
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("images", nargs="*", metavar="IMAGE")
    predict.add_argument("--index", type=int, action="append", help="an image of --split")
    predict.add_argument("--split", choices=["test", "val", "train"], default="test")
    predict.add_argument("--checkpoint", choices=["best", "last"], default="best")
    predict.add_argument("--top", type=positive(int), default=3)
    predict.add_argument("--json", action="store_true")
    predict.add_argument(
        "--resize",
        action="store_true",
        help="scale each IMAGE to the network's input height x width (bilinear, with Pillow) "
        "instead of refusing an image of another size",
    )
    predict.set_defaults(run=run_predict)


def read_image(path: str, input_shape, *, resize: bool = False) -> np.ndarray:
    """An image file as (C, H, W) float32 in [0, 1], read as ``folder:DIR`` reads training
    images (:func:`cnnkit.data.images.read_image`) and checked against the network's input."""
    from cnnkit.data.images import read_image as read

    channels, height, width = input_shape
    return read(path, channels, (height, width), resize=resize, where="predict")


def run_predict(args: argparse.Namespace) -> int:
    from cnnkit.train import load_run, predict, run_data

    model, header = load_run(run_directory(args.run_dir), args.checkpoint)
    classes = list(header["classes"])
    names, inputs, truths = [], [], []
    for path in args.images:
        names.append(path)
        inputs.append(read_image(path, header["input_shape"], resize=args.resize))
        truths.append(None)
    if args.index:
        data, _ = run_data(header, None)
        images = getattr(data, f"{args.split}_images")
        labels = getattr(data, f"{args.split}_labels")
        for index in args.index:
            if not 0 <= index < len(images):
                raise ConfigError(
                    f"--index {index} is outside the {args.split} split (0..{len(images) - 1})"
                )
            names.append(f"{args.split}[{index}]")
            inputs.append(images[index])
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
