"""Runs that lie about their size or their place: a small file must never make cnnkit build or
read something large, and a resume state that could not have been reached is refused."""

from __future__ import annotations

import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnkit import cli
from cnnkit.errors import DataError
from cnnkit.train import checkpoint, load_run

ARCH = "INPUT(1x8x8) - CONV(D=2, F=3, P=1) - RELU - POOL(F=2) - FC(10)"
TRAIN = ["train", "--arch", ARCH, "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run stopped at an epoch's end of a 3-epoch plan (its last.npz is 'at step 0')."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main([*TRAIN, "--epochs", "1", "--out", str(run_dir)]) == 0
    header = checkpoint.read_header(run_dir / "last.npz")
    assert header["step_in_epoch"] == 0
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def rewrite(path: Path, header_changes=None, members=None, *, compressed=False) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop(checkpoint.HEADER_KEY).tobytes())
    header.update(header_changes or {})
    arrays.update(members or {})
    arrays[checkpoint.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def one_line(argv, capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnkit: error: "), err
    return err


def test_a_huge_order_is_never_read_by_evaluate_and_refused_by_length_on_resume(run_dir, capsys):
    order = np.zeros(2**25, np.int8)  # 32 MiB declared, a few KiB deflated
    rewrite(run_dir / "last.npz", members={"extra/order": order}, compressed=True)
    assert (run_dir / "last.npz").stat().st_size < 2**20
    tracemalloc.start()
    try:
        load_run(run_dir, "last")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    err = one_line([*TRAIN, "--epochs", "3", "--out", str(run_dir), "--resume"], capsys)
    assert "extra/order has 33,554,432 entries, but the training set has 3,441 examples" in err


def test_an_order_of_the_wrong_length_names_both_lengths(run_dir, capsys):
    rewrite(
        run_dir / "last.npz", members={"extra/order": np.random.default_rng(0).permutation(100)}
    )
    err = one_line([*TRAIN, "--epochs", "3", "--out", str(run_dir), "--resume"], capsys)
    assert "extra/order has 100 entries, but the training set has 3,441 examples" in err


def test_a_spec_far_larger_than_the_file_is_refused_before_it_is_built(run_dir, capsys):
    spec = "INPUT(1x512x512) - FC(1000) - FC(10)"  # 262 million weights from a 9 KB file
    rewrite(run_dir / "best.npz", {"spec": spec, "input_shape": [1, 512, 512]})
    tracemalloc.start()
    try:
        err = one_line(["evaluate", str(run_dir)], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    assert "its architecture has 262,155,010 parameters but the file holds 350 weight" in err


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"loss_sum": int("9" * 400)}, "header field loss_sum is 999"),
        ({"mean": [int("9" * 400)]}, "header field mean"),
        ({"std": [1e-300]}, "header field std is 1e-300"),
        ({"std": [1e308]}, "header field std is 1e+308"),
        ({"mean": [1e308]}, "header field mean is 1e+308"),
    ],
)
def test_numbers_no_float32_normalisation_can_hold_are_refused(run_dir, capsys, changes, fragment):
    rewrite(run_dir / "best.npz", changes)
    assert fragment in one_line(["evaluate", str(run_dir)], capsys)
    with pytest.raises(DataError):
        checkpoint.load(run_dir / "best.npz")


def test_float64_weights_beyond_float32_are_refused_as_infinite(run_dir, capsys):
    rewrite(run_dir / "best.npz", members={"model/0.weight": np.full((2, 1, 3, 3), 1e39)})
    err = one_line(["evaluate", str(run_dir)], capsys)
    assert "model/0.weight holds 18 NaN or infinite values of 18 (as float32)" in err


@pytest.mark.parametrize(
    "changes",
    [
        {"step_in_epoch": 500, "step": 554, "seen": 32000},
        {"step_in_epoch": 3, "step": 57, "seen": 100},
        {"step": 2},
    ],
)
def test_a_place_in_the_epoch_that_could_not_be_reached_is_refused(run_dir, capsys, changes):
    rewrite(run_dir / "last.npz", changes)
    err = one_line([*TRAIN, "--epochs", "3", "--out", str(run_dir), "--resume"], capsys)
    assert "the file was edited or damaged: restore it, or start the run again" in err


def test_a_diverging_run_is_one_line_without_numpy_warnings(tmp_path, capsys):
    err = one_line([*TRAIN, "--epochs", "1", "--lr", "1e30", "--out", str(tmp_path / "r")], capsys)
    assert "the loss became" in err and "RuntimeWarning" not in err
    err = one_line([*TRAIN, "--momentum", "1e300", "--out", str(tmp_path / "s")], capsys)
    assert "--momentum must be a number in [0, 1), got 1e+300" in err


def test_a_crafted_zip_member_is_still_refused_by_its_declared_size(run_dir):
    """The zip's own sizes are checked against the .npy header, not trusted."""
    with zipfile.ZipFile(run_dir / "best.npz", "a") as archive:
        archive.writestr("extra/order.npy", b"\x93NUMPY\x01\x00v\x00" + b" " * 118)
    with pytest.raises(DataError):
        load_run(run_dir)


def test_a_zip_needing_a_newer_zip_version_is_one_line(run_dir, capsys):
    data = bytearray((run_dir / "best.npz").read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[entry + 6 : entry + 8] = (64).to_bytes(2, "little")  # "version needed": 6.4
    (run_dir / "best.npz").write_bytes(bytes(data))
    err = one_line(["evaluate", str(run_dir)], capsys)
    assert "best.npz" in err and "zip file version 6.4" in err
