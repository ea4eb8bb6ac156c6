"""cnnkit viz and cnnkit report on one real (tiny) training run, and the report in Chromium."""

import argparse
import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit import ConfigError, cli, viz
from cnnkit.viz import report as report_module

SIZES = {
    "filters": (800, 800),
    "feature_maps": (1600, 150 + 100 * 7),  # NORMALIZE and the lecture's 6 CONV/RELU/POOL layers
    "curves": (1200, 450),
    "confusion": (700, 600),
    "misclassified": (1200, 300),
}


def _with_viz(build):
    def build_with_viz():
        parser = build()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "viz" not in commands.choices:
            viz.add_viz_parsers(commands)
        return parser

    return build_with_viz


@pytest.fixture(scope="module")
def main():
    """``cli.main`` with ``viz`` and ``report`` registered, as cli.py does with
    ``add_viz_parsers(commands)``; a no-op once cli.py registers them itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", _with_viz(cli.build_parser))
        yield cli.main


def printed(main, argv) -> tuple[int, list[str]]:
    """(exit code, stdout lines) of the CLI, for module-scoped fixtures (no capsys there)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue().splitlines()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("viz") / "run"
    assert cli.main(["train", "--epochs", "2", "--quiet", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def pictures(main, run_dir):
    """cnnkit viz RUN_DIR: the printed paths."""
    pytest.importorskip("matplotlib")
    code, lines = printed(main, ["viz", str(run_dir)])
    assert code == 0
    return lines


@pytest.fixture(scope="module")
def report(main, run_dir):
    """cnnkit report RUN_DIR: the printed path."""
    pytest.importorskip("matplotlib")
    code, lines = printed(main, ["report", str(run_dir)])
    assert code == 0 and len(lines) == 1
    return Path(lines[0])


def test_cli_registers_viz_and_report():
    """Fails until cli.py calls viz.add_viz_parsers(commands) in build_parser."""
    commands = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert {"viz", "report"} <= set(commands.choices)


def test_viz_prints_the_pictures_of_the_documented_sizes(run_dir, pictures):
    assert pictures == [str(run_dir / "pictures" / f"{name}.png") for name in SIZES]
    for name, path in zip(SIZES, pictures, strict=True):
        assert viz.png_size(path) == SIZES[name], name


def test_confusion_picture_uses_the_evaluation_matrix(run_dir, pictures):
    from cnnkit.train import confusion_matrix, load_run, predict, run_data

    model, header = load_run(run_dir, "best")
    data, _ = run_data(header, None)
    predicted = predict(model, data.test_images).argmax(axis=1)
    expected = confusion_matrix(data.test_labels, predicted, 10)
    figure = viz.build_figures(viz.load_view(run_dir))["confusion"]
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), expected)


def test_viz_and_report_options_reach_the_functions(main, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("R").mkdir()  # the commands check that the run directory is one
    seen = {}

    def fake_pictures(run_dir, **options):
        seen["viz"] = (run_dir, options)
        return {"filters": Path("d/filters.png"), "curves": Path("d/curves.png")}

    def fake_report(run_dir, path, **options):
        seen["report"] = (run_dir, path, options)
        return Path("r.html")

    monkeypatch.setattr(viz, "write_pictures", fake_pictures)
    monkeypatch.setattr(report_module, "write_report", fake_report)
    argv = ["viz", "R", "--out", "d", "--checkpoint", "last", "--index", "5"]
    assert main(argv) == 0
    assert seen["viz"] == ("R", {"out_dir": Path("d"), "which": "last", "index": 5})
    assert capsys.readouterr().out == f"{Path('d/filters.png')}\n{Path('d/curves.png')}\n"
    assert main(["report", "R", "--out", "x/r.html", "--index", "3"]) == 0
    assert seen["report"][::2] == ("R", {"which": "best", "index": 3})
    assert Path(seen["report"][1]) == Path("x/r.html")
    assert capsys.readouterr().out == "r.html\n"
    with pytest.raises(SystemExit):
        main(["viz", "R", "--index", "-1"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["viz", "{missing}"], r"no such run directory; give the RUN_DIR that cnnkit train wrote"),
        (
            ["report", "{empty}"],
            r"no best\.npz: not a cnnkit train run, or one stopped before its first epoch",
        ),
        (["viz", "{run}", "--index", "1797"], r"index 1797 is outside the test set of optdigits"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(main, run_dir, tmp_path, capsys, argv, message):
    pytest.importorskip("matplotlib")
    paths = {"missing": tmp_path / "nope", "empty": tmp_path, "run": run_dir}
    argv = [part.format(**{k: str(v) for k, v in paths.items()}) for part in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("cnnkit: error: ") and re.search(message, line)


def test_demo_pictures_prints_the_paths_or_how_to_get_them(run_dir, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(viz.run, "write_pictures", lambda run: {"curves": run / "c.png"})
    assert viz.demo_pictures(run_dir) == [run_dir / "c.png"]
    assert capsys.readouterr().out.splitlines()[1:] == [f"  {run_dir / 'c.png'}"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert viz.demo_pictures(run_dir) == []
    assert capsys.readouterr().out == (
        f"pictures: pip install cnnkit[viz] (or pip install matplotlib), then cnnkit viz "
        f"{run_dir}\n"
    )


def test_load_view_names_the_checkpoints(run_dir):
    with pytest.raises(ConfigError, match=r"^checkpoint must be 'best' or 'last', got 'middle'$"):
        viz.load_view(run_dir, "middle")


def test_without_matplotlib_viz_says_how_to_install(main, run_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r"^cnnkit viz: matplotlib is not installed; pip install"):
        viz.write_pictures(run_dir)
    assert main(["report", str(run_dir)]) == 2
    assert capsys.readouterr().err == (
        "cnnkit: error: cnnkit report: matplotlib is not installed; pip install cnnkit[viz] "
        "(or pip install matplotlib)\n"
    )


def test_report_holds_everything_and_nothing_external(run_dir, report):
    from cnnkit.train import load_run

    assert report == run_dir / "report.html"
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "checkpoint best.npz (epoch 2 of 2)" in page
    model, _ = load_run(run_dir)
    for row in model.summary().rows:  # every summary row, escaped
        assert f"<td>{row.layer}</td>" in page
    assert page.count('<img src="data:image/png;base64,') >= 5
    assert '<table id="equivariance">' in page and "<th>k=1</th>" in page
    view = viz.load_view(run_dir)
    assert f'<strong id="test-accuracy">{view.accuracy:.2%}</strong>' in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    chromium = [shutil.which("chromium"), *CHROMIUM_FLAGS]
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [*chromium, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert '<table id="summary">' in dom and "CONV(D=32, F=3, S=1, P=1)" in dom
    assert '<table id="equivariance">' in dom
    assert dom.count('<img src="data:image/png;base64,') >= 5
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            *chromium,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        grey = np.asarray(image.convert("L"))
    assert (grey < 128).mean() > 0.001  # text and tables, not a blank page
