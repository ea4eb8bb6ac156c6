"""A run directory under faults: two trains at once, a run in the way, files left by kills, a
full disk, a resume that changes the recipe, a finished run, a log nobody watches."""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from cnnkit import cli, from_spec
from cnnkit.cli.progress import ProgressReporter
from cnnkit.data import load_dataset
from cnnkit.errors import TrainingError
from cnnkit.train import Recipe, Reporter, checkpoint, fit
from cnnkit.train.rundir import RunLock

ARCH = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RELU - POOL(F=2) - FC(10)"


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset("optdigits", validation=0.1, seed=0)
    return replace(data, train_images=data.train_images[:256], train_labels=data.train_labels[:256])


def model():
    return from_spec(ARCH, rng=np.random.default_rng(0))


def train(data, run_dir, reporter=None, resume=False, **settings):
    recipe = Recipe(**{"epochs": 2, "batch_size": 16, **settings})
    return fit(model(), data, recipe=recipe, run_dir=run_dir, reporter=reporter, resume=resume)


class StopAt(Reporter):
    """Ctrl-C right after an epoch's files are written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def epoch_end(self, record, epochs):
        if record.epoch == self.epoch:
            raise KeyboardInterrupt


def cli_train(capsys, *args):
    try:
        code = cli.main(["train", "--arch", ARCH, "--epochs", "2", "--quiet", *args])
    except SystemExit as error:  # argparse's usage errors: one line, exit code 2
        code = error.code
    out, err = capsys.readouterr()
    return code, out, err


class Notes(Reporter):
    def __init__(self):
        self.notes = []

    def note(self, text):
        self.notes.append(text)


# -- one process per run directory ------------------------------------------------------------


def test_a_second_train_on_a_locked_directory_is_refused_naming_the_pid(tiny, tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(TrainingError, match=rf"another cnnkit train \(pid {os.getpid()}\)"):
            train(tiny, tmp_path)
    assert not (tmp_path / "last.npz").exists()
    train(tiny, tmp_path)  # free again once the holder lets go
    assert (tmp_path / "last.npz").exists()


def test_the_cli_refuses_in_one_line_while_another_process_holds_the_run(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = subprocess.run(
            [sys.executable, "-m", "cnnkit", "train", "--arch", ARCH, "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert f"another cnnkit train (pid {holder.pid})" in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # the system releases a killed holder's lock
        holder.wait()
    with RunLock(tmp_path):
        pass


HOLD = """
import sys, time
from pathlib import Path
from cnnkit.train.rundir import RunLock
with RunLock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


# -- never replace a run unasked ---------------------------------------------------------------


def test_a_fresh_train_never_replaces_a_run_without_force(tiny, tmp_path, capsys):
    code, _, _ = cli_train(capsys, "--out", str(tmp_path))
    assert code == 0
    (tmp_path / "last.npz").unlink()  # a run with only last.npz missing
    best = (tmp_path / "best.npz").read_bytes()
    code, out, err = cli_train(capsys, "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith(f"cnnkit: error: {tmp_path} already holds a run (best.npz, history.json")
    assert "--force" in err and err.count("\n") == 1
    assert (tmp_path / "best.npz").read_bytes() == best
    code, _, _ = cli_train(capsys, "--out", str(tmp_path), "--force")
    assert code == 0 and (tmp_path / "last.npz").exists()


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("mine\n")
    code, _, err = cli_train(capsys, "--out", str(target))
    assert code == 2
    assert (
        err == f"cnnkit: error: --out {target}: is a file, not a directory; choose another --out\n"
    )
    assert target.read_text() == "mine\n"


def test_temporary_files_left_by_kills_are_removed_when_the_run_is_next_opened(tiny, tmp_path):
    train(tiny, tmp_path, epochs=1)
    for name in (".last.npz.0123abcd.tmp", ".history.json.deadbeef.tmp"):
        (tmp_path / name).write_bytes(b"x" * 1000)
    (tmp_path / "notes.tmp").write_text("the user's own file\n")
    notes = Notes()
    train(tiny, tmp_path, reporter=notes, resume=True, epochs=2)
    assert "removed 2 temporary files left by interrupted writes" in notes.notes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == ["notes.tmp"]


# -- a full disk --------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_the_run_stays_intact(tiny, tmp_path, monkeypatch, capsys):
    code, _, _ = cli_train(capsys, "--out", str(tmp_path), "--epochs", "1")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != ".lock"}
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cnnkit.atomic.os.fsync", full)
    code, _out, err = cli_train(capsys, "--out", str(tmp_path), "--resume", "--epochs", "2")
    monkeypatch.setattr("cnnkit.atomic.os.fsync", real_fsync)
    assert code == 2 and err.count("\n") == 1
    assert "could not be written (no space left on device)" in err
    assert "the run is intact as of epoch 1 (last.npz)" in err and "--resume" in err
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != ".lock"}
    assert after.keys() == before.keys()  # no temporary file left
    assert after["last.npz"] == before["last.npz"]


# -- what a resume may change -------------------------------------------------------------------


def test_a_resume_that_changes_the_batch_size_is_refused_naming_it(tiny, tmp_path):
    train(tiny, tmp_path, epochs=1)
    with pytest.raises(TrainingError, match=r"resuming with --batch-size 32 \(the run's: 16\)"):
        fit(model(), tiny, recipe=Recipe(epochs=2, batch_size=32), run_dir=tmp_path, resume=True)


def test_more_epochs_on_resume_say_what_changes_and_a_finished_run_says_so(tiny, tmp_path):
    train(tiny, tmp_path, epochs=2)
    notes = Notes()
    history = train(tiny, tmp_path, reporter=notes, resume=True, epochs=2)
    assert len(history) == 2
    assert any("is finished (2 of 2 epochs); nothing to train" in n for n in notes.notes)
    notes = Notes()
    history = train(tiny, tmp_path, reporter=notes, resume=True, epochs=3)
    assert len(history) == 3
    assert any(
        n.startswith(
            "--epochs 3: the run was planned for 2 epochs and has done them; the cosine "
            "schedule is planned again over 3, so training goes on from step 33 at learning "
            "rate 0.0125 (the run's last step had "
        )
        for n in notes.notes
    )
    with pytest.raises(TrainingError, match=r"has completed 3 epochs; --epochs 1 would undo"):
        fit(model(), tiny, recipe=Recipe(epochs=1, batch_size=16), run_dir=tmp_path, resume=True)


def test_resume_repairs_history_and_best_left_behind_by_a_kill(tiny, tmp_path):
    expected = tmp_path / "expected"
    train(tiny, expected, epochs=2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny, run, reporter=StopAt(epoch=1))
    epoch_one = {name: (run / name).read_bytes() for name in ("best.npz", "history.json")}
    train(tiny, run, resume=True)
    for name, data in epoch_one.items():  # as an older cnnkit killed after last.npz left it
        (run / name).write_bytes(data)
    notes = Notes()
    train(tiny, run, reporter=notes, resume=True, epochs=2)
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    best, want = checkpoint.load(run / "best.npz"), checkpoint.load(expected / "best.npz")
    assert best.header["epoch"] == want.header["epoch"] == 2
    for key, array in want.model.items():
        np.testing.assert_array_equal(best.model[key], array)
    assert "best.npz restored to epoch 2 from last.npz" in notes.notes


# -- a log nobody watches -----------------------------------------------------------------------


def test_a_log_gets_a_progress_line_at_a_steady_interval():
    out, err = io.StringIO(), io.StringIO()  # neither is a terminal
    reporter = ProgressReporter(out=out, err=err, interval=0.01)
    reporter.epoch_start(0, 3, 100)
    for done in range(1, 4):
        time.sleep(0.02)
        reporter.step(done, 100, 0.5, 0.75, 1234.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and err.getvalue() == ""
    assert lines[0].startswith("epoch 1/3 1/100  loss 0.5000  acc 75.00%  1,234 ex/s  ETA ")
    quiet = ProgressReporter(out=io.StringIO(), err=io.StringIO())  # 30 s by default
    quiet.epoch_start(0, 3, 100)
    quiet.step(1, 100, 0.5, 0.75, 1234.0)
    assert quiet.out.getvalue() == ""


# -- exhaustion and arguments -------------------------------------------------------------------


def test_a_batch_that_cannot_fit_in_memory_is_refused_with_one_that_does(tiny, monkeypatch):
    from cnnkit.train import budget

    one, two = (budget.step_bytes(model(), (1, 8, 8), batch) for batch in (1, 2))
    per_example, fixed = two - one, 2 * one - two
    available = fixed + 100 * per_example  # room for 75 examples, by the headroom
    monkeypatch.setattr(budget, "available_memory", lambda: available)
    with pytest.raises(TrainingError) as refused:
        train(tiny, None, batch_size=200)
    message = str(refused.value)
    assert message.startswith("--batch-size 200: a training step of 200 examples needs about ")
    assert f"{available:,} bytes" in message
    fits = int(message.rsplit("use --batch-size ", 1)[1].split()[0])
    assert fits == int((available * budget.HEADROOM - fixed) // per_example)
    budget.check_batch(model(), (1, 8, 8), fits, 256)  # the batch it offers is accepted
    with pytest.raises(TrainingError):
        budget.check_batch(model(), (1, 8, 8), fits + 1, 256)


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["--seed", str(2**64)], f"--seed must be from 0 to 2**64 - 1, got {2**64}"),
        (["--warmup-epochs", "5"], "--warmup-epochs must be less than epochs = 2, got 5"),
        (["--augment-shift", "8"], "shifts of up to 8 pixels can move 8x8 images out of view"),
        (["--momentum", "-1"], "--momentum must be a number in [0, 1), got -1.0"),
        (["--lr", "inf"], "argument --lr: must be a finite number, got inf"),
        (["--out", "~nosuchuser/run"], "--out ~nosuchuser/run: no user 'nosuchuser'"),
        (["--data", "mnist:~nosuchuser/x"], "mnist:~nosuchuser/x: no user 'nosuchuser'"),
        (["--out", "/proc/nosuch/run"], "the run directory cannot be created"),
        (["--resume", "--force"], "--resume continues the run in --out and --force replaces it"),
        (["--validation", "2"], "argument --validation: expected a share from 0 to below 1"),
        (["--out", ""], "--out '': an empty path"),
        (["--out", "x" * 300], "file name too long"),
        (["--weight-decay", "2"], "--weight-decay must be a number in [0, 1], got 2.0"),
        (["--epochs", str(10**30)], "--epochs must be at most 1,000,000"),
        (["--arch", "/proc/self/status"], "--arch /proc/self/status: is a path; --arch takes"),
        (["--arch", "CONV(D=4) - FCC(10)"], "--arch 'CONV(D=4) - FCC(10)': col 1: CONV needs F"),
    ],
)
def test_train_arguments_are_one_line(arguments, line, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli_train(capsys, *arguments)
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnkit: error: ")
    assert line in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "~nosuchuser").exists()


def test_json_lines_get_a_progress_event_at_a_steady_interval():
    from cnnkit.cli.progress import JsonLinesReporter

    out = io.StringIO()
    reporter = JsonLinesReporter(out=out, interval=0.01)
    reporter.epoch_start(1, 3, 50)
    time.sleep(0.02)
    reporter.step(7, 50, 0.25, 0.5, 100.0)
    reporter.step(8, 50, 0.25, 0.5, 100.0)  # too soon after the last line
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events == [
        {
            "event": "progress",
            "epoch": 2,
            "epochs": 3,
            "step": 7,
            "steps": 50,
            "loss": 0.25,
            "accuracy": 0.5,
            "examples_per_second": 100.0,
        }
    ]


def test_a_wrong_cnnkit_jit_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CNNKIT_JIT": "x"},
    )
    assert result.returncode == 2
    assert result.stderr == (
        "cnnkit: error: CNNKIT_JIT='x': use 0 (NumPy only) or 1 (compiled loops, the default)\n"
    )


def test_an_architecture_string_longer_than_a_file_name_is_still_a_string(capsys):
    spec = "INPUT(1x8x8) - " + " - ".join(["RELU"] * 60) + " - FC(10)"
    assert len(spec) > 255
    assert cli.main(["summary", spec]) == 0
    assert "FC(10)" in capsys.readouterr().out
