"""Runs on disk: a trained run's model, with the run's input normalisation in front of it.

A run's network was trained on images normalised with its training split's mean and std; the
model :func:`load_run` returns starts with a :class:`~cnnkit.nn.Normalize` layer holding them,
so it takes images exactly as cnnkit's loaders return them (``load_optdigits``,
``load_dataset(..., normalize=False)``: values in [0, 1]) and scores what ``cnnkit evaluate``
reports.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnkit.arch.convert import from_spec
from cnnkit.data.dataset import load_dataset
from cnnkit.errors import CnnkitError, ConfigError, DataError, ShapeError, TrainingError
from cnnkit.nn.containers import Sequential
from cnnkit.nn.normalize import Normalize
from cnnkit.summary import summarize
from cnnkit.train import archive, checkpoint
from cnnkit.train.header import CHECKPOINT_FIX, RUN_FIELDS


def load_network(run_dir: str | Path, which: str = "best"):
    """(the trained network, without normalisation, in evaluation mode; its checkpoint
    header) from a run directory's ``which`` checkpoint (``best`` or ``last``).

    The header is checked first (:func:`cnnkit.train.header.validate_header`, with the classes,
    input shape and epoch present), the network built from its spec and checked against the
    header's input shape and classes, and only then are the arrays read, each declared shape
    and dtype checked against the network's before its data is read."""
    if which not in ("best", "last"):
        raise ConfigError(f"load_run: which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.npz"
    header = checkpoint.read_header(path, RUN_FIELDS)
    spec = header.get("spec")
    if spec is None:
        raise TrainingError(
            f"{path}: the checkpoint does not say which architecture it holds (a layer "
            "without an architecture-string form); build the model in Python and "
            "model.load_state_dict(cnnkit.train.checkpoint.load(path).model)"
        )
    _check_holds(path, spec)  # before a network of the spec's size is built
    try:
        network = from_spec(spec, rng=np.random.default_rng(0))
    except CnnkitError as error:
        raise DataError(f"{path}: the run's architecture {spec[:200]}: {error}") from None
    _check_fits(path, network, header)
    ckpt = checkpoint.load(path, model=network, extras=False)
    checkpoint.restore(network, ckpt)
    network.eval()
    return network, ckpt.header


def _check_holds(path: Path, spec: str) -> None:
    """The file declares at least as many weight values as the spec's parameters (counted by
    the summary, which allocates nothing): a header cannot make cnnkit build a network far
    larger than the file."""
    with archive.open_archive(path) as opened:
        declared = sum(math.prod(m.shape) for m in opened.groups()["model"].values())
    try:
        needed = summarize(spec).totals.params
    except CnnkitError:
        return  # from_spec says what is wrong with the spec
    if needed > 2 * declared + 1_000_000:  # small differences: the keys are named later
        raise DataError(
            f"{path}: its architecture has {needed:,} parameters but the file holds "
            f"{declared:,} weight values; {CHECKPOINT_FIX}"
        )


def _check_fits(path: Path, network, header: dict) -> None:
    """The header's input shape and classes are those of the network its spec builds."""
    shape, classes = tuple(header["input_shape"]), header["classes"]
    if network.input_shape is not None and tuple(network.input_shape) != shape:
        raise DataError(
            f"{path}: the header's input_shape {_volume_text(shape)} is not the input of its "
            f"architecture ({_volume_text(network.input_shape)}); {CHECKPOINT_FIX}"
        )
    output = network.output_shape((1, *shape))
    if tuple(output) != (1, len(classes)):
        raise DataError(
            f"{path}: the header names {len(classes)} classes but the network has "
            f"{'x'.join(map(str, output[1:]))} outputs; {CHECKPOINT_FIX}"
        )


def load_run(run_dir: str | Path, which: str = "best"):
    """(model, header): the run's trained network behind a Normalize layer with the run's
    statistics, in evaluation mode, taking images as cnnkit's loaders return them.

    ``model[0]`` is the Normalize layer; ``model[1:]`` the network as trained.
    """
    network, header = load_network(run_dir, which)
    if header.get("mean") is None or header.get("std") is None:
        raise DataError(
            f"{Path(run_dir) / (which + '.npz')}: the checkpoint does not hold the run's input "
            "normalisation (mean and std); load the network with cnnkit.train.load_network"
        )
    layers = [Normalize(header["mean"], header["std"]), *network.layers]
    model = Sequential(*layers, input_shape=network.input_shape)
    model.eval()
    return model, header


def checked_run_dir(run_dir, which: str = "best") -> Path:
    """``run_dir`` as a Path once it is a directory holding the ``which`` checkpoint (``best``
    or ``last``); otherwise the one-line error that says what to give instead."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"{run_dir}: no such run directory; give the RUN_DIR that cnnkit train wrote "
            "(its --out)"
        )
    if which not in ("best", "last"):
        raise ConfigError(f"checkpoint must be 'best' or 'last', got {which!r}")
    if not (run_dir / f"{which}.npz").is_file():
        raise DataError(
            f"{run_dir}: no {which}.npz: not a cnnkit train run, or one stopped before its "
            "first epoch ended; give the RUN_DIR that cnnkit train wrote (its --out)"
        )
    return run_dir


def data_source(data) -> dict:
    """Where a data set loaded by ``load_dataset`` came from and how it was split, for the
    run's header, so that ``evaluate``, ``explore`` and ``report`` find the run's data again
    (``cnnkit train`` says the same); nothing for a data set made otherwise."""
    if getattr(data, "split_seed", None) is None:
        return {}
    return {"data": data.name, "validation": data.validation, "split_seed": data.split_seed}


def run_data(header: dict, source: str | None = None):
    """(the run's data set as the loader returns it, not normalised; the source used): its own
    data unless ``source`` names another, split as in training."""
    source = source or header.get("data")
    if source is None:
        raise DataError(
            "the run does not say which data it was trained on; pass the data source "
            "(--data optdigits, mnist:DIR, ...)"
        )
    data = load_dataset(
        source,
        validation=0.1 if header.get("validation") is None else header["validation"],
        seed=header.get("split_seed", (header.get("recipe") or {}).get("seed", 0)),
        normalize=False,
    )
    expected = header.get("input_shape")
    if expected is not None and tuple(data.input_shape) != tuple(expected):
        raise ShapeError(
            f"{source} has {_volume_text(data.input_shape)} images but the run's network takes "
            f"{_volume_text(expected)}"
        )
    return data, source


def _volume_text(shape) -> str:
    channels, height, width = shape
    return f"{height}x{width}x{channels}"
