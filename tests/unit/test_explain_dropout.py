"""``cnnkit explain dropout``: every number shown is the layer's own, and the text shows them."""

import json
import re

import numpy as np
import pytest

from cnnkit import ConfigError, Dropout, Dropout2d, ShapeError, cli
from cnnkit.explain import explain_dropout


@pytest.mark.parametrize(
    ("p", "channel_wise", "channels"), [(0.5, False, 1), (0.2, False, 2), (0.3, True, 3)]
)
def test_the_numbers_are_those_of_the_layer(p, channel_wise, channels):
    e = explain_dropout(p, size=4, channels=channels, seed=3, channel_wise=channel_wise)
    # the same layer, built the same way, draws the same mask for the same input
    rng = np.random.default_rng(3)
    layer = (Dropout2d if channel_wise else Dropout)(p, rng=rng)
    x = rng.integers(1, 10, size=(channels, 4, 4)).astype(np.float64)
    np.testing.assert_array_equal(e.x, x)
    y = layer.forward(x[None])[0]
    np.testing.assert_array_equal(e.output, y)
    np.testing.assert_array_equal(e.mask, y != 0)
    np.testing.assert_array_equal(e.output, np.where(e.mask, x / (1 - p), 0.0))
    np.testing.assert_array_equal(e.grad, layer.backward(np.ones((1, *x.shape)))[0])
    np.testing.assert_allclose(e.grad, e.mask / (1 - p), rtol=1e-15)
    np.testing.assert_array_equal(e.eval_output, x)
    if channel_wise:
        assert (e.mask == e.mask[:, :1, :1]).all()  # one decision per depth slice
    assert 0 < e.mask.mean() < 1
    # the expected value is the input: the mean of 10,000 forwards, within 5 standard errors
    sigma = x * np.sqrt(p / (1 - p)) / np.sqrt(e.samples)
    assert (np.abs(e.mean - x) < 5 * sigma).all() and e.largest_error > 0


def test_the_text_shows_the_layers_numbers(capsys):
    e = explain_dropout(0.5, size=4, seed=0)
    assert cli.main(["explain", "dropout"]) == 0
    out = capsys.readouterr().out
    assert out == e.text() + "\n"
    lines = out.splitlines()
    assert lines[0] == "Dropout() on a 4x4x1 input, training mode (seed 0)"
    header = lines.index(next(line for line in lines if line.startswith("x ")))
    printed = [[float(v) for v in lines[header + 1 + r].split()] for r in range(4)]
    x, mask, out_grid = (np.array([row[k * 4 : k * 4 + 4] for row in printed]) for k in range(3))
    np.testing.assert_array_equal(x, e.x[0])
    np.testing.assert_array_equal(mask, e.mask[0])
    np.testing.assert_array_equal(out_grid, e.output[0])
    kept = int(e.mask.sum())
    assert f"this forward kept {kept} of 16 values" in out
    assert "kept ones are scaled by 1/(1 - 0.5) = 2" in out
    assert "E[out] = (1 - p) * x / (1 - p) + p * 0 = x" in out
    assert f"largest |mean - x| = {e.largest_error:.3g}" in out
    assert "evaluation mode (layer.eval()): out = x" in out
    assert max(len(line) for line in lines) <= 100


def test_dropout2d_text_gives_one_decision_per_depth_slice(capsys):
    assert cli.main(["explain", "dropout", "--2d", "--channels", "3", "--p", "0.25"]) == 0
    out = capsys.readouterr().out
    e = explain_dropout(0.25, channels=3, channel_wise=True)
    decisions = ", ".join(str(int(v)) for v in e.mask[:, 0, 0])
    assert f"mask, one per depth slice (1 = kept): [{decisions}]" in out
    assert out.startswith("Dropout2d(p=0.25) on a 4x4x3 input")


def test_json_holds_the_same_numbers(capsys):
    assert cli.main(["explain", "dropout", "--p", "0.2", "--seed", "5", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    e = explain_dropout(0.2, seed=5)
    assert document["schema"] == "cnnkit.explain.dropout/1"
    assert document["output"] == e.output.tolist() and document["mask"] == e.mask.tolist()
    assert document["scale"] == 1 / (1 - 0.2) and document["kept"] == int(e.mask.sum())
    assert document["eval_output"] == document["x"]


def test_p_zero_keeps_everything():
    e = explain_dropout(0.0, size=2)
    assert e.mask.all() and (e.output == e.x).all() and e.largest_error == 0


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--p", "1"], r"Dropout: p must be in \[0, 1\), got p=1\.0"),
        (["--input", "13"], r"explain dropout: a 13x13x1 input is too large to show"),
        (["--channels", "5"], r"at most 12x12x4"),
    ],
)
def test_refusals_are_one_line(argv, match, capsys):
    assert cli.main(["explain", "dropout", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(match, err), err


def test_library_arguments_are_checked():
    with pytest.raises(ShapeError):
        explain_dropout(size=0)
    with pytest.raises(ConfigError, match=r"samples must be 1\.\.100000"):
        explain_dropout(samples=0)


def test_the_topic_is_listed_in_explains_help(capsys):
    assert cli.main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "\n    dropout" in out and "the 1/(1 - p) scaling" in out
