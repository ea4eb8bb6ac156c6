"""The command line at its edges: every mistake is one line and exit code 2, a user's own
layers work through ``--import``, and run directories are told apart from strings."""

from __future__ import annotations

import pytest

from cnnkit import cli

LAYERS = """
import numpy as np
import cnnkit


@cnnkit.register_layer("CLISCALE")
class Scale(cnnkit.Layer):
    def __init__(self, init=1.0):
        self.init = init

    def build(self, input_shape):
        self.weight = cnnkit.Parameter(np.full(input_shape[1], self.init, self.dtype), "weight")

    def forward(self, x):
        self.save_for_backward(x)
        return x * self.weight.data[:, None, None]

    def backward(self, dy):
        (x,) = self.saved_tensors
        self.weight.grad += (dy * x).sum(axis=(0, 2, 3))
        return dy * self.weight.data[:, None, None]
"""
ARCH = "INPUT(1x8x8) - CONV(D=4, F=3) - CLISCALE(init=0.5) - RELU - FC(10)"


@pytest.fixture(autouse=True)
def forget_the_layer():
    from cnnkit.nn import registry

    yield
    registry.unregister("CLISCALE")


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own exits (help, usage errors)
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "lenet5", "--batch", "0"], "argument --batch: must be > 0, got 0"),
        (["summary", "lenet5", "--input", "0x0x0"], "expected CxHxW such as 3x224x224"),
        (["summary", "lenet5", "--format", "xml"], "invalid choice: 'xml'"),
        (["shape", "--input", "5", "--stride", "0"], "argument --stride/-S: must be > 0"),
        (["explain", "equivariance", "--shifts", "0"], "argument --shifts: must be > 0"),
        (["explain", "equivariance", "--seed", "1.5"], "expected a whole number >= 0, got '1.5'"),
        (["train", "--lr", "nan"], "expected a number > 0, got 'nan'"),
        (["info", "extra"], "unrecognized arguments: extra"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_usage_mistakes_are_one_line(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cnnkit: error: ")
    assert message in err and "--help" in err and "_non_negative" not in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("INPUT(1x4x4) - RELU(x=3)", "RELU takes no arguments; write RELU"),
        ("INPUT(-3x32x32) - RELU", "col 7: sizes are positive, got -3x32x32"),
        (
            "INPUT(3x32x32) - FC(10) - CONV(D=3, F=3)",
            "after FC or FLATTEN the volume is a flat vector: put CONV and POOL layers before",
        ),
        (
            "INPUT(3x1048576x1048576) - CONV(D=1048576, F=3) - FC(1048576)",
            "more than any array can",
        ),
    ],
)
def test_string_mistakes_are_one_line(spec, message, capsys):
    code, out, err = run(["summary", spec], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err


def test_empty_parentheses_are_no_arguments(capsys):
    code, out, _ = run(["summary", "INPUT(1x4x4) - RELU()"], capsys)
    assert code == 0 and "RELU" in out


def test_run_directories_and_strings_are_told_apart(tmp_path, capsys):
    code, _, err = run(["explain", "layers", ""], capsys)
    assert code == 2 and "empty architecture" in err
    missing = str(tmp_path / "no-such-run")
    for argv in (["explain", "layers", missing], ["summary", missing]):
        code, _, err = run(argv, capsys)
        assert code == 2 and f"{missing}: no such run directory" in err


def test_one_shift_too_many_and_no_room_to_shift(capsys):
    code, _, err = run(["explain", "equivariance", "INPUT(1x1x1) - RELU", "--shifts", "1"], capsys)
    assert code == 2 and "no shift moves anything" in err and "below 1" not in err


def test_a_users_layers_through_import(tmp_path, capsys, monkeypatch):
    module = tmp_path / "clilayers.py"
    module.write_text(LAYERS)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["--import", str(module), "summary", ARCH], capsys)
    assert code == 0 and "CLISCALE(init=0.5)" in out
    out_dir = str(tmp_path / "run")
    argv = ["--import", "clilayers", "train", "--arch", ARCH, "--epochs", "1", "--quiet"]
    code, _, err = run([*argv, "--out", out_dir], capsys)
    assert code == 0, err
    code, out, _ = run(["--import", "clilayers", "evaluate", out_dir], capsys)
    assert code == 0 and "accuracy" in out.lower()
    code, out, _ = run(["--import", "clilayers", "summary", out_dir], capsys)
    assert code == 0 and "NORMALIZE" in out and "CLISCALE" in out
    code, out, _ = run(["--import", "clilayers", "explain", "layers", out_dir], capsys)
    assert code == 0 and "CLISCALE(init=0.5)" in out


def test_a_run_with_an_unknown_layer_names_the_file_and_import(tmp_path, capsys):
    from cnnkit.nn import registry

    module = tmp_path / "clilayers2.py"
    module.write_text(LAYERS)
    out_dir = str(tmp_path / "run")
    argv = ["--import", str(module), "train", "--arch", ARCH, "--epochs", "1", "--quiet"]
    code, _, err = run([*argv, "--out", out_dir], capsys)
    assert code == 0, err
    registry.unregister("CLISCALE")
    code, _, err = run(["evaluate", out_dir], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "best.npz: the run's architecture" in err and "unknown layer 'CLISCALE'" in err
    assert "cnnkit --import MODULE" in err
    code, _, err = run(["train", "--out", out_dir, "--resume", "--epochs", "2"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--arch" not in err
    assert "the run's architecture 'INPUT(1x8x8)" in err and "unknown layer 'CLISCALE'" in err
    assert err.rstrip().endswith("pass --import with the module that defines its layers")


def test_import_mistakes_are_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no')\n")
    for name, message in (
        ("nothere_at_all", "No module named 'nothere_at_all'"),
        (str(tmp_path / "absent.py"), "no such file"),
        (str(broken), "RuntimeError: no"),
    ):
        code, _, err = run(["--import", name, "summary", "lenet5"], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err
