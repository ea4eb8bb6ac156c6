"""``cnnkit train``'s default network: mnist-bn with its own recipe for 28x28 one-channel images,
the lecture's network for any other size (optdigits, CIFAR-10, ...); the options given win."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnkit import cli
from cnnkit.arch import ARCHITECTURES, lecture_spec, parse
from cnnkit.cli import train as cli_train
from cnnkit.train import Recipe

MNIST_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "mnist"


def run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _idx(path: Path, array: np.ndarray) -> None:
    """A file in MNIST's IDX format (unsigned bytes)."""
    dims = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def digits(tmp_path):
    """A tiny MNIST-format folder of 28x28 images, a bright row per class: learnable."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "digits"
    folder.mkdir()
    for prefix, count in (("train", 100), ("t10k", 30)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 40, (count, 28, 28))
        images[np.arange(count), labels * 2 + 3, :] = 255
        _idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


def settings(run_dir: Path) -> dict:
    return json.loads((run_dir / "settings.json").read_text())


def test_the_default_for_28x28_one_channel_images_is_mnist_bn_with_fc_per_class():
    assert cli_train.default_arch((1, 28, 28), 10) == ARCHITECTURES["mnist-bn"]
    letters = cli_train.default_arch((1, 28, 28), 26)
    assert letters == ARCHITECTURES["mnist-bn"].removesuffix("FC(10)") + "FC(26)"
    keywords = [layer.keyword for layer in parse(letters).layers]
    assert {"BN", "DROPOUT"} <= set(keywords) and keywords[-1] == "FC"


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 28, 28), (1, 32, 32)])
def test_every_other_size_keeps_the_lecture_network(shape):
    assert cli_train.default_arch(shape, 10) == lecture_spec(shape, 10)


def test_mnist_bn_brings_its_recipe_and_records_it(digits, tmp_path, capsys):
    out = tmp_path / "run"
    code, text, err = run(["train", "--data", f"mnist:{digits}", "--out", str(out)], capsys)
    assert code == 0, err  # 90 training images: the network's epochs take a second or two
    saved = settings(out)
    assert saved["spec"] == parse(ARCHITECTURES["mnist-bn"]).text()
    expected = cli_train.NETWORK_RECIPES["mnist-bn"]
    assert {key: saved["recipe"][key] for key in expected} == expected
    differs = {key for key in expected if expected[key] != cli_train.RECIPES["mnist"].get(key)}
    assert differs, "the test needs a network recipe unlike the data's"
    assert "network: mnist-bn (the default): INPUT(1x28x28) - CONV(" in text
    recipe_line = next(line for line in text.splitlines() if line.startswith("recipe: "))
    assert all(f"{key}={expected[key]}," in recipe_line for key in expected)
    assert len(json.loads((out / "history.json").read_text())) == expected["epochs"]


def test_options_given_override_the_networks_recipe(digits, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", f"mnist:{digits}", "--epochs", "1", "--lr", "0.02",
            "--batch-size", "10", "--augment-shift", "0", "--out", str(out), "--quiet"]  # fmt: skip
    assert run(argv, capsys)[0] == 0
    recipe = settings(out)["recipe"]
    assert (recipe["lr"], recipe["batch_size"], recipe["augment_shift"]) == (0.02, 10, 0)
    own = cli_train.NETWORK_RECIPES["mnist-bn"]
    untouched = set(own) - {"epochs", "lr", "batch_size", "augment_shift"}
    assert {key: recipe[key] for key in untouched} == {key: own[key] for key in untouched}


def test_naming_mnist_bn_brings_its_recipe_and_another_network_the_datas(digits, tmp_path, capsys):
    named = tmp_path / "named"
    argv = ["train", "--data", f"mnist:{digits}", "--arch", "MNIST-bn", "--epochs", "1"]
    assert run([*argv, "--out", str(named), "--quiet"], capsys)[0] == 0
    own = cli_train.NETWORK_RECIPES["mnist-bn"]
    assert settings(named)["recipe"]["lr"] == own["lr"]
    lecture = tmp_path / "lecture"
    argv = ["train", "--data", f"mnist:{digits}", "--arch", "lecture-mnist", "--epochs", "1"]
    assert run([*argv, "--out", str(lecture), "--quiet"], capsys)[0] == 0
    saved = settings(lecture)
    assert saved["spec"] == parse("lecture-mnist").text()
    data_recipe = cli_train.RECIPES["mnist"]
    assert {key: saved["recipe"][key] for key in data_recipe if key != "epochs"} == {
        key: value for key, value in data_recipe.items() if key != "epochs"
    }


def test_a_resumed_run_keeps_its_recipe(digits, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", f"mnist:{digits}", "--epochs", "1", "--lr", "0.01"]
    assert run([*argv, "--out", str(out), "--quiet"], capsys)[0] == 0
    argv = ["train", "--epochs", "2", "--out", str(out), "--resume", "--quiet"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    recipe = settings(out)["recipe"]
    assert (recipe["epochs"], recipe["lr"]) == (2, 0.01)


def test_optdigits_keeps_the_lecture_network_and_its_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", "--epochs", "1", "--out", str(out), "--quiet"], capsys)[0] == 0
    saved = settings(out)
    assert saved["spec"] == parse(lecture_spec((1, 8, 8), 10)).text()
    assert saved["recipe"]["lr"] == cli_train.RECIPES["optdigits"]["lr"]
    assert saved["recipe"]["batch_size"] == cli_train.RECIPES["optdigits"]["batch_size"]


def test_help_names_the_default_and_its_recipe(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: mnist-bn for 28x28 one-channel images" in text
    assert cli_train._recipe_flags(cli_train.NETWORK_RECIPES["mnist-bn"]) in text
    assert "else the lecture's network" in text


def test_mnist_bn_learns_on_a_slice_of_real_mnist():
    """A smoke test, not the benchmark (benchmarks/mnist_modern.py): two epochs on 1,000 of
    MNIST's test images (the quickest split to read), scored on 1,000 others."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST in {MNIST_DIR}")
    from cnnkit import from_spec
    from cnnkit.data import Dataset, channel_stats, load_mnist_dir, normalize
    from cnnkit.train import evaluate, fit

    images, labels = load_mnist_dir(MNIST_DIR, "test")
    mean, std = channel_stats(images[:1000])
    images = normalize(images, mean, std)
    train, val, test = slice(0, 1000), slice(1000, 1300), slice(9000, 10000)
    data = Dataset(
        "mnist", list("0123456789"), (1, 28, 28), images[train], labels[train],
        images[val], labels[val], images[test], labels[test], mean, std, "0" * 16,
    )  # fmt: skip
    model = from_spec("mnist-bn", rng=np.random.default_rng([0, 0]))
    recipe = Recipe.from_dict({**cli_train.NETWORK_RECIPES["mnist-bn"], "epochs": 2})
    fit(model, data, recipe=recipe)
    _, accuracy = evaluate(model, data.test_images, data.test_labels)
    assert accuracy > 0.85  # 87.6 % when written; a network that does not learn scores 10 %
