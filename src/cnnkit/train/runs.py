"""Runs on disk: a trained run's model, with the run's input normalisation in front of it.

A run's network was trained on images normalised with its training split's mean and std; the
model :func:`load_run` returns starts with a :class:`~cnnkit.nn.Normalize` layer holding them,
so it takes images exactly as cnnkit's loaders return them (``load_optdigits``,
``load_dataset(..., normalize=False)``: values in [0, 1]) and scores what ``cnnkit evaluate``
reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.arch.convert import from_spec
from cnnkit.arch.grammar import SpecError
from cnnkit.data.dataset import load_dataset
from cnnkit.errors import ConfigError, DataError, ShapeError, TrainingError
from cnnkit.nn.containers import Sequential
from cnnkit.nn.normalize import Normalize
from cnnkit.train import checkpoint


def load_network(run_dir: str | Path, which: str = "best"):
    """(the trained network, without normalisation, in evaluation mode; its checkpoint
    header) from a run directory's ``which`` checkpoint (``best`` or ``last``)."""
    if which not in ("best", "last"):
        raise ConfigError(f"load_run: which must be 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    ckpt = checkpoint.load(run_dir / f"{which}.npz")
    spec = ckpt.header.get("spec")
    if spec is None:
        raise TrainingError(
            f"{ckpt.path}: the checkpoint does not say which architecture it holds (a layer "
            "without an architecture-string form); build the model in Python and "
            "model.load_state_dict(cnnkit.train.checkpoint.load(path).model)"
        )
    try:
        network = from_spec(spec, rng=np.random.default_rng(0))
    except SpecError as error:
        raise DataError(f"{ckpt.path}: the run's architecture {spec}: {error}") from None
    network.load_state_dict(ckpt.model)
    network.eval()
    return network, ckpt.header


def load_run(run_dir: str | Path, which: str = "best"):
    """(model, header): the run's trained network behind a Normalize layer with the run's
    statistics, in evaluation mode, taking images as cnnkit's loaders return them.

    ``model[0]`` is the Normalize layer; ``model[1:]`` the network as trained.
    """
    network, header = load_network(run_dir, which)
    mean, std = header.get("mean"), header.get("std")
    if mean is None or std is None:
        raise DataError(
            f"{Path(run_dir) / (which + '.npz')}: the checkpoint does not hold the run's input "
            "normalisation (mean and std); load the network with cnnkit.train.load_network"
        )
    layers = [Normalize(mean, std), *network.layers]
    model = Sequential(*layers, input_shape=network.input_shape)
    model.eval()
    return model, header


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
        validation=header.get("validation", 0.1),
        seed=header.get("recipe", {}).get("seed", 0),
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
