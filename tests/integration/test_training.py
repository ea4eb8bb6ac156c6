"""End to end: fit learns, runs are kept on disk, and a killed run resumes bit-identically."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnkit import SGD, CrossEntropyLoss, TrainingError, lecture_network
from cnnkit.data import load_dataset
from cnnkit.train import Recipe, Reporter, accuracy, checkpoint, fit, load_run


@pytest.fixture(scope="module")
def digits():
    return load_dataset("optdigits", validation=0.1, seed=0)


@pytest.fixture(scope="module")
def small(digits):
    """A quarter of the digits, to keep runs short."""
    from dataclasses import replace

    return replace(
        digits,
        train_images=digits.train_images[:800],
        train_labels=digits.train_labels[:800],
    )


def model_for(data, seed=0):
    return lecture_network(data.input_shape, len(data.classes), rng=np.random.default_rng(seed))


def weights(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def test_overfits_a_tiny_batch(digits):
    images, labels = digits.train_images[:16], digits.train_labels[:16]
    model = model_for(digits)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = CrossEntropyLoss()
    for _ in range(150):
        loss = loss_fn.forward(model.forward(images), labels)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    assert loss < 0.01
    assert accuracy(model, images, labels) == 1.0


def test_fit_learns_and_same_seed_gives_identical_history(small):
    recipe = Recipe(epochs=3, seed=3, schedule="constant")
    model_a = model_for(small)
    history_a = fit(model_a, small, recipe=recipe)
    model_b = model_for(small)
    history_b = fit(model_b, small, recipe=recipe)
    assert [(r.train_loss, r.val_accuracy) for r in history_a] == [
        (r.train_loss, r.val_accuracy) for r in history_b
    ]
    for name, value in weights(model_a).items():
        np.testing.assert_array_equal(value, weights(model_b)[name])
    assert history_a[2].train_loss < history_a[0].train_loss
    assert history_a[2].val_accuracy > 0.8


def test_run_directory_contents(small, tmp_path):
    model = model_for(small)
    fit(model, small, recipe=Recipe(epochs=2), run_dir=tmp_path, meta={"spec": model.to_spec()})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        ".lock",  # the run's lock (cnnkit.train.rundir), free once fit returns
        "best.npz",
        "history.csv",
        "history.json",
        "last.npz",
        "settings.json",
        "spec.txt",
    ]
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    reloaded, header = load_run(tmp_path, "last")
    assert type(reloaded[0]).__name__ == "Normalize"  # the run's normalisation comes first
    np.testing.assert_array_equal(reloaded[0].mean, small.mean)
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, weights(reloaded[1:])[name])
    assert header["epoch"] == 2


def test_existing_run_is_not_overwritten(small, tmp_path):
    fit(model_for(small), small, recipe=Recipe(epochs=1), run_dir=tmp_path)
    before = (tmp_path / "last.npz").read_bytes()
    with pytest.raises(
        TrainingError, match=r"already holds a run \(.*last\.npz.*\); pass --resume"
    ):
        fit(model_for(small), small, recipe=Recipe(epochs=1), run_dir=tmp_path)
    assert (tmp_path / "last.npz").read_bytes() == before


class CrashAt(Reporter):
    """Stands in for a SIGKILL: stops training at a step without saving anything."""

    def __init__(self, step):
        self.at = step
        self.steps = 0

    def step(self, done, steps, loss, accuracy, rate):
        self.steps += 1
        if self.steps == self.at:
            raise RuntimeError("killed")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_crash_mid_epoch_and_resume_is_bit_identical(small, tmp_path, optimizer):
    recipe = Recipe(epochs=2, checkpoint_every=7, optimizer=optimizer, lr=0.01)
    reference = model_for(small)
    expected_history = fit(reference, small, recipe=recipe, run_dir=tmp_path / "whole")
    crashed = model_for(small)
    with pytest.raises(RuntimeError, match="killed"):
        fit(crashed, small, recipe=recipe, run_dir=tmp_path / "cut", reporter=CrashAt(33))
    saved = checkpoint.load(tmp_path / "cut" / "last.npz").header
    assert (saved["epoch"], saved["step_in_epoch"]) == (1, 3)  # step 28 of 25 per epoch
    resumed = model_for(small, seed=99)  # weights come from the checkpoint
    history = fit(resumed, small, recipe=recipe, run_dir=tmp_path / "cut", resume=True)
    for name, value in weights(reference).items():
        np.testing.assert_array_equal(weights(resumed)[name], value)
    assert [r.train_loss for r in history] == [r.train_loss for r in expected_history]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(small, tmp_path, monkeypatch):
    model = model_for(small)
    recipe = Recipe(epochs=3, lr=0.01, schedule="constant")
    with pytest.raises(KeyboardInterrupt):
        fit(model, small, recipe=recipe, run_dir=tmp_path, reporter=StopAfterEpoch(1))
    before = (tmp_path / "last.npz").read_bytes()

    class Diverging(CrossEntropyLoss):  # the loss of epoch 2 becomes NaN
        def forward(self, logits, labels):
            return float("nan") + super().forward(logits, labels)

    monkeypatch.setattr("cnnkit.train.loop.CrossEntropyLoss", Diverging)
    with pytest.raises(
        TrainingError,
        match=r"^step \d+ \(epoch 2, batch 1\): the loss became nan; the learning rate "
        r"0.01 is probably too high, try --lr 0.001; the last good checkpoint .*last\.npz "
        r"is kept$",
    ):
        fit(model, small, recipe=recipe, run_dir=tmp_path, resume=True)
    assert (tmp_path / "last.npz").read_bytes() == before


class StopAfterEpoch(Reporter):
    """Stops a run cleanly after ``epochs`` epochs, as Ctrl-C between epochs would."""

    def __init__(self, epochs):
        self.epochs = epochs

    def epoch_end(self, record, epochs):
        if record.epoch == self.epochs:
            raise KeyboardInterrupt


def run_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "cnnkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(path: Path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.005)


def final_weights(run_dir):
    return checkpoint.load(Path(run_dir) / "last.npz").model


@pytest.mark.parametrize(
    "stop", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "Ctrl-C", "SIGTERM"]
)
def test_cli_run_stopped_mid_epoch_resumes_bit_identical(tmp_path, stop):
    common = ["train", "--epochs", "3", "--batch-size", "16", "--checkpoint-every", "25", "--quiet"]
    whole = run_cli(*common, "--out", str(tmp_path / "whole"))
    cut = run_cli(*common, "--out", str(tmp_path / "cut"))
    wait_for(tmp_path / "cut" / "last.npz")
    os.kill(cut.pid, stop)
    _, err = cut.communicate(timeout=60)
    header = checkpoint.load(tmp_path / "cut" / "last.npz").header
    assert header["epoch"] < 3, "the run finished before it could be stopped"
    if stop != signal.SIGKILL:  # finishes the step, saves, says how to resume
        assert cut.returncode == 130
    resumed = run_cli("train", "--out", str(tmp_path / "cut"), "--resume", "--quiet")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert whole.wait(timeout=120) == 0
    expected = final_weights(tmp_path / "whole")
    for name, value in final_weights(tmp_path / "cut").items():
        np.testing.assert_array_equal(value, expected[name])


def test_cli_refuses_to_resume_another_architecture(tmp_path):
    done = run_cli("train", "--epochs", "1", "--quiet", "--out", str(tmp_path))
    assert done.wait(timeout=60) == 0
    before = (tmp_path / "last.npz").read_bytes()
    again = run_cli(
        "train",
        "--arch",
        "CONV(D=4, F=3, P=1) - RELU - POOL(F=2) - FC(10)",
        "--out",
        str(tmp_path),
        "--resume",
    )
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2
    assert err.count("\n") == 1 and "was saved for INPUT(1x8x8) - CONV(D=32" in err
    assert (tmp_path / "last.npz").read_bytes() == before
