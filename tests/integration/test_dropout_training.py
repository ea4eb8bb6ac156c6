"""Training with dropout: a resumed run draws the masks an uninterrupted one draws, so it ends
with exactly the same weights (the layers' generator states travel in every checkpoint)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cnnkit import Dropout, Sequential, cli, from_spec
from cnnkit.data import load_dataset
from cnnkit.train import Recipe, Reporter, checkpoint, fit, generators, load_run

SPEC = (
    "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - DROPOUT2D(0.2) - RELU - POOL(F=2) - DROPOUT(0.3) - FC(10)"
)
ARCH = SPEC.removeprefix("INPUT(1x8x8) - ")
RECIPE = Recipe(epochs=2, batch_size=32, schedule="constant", lr=0.05)


@pytest.fixture(scope="module")
def small():
    data = load_dataset("optdigits", validation=0.1, seed=0)
    return replace(data, train_images=data.train_images[:320], train_labels=data.train_labels[:320])


def build(seed=0):
    return from_spec(SPEC, rng=np.random.default_rng(seed))


def weights(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        np.testing.assert_array_equal(value, b[name], err_msg=name)


class StopAfterEpoch(Reporter):
    def __init__(self, epochs):
        self.epochs = epochs

    def epoch_end(self, record, epochs):
        if record.epoch == self.epochs:
            raise KeyboardInterrupt


class CrashAt(Reporter):
    """A kill at a step: training stops without saving anything."""

    def __init__(self, step):
        self.at, self.steps = step, 0

    def step(self, done, steps, loss, accuracy, rate):
        self.steps += 1
        if self.steps == self.at:
            raise RuntimeError("killed")


@pytest.fixture(scope="module")
def uninterrupted(small, tmp_path_factory):
    model = build()
    history = fit(model, small, recipe=RECIPE, run_dir=tmp_path_factory.mktemp("whole"))
    return weights(model), history


def test_one_epoch_then_resume_to_two_equals_two_epochs(small, uninterrupted, tmp_path):
    expected, history = uninterrupted
    fit(build(), small, recipe=replace(RECIPE, epochs=1), run_dir=tmp_path)
    resumed = build(seed=99)  # other weights and other generators: both come from last.npz
    assert resumed[1].rng.bit_generator.state != build()[1].rng.bit_generator.state
    again = fit(resumed, small, recipe=RECIPE, run_dir=tmp_path, resume=True)
    assert_same(weights(resumed), expected)
    assert [r.train_loss for r in again] == [r.train_loss for r in history]


def test_a_run_stopped_after_an_epoch_resumes_exactly(small, uninterrupted, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(build(), small, recipe=RECIPE, run_dir=tmp_path, reporter=StopAfterEpoch(1))
    resumed = build(seed=7)
    fit(resumed, small, recipe=RECIPE, run_dir=tmp_path, resume=True)
    assert_same(weights(resumed), uninterrupted[0])


def test_a_crash_mid_epoch_resumes_exactly(small, uninterrupted, tmp_path):
    recipe = replace(RECIPE, checkpoint_every=4)
    with pytest.raises(RuntimeError, match="killed"):
        fit(build(), small, recipe=recipe, run_dir=tmp_path, reporter=CrashAt(15))
    header = checkpoint.read_header(tmp_path / "last.npz")
    assert (header["epoch"], header["step_in_epoch"]) == (1, 2)  # 10 steps an epoch
    assert sorted(header["generators"]) == ["1.rng", "4.rng"]  # DROPOUT2D, DROPOUT
    resumed = build(seed=3)
    fit(resumed, small, recipe=recipe, run_dir=tmp_path, resume=True)
    assert_same(weights(resumed), uninterrupted[0])


def test_without_the_generator_states_a_resumed_run_would_differ(
    small, uninterrupted, tmp_path, monkeypatch
):
    """The control: the tests above can fail. A resume that forgot the generators' states
    (each layer then draws from the generator the fresh build gave it) ends elsewhere."""
    fit(build(), small, recipe=replace(RECIPE, epochs=1), run_dir=tmp_path)
    monkeypatch.setattr(generators, "restore", lambda model, header: None)
    resumed = build(seed=0)  # even the same build seed: its generators start over
    fit(resumed, small, recipe=RECIPE, run_dir=tmp_path, resume=True)
    differs = [
        name
        for name, value in weights(resumed).items()
        if not np.array_equal(value, uninterrupted[0][name])
    ]
    assert differs


def test_a_model_built_in_python_resumes_exactly_too(small, tmp_path):
    def model():
        layers = list(build(seed=1).layers)
        layers[4] = Dropout(0.3)  # an unpredictable generator (rng=None)
        return Sequential(*layers)

    whole, cut = model(), model()
    cut.load_state_dict(whole.state_dict())
    for name, generator in cut.named_generators():  # the same start for both runs
        generator.bit_generator.state = dict(whole.named_generators())[name].bit_generator.state
    fit(whole, small, recipe=RECIPE, run_dir=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(cut, small, recipe=RECIPE, run_dir=tmp_path / "cut", reporter=StopAfterEpoch(1))
    resumed = model()
    fit(resumed, small, recipe=RECIPE, run_dir=tmp_path / "cut", resume=True)
    assert_same(weights(resumed), weights(whole))


def final_weights(run_dir: Path) -> dict:
    return checkpoint.load(run_dir / "last.npz").model


def test_the_cli_resumes_a_dropout_run_with_more_epochs_exactly(tmp_path):
    common = ["train", "--arch", ARCH, "--schedule", "constant", "--batch-size", "64", "--quiet"]
    assert cli.main([*common, "--epochs", "2", "--out", str(tmp_path / "whole")]) == 0
    assert cli.main([*common, "--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
    argv = ["train", "--out", str(tmp_path / "cut"), "--resume", "--epochs", "2", "--quiet"]
    assert cli.main(argv) == 0
    assert_same(final_weights(tmp_path / "cut"), final_weights(tmp_path / "whole"))
    # the run loads for evaluation with the generators it had: in evaluation mode, unused
    model, header = load_run(tmp_path / "cut", "last")
    assert [name for name, _ in model.named_generators()] == ["2.rng", "5.rng"]  # Normalize
    for name, generator in model[1:].named_generators():
        assert generator.bit_generator.state == header["generators"][name]
    assert not model.training


def test_a_checkpoint_without_generators_loads_into_a_model_without_dropout(small, tmp_path):
    """What cnnkit wrote before generators were saved: no header field at all."""
    spec = "INPUT(1x8x8) - CONV(D=2, F=3, P=1) - RELU - POOL(F=2) - FC(10)"
    recipe = replace(RECIPE, epochs=1)
    fit(from_spec(spec, rng=np.random.default_rng(0)), small, recipe=recipe, run_dir=tmp_path)
    path = tmp_path / "last.npz"
    ckpt = checkpoint.load(path)
    assert ckpt.header["generators"] == {}
    header = {k: v for k, v in ckpt.header.items() if k not in ("generators", "format")}
    checkpoint.save(path, header, ckpt.model, checkpoint.optimizer_state(ckpt), ckpt.extra)
    assert "generators" not in checkpoint.read_header(path)
    model, header = load_run(tmp_path, "last")
    assert "generators" not in header and list(model.named_generators()) == []
    fit(from_spec(spec), small, recipe=replace(recipe, epochs=2), run_dir=tmp_path, resume=True)
    assert checkpoint.read_header(path)["epoch"] == 2


def test_an_epoch_never_ends_on_a_batch_of_one_so_bn1d_trains(small):
    data = replace(
        small, train_images=small.train_images[:65], train_labels=small.train_labels[:65]
    )
    model = from_spec(
        "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RELU - FC(16) - BN1D - RELU - FC(10)",
        rng=np.random.default_rng(0),
    )
    sizes = []
    model[0].register_forward_hook(lambda layer, inputs, output: sizes.append(len(output)))
    fit(model, data, recipe=Recipe(epochs=1, batch_size=32, augment_shift=0))
    assert sizes[:2] == [32, 33]  # the 65th example joins the last batch instead of standing alone
