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
    with pytest.raises(DataError, match=r"model/x is declared as object .*only plain numeric"):
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


def test_fortran_order_and_big_endian_arrays_read_back_exactly(tmp_path):
    w = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    model = {"w": w, "b": np.arange(3, dtype=">f4")}
    path = checkpoint.save(tmp_path / "orders.npz", {"epoch": 0}, model)
    loaded = checkpoint.load(path)
    np.testing.assert_array_equal(loaded.model["w"], w)
    np.testing.assert_array_equal(loaded.model["b"], model["b"])
    assert loaded.model["b"].dtype == np.float32  # native byte order


class Tiny:
    """What load(model=...) asks of a model: state_dict() and parameters()."""

    class P:
        def __init__(self, shape):
            self.data = np.zeros(shape, np.float32)

    def state_dict(self):
        return {"0.weight": np.zeros((2, 3), np.float32), "0.bias": np.zeros(2, np.float32)}

    def parameters(self):
        return [self.P((2, 3)), self.P((2,))]


def test_load_with_a_model_checks_every_declared_member_against_it(tmp_path):
    model = {"0.weight": np.ones((2, 3), np.float32), "0.bias": np.ones(2, np.float32)}
    state = {"type": "SGD", "momentum_buffer.0": np.zeros((2, 3), np.float32)}
    path = checkpoint.save(tmp_path / "a.npz", {}, model, state, {"order": np.arange(4)})
    loaded = checkpoint.load(path, model=Tiny())
    np.testing.assert_array_equal(loaded.model["0.weight"], model["0.weight"])
    state["momentum_buffer.1"] = np.zeros(3, np.float32)
    checkpoint.save(path, {}, model, state)
    with pytest.raises(DataError, match=r"optimizer/momentum_buffer\.1 is float32 \(3,\), the"):
        checkpoint.load(path, model=Tiny())
    checkpoint.save(path, {}, model, {}, {"order": np.zeros((2, 2), np.int64)})
    with pytest.raises(DataError, match=r"unexpected extra entry 'order' \(int64 \(2, 2\)\)"):
        checkpoint.load(path, model=Tiny())
    checkpoint.save(path, {}, {"0.weight": model["0.weight"]})
    with pytest.raises(DataError, match=r"missing \['0\.bias'\], unexpected nothing"):
        checkpoint.load(path, model=Tiny())


def test_read_header_checks_the_header_and_the_required_fields(tmp_path):
    path, *_ = sample(tmp_path)
    assert checkpoint.read_header(path, ("epoch",))["epoch"] == 2
    with pytest.raises(DataError, match=r"run\.npz: header field classes is missing; the file"):
        checkpoint.read_header(path, ("classes",))
    checkpoint.save(path, {"epoch": True}, {})
    with pytest.raises(DataError, match=r"header field epoch is True, expected an integer >= 0"):
        checkpoint.read_header(path)
