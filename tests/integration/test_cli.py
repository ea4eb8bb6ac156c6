"""The command line through ``main([...])``, and once as a real process."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from cnnkit import ShapeError, cli, viz
from cnnkit.cli import train as cli_train


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "usage: cnnkit" in capsys.readouterr().out


def test_demo_is_train_with_the_default_recipe_then_the_pictures(monkeypatch, tmp_path):
    seen = {}

    def fake_train(args):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(cli_train, "run_train", fake_train)
    monkeypatch.setattr(viz, "demo_pictures", lambda run_dir: seen.setdefault("pictures", run_dir))
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert seen["out"] == str(tmp_path) and seen["data"] is None and seen["epochs"] is None
    assert seen["pictures"] == str(tmp_path)


def test_train_prints_epochs_and_test_accuracy(capsys, tmp_path):
    out_dir = tmp_path / "run"
    assert cli.main(["train", "--epochs", "2", "--seed", "1", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and "val acc" in epochs[0]
    losses = [float(line.split("loss ")[1].split()[0]) for line in epochs]
    assert losses[1] < losses[0]
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 85
    assert f"run saved in {out_dir}" in out


def test_train_jsonl_and_evaluate_and_predict(capsys, tmp_path):
    run = str(tmp_path / "run")
    assert cli.main(["train", "--epochs", "1", "--jsonl", "--out", run]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["epoch", "done"]
    assert events[1]["test_accuracy"] > 0.5
    assert cli.main(["evaluate", run, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 1797 and report["accuracy"] == events[1]["test_accuracy"]
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 1797 and len(matrix) == 10
    assert cli.main(["evaluate", run]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1].startswith("true \\ predicted")
    assert cli.main(["predict", run, "--index", "0", "--index", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("test[0] (label ") and lines[0].count("%") == 3


def test_train_refuses_a_network_that_does_not_fit_the_data(capsys, tmp_path):
    args = ["train", "--arch", "CONV(D=4, F=3) - FC(7)", "--out", str(tmp_path / "r")]
    assert cli.main(args) == 2
    assert capsys.readouterr().err == (
        "cnnkit: error: the network's output is 7 but the data has 10 classes; "
        "end --arch with FC(10)\n"
    )
    assert not (tmp_path / "r").exists()


def test_resume_without_a_run(capsys, tmp_path):
    assert cli.main(["train", "--resume", "--out", str(tmp_path)]) == 2
    assert "no run to resume here (no settings.json)" in capsys.readouterr().err


def test_evaluate_a_damaged_checkpoint(capsys, tmp_path):
    (tmp_path / "best.npz").write_bytes(b"PK\x03\x04 truncated")
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error: ") and "not a readable cnnkit checkpoint" in err
    assert err.count("\n") == 1


def test_cnnkit_errors_become_one_line_and_exit_2(monkeypatch, capsys):
    def fail(args):
        raise ShapeError("Conv2d(3, 16, kernel_size=3, stride=2): 4.5 is not a whole number")

    monkeypatch.setattr(cli, "run_demo", fail)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "cnnkit: error: Conv2d(3, 16, kernel_size=3, stride=2): 4.5 is not a whole number\n"
    )


def test_bad_option_value_exits_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--epochs", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "must be > 0" in err and "Traceback" not in err


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("cnnkit ")


def test_shape_evaluates_the_formula(capsys):
    assert cli.main(["shape", "--input", "227", "--filter", "11", "--stride", "4"]) == 0
    assert (
        capsys.readouterr().out
        == "(227 - 11 + 2*0)/4 + 1 = 55: possible, 55 units along this axis\n"
    )


def test_shape_refuses_the_lecture_example_with_fixes(capsys):
    args = ["shape", "--input", "10", "--filter", "3", "--stride", "2", "--padding", "0"]
    assert cli.main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "(10 - 3 + 2*0)/2 + 1 = 4.5 is not a whole number: impossible"
    assert out[1].startswith("use S=1 (-> 8) or F=2 (-> 5), or --floor (-> 4")


def test_shape_floor_says_what_is_dropped(capsys):
    assert cli.main(["shape", "-I", "10", "-F", "3", "-S", "2", "--floor"]) == 0
    out = capsys.readouterr().out
    assert "-> floor 4 (as PyTorch): the last 1 of the 10 padded input positions" in out


def test_shape_lists_every_configuration_for_an_output(capsys):
    assert cli.main(["shape", "--input", "10", "--output", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "(I - F + 2P)/S + 1 = 5 for I = 10: 13 ways"  # 8 whole, 5 rounded
    rounded = 0
    for line in lines[1:]:
        f, s, p = (int(part.split("=")[1]) for part in line.split()[:3])
        assert (10 - f + 2 * p) // s + 1 == 5
        if (10 - f + 2 * p) % s:  # only the padding row 10 + 2P - 1 goes unread
            assert line.endswith(" = 5.5 -> 5 (only padding unread)") and p >= 1
            rounded += 1
    assert rounded == 5


def test_shape_without_filter_is_a_usage_error(capsys):
    assert cli.main(["shape", "--input", "10"]) == 2
    assert capsys.readouterr().err == (
        "cnnkit: error: cnnkit shape: give --filter F (or --output O to search)\n"
    )


def test_summary_of_a_builtin_name(capsys):
    assert cli.main(["summary", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "(227 - 11 + 2*0)/4 + 1 = 55" in out and "without sharing 105,705,600" in out
    assert "62,378,344" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_summary_formats(capsys):
    spec = "INPUT(1x28x28) - CONV(D=6, F=5, P=2) - RELU - POOL(F=2) - FC(10)"
    assert cli.main(["summary", spec, "--format", "json", "--batch", "64"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "cnnkit.summary/3" and data["batch"] == 64
    assert [row["output"] for row in data["rows"]] == [
        "28x28x6",
        "28x28x6",
        "14x14x6",
        "1176",
        "10",
    ]
    assert cli.main(["summary", spec, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["params"] == "156"
    assert cli.main(["summary", spec, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.count("| `CONV(D=6, F=5, S=1, P=2)` |") == 1


def test_summary_input_option_supplies_or_replaces_the_input(capsys):
    assert cli.main(["summary", "CONV(D=6, F=5)", "--input", "1x28x28", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["output"] == "24x24x6"


def test_impossible_stack_exits_2_with_one_line_per_problem(capsys):
    spec = "INPUT(1x10x10) - RELU - RELU - CONV(D=16, F=3, S=2, P=0) - FC(in=5, 10)"
    assert cli.main(["summary", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "cnnkit: error: layer 2 CONV(D=16, F=3, S=2, P=0) on 10x10: (10 - 3 + 2*0)/2 + 1 = 4.5 "
        "is not a whole number; use S=1 (-> 8x8) or F=2 (-> 5x5), or round=floor (-> 4, as "
        "PyTorch; --floor for every layer)",
        "cnnkit: error: layer 4 FC(in=5, 10) on 256 values: in=5 does not match the 256 values "
        "it receives; use FC(10) to infer it or in=256",
    ]


def test_floor_summary_names_the_dropped_rows(capsys):
    assert cli.main(["summary", "INPUT(3x10x10) - CONV(D=16, F=3, S=2)", "--floor"]) == 0
    out = capsys.readouterr().out
    assert "4.5 -> 4 (floor)" in out and "padded rows 9 (of 0..9) are never read" in out


def test_malformed_spec_is_one_line(capsys):
    assert cli.main(["summary", "CONV(D=96, F=11, S=4 P=0)"]) == 2
    assert capsys.readouterr().err == "cnnkit: error: col 21: expected ',' or ')', found 'P'\n"


def test_bad_input_option(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["summary", "lenet5", "--input", "3xx"])
    assert stop.value.code == 2
    assert "expected CxHxW such as 3x224x224, got '3xx'" in capsys.readouterr().err


def test_resume_from_a_damaged_checkpoint_overwrites_nothing(capsys, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    last = run / "last.npz"
    last.write_bytes(last.read_bytes()[:300])  # truncated
    damaged = last.read_bytes()
    assert cli.main(["train", "--epochs", "2", "--quiet", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last.npz: not a readable cnnkit checkpoint" in err
    assert last.read_bytes() == damaged
    last.write_text("not a checkpoint at all")
    assert cli.main(["train", "--quiet", "--out", str(run), "--resume"]) == 2
    assert "not a readable cnnkit checkpoint" in capsys.readouterr().err


def test_diverging_run_stops_with_exit_2_and_names_the_step(capsys, tmp_path):
    args = ["train", "--epochs", "1", "--lr", "1e6", "--schedule", "constant", "--quiet"]
    assert cli.main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error: step ") and err.count("\n") == 1
    assert "the learning rate 1e+06 is probably too high, try --lr 100000" in err


def test_init_option_reinitialises_the_weights(capsys, tmp_path):
    for scheme in ("default", "he"):
        out = str(tmp_path / scheme)
        assert cli.main(["train", "--epochs", "1", "--quiet", "--init", scheme, "--out", out]) == 0
    capsys.readouterr()
    settings = json.loads((tmp_path / "he" / "settings.json").read_text())
    assert settings["recipe"]["init"] == "he"


def test_explain_equivariance_of_a_trained_run(capsys, tmp_path):
    run = str(tmp_path / "run")
    assert cli.main(["train", "--epochs", "1", "--quiet", "--out", run]) == 0
    capsys.readouterr()
    assert cli.main(["explain", "equivariance", run, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    assert "CONV(D=32, F=3, S=1, P=1)" in text and "POOL(max, F=2, S=2)" in text


def test_predict_an_image_file(capsys, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    run = str(tmp_path / "run")
    assert cli.main(["train", "--epochs", "1", "--quiet", "--out", run]) == 0
    capsys.readouterr()
    from cnnkit.data import load_optdigits

    images, _ = load_optdigits("test")
    path = tmp_path / "digit.png"
    image_module.fromarray((images[0, 0] * 255).round().astype(np.uint8), mode="L").save(path)
    assert cli.main(["predict", run, str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["input"] == str(path) and len(result["top"]) == 3
    probabilities = [guess["probability"] for guess in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001
    wrong = tmp_path / "big.png"
    image_module.new("L", (9, 8)).save(wrong)
    assert cli.main(["predict", run, str(wrong)]) == 2
    assert "the image is 8x9 but the network takes 8x8; resize it first" in capsys.readouterr().err
