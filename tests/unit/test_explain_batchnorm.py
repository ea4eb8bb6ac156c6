"""``explain batchnorm``: every number shown is the layer's, and the arithmetic reproduces it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit import BatchNorm2d, ConfigError, cli
from cnnkit.explain import explain_batchnorm
from cnnkit.explain._format import _num

torch = pytest.importorskip("torch")


def run(argv, capsys):
    code = cli.main(["explain", "batchnorm", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "options",
    [{}, {"seed": 3, "images": 2, "channels": 3, "size": 3, "channel": 2, "momentum": 0.5}],
)
def test_the_numbers_are_the_layers_and_the_arithmetic_reproduces_them(options):
    e = explain_batchnorm(**options)
    n, c, h, w = e.x.shape
    assert e.count == n * h * w
    layer = BatchNorm2d(c, momentum=e.momentum, dtype=np.float64)
    layer.weight.data[...], layer.bias.data[...] = e.weight, e.bias
    y = layer.forward(e.x)
    np.testing.assert_array_equal(e.y, y[:, e.channel])  # exactly what the layer computes
    np.testing.assert_allclose(e.weight * e.x_hat + e.bias, e.y, rtol=1e-12, atol=1e-12)
    assert e.running_mean == layer.running_mean[e.channel]
    assert e.running_var == layer.running_var[e.channel]
    assert np.isclose(e.running_mean, e.momentum * e.mean)
    assert np.isclose(e.running_var, (1 - e.momentum) + e.momentum * e.unbiased)
    assert np.isclose(e.unbiased, e.var * e.count / (e.count - 1))
    np.testing.assert_array_equal(e.eval_y, layer.eval().forward(e.x)[:, e.channel])
    theirs = torch.nn.BatchNorm2d(c, momentum=e.momentum).double()
    with torch.no_grad():
        theirs.weight.fill_(e.weight)
        theirs.bias.fill_(e.bias)
        wanted = theirs(torch.tensor(e.x)).numpy()[:, e.channel]
        assert np.isclose(theirs.running_var[e.channel].item(), e.running_var)
    np.testing.assert_allclose(e.y, wanted, rtol=1e-12, atol=1e-12)


def test_printed_text_shows_the_layers_numbers(capsys):
    code, out, err = run([], capsys)
    assert (code, err) == (0, "")
    e = explain_batchnorm()
    assert f"= {_num(sum(e.values.flat))} / 16 = {_num(e.mean)}" in out
    assert f"/ 16 = {_num(e.var)}\n" in out.replace("=\n    ", "= ")
    assert f"/ 15 = {_num(e.unbiased)}" in out
    assert f"(the layer's: {_num(e.running_mean)})" in out
    assert f"(the layer's: {_num(e.running_var)})" in out
    assert _num(e.y[0, 0, 0]) in out and _num(e.eval_y[0, 0, 0]) in out
    assert "evaluation (model.eval())" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_holds_the_same_numbers(capsys):
    code, out, _ = run(["--json", "--seed", "4", "--channel", "1"], capsys)
    document = json.loads(out)
    e = explain_batchnorm(seed=4, channel=1)
    assert code == 0 and document["schema"] == "cnnkit.explain.batchnorm/1"
    assert document["y"] == e.y.tolist() and document["eval_y"] == e.eval_y.tolist()
    assert document["running_var"] == e.running_var and document["mean"] == e.mean
    assert document["values"] == np.array(document["x"])[:, 1].tolist()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "1"], "images must be a whole number in 2..8"),
        (["--channel", "2"], "channel must be a whole number in 0..1"),
        (["--size", "9"], "size must be a whole number in 1..4"),
        (["--momentum", "1.5"], "momentum must be a number in (0, 1]"),
    ],
)
def test_refusals_are_one_line(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_library_arguments_are_checked():
    with pytest.raises(ConfigError, match="momentum must be a number in"):
        explain_batchnorm(momentum=None)
    with pytest.raises(ConfigError, match="images must be a whole number"):
        explain_batchnorm(images=2.5)
