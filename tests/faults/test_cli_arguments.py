"""Every command-line argument, given wrong: one line on stderr starting ``cnnkit: error: ``,
exit code 2, no traceback, never the ``internal error`` line, and no file left half-written.

The table runs each command in this process (``cli.main``); a file named ``file.txt`` and a
directory ``run`` are made in ``tmp_path`` first, and ``{tmp}`` in an argument is replaced by
``tmp_path``. Tests run as root here, where permissions do not stop a read or a write: a path
under a regular file (``file.txt/sub/out.png``) and ``/proc/nosuch`` give real OSErrors, and
permission errors are injected with monkeypatch.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from cnnkit import cli, shapes

HUGE = "1000000000000"  # 10**12
VAST = str(10**30)

CASES = [
    # explain conv: sizes are checked before anything is drawn (was: "array is too big")
    (["explain", "conv", "-I", HUGE], f"explain conv: the input x would be 3x{HUGE}x{HUGE} = "),
    (["explain", "conv", "-F", HUGE], f"explain conv: the filter w would be 3x{HUGE}x{HUGE} = "),
    (["explain", "conv", "-C", HUGE], f"the input x would be {HUGE}x5x5 = 25,000,000,000,000"),
    (["explain", "conv", "-I", VAST], "values, more than explain handles (1,000,000); use a"),
    (
        ["explain", "conv", "-I", "4", "-F", "2", "-S", "2000002", "-P", "1000000"],
        "the zero-padded input would be 3x2000004x2000004 = 12,000,048,000,048 values",
    ),
    (
        ["explain", "conv", "-I", "64", "-C", "5", "-F", "15", "-S", "1", "-P", "7", "--json"],
        "64x64 units of 5x15x15 products each are 4,608,000 products, more than explain works",
    ),
    (["explain", "conv", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["explain", "conv", "--seed", "nan"], "argument --seed: expected a whole number >= 0"),
    (["explain", "backprop", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["explain", "backprop", "-I", HUGE], f"explain backprop: the input x would be 1x{HUGE}x"),
    (["explain", "backprop", "-C", HUGE], f"explain backprop: the input x would be {HUGE}x4x4"),
    (["explain", "backprop", "-P", HUGE], "output units are more than explain handles (4096)"),
    (
        ["explain", "equivariance", "--input", f"1x{HUGE}x{HUGE}"],
        "values, more than explain measures (4,194,304); use a smaller --input such as 1x32x32",
    ),
    (
        ["explain", "equivariance", "--input", "1x100000x100000"],
        "the 1x100000x100000 input and the layers' outputs are 102,500,000,000 values",
    ),
    # explain conv --png: a PNG file, written whole or not at all
    (
        ["explain", "conv", "--png", "{tmp}/out.txt"],
        "argument --png: {tmp}/out.txt: the file written is PNG, its name must end in .png; "
        "use {tmp}/out.png",
    ),
    (["explain", "conv", "--png", "{tmp}/noext"], "its name must end in .png; use {tmp}/noext.png"),
    (["explain", "conv", "--png", "{tmp}/file.txt"], "its name must end in .png; use"),
    (["explain", "conv", "--png", "{tmp}"], "argument --png: {tmp} is a directory; give a file"),
    (
        ["explain", "conv", "--png", "{tmp}/file.txt/sub/out.png"],
        "explain conv --png {tmp}/file.txt/sub/out.png: could not be written (not a directory)",
    ),
    (
        ["explain", "conv", "--png", "/proc/nosuch/x.png"],
        "explain conv --png /proc/nosuch/x.png: could not be written (no such file or directory)",
    ),
    (
        ["explain", "conv", "--png", "~nosuchuser/x.png"],
        "argument --png: no user 'nosuchuser' to find ~nosuchuser of; give the path",
    ),
    # a SPEC|RUN_DIR argument naming a file, or a home that does not exist
    (["summary", "{tmp}/file.txt"], "{tmp}/file.txt: is a file, not a run directory; give an"),
    (["summary", "/proc/self/status"], "/proc/self/status: is a file, not a run directory"),
    (["summary", "~nosuchuser/x"], "~nosuchuser/x: no user 'nosuchuser' to find ~nosuchuser of"),
    (["explain", "layers", "{tmp}/file.txt"], "{tmp}/file.txt: is a file, not a run directory"),
    (["explain", "sharing", "/proc/self/status"], "is a file, not a run directory; give an"),
    (["explain", "sparse", "{tmp}/file.txt"], "{tmp}/file.txt: is a file, not a run directory"),
    (["explain", "equivariance", "{tmp}/file.txt"], "is a file, not a run directory"),
    # RUN_DIR of evaluate, predict, viz and report
    (["evaluate", "{tmp}/file.txt"], "RUN_DIR {tmp}/file.txt: is a file, not a run directory"),
    (["evaluate", "/proc/self/status"], "RUN_DIR /proc/self/status: is a file, not a run"),
    (["evaluate", "{tmp}/nosuch"], "RUN_DIR {tmp}/nosuch: no such run directory; give the"),
    (["evaluate", "~nosuchuser/x"], "RUN_DIR ~nosuchuser/x: no user 'nosuchuser'"),
    (["predict", "{tmp}/file.txt", "--index", "0"], "RUN_DIR {tmp}/file.txt: is a file"),
    (["viz", "{tmp}/file.txt"], "RUN_DIR {tmp}/file.txt: is a file, not a run directory"),
    (["viz", "/proc/nosuch"], "RUN_DIR /proc/nosuch: no such run directory"),
    (["report", "{tmp}/file.txt"], "RUN_DIR {tmp}/file.txt: is a file, not a run directory"),
    # viz --out DIR, report --out FILE.html, --index
    (["viz", "{tmp}/run", "--out", "{tmp}/file.txt"], "argument --out: {tmp}/file.txt is a file"),
    (["viz", "{tmp}/run", "--out", "~nosuchuser/x"], "argument --out: no user 'nosuchuser'"),
    (["viz", "{tmp}/run", "--index", "nan"], "argument --index: expected a whole number >= 0"),
    (["viz", "{tmp}/run", "--index", "-1"], "argument --index: must be >= 0, got -1"),
    (
        ["report", "{tmp}/run", "--out", "{tmp}/out.txt"],
        "argument --out: {tmp}/out.txt: the file written is HTML, its name must end in .html",
    ),
    (["report", "{tmp}/run", "--out", "{tmp}/run"], "argument --out: {tmp}/run is a directory"),
    (["report", "{tmp}/run", "--out", "~nosuchuser/r.html"], "argument --out: no user"),
    # --import of something that is not Python
    (["--import", "/proc/self/status", "summary", "lecture"], "not a .py file; give a Python"),
    (["--import", "{tmp}/file.txt", "summary", "lecture"], "--import {tmp}/file.txt: not a .py"),
    (["--import", "~nosuchuser/x.py", "summary", "lecture"], "--import ~nosuchuser/x.py: no user"),
    # shape: a negative P is refused in both modes (it was ignored with --output)
    (["shape", "-I", "10", "-F", "3", "-P", "-1"], "argument --padding/-P: must be >= 0, got -1"),
    (["shape", "-I", "10", "-O", "5", "-P", "-1"], "argument --padding/-P: must be >= 0, got -1"),
]


@pytest.fixture
def world(tmp_path):
    (tmp_path / "file.txt").write_text("not a run\n")
    (tmp_path / "run").mkdir()
    return tmp_path


def _listing(root) -> dict:
    return {
        str(path.relative_to(root)): path.stat().st_size if path.is_file() else None
        for path in root.rglob("*")
    }


def _one_error(argv, capsys) -> str:
    try:
        code = cli.main(argv)
    except SystemExit as error:  # argparse's errors leave through Parser.exit
        code = error.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert err.count("\n") == 1 and err.startswith("cnnkit: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_a_wrong_argument_is_one_line_and_exit_code_2(argv, fragment, world, capsys):
    argv = [a.replace("{tmp}", str(world)) for a in argv]
    before = _listing(world)
    err = _one_error(argv, capsys)
    assert fragment.replace("{tmp}", str(world)) in err
    assert _listing(world) == before  # nothing written, nothing half-written


def test_an_unreadable_values_file_is_one_line(world, monkeypatch, capsys):
    values = world / "values.json"
    values.write_text('{"x": [[1, 2], [3, 4]], "w": [[1]], "b": 0}')
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path) == str(values):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    err = _one_error(["explain", "conv", "--values", str(values), "-S", "1", "-P", "0"], capsys)
    assert f"explain conv --values: cannot read {values}: cannot be read (Permission denied)" in err


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("open", "permission denied"),  # the temporary file cannot be made
        ("fsync", "no space left on device"),  # the disk fills while it is written
    ],
)
def test_a_png_that_cannot_be_written_leaves_the_old_file_alone(
    failure, reason, world, monkeypatch, capsys
):
    pytest.importorskip("matplotlib")
    target = world / "conv.png"
    target.write_bytes(b"the old picture")
    real = getattr(os, failure)

    def failing(*args, **kwargs):
        if failure == "open" and not str(args[0]).endswith(".tmp"):
            return real(*args, **kwargs)
        code = errno.EACCES if failure == "open" else errno.ENOSPC
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, failure, failing)
    err = _one_error(["explain", "conv", "--png", str(target)], capsys)
    assert err == f"cnnkit: error: explain conv --png {target}: could not be written ({reason})"
    assert target.read_bytes() == b"the old picture"
    assert sorted(p.name for p in world.iterdir()) == ["conv.png", "file.txt", "run"]


def test_shape_output_with_a_huge_filter_lists_the_ways_for_that_filter(capsys):
    code = cli.main(["shape", "--input", "10", "--output", "5", "--filter", HUGE])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out == [
        f"(I - F + 2P)/S + 1 = 5 for I = 10 and F = {HUGE}: 2 ways",
        f"  F={HUGE} S=1 P=499999999997   (10 - {HUGE} + 2*499999999997)/1 + 1 = 5",
        f"  F={HUGE} S=2 P=499999999999   (10 - {HUGE} + 2*499999999999)/2 + 1 = 5",
    ]


def test_shape_output_keeps_every_letter_it_is_given(capsys):
    code = cli.main(["shape", "-I", "10", "-O", "5", "-S", "2", "-P", "1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out == [
        "(I - F + 2P)/S + 1 = 5 for I = 10 and S = 2 and P = 1: 2 ways",
        "  F=3 S=2 P=1   (10 - 3 + 2*1)/2 + 1 = 5.5 -> 5 (only padding unread)",
        "  F=4 S=2 P=1   (10 - 4 + 2*1)/2 + 1 = 5",
    ]
    assert cli.main(["shape", "-I", "10", "-O", "8", "-F", "3", "-S", "2"]) == 1  # was: S ignored
    assert "0 ways" in capsys.readouterr().out


def _brute(size, output, kernel, stride, padding, max_kernel, max_stride):
    found = []
    for k in [kernel] if kernel else range(1, max_kernel + 1):
        for s in [stride] if stride else range(1, min(k, max_stride) + 1):
            for p in [padding] if padding is not None else range(k // 2 + 1):
                span = size + 2 * p - k  # accepted by strict: whole, or losing no input
                accepted = shapes.axis_problem("size", size, k, s, p) is None
                if accepted and span // s + 1 == output:
                    found.append((k, s, p))
    return sorted(found)


def test_solutions_with_fixed_letters_match_an_exhaustive_search():
    checked = 0
    for size in range(1, 14):
        for output in range(1, 10):
            for kernel in (None, 1, 2, 3, 6, 13):
                for stride in (None, 1, 2, 5):
                    for padding in (None, 0, 1, 3):
                        for max_kernel, max_stride in ((11, 4), (3, 1)):
                            given = {"kernel": kernel, "stride": stride, "padding": padding}
                            found = shapes.solutions(
                                size, output, max_kernel=max_kernel, max_stride=max_stride, **given
                            )
                            expected = _brute(
                                size, output, kernel, stride, padding, max_kernel, max_stride
                            )
                            assert [(s.kernel, s.stride, s.padding) for s in found] == expected
                            checked += 1
    assert checked > 20_000


def test_fixed_letters_answer_huge_sizes_by_arithmetic():
    found = shapes.solutions(10**12, 5, kernel=10**12, stride=3)
    assert [(s.kernel, s.stride, s.padding) for s in found] == [(10**12, 3, 6), (10**12, 3, 7)]
    with pytest.raises(Exception, match=r"more than 100,000 ways \(F, S, P\); fix another"):
        shapes.solutions(10**12, 2, kernel=10**12, max_stride=10**12)


def test_a_child_process_gets_one_line_and_exit_code_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "explain", "conv", "-I", HUGE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("cnnkit: error: explain conv: the input x would be 3x")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "available", "fragment"),
    [
        (["explain", "conv", "--seed", "1"], 500, "explain conv: the example's numbers as float64"),
        (
            ["explain", "conv"],
            500,
            "explain conv: x, w and the zero-padded x as float64 need 1,992",
        ),
        (
            ["explain", "backprop"],
            200,
            "explain backprop: the example's numbers as float64 need 232",
        ),
        (
            ["explain", "equivariance"],
            20_000,
            "explain equivariance: the outputs of f(x) and f(g(x))",
        ),
        (
            ["explain", "equivariance"],
            1000,
            "Conv2d(4, 4, kernel_size=4, stride=2, padding=1): its",
        ),
    ],
)
def test_an_example_beyond_the_memory_left_is_one_line(
    argv, available, fragment, monkeypatch, capsys
):
    monkeypatch.setattr("cnnkit.data.memory.available_memory", lambda: available)
    err = _one_error(argv, capsys)
    assert fragment in err and f"but only {available:,} bytes" in err
