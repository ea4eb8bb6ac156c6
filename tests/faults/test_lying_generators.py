"""Checkpoints whose generator states lie: the state of a Dropout layer's generator is checked
field by field, as the data generator's ``rng`` is, and the names against the model's; a lie is
one line naming the file and the field, before anything of the run changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lying_files import contents, edit, fails, json_values

from cnnkit import cli
from cnnkit.errors import CnnkitError, DataError
from cnnkit.train import checkpoint, load_run
from cnnkit.train.loop import _restore

ARCH = "CONV(D=2, F=3, P=1) - DROPOUT2D(0.2) - RELU - POOL(F=2) - DROPOUT(0.3) - FC(10)"
NAMES = ["1.rng", "4.rng"]
PCG64 = r"expected the state of a PCG64 generator \(bit_generator\.state\)"
FAST = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dropout") / "run"
    argv = ["train", "--arch", ARCH, "--epochs", "1", "--out", str(run_dir), "--quiet"]
    assert cli.main(argv) == 0
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def a_state(**changes) -> dict:
    state = np.random.default_rng(0).bit_generator.state
    return {**state, **changes}


def with_generator(run_dir, which: str, value) -> dict:
    header, _ = contents(run_dir / f"{which}.npz")
    return {"generators": {**header["generators"], "4.rng": value}}


def test_the_run_holds_each_dropout_generator_by_name(trained):
    header = checkpoint.read_header(trained / "last.npz")
    assert sorted(header["generators"]) == NAMES
    assert checkpoint.read_header(trained / "best.npz")["generators"] == header["generators"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"bit_generator": "MT19937"}, r"header field generators\.4\.rng is \{'bit_generator"),
        (a_state(bit_generator="Philox"), r"header field generators\.4\.rng is .*" + PCG64),
        (
            a_state(state={"state": 2**200, "inc": 1}),
            r"header field generators\.4\.rng is .*" + PCG64,
        ),
        (a_state(state={"state": -1, "inc": 1}), r"header field generators\.4\.rng is .*" + PCG64),
        (a_state(has_uint32=2), r"header field generators\.4\.rng is .*" + PCG64),
        (a_state(uinteger=1.5), r"header field generators\.4\.rng is .*" + PCG64),
        ("PCG64", r"header field generators\.4\.rng is 'PCG64', " + PCG64),
        (None, r"header field generators\.4\.rng is None, " + PCG64),
    ],
)
def test_a_lying_generator_state_is_refused_by_resume_and_evaluate(run_dir, capsys, value, match):
    for which in ("last", "best"):
        edit(run_dir / f"{which}.npz", with_generator(run_dir, which, value))
    before = (run_dir / "last.npz").read_bytes()
    argv = ["train", "--out", str(run_dir), "--resume", "--epochs", "2", "--quiet"]
    fails(argv, capsys, r"last\.npz: " + match)
    assert (run_dir / "last.npz").read_bytes() == before
    fails(["evaluate", str(run_dir)], capsys, r"best\.npz: " + match)


@pytest.mark.parametrize(
    ("generators", "match"),
    [
        (
            None,
            r"header field generators is missing, but the model's layers draw from "
            r"generators \[1\.rng, 4\.rng\]",
        ),
        ({}, r"header field generators holds \[\], but the model's generators are \[1\.rng, "),
        ("names", r"header field generators holds \[1\.rng, 7\.rng\], but the model's"),
        ([], r"header field generators is \[\], expected an object of at most 4096 generator"),
        ({"": a_state()}, r"header field generators is \{'': \{"),
        ({"x" * 300: a_state()}, r"header field generators is \{'xxxx"),
    ],
)
def test_generators_that_are_not_the_models_are_refused(run_dir, capsys, generators, match):
    if generators == "names":
        header, _ = contents(run_dir / "last.npz")
        generators = {"1.rng": header["generators"]["1.rng"], "7.rng": a_state()}
    edit(run_dir / "last.npz", {"generators": generators})
    argv = ["train", "--out", str(run_dir), "--resume", "--epochs", "2", "--quiet"]
    fails(argv, capsys, r"last\.npz: " + match)


def test_a_refused_state_changes_no_generator(run_dir):
    from cnnkit.arch.convert import from_spec

    model = from_spec("INPUT(1x8x8) - " + ARCH, rng=np.random.default_rng(5))
    states = {name: g.bit_generator.state for name, g in model.named_generators()}
    edit(run_dir / "last.npz", with_generator(run_dir, "last", {"bit_generator": "PCG64"}))
    with pytest.raises(DataError, match=r"generators\.4\.rng"):
        ckpt = checkpoint.load(run_dir / "last.npz", model=model)
        checkpoint.restore(model, ckpt)
    assert {name: g.bit_generator.state for name, g in model.named_generators()} == states


generator_values = st.dictionaries(
    st.sampled_from(["1.rng", "4.rng", "0.rng", ""]),
    json_values | st.builds(a_state, has_uint32=json_values) | st.just(a_state()),
    max_size=3,
)


@FAST
@given(generators=generator_values)
def test_generated_generator_fields_load_consistently_or_refuse(trained, run_dir, generators):
    shutil.copy(trained / "best.npz", run_dir / "best.npz")
    edit(run_dir / "best.npz", {"generators": generators})
    written, _ = contents(run_dir / "best.npz")
    try:
        model, header = load_run(run_dir, "best")
    except CnnkitError:
        pass
    else:
        assert header == written and sorted(generators) == NAMES
        for name, generator in model[1:].named_generators():
            assert generator.bit_generator.state == generators[name]
    rng = np.random.default_rng(0)
    try:
        _restore(checkpoint.load(run_dir / "best.npz"), rng)
    except CnnkitError:
        assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state
