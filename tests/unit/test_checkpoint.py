"""Checkpoint files: round trips, atomic writes, and refusal of damaged or foreign files."""

import json
import zipfile

import numpy as np
import pytest

from cnnkit import DataError
from cnnkit.train import checkpoint


def sample(tmp_path, name="run.npz"):
    model = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.ones(2)}
    optimizer = {"type": "SGD", "lr": 0.1, "step": 3, "momentum_buffer.0": np.full((2, 3), 0.5)}
    extra = {"order": np.array([2, 0, 1])}
    path = checkpoint.save(tmp_path / name, {"epoch": 2, "spec": "RELU"}, model, optimizer, extra)
    return path, model, optimizer, extra


def test_round_trip(tmp_path):
    path, model, optimizer, extra = sample(tmp_path)
    loaded = checkpoint.load(path)
    assert loaded.header["format"] == checkpoint.FORMAT
    assert loaded.header["epoch"] == 2 and loaded.header["spec"] == "RELU"
    for name, value in model.items():
        np.testing.assert_array_equal(loaded.model[name], value)
        assert loaded.model[name].dtype == value.dtype
    restored = checkpoint.optimizer_state(loaded)
    assert restored["type"] == "SGD" and restored["step"] == 3 and restored["lr"] == 0.1
    np.testing.assert_array_equal(restored["momentum_buffer.0"], optimizer["momentum_buffer.0"])
    np.testing.assert_array_equal(loaded.extra["order"], extra["order"])


def test_file_is_a_plain_npz_without_pickles(tmp_path):
    path, *_ = sample(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        assert checkpoint.HEADER_KEY in archive.files
        assert json.loads(archive[checkpoint.HEADER_KEY].tobytes())["epoch"] == 2


def test_no_temporary_files_are_left(tmp_path):
    sample(tmp_path)
    sample(tmp_path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path, *_ = sample(tmp_path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        sample(tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def test_truncated_file(tmp_path):
    path, *_ = sample(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"run\.npz: not a readable cnnkit checkpoint"):
        checkpoint.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.npz: not a readable cnnkit checkpoint"):
        checkpoint.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    with pytest.raises(DataError, match=r"plain\.npz: an \.npz archive, but not a cnnkit"):
        checkpoint.load(plain)
    with pytest.raises(DataError, match=r"missing\.npz: no such checkpoint file"):
        checkpoint.load(tmp_path / "missing.npz")


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    header = np.frombuffer(json.dumps({"format": checkpoint.FORMAT}).encode(), np.uint8)
    np.savez(path, __header__=header, **{"model/x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError, match="not a readable cnnkit checkpoint"):
        checkpoint.load(path)


def test_other_format_version(tmp_path):
    path = tmp_path / "future.npz"
    header = np.frombuffer(json.dumps({"format": "cnnkit.checkpoint/9"}).encode(), np.uint8)
    np.savez(path, __header__=header)
    with pytest.raises(DataError, match=r"format 'cnnkit\.checkpoint/9' is not"):
        checkpoint.load(path)


def test_damaged_header(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, __header__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(DataError, match="the checkpoint header is damaged"):
        checkpoint.load(path)
    assert zipfile.is_zipfile(path)
