"""Files that lie: checkpoints, settings.json and history.json damaged, edited or crafted.

Every case ends in one cnnkit error line naming the file (exit 2 through the CLI), never a
traceback and never an allocation sized by what a file claims. The run they start from is real:
``cnnkit train`` for one epoch of a tiny network on optdigits.
"""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit import cli
from cnnkit.errors import CnnkitError, DataError, TrainingError
from cnnkit.train import checkpoint, load_run
from cnnkit.train.header import validate_resume
from cnnkit.train.loop import _restore
from cnnkit.train.runfiles import read_history, read_settings

ARCH = "CONV(D=2, F=3, P=1) - RELU - POOL(F=2) - FC(10)"
FAST = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SWEEP = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert (
        cli.main(["train", "--arch", ARCH, "--epochs", "1", "--out", str(run_dir), "--quiet"]) == 0
    )
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def contents(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, {member name: array}) of a checkpoint, read the trusted way."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return json.loads(arrays.pop(checkpoint.HEADER_KEY).tobytes()), arrays


def write(path: Path, header, arrays: dict[str, np.ndarray], *, raw: bytes | None = None) -> None:
    """A checkpoint with exactly this header (any JSON value) and these members."""
    data = raw if raw is not None else json.dumps(header).encode()
    np.savez(path, __header__=np.frombuffer(data, np.uint8), **arrays)


def edit(path: Path, header_changes: dict | None = None, members: dict | None = None) -> None:
    """Rewrite the checkpoint with header fields and members replaced (a member given as None
    is removed)."""
    header, arrays = contents(path)
    header.update(header_changes or {})
    for name, value in (members or {}).items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    write(path, header, arrays)


def fails(argv: list[str], capsys, match: str) -> str:
    """Run the CLI: exit 2 and one line on stderr matching ``match``."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(match, lines[0]), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Bounded reads: sizes are checked before memory is spent


def npy_bytes(shape, dtype="<f4", data: bytes = b"") -> bytes:
    """A .npy member whose header declares ``shape`` but which holds only ``data``."""
    stream = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + data


def test_a_member_claiming_a_terabyte_is_refused_before_any_allocation(run_dir, capsys):
    best = run_dir / "best.npz"
    header, arrays = contents(best)
    del arrays["model/0.weight"]
    write(best, header, arrays)
    with zipfile.ZipFile(best, "a") as archive:
        archive.writestr("model/0.weight.npy", npy_bytes((250_000_000_000,), data=b"\0" * 16))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"model/0\.weight declares float32 \(250000000000,\)"):
            checkpoint.load(best)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: model/0\.weight declares")


def test_a_zip_entry_claiming_more_than_the_file_is_refused(run_dir):
    best = run_dir / "best.npz"
    header, _ = contents(best)
    write(best, header, {})
    stored = npy_bytes((4,), data=b"\0" * 16)
    info = zipfile.ZipInfo("model/huge.npy")
    with zipfile.ZipFile(best, "a") as archive:
        archive.writestr(info, stored)
    data = bytearray(best.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    size = len(stored).to_bytes(4, "little")
    # the central directory's sizes of the last member: 10^9 bytes on a tiny file
    start = central + 20
    assert data[start : start + 4] == size and data[start + 4 : start + 8] == size
    data[start : start + 8] = (10**9).to_bytes(4, "little") * 2
    best.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"model/huge declares 1,000,000,000 bytes stored in"):
        checkpoint.load(best)


def test_compressed_members_are_bounded_by_their_declared_total(tmp_path, monkeypatch):
    from cnnkit.train import archive

    path = tmp_path / "deflated.npz"
    header = np.frombuffer(json.dumps({"format": checkpoint.FORMAT}).encode(), np.uint8)
    np.savez_compressed(path, __header__=header, **{"model/w": np.zeros(2**20, np.float32)})
    assert checkpoint.load(path).model["w"].shape == (2**20,)  # a fair file is read
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 2**20)
    with pytest.raises(DataError, match=r"the arrays declare 4,194,\d+ bytes in all, more than"):
        checkpoint.load(path)


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ("junk.npy", r"unexpected entry 'junk' in the checkpoint \(only __header__"),
        ("model/0.weight", r"unexpected entry 'model/0\.weight' in the checkpoint"),
        ("weights/x.npy", r"unexpected entry 'weights/x'"),
    ],
)
def test_unknown_members_are_refused(run_dir, capsys, member, match):
    best = run_dir / "best.npz"
    with zipfile.ZipFile(best, "a") as archive:
        archive.writestr(member, npy_bytes((2,), data=b"\0" * 8))
    with pytest.raises(DataError, match=match):
        checkpoint.load(best)
    fails(["evaluate", str(run_dir)], capsys, match)


def test_members_the_architecture_does_not_have_are_refused_unread(run_dir, capsys, monkeypatch):
    from cnnkit.train import archive

    read, original = [], archive.Archive.read
    monkeypatch.setattr(
        archive.Archive, "read", lambda self, m: read.append(m.name) or original(self, m)
    )
    edit(run_dir / "best.npz", members={"extra/junk": np.zeros(1000, np.int64)})
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: unexpected extra entry 'junk'")
    edit(
        run_dir / "best.npz",
        members={"extra/junk": None, "model/9.weight": np.zeros(3, np.float32)},
    )
    fails(["predict", str(run_dir), "--index", "0"], capsys, r"unexpected \['9\.weight'\]")
    assert set(read) == {"__header__"}  # the header only


def test_a_member_count_beyond_the_cap_is_refused(tmp_path, monkeypatch):
    from cnnkit.train import archive

    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    path = tmp_path / "many.npz"
    write(path, {"format": checkpoint.FORMAT}, {f"extra/{i}": np.zeros(1) for i in range(4)})
    with pytest.raises(DataError, match=r"5 members in the archive, more than a checkpoint has"):
        checkpoint.load(path)


def test_a_header_beyond_the_cap_is_refused(tmp_path, monkeypatch):
    from cnnkit.train import archive

    monkeypatch.setattr(archive, "MAX_HEADER_BYTES", 100)
    path = tmp_path / "big.npz"
    write(path, {"format": checkpoint.FORMAT, "notes": "x" * 200}, {})
    with pytest.raises(DataError, match=r"the checkpoint header declares 2\d\d bytes, more than"):
        checkpoint.load(path)


def test_non_regular_files_are_refused(tmp_path):
    import os

    fifo = tmp_path / "best.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"best\.npz: not a regular file"):
        checkpoint.load(fifo)
    with pytest.raises(DataError, match=r"zero: not a regular file"):
        checkpoint.load("/dev/zero")


# ---------------------------------------------------------------------------------------------
# Files that lie: dtypes, values and shapes


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.ones((2, 1, 3, 3), bool), r"model/0\.weight is bool, the model expects floating"),
        (np.ones((2, 1, 3, 3), np.int64), r"model/0\.weight is int64, the model expects floating"),
        (np.ones((2, 1, 3, 3), np.complex64), r"model/0\.weight is declared as complex64"),
        (np.ones((2, 1, 3, 3), "U3"), r"model/0\.weight is declared as <U3"),
        (np.zeros(3, "i4,f4"), r"model/0\.weight is declared as"),
        (np.ones((3, 1, 3, 3), np.float32), r"model/0\.weight has shape \(3, 1, 3, 3\), the model"),
        (np.full((2, 1, 3, 3), np.nan, np.float32), r"model/0\.weight holds 18 NaN or infinite"),
        (np.full((2, 1, 3, 3), np.inf, np.float32), r"model/0\.weight holds 18 NaN or infinite"),
    ],
)
def test_weights_that_lie(run_dir, capsys, value, match):
    edit(run_dir / "best.npz", members={"model/0.weight": value})
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: " + match)


def test_a_missing_weight_names_the_key(run_dir, capsys):
    edit(run_dir / "best.npz", members={"model/0.bias": None})
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: .*missing \['0\.bias'\]")


def test_a_shape_mismatch_is_found_before_reading(run_dir, monkeypatch):
    from cnnkit.train import archive

    read = []
    original = archive.Archive.read
    monkeypatch.setattr(
        archive.Archive, "read", lambda self, m: read.append(m.name) or original(self, m)
    )
    edit(run_dir / "best.npz", members={"model/4.weight": np.zeros((10, 33), np.float32)})
    with pytest.raises(DataError, match=r"model/4\.weight has shape \(10, 33\), the model expects"):
        load_run(run_dir)
    assert set(read) == {"__header__"}  # read_header, then load: the header only


def test_pickled_members_are_refused_without_unpickling(run_dir):
    edit(run_dir / "best.npz", members={"extra/order": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError, match=r"extra/order is declared as object"):
        checkpoint.load(run_dir / "best.npz")


# ---------------------------------------------------------------------------------------------
# Headers that lie


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"std": [0.0]},
            r"header field std is 0\.0, expected a list of 1 numbers \(one per input channel\), "
            r"each a finite number in \[0\.0001, 1e\+06\]",
        ),
        ({"std": [-1.0]}, r"header field std is -1\.0"),
        ({"std": [float("nan")]}, r"header field std is nan"),
        ({"std": [0.3, 0.3]}, r"header field std is \[0\.3, 0\.3\], expected a list of 1 numbers"),
        ({"mean": "0.3"}, r"header field mean is '0\.3'"),
        ({"epoch": -5}, r"header field epoch is -5, expected an integer 0\.\.1"),
        ({"epoch": 7}, r"header field epoch is 7, expected an integer 0\.\.1"),
        ({"epoch": 1.5}, r"header field epoch is 1\.5"),
        ({"step": -1}, r"header field step is -1, expected an integer >= 0"),
        ({"format": "cnnkit.checkpoint/2"}, r"format 'cnnkit\.checkpoint/2' is not 'cnnkit"),
        ({"history": {"epoch": 1}}, r"header field history holds dict, expected a list"),
        ({"history": []}, r"header field epoch is 1, expected 0, the epochs in its history"),
        ({"spec": 7}, r"header field spec is 7, expected a string"),
        ({"classes": ["a", "b"]}, r"the header names 2 classes but the network has 10 outputs"),
        ({"classes": "0123456789"}, r"header field classes is '0123456789', expected a list"),
        ({"classes": None}, r"header field classes is missing"),
        ({"input_shape": [1, 8]}, r"header field input_shape is \[1, 8\], expected \[C, H, W\]"),
        ({"input_shape": [1, 16, 16]}, r"input_shape 16x16x1 is not the input of its architecture"),
        ({"recipe": {"epochs": "2"}}, r"header field recipe\.epochs is '2', expected an integer"),
        ({"recipe": {"lr": -1}}, r"header field recipe\.lr is -1, expected a finite number > 0"),
        ({"recipe": []}, r"header field recipe is \[\], expected an object"),
        ({"validation": 2}, r"header field validation is 2, expected a finite number in \[0, 1\]"),
        ({"spec": "CONV(D=2"}, r"the run's architecture CONV\(D=2: col 9: expected"),
    ],
)
def test_headers_that_lie(run_dir, capsys, changes, match):
    edit(run_dir / "best.npz", changes)
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: .*" + match)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"{not json", r"the checkpoint header is damaged"),
        (b"[1, 2]", r"the checkpoint header is list, not a JSON object"),
        (b"\xff\xfe", r"the checkpoint header is damaged"),
        (b"[" * 100_000, r"the checkpoint header is damaged"),
        (b'{"epoch": 1' + b"0" * 5000 + b"}", r"the checkpoint header is damaged"),
    ],
)
def test_damaged_header_bytes(run_dir, capsys, raw, match):
    _, arrays = contents(run_dir / "best.npz")
    write(run_dir / "best.npz", None, arrays, raw=raw)
    fails(["report", str(run_dir)], capsys, r"best\.npz: " + match)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"rng": None}, r"header field rng is missing"),
        ({"rng": {"bit_generator": "MT19937"}}, r"header field rng is .*expected the state of a"),
        (
            {"history": [{"epoch": 1}]},
            r"header field history entry 1 has \['epoch'\], expected the fields",
        ),
        ({"seen": 10, "correct": 11}, r"header field correct is 11, expected an integer 0\.\.10"),
        ({"loss_sum": float("inf")}, r"header field loss_sum is inf, expected a finite number"),
        ({"step_in_epoch": 10**6}, r"header field step_in_epoch is 1000000, expected an integer"),
    ],
)
def test_resume_refuses_a_lying_last_checkpoint(run_dir, capsys, changes, match):
    edit(run_dir / "last.npz", changes)
    argv = ["train", "--out", str(run_dir), "--resume", "--epochs", "2", "--quiet"]
    fails(argv, capsys, r"last\.npz: " + match)


def test_resume_refuses_an_order_that_is_not_a_permutation(run_dir):
    ckpt = checkpoint.load(run_dir / "last.npz")
    with pytest.raises(DataError, match=r"last\.npz: extra/order is not a permutation"):
        validate_resume(ckpt.header, np.array([0, 0, 2]), ckpt.path)
    header, order = validate_resume(ckpt.header, np.array([2, 0, 1], np.int32), ckpt.path)
    assert order.dtype == np.int64 and header is ckpt.header


def test_the_0_1_0_run_still_loads():
    run = Path(__file__).parents[1] / "data" / "run-0.1.0"
    model, header = load_run(run)
    assert header["epoch"] == 2 and len(header["history"]) == 2
    assert read_settings(run)["recipe"]["epochs"] == 2
    assert [row["epoch"] for row in read_history(run)] == [1, 2]
    ckpt = checkpoint.load(run / "last.npz", model=model[1:])
    validate_resume(ckpt.header, ckpt.extra.get("order"), ckpt.path)


# ---------------------------------------------------------------------------------------------
# Damaged run directories: settings.json and history.json


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("history.json", "not json", r"history\.json: not valid JSON .*; the file was edited"),
        ("history.json", '{"epoch": 1}', r"history\.json: holds dict, expected a list of epochs"),
        ("history.json", "[1, 2]", r"history\.json: entry 1 has int, expected the fields"),
        ("history.json", None, r"history\.json: entry 1: val_loss is nan, expected a finite"),
        ("history.json", "[" * 50_000, r"history\.json: not valid JSON"),
        ("settings.json", "[]", r"settings\.json: holds list, not a JSON object"),
        ("settings.json", '{"recipe": 3}', r"settings\.json: field recipe is 3, expected an obj"),
        ("settings.json", '{"classes": [1]}', r"settings\.json: field classes is \[1\], expected"),
        ("settings.json", "\xff", r"settings\.json: not valid JSON"),
    ],
)
@pytest.mark.parametrize("command", ["viz", "report"])
def test_damaged_run_files_for_viz_and_report(run_dir, capsys, name, text, match, command):
    pytest.importorskip("matplotlib")
    path = run_dir / name
    if text is None:  # history.json with a NaN, as Python's json writes it
        rows = json.loads(path.read_text())
        rows[0]["val_loss"] = float("nan")
        text = json.dumps(rows)
    path.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff")
    fails([command, str(run_dir)], capsys, match)


def test_huge_and_non_regular_run_files_are_refused(run_dir, monkeypatch, capsys):
    from cnnkit.train import runfiles

    monkeypatch.setattr(runfiles, "MAX_HISTORY_BYTES", 100)
    with pytest.raises(DataError, match=r"history\.json: more than 100 bytes"):
        read_history(run_dir)
    (run_dir / "settings.json").unlink()
    (run_dir / "settings.json").mkdir()
    with pytest.raises(DataError, match=r"settings\.json: not a regular file"):
        read_settings(run_dir)
    pytest.importorskip("matplotlib")
    fails(["viz", str(run_dir)], capsys, r"settings\.json: not a regular file")


def test_read_settings_gives_what_train_wrote(run_dir):
    written = json.loads((run_dir / "settings.json").read_text())
    assert read_settings(run_dir) == written
    (run_dir / "settings.json").write_text(json.dumps({**written, "recipe": None}))
    with pytest.raises(DataError, match=r"settings\.json: field recipe is missing; the file"):
        read_settings(run_dir)
    (run_dir / "settings.json").unlink()
    with pytest.raises(TrainingError, match=r"run: no run to resume here \(no settings\.json\)"):
        read_settings(run_dir)
    assert read_settings(run_dir, missing_ok=True) is None


# ---------------------------------------------------------------------------------------------
# Generated headers and members: loading succeeds with consistent data or raises a cnnkit error

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
HEADER_FIELDS = [
    *("format", "spec", "classes", "input_shape", "mean", "std", "recipe", "epoch", "step"),
    *("step_in_epoch", "loss_sum", "correct", "seen", "seconds", "best_accuracy", "history"),
    *("rng", "optimizer", "validation", "data"),
]
DTYPES = ["<f4", ">f4", "<f8", "<f2", "<i8", "<u1", "|b1", "<c8", "<U2", "|S3", "i4,f4", "O", "V4"]


def lying_headers():
    return st.dictionaries(st.sampled_from(HEADER_FIELDS), json_values, min_size=1, max_size=3)


def lying_members():
    names = st.sampled_from(
        [
            *("model/0.weight", "model/0.bias", "model/3.weight", "model/x", "extra/order"),
            *("optimizer/momentum_buffer.0", "optimizer/momentum_buffer.9", "optimizer/junk"),
            "extra/junk",
        ]
    )
    shapes = st.lists(st.integers(0, 4), max_size=4).map(tuple)
    return st.dictionaries(names, st.tuples(st.sampled_from(DTYPES), shapes), max_size=3)


def check_loads_or_refuses(run_dir: Path, which: str) -> None:
    """Every reader, on the run: success with the data written, or a cnnkit error."""
    path = run_dir / f"{which}.npz"
    written, arrays = contents_or_none(path)
    try:
        model, header = load_run(run_dir, which)
    except CnnkitError:
        pass
    else:
        assert header == written
        for name, value in model[1:].state_dict().items():
            np.testing.assert_array_equal(value, arrays[f"model/{name}"])
    rng = np.random.default_rng(0)
    try:
        state = _restore(checkpoint.load(path), rng)
    except CnnkitError:
        assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state
    else:
        assert state.epoch == written["epoch"] and len(state.history) == state.epoch


def contents_or_none(path: Path):
    try:
        return contents(path)
    except Exception:  # numpy refuses it too (damaged, encrypted, pickled): nothing to compare
        return None, {}


def reset(trained: Path, run_dir: Path, best_from: str = "best.npz") -> None:
    """The run's checkpoints as trained, before each generated example."""
    shutil.copy(trained / best_from, run_dir / "best.npz")
    shutil.copy(trained / "last.npz", run_dir / "last.npz")


def header_case(run_dir: Path, changes: dict) -> None:
    edit(run_dir / "last.npz", changes)
    check_loads_or_refuses(run_dir, "last")


def member_case(run_dir: Path, members: dict) -> None:
    header, arrays = contents(run_dir / "best.npz")
    for name, (dtype, shape) in members.items():
        arrays[name] = np.zeros(shape, dtype)
    write(run_dir / "best.npz", header, arrays)
    check_loads_or_refuses(run_dir, "best")


def byte_case(run_dir: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray((run_dir / "best.npz").read_bytes())
    for position, value in flips:
        data[position % len(data)] = value
    (run_dir / "best.npz").write_bytes(bytes(data))
    check_loads_or_refuses(run_dir, "best")


byte_flips = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=4)


@FAST
@given(changes=lying_headers())
def test_generated_headers(trained, run_dir, changes):
    reset(trained, run_dir)
    header_case(run_dir, changes)


@FAST
@given(members=lying_members())
def test_generated_members(trained, run_dir, members):
    reset(trained, run_dir)
    member_case(run_dir, members)


@FAST
@given(flips=byte_flips)
def test_generated_byte_damage(trained, run_dir, flips):
    reset(trained, run_dir, "last.npz")
    byte_case(run_dir, flips)


@pytest.mark.sweep
@SWEEP
@given(changes=lying_headers())
def test_generated_headers_sweep(trained, run_dir, changes):
    reset(trained, run_dir)
    header_case(run_dir, changes)


@pytest.mark.sweep
@SWEEP
@given(members=lying_members())
def test_generated_members_sweep(trained, run_dir, members):
    reset(trained, run_dir)
    member_case(run_dir, members)


@pytest.mark.sweep
@SWEEP
@given(flips=byte_flips)
def test_generated_byte_damage_sweep(trained, run_dir, flips):
    reset(trained, run_dir, "last.npz")
    byte_case(run_dir, flips)
