"""The command line through ``main([...])``, and once as a real process."""

import subprocess
import sys

import pytest

from cnnkit import ShapeError, cli


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "usage: cnnkit" in capsys.readouterr().out


def test_demo_trains_and_reports_test_accuracy(capsys):
    assert cli.main(["demo", "--epochs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    losses = [
        float(line.split("loss ")[1].split()[0]) for line in out.splitlines() if "loss " in line
    ]
    assert len(losses) == 2 and losses[1] < losses[0]
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 85


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
        cli.main(["demo", "--epochs", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "must be > 0" in err and "Traceback" not in err


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("cnnkit ")
