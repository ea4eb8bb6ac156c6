"""A run killed at any file operation and resumed ends exactly as a run never interrupted:
the same last.npz and best.npz (every array and header field but the timings), the same
history, and no temporary file left behind.

Each case runs ``cnnkit train`` in a child process that dies at its K-th file operation
(``killer.py``: as SIGKILL would, with no cleanup), then ``cnnkit train --resume`` until the
run is complete. ``make test`` kills at a sample of the operations of an epoch's end;
``make faults`` kills at every operation of the whole run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit.atomic import is_temporary
from cnnkit.train import checkpoint

KILLER = Path(__file__).with_name("killer.py")
ARCH = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RELU - POOL(F=2) - FC(10)"
TRAIN = ["train", "--arch", ARCH, "--epochs", "3", "--batch-size", "512", "--quiet"]
TIMINGS = {"seconds", "examples_per_second"}
ENV = {**os.environ, "CNNKIT_JIT": "0"}  # the same engine in every process, started quickly


def run(kill_at: int, out: Path, trace: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(KILLER), str(kill_at), str(trace), "--", *TRAIN, *extra]
    return subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=300
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(the uninterrupted run's directory, the labels of its file operations)."""
    folder = tmp_path_factory.mktemp("reference")
    result = run(0, folder / "run", folder / "trace.txt")
    assert result.returncode == 0, result.stderr
    return folder / "run", (folder / "trace.txt").read_text().split("\n")[:-1]


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def assert_same_run(run_dir: Path, expected: Path) -> None:
    for name in ("last.npz", "best.npz"):
        got, want = checkpoint.load(run_dir / name), checkpoint.load(expected / name)
        assert without_timings(got.header) == without_timings(want.header), name
        for group in ("model", "optimizer", "extra"):
            assert getattr(got, group).keys() == getattr(want, group).keys()
            for key, array in getattr(want, group).items():
                np.testing.assert_array_equal(getattr(got, group)[key], array, err_msg=key)
    history = json.loads((run_dir / "history.json").read_text())
    assert without_timings(history) == without_timings(
        json.loads((expected / "history.json").read_text())
    )
    csv_rows = (run_dir / "history.csv").read_text().splitlines()
    assert len(csv_rows) == len(history) + 1
    assert not [p.name for p in run_dir.iterdir() if is_temporary(p.name)]


def kill_and_resume(kill_at: int, tmp_path: Path, expected: Path) -> None:
    out, trace = tmp_path / "run", tmp_path / "trace.txt"
    killed = run(kill_at, out, trace)
    assert killed.returncode == 137, killed.stderr
    resumed = run(-1, out, trace, "--resume")
    if "no run to resume here" in resumed.stderr:  # killed before the run had begun
        resumed = run(-1, out, trace)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""
    assert_same_run(out, expected)


def epoch_end_operations(labels: list[str]) -> list[int]:
    """1-based indices of the operations from the second epoch's best.npz write to its last.npz
    rename and the directory's fsync after it."""
    renames = [i for i, label in enumerate(labels) if label == "rename -> last.npz"]
    start = renames[0] + 2  # after epoch 1's commit and its directory fsync
    end = renames[1] + 2
    return list(range(start + 1, end + 1))


def test_the_reference_run_writes_best_then_history_then_last(reference):
    _, labels = reference
    renames = [label for label in labels if label.startswith("rename")]
    assert renames[:2] == ["rename -> settings.json", "rename -> spec.txt"]
    epoch = ["rename -> best.npz", "rename -> history.json", "rename -> history.csv"]
    epoch.append("rename -> last.npz")
    assert renames[2:6] == epoch  # epoch 1 is always the best so far


SAMPLE = ["half of an archive written", "rename -> history.json", "rename -> last.npz", "fsync"]


@pytest.mark.parametrize("label", SAMPLE)
def test_a_kill_at_an_epoch_end_resumes_bit_identically(reference, tmp_path, label):
    expected, labels = reference
    points = [i for i in epoch_end_operations(labels) if labels[i - 1] == label]
    assert points, f"no {label!r} in the second epoch's end"
    kill_and_resume(points[len(points) // 2], tmp_path, expected)


@pytest.mark.sweep
def test_a_kill_at_every_file_operation_resumes_bit_identically(reference, tmp_path):
    expected, labels = reference
    for index in range(1, len(labels) + 1):
        case = tmp_path / f"kill-{index}"
        case.mkdir()
        kill_and_resume(index, case, expected)
