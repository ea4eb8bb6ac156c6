"""``cnnkit export``: a tiny optdigits run written as a PyTorch program (loaded in a Python
without cnnkit: the same predictions and accuracy as ``cnnkit evaluate``) or as ONNX, and every
bad input one line on stderr with exit code 2."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnkit import cli
from cnnkit.train import load_run, predict, run_data

torch = pytest.importorskip("torch")

ARCH = (
    "CONV(D=4, F=3, P=1) - BN - RELU - RES[CONV(D=4, F=3, P=1) - BN] - RELU - POOL(F=2)"
    " - DROPOUT(0.1) - FC(10)"
)
WITHOUT_CNNKIT = textwrap.dedent(
    """
    import sys
    sys.modules["cnnkit"] = None  # importing cnnkit now fails: the file must run without it
    import numpy as np, torch
    program = torch.export.load(sys.argv[1]).module()
    images = torch.from_numpy(np.load(sys.argv[2]))
    with torch.no_grad():
        logits = program(images).numpy()
        for n in (1, 7):  # other batch sizes run too, giving the same rows
            part = program(images[:n]).numpy()
            assert part.shape == (n, 10) and np.allclose(part, logits[:n], atol=1e-5), n
    np.save(sys.argv[3], logits.argmax(axis=1))
    """
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert cli.main(["train", "--arch", ARCH, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    return str(out)


def _evaluated(run, capsys):
    capsys.readouterr()
    assert cli.main(["evaluate", run, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["accuracy"]


def test_a_torch_program_runs_without_cnnkit_as_evaluate_scores_it(run, tmp_path, capsys):
    path = tmp_path / "model.pt2"
    assert cli.main(["export", run, "--format", "torch", "--out", str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {path}: PyTorch program (torch.export) of best.npz of {run}")
    assert line.endswith("parameters, input (N, 1, 8, 8) float32 in [0, 1]")
    model, header = load_run(run)
    data, _ = run_data(header)
    np.save(tmp_path / "images.npy", data.test_images)
    argv = [str(path), str(tmp_path / "images.npy"), str(tmp_path / "predicted.npy")]
    subprocess.run([sys.executable, "-I", "-c", WITHOUT_CNNKIT, *argv], check=True)
    theirs = np.load(tmp_path / "predicted.npy")
    np.testing.assert_array_equal(theirs, predict(model, data.test_images).argmax(axis=1))
    assert float((theirs == data.test_labels).mean()) == _evaluated(run, capsys)


def test_an_onnx_file_scores_as_evaluate_does(run, tmp_path, capsys):
    pytest.importorskip("cnnkit.interop.onnx_export")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    assert cli.main(["export", run, "--format", "onnx", "--out", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: ONNX model of best.npz of {run}")
    data, _ = run_data(load_run(run)[1])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    predicted = session.run(None, {name: data.test_images})[0].argmax(axis=1)
    assert float((predicted == data.test_labels).mean()) == _evaluated(run, capsys)


@pytest.fixture
def plain_layer(tmp_path):
    module = tmp_path / "plainlayer.py"
    module.write_text(
        textwrap.dedent(
            """
            import cnnkit

            @cnnkit.register_layer("PLAINEXPORT")
            class Plain(cnnkit.Layer):
                def forward(self, x):
                    return x

                def backward(self, dy):
                    return dy
            """
        )
    )
    yield str(module)
    from cnnkit.nn import registry

    registry.unregister("PLAINEXPORT")


def _error(capsys, argv):
    capsys.readouterr()
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_bad_input_is_one_line_and_exit_code_2(run, tmp_path, capsys, monkeypatch, plain_layer):
    out = str(tmp_path / "model.pt2")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty/best.npz: no such checkpoint file" in _error(
        capsys, ["export", str(empty), "--format", "torch", "--out", out]
    )
    (tmp_path / "file.txt").write_text("x")
    assert "is a file, not a run directory" in _error(
        capsys, ["export", str(tmp_path / "file.txt"), "--format", "torch", "--out", out]
    )
    assert "file.txt/model.pt2: could not be written (" in _error(
        capsys, ["export", run, "--format", "torch", "--out", str(tmp_path / "file.txt/model.pt2")]
    )
    assert "the name must end in .pt2; use " in _error(
        capsys, ["export", run, "--format", "torch", "--out", str(tmp_path / "model.onnx")]
    )
    user_run = str(tmp_path / "user")
    train = ["--import", plain_layer, "train", "--arch", "CONV(D=2, F=3) - PLAINEXPORT - FC(10)"]
    assert cli.main([*train, "--epochs", "1", "--quiet", "--out", user_run]) == 0
    assert (
        "cnnkit: error: layer 2 (Plain): no torch exporter; give the class a torch_module() "
        "method\n"
        == _error(
            capsys, ["--import", plain_layer, "export", user_run, "--format", "torch", "--out", out]
        )
    )
    monkeypatch.setitem(sys.modules, "torch", None)
    assert "needs PyTorch, which is not installed; pip install cnnkit[torch]" in _error(
        capsys, ["export", run, "--format", "torch", "--out", out]
    )
    assert list(tmp_path.glob(".*.tmp")) == [] and not (tmp_path / "model.pt2").exists()


def test_a_failed_write_leaves_the_old_file(run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.pt2"
    path.write_bytes(b"the previous export")

    def half_written(program, stream):
        stream.write(b"half of it")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.export, "save", half_written)
    assert "model.pt2: could not be written (no space left on device)" in _error(
        capsys, ["export", run, "--format", "torch", "--out", str(path)]
    )
    assert path.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt2"]


def test_the_last_checkpoint_on_request(run, tmp_path, capsys):
    path = tmp_path / "last.pt2"
    argv = ["export", run, "--format", "torch", "--out", str(path), "--checkpoint", "last"]
    assert cli.main(argv) == 0
    assert (
        f": PyTorch program (torch.export) of last.npz of {run} (epoch 1)"
        in capsys.readouterr().out
    )
    program = torch.export.load(str(path)).module()
    model, header = load_run(run, "last")
    images = run_data(header)[0].test_images[:5]
    theirs = program(torch.tensor(images)).detach().numpy()
    np.testing.assert_allclose(theirs, predict(model, images), rtol=1e-5, atol=1e-5)
