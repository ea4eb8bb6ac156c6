"""cnnkit explore without a browser: what the command prints and writes, the page's budget,
its refusals (one line, exit 2) and how layers become the page's data."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit import cli
from cnnkit.errors import ConfigError
from cnnkit.explore import MAX_BYTES, RunContent, describe_network, explorer_page, write_explorer
from cnnkit.explore.page import SCRIPTS, asset


def page_data(html: str) -> dict:
    found = re.search(
        r'<script type="application/json" id="cnnkit-data">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1))


def test_explore_writes_the_page_and_says_what_is_in_it(runs, tmp_path, capsys):
    out = tmp_path / "lecture.html"
    assert cli.main(["explore", str(runs["lecture"]), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    size = out.stat().st_size
    assert lines == [str(out), f"{size / 1e6:.2f} MB: weights as float32, 10 test images"]
    assert size <= MAX_BYTES
    html = out.read_text("utf-8")
    # nothing outside the file: no src or href but fragments, a policy that forbids the rest
    assert re.findall(r'(?:src|href)="(?!#)', html) == []
    assert "default-src 'none'" in html and "<link" not in html
    for name in SCRIPTS:
        assert asset(name).strip()[:40] in html
    data = page_data(html)
    assert data["run"]["input_shape"] == [1, 8, 8] and len(data["samples"]) == 10
    assert [node["kind"] for node in data["network"]][:3] == ["NORMALIZE", "CONV", "RELU"]


def test_the_default_page_goes_into_the_run(runs, capsys):
    assert cli.main(["explore", str(runs["residual"]), "--checkpoint", "last"]) == 0
    path = Path(capsys.readouterr().out.splitlines()[0])
    assert path == runs["residual"] / "explore.html" and path.is_file()
    assert page_data(path.read_text("utf-8"))["run"]["checkpoint"] == "last"


def mnist_sized(count: int = 10) -> RunContent:
    """mnist-bn (468,522 parameters) behind a Normalize layer, untrained, with random 28x28
    test images: a run of MNIST's size without MNIST."""
    network = cnnkit.from_spec("mnist-bn", rng=np.random.default_rng(0))
    model = cnnkit.Sequential(cnnkit.Normalize([0.13], [0.31]), *network.layers)
    model.eval()
    rng = np.random.default_rng(0)
    images = rng.random((count, 1, 28, 28), dtype=np.float32)
    header = {"input_shape": [1, 28, 28], "classes": [str(k) for k in range(10)], "epoch": 1}
    return RunContent(
        Path("mnist-bn"), "best", model, header, [], "mnist", images, np.arange(count)
    )


def test_an_mnist_sized_network_fits_the_budget_as_float32():
    page = explorer_page(mnist_sized())
    assert sum(p.size for p in page_model_parameters()) == 468_522
    assert page.weights == "float32" and page.samples == 10 and page.notes == []
    assert page.size <= MAX_BYTES


def page_model_parameters():
    return cnnkit.from_spec("mnist-bn", rng=np.random.default_rng(0)).parameters()


def test_over_the_budget_half_the_images_go_then_the_weights_become_float16():
    content = mnist_sized()
    full = explorer_page(content).size
    fewer = explorer_page(content, max_bytes=full - 1)
    assert fewer.weights == "float32" and fewer.samples == 5 and fewer.size < full
    assert fewer.notes == ["5 of 10 test images kept to keep the page small"]
    half = explorer_page(content, max_bytes=fewer.size - 1)
    assert half.weights == "float16" and half.samples == 10 and half.size < fewer.size
    [note] = half.notes
    change = float(note.rsplit(" ", 1)[1])
    assert note.startswith("weights stored as float16") and 0 < change < 1e-2
    assert page_data(half.html)["notes"] == half.notes
    assert explorer_page(content, max_bytes=half.size - 1).samples == 5
    with pytest.raises(
        ConfigError,
        match=r"would be .* MB even with float16 weights and 1 test image, over the budget "
        r"of 0\.5 MB; raise it \(cnnkit explore --max-mb\)",
    ):
        explorer_page(content, max_bytes=500_000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explore", "{missing}"], r"RUN_DIR .*: no such run directory; give the RUN_DIR"),
        (["explore", "{empty}"], r": no best\.npz: not a cnnkit train run, or one stopped"),
        (["explore", "{run}", "--out", "{run}/x.png"], r"its name must end in \.html; use "),
        (["explore", "{run}", "--out", "{file}/page.html"], r"page\.html: could not be written"),
        (["explore", "{run}", "--max-mb", "0.05"], r"over the budget of 0\.05 MB; raise it"),
        (["explore", "{run}", "--max-mb", "-1"], r"--max-mb: must be > 0"),
        (["explore", "{run}", "--max-mb", "inf"], r"--max-mb: must be a finite number, got inf"),
        (["explore", "{run}", "--max-mb", "1e400"], r"--max-mb: must be a finite number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a directory")
    names = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "file": tmp_path / "file",
    }
    argv = [a.format(run=runs["lecture"], **names) for a in argv]
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert re.search(message, captured.err) and "Traceback" not in captured.err


def exit_code(argv) -> int:
    """cnnkit's exit code: main's return value, or the code argparse exits with."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


def test_a_failed_write_leaves_the_old_page_and_no_temporary(runs, tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("the old page")

    def refuse(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(cnnkit.CnnkitError, match=r"page\.html: could not be written \(no space"):
        write_explorer(runs["lecture"], target)
    assert target.read_text() == "the old page" and os.listdir(tmp_path) == ["page.html"]


class Doubler(cnnkit.Layer):  # not registered: no keyword, no configuration
    def forward(self, x):
        return 2 * x


def test_layers_the_page_cannot_run_are_named_with_their_path():
    rng = np.random.default_rng(0)
    model = cnnkit.Sequential(
        cnnkit.Conv2d(1, 2, 3, padding=1, rng=rng),
        Doubler(),
        cnnkit.Residual(cnnkit.Sequential(cnnkit.BatchNorm2d(2, track_running_stats=False))),
    )
    model.build((1, 1, 4, 4))
    nodes, arrays, problems = describe_network(model, (1, 4, 4))
    assert problems == [
        "layer 1 Doubler: the page cannot run this layer",
        "layer 2.body.0 BN: the page cannot run this layer (it normalises with each batch's "
        "statistics: track_running_stats=False)",
    ]
    assert nodes[1]["tensors"] == {} and nodes[2]["config"]["body"][0]["path"] == "2.body.0"
    weight = nodes[0]["tensors"]["weight"]
    np.testing.assert_array_equal(arrays[weight["index"]], model[0].weight.data)
    assert weight["shape"] == [2, 1, 3, 3] and nodes[0]["config"]["padding"] == [1, 1]


def test_a_huge_budget_means_no_limit(runs, tmp_path, capsys):
    out = tmp_path / "p.html"
    assert cli.main(["explore", str(runs["lecture"]), "--out", str(out), "--max-mb", "1e300"]) == 0
    assert out.stat().st_size > 10_000
