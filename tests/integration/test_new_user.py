"""What a new user ran into, each fixed: one line and exit code 2 for a mistake, runs that work
from any directory, a loaded model that takes the loaders' images, quiet pipes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit import cli

DATA = Path(__file__).resolve().parents[1] / "data"


def run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("INPUT(1x28x28)", "INPUT(1x28x28) has no layers after it; e.g. INPUT(1x28x28) - CONV"),
        ("INPUT(axbxc) - RELU", "INPUT size must be CxHxW or HxW, got axbxc"),
        ("INPUT(1x8x8) - CONV(D=1e23, F=3)", "D must be a positive whole number, got 1e23"),
        ("INPUT(1x8x8) - LSTM(64) - FC(3)", "unknown layer 'LSTM'; the registered layers"),
    ],
)
def test_summary_mistakes_are_one_line_pointing_at_the_column(spec, message, capsys):
    code, out, err = run(["summary", spec], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cnnkit: error: col ")
    assert message in err


def test_shape_search_keeps_the_given_filter(capsys):
    code, out, _ = run(["shape", "--input", "10", "--filter", "2", "--output", "5"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "(I - F + 2P)/S + 1 = 5 for I = 10 and F = 2: 1 way"
    assert all(line.strip().startswith("F=2 ") for line in lines[1:]) and len(lines) == 2
    code, out, _ = run(["shape", "--input", "30", "--filter", "13", "--output", "18"], capsys)
    assert code == 0 and "F=13 S=1 P=0" in out  # beyond the search's usual F <= 11
    code, out, _ = run(["shape", "--input", "10", "--filter", "3", "--output", "5"], capsys)
    assert code == 0 and out.splitlines() == [  # rounding down leaves only padding unread
        "(I - F + 2P)/S + 1 = 5 for I = 10 and F = 3: 1 way",
        "  F=3 S=2 P=1   (10 - 3 + 2*1)/2 + 1 = 5.5 -> 5 (only padding unread)",
    ]
    code, out, _ = run(["shape", "--input", "10", "--filter", "3", "--output", "9"], capsys)
    assert code == 1 and out.startswith("(I - F + 2P)/S + 1 = 9 for I = 10 and F = 3: 0 ways")


def test_explain_conv_shows_its_defaults_and_which_to_change(capsys):
    with pytest.raises(SystemExit):
        cli.main(["explain", "conv", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "stride (2, the worked example's)" in text
    assert "zero padding (1, the worked example's)" in text
    code, _, err = run(["explain", "conv", "--input", "2", "--filter", "5"], capsys)
    assert code == 2 and "S=2 and P=1 are the worked example's" in err
    assert run(["explain", "conv", "--input", "6"], capsys)[0] == 0  # 3.5 -> 3: padding unread
    assert run(["explain", "conv", "--input", "6", "--stride", "1"], capsys)[0] == 0


def _idx(path: Path, array: np.ndarray) -> None:
    """A file in MNIST's IDX format (unsigned bytes)."""
    dims = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "work" / "digits"
    folder.mkdir(parents=True)
    for prefix, count in (("train", 120), ("t10k", 40)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 40, (count, 28, 28))
        images[np.arange(count), labels * 2 + 3, :] = 255  # a bright row per class: learnable
        _idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path


def test_a_relative_data_path_is_stored_resolved(tiny_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tiny_mnist / "work")
    argv = ["train", "--data", "mnist:digits", "--epochs", "1", "--out", "run", "--quiet"]
    assert run(argv, capsys)[0] == 0
    settings = json.loads((tiny_mnist / "work" / "run" / "settings.json").read_text())
    assert settings["data"] == f"mnist:{tiny_mnist / 'work' / 'digits'}"
    monkeypatch.chdir(tiny_mnist)  # somewhere else
    code, out, err = run(["evaluate", "work/run"], capsys)
    assert code == 0 and err == "" and "accuracy" in out


def test_checkpoints_get_the_permissions_of_the_other_run_files(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        argv = ["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]
        assert run(argv, capsys)[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").iterdir()}
    assert modes["best.npz"] == modes["last.npz"] == modes["settings.json"] == 0o644, modes


def test_a_loaded_run_takes_the_images_the_loaders_return(tmp_path, capsys):
    assert (
        run(["train", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet"], capsys)[0] == 0
    )
    _, out, _ = run(["evaluate", str(tmp_path / "run"), "--json"], capsys)
    reported = json.loads(out)["accuracy"]
    model, _ = cnnkit.load_run(tmp_path / "run")
    images, labels = cnnkit.load_optdigits("test")
    assert float((model.forward(images).argmax(axis=1) == labels).mean()) == reported > 0.8
    assert not model.training and type(model[0]).__name__ == "Normalize"


def test_a_checkpoint_of_the_previous_version_still_loads(capsys):
    """tests/data/run-0.1.0: written by cnnkit 0.1.0 before the open design."""
    code, out, _ = run(["evaluate", str(DATA / "run-0.1.0")], capsys)
    assert code == 0 and "accuracy 89.48%" in out
    model, header = cnnkit.load_run(DATA / "run-0.1.0")
    images, labels = cnnkit.load_optdigits("test")
    assert round(float((model.forward(images).argmax(axis=1) == labels).mean()), 4) == 0.8948
    assert header["format"] == "cnnkit.checkpoint/1"


def _cnnkit(*argv, env=None, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_piping_into_head_ends_quietly():
    command = f"{sys.executable} -m cnnkit summary vgg16 | head -1"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    assert done.stdout.startswith("INPUT 224x224x3") and done.stderr == ""


def test_version_and_info_say_what_runs():
    version = _cnnkit("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("cnnkit ") and "engine fast" in version.stdout
    assert "NumPy " in version.stdout and "BLAS " in version.stdout
    info = _cnnkit("info", env={"CNNKIT_ENGINE": "reference"})
    lines = dict(line.split(None, 1) for line in info.stdout.splitlines())
    assert lines["engine"].startswith("reference") and lines["numpy"] == np.__version__
    wrong = _cnnkit("summary", "lenet5", env={"CNNKIT_ENGINE": "turbo"})
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "CNNKIT_ENGINE: unknown engine 'turbo'; use one of fast, reference" in wrong.stderr
