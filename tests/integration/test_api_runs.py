"""A run trained from Python (cnnkit.fit with run_dir) is a run like one of `cnnkit train`: its
header says where its data came from and how it was split, so every command finds it again."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit import cli
from cnnkit.train import checkpoint
from cnnkit.train.runs import run_data

ARCH = "INPUT(1x8x8) - CONV(D=2, F=3, P=1) - RELU - POOL(F=2) - FC(10)"


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    data = cnnkit.load_dataset("optdigits", validation=0.2, seed=3)
    model = cnnkit.from_spec(ARCH, rng=np.random.default_rng(0))
    run_dir = tmp_path_factory.mktemp("api") / "run"
    cnnkit.fit(model, data, epochs=1, seed=5, run_dir=run_dir)  # split seed 3, recipe seed 5
    return run_dir, data


def test_the_header_records_the_source_and_the_split(api_run):
    run_dir, _ = api_run
    header = checkpoint.read_header(run_dir / "best.npz")
    assert (header["data"], header["validation"], header["split_seed"]) == ("optdigits", 0.2, 3)
    assert header["recipe"]["seed"] == 5
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["split_seed"] == 3


def test_the_run_finds_its_own_split_again(api_run):
    run_dir, data = api_run
    found, source = run_data(checkpoint.read_header(run_dir / "best.npz"))
    assert source == "optdigits"
    assert found.fingerprint == data.fingerprint  # the same three splits, not the recipe seed's


def test_commands_read_a_run_made_in_python(api_run, tmp_path):
    run_dir, _ = api_run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["evaluate", str(run_dir)]) == 0
        assert cli.main(["explore", str(run_dir), "--out", str(tmp_path / "page.html")]) == 0
    assert "accuracy" in out.getvalue()
    assert (tmp_path / "page.html").stat().st_size > 10_000


@pytest.mark.parametrize("value", ["three", -1, 2.5])
def test_a_hostile_split_seed_is_one_line(api_run, tmp_path, capsys, value):
    run_dir, _ = api_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    path = copy / "best.npz"
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop(checkpoint.HEADER_KEY).tobytes())
    header["split_seed"] = value
    arrays[checkpoint.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    assert cli.main(["evaluate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "split_seed" in err, err


def test_a_data_set_made_from_arrays_records_no_source():
    from cnnkit.train.runs import data_source

    data = cnnkit.load_dataset("optdigits")
    assert data_source(data)["data"] == "optdigits"
    assert data_source(object()) == {}
