"""The explorer page in a real Chromium: its forward pass against cnnkit's, drawing, units
and their dot products, receptive fields, the keyboard, the playground against cnnkit
explain, the user's own layer, and the page at a desktop and a phone width."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re

import layers
import numpy as np
import pytest

import cnnkit
from cnnkit import cli
from cnnkit.errors import CnnkitError
from cnnkit.explain.shape import explain_shape
from cnnkit.explain.sharing import explain_sharing
from cnnkit.explore import SUPPORTED, write_explorer
from cnnkit.train.runfiles import read_history

pytestmark = pytest.mark.usefixtures("browser")


def forward(opened, image):
    return opened.page.evaluate("(image) => window.cnnkit.forward(image)", image.tolist())


def softmax(scores):
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def layer_outputs(model, images) -> dict[str, np.ndarray]:
    """cnnkit's output of every layer (nested ones too, containers left out) for ``images``,
    keyed by path."""
    found = {}

    def hook_all(layer, path):
        for name, child in layer.named_children():
            where = f"{path}.{name}" if path else name
            if not isinstance(child, cnnkit.Sequential):
                child.register_forward_hook(lambda _, x, y, at=where: found.update({at: y}))
            hook_all(child, where)

    hook_all(model, "")
    with cnnkit.no_grad():
        model.forward(images)
    return found


def test_probabilities_equal_cnnkit_predict(runs, pages, open_page):
    opened = open_page(pages["lecture"])
    samples = opened.page.evaluate("window.cnnkit.samples()")
    assert len(samples) == 10 and sorted(s["label"] for s in samples) == list(range(10))
    argv = ["predict", str(runs["lecture"]), "--json", "--top", "10"]
    for sample in samples:
        argv += ["--index", str(sample["index"])]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv) == 0
    predicted = json.loads(out.getvalue())
    for sample, expected in zip(samples, predicted, strict=True):
        page = forward(opened, np.array(sample["image"]))["probabilities"]
        for guess in expected["top"]:
            assert abs(page[int(guess["class"])] - guess["probability"]) <= 1e-4
    assert opened.page.evaluate("window.cnnkit.agreement") <= 1e-4


@pytest.mark.parametrize("name", ["every", "residual"])
def test_every_layer_equals_cnnkit_on_random_images(name, runs, pages, open_page):
    model, header = cnnkit.load_run(runs[name])
    images = np.random.default_rng(1).uniform(-0.25, 1.25, (4, *header["input_shape"]))
    images = images.astype(np.float32)
    opened = open_page(pages[name])
    expected = softmax(cnnkit.train.predict(model, images))
    reference = layer_outputs(model, images)
    for k, image in enumerate(images):
        result = forward(opened, image)
        assert result["unsupported"] is None
        assert np.abs(np.array(result["probabilities"]) - expected[k]).max() <= 1e-4
        assert {layer["name"] for layer in result["layers"]} == set(reference)
        for layer in result["layers"]:
            values = np.array(layer["values"]).reshape(layer["shape"])
            np.testing.assert_allclose(
                values, reference[layer["name"]][k], atol=1e-4, err_msg=layer["name"]
            )
    kinds = {layer["kind"] for layer in result["layers"]}
    if name == "every":  # the network holds every kind the page computes
        assert kinds == set(SUPPORTED) == set(opened.page.evaluate("window.cnnkit.kinds"))
    else:
        assert "RES" in kinds and "6.shortcut.0" in {layer["name"] for layer in result["layers"]}


def stroke(page, points):
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#verdict').textContent !== ''")


def test_drawing_a_digit_changes_the_prediction(pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    before = page.evaluate("window.cnnkit.current()")
    stroke(page, [(0.5, 0.15 + 0.7 * k / 15) for k in range(16)])  # a vertical bar
    bar = page.evaluate("window.cnnkit.current()")
    ring = [
        (0.5 + 0.25 * math.cos(t / 10 * math.pi), 0.5 + 0.35 * math.sin(t / 10 * math.pi))
        for t in range(21)
    ]
    page.click("#clear")
    stroke(page, ring)
    circle = page.evaluate("window.cnnkit.current()")
    for drawn in (bar, circle):
        image = np.array(drawn["image"])
        assert image.shape == (1, 8, 8) and 0 < image.sum() and image.max() <= 1
        # what the page shows is its forward pass of the drawn image
        assert drawn["probabilities"] == forward(opened, image)["probabilities"]
    assert np.abs(np.array(bar["probabilities"]) - before["probabilities"]).max() > 0.01
    assert np.abs(np.array(circle["probabilities"]) - bar["probabilities"]).max() > 0.01
    shown = page.inner_text("#verdict")
    best = int(np.argmax(circle["probabilities"]))
    assert shown.startswith(f"Predicted {best} (")


def click_unit(page, record: int, map_index: int, row: int, col: int):
    """Click unit (row, col) of map ``map_index`` of record ``record`` (0: the input); the
    unit's card."""
    canvas = page.locator(f"#layer-{record} canvas.map").nth(map_index)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    rows, cols = int(canvas.get_attribute("data-rows")), int(canvas.get_attribute("data-cols"))
    x, y = (col + 0.5) * box["width"] / cols, (row + 0.5) * box["height"] / rows
    canvas.click(position={"x": x, "y": y})
    return page.locator("#unit")


def test_a_conv_unit_shows_its_dot_product_equal_to_the_map(runs, pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    image = np.array(page.evaluate("window.cnnkit.current().image"), dtype=np.float32)
    layers = forward(opened, image)["layers"]
    # layer 3 CONV(D=64) is record 5 (record 0 is the input); unit (1, 2) of map 7
    card = click_unit(page, 5, 7, 1, 2)
    conv = next(layer for layer in layers if layer["name"] == "4")
    value = np.array(conv["values"]).reshape(conv["shape"])[7, 1, 2]
    assert float(card.get_attribute("data-value")) == pytest.approx(value, abs=1e-12)
    assert float(card.get_attribute("data-total")) == pytest.approx(value, abs=1e-9)
    text = card.inner_text()
    total = card.locator("[data-role=total]").inner_text()
    assert f"= {total}" in page.inner_text("#unit h3")  # the sum is the map's value as printed
    assert "sum of all 288 products" in text and "then layer 5 RELU: max(0, " in text
    model, _ = cnnkit.load_run(runs["lecture"])
    with cnnkit.no_grad():
        pooled = model[:4].forward(image[None])[0]  # the input of layer 4 (CONV)
    window = np.pad(pooled, ((0, 0), (1, 1), (1, 1)))[:, 1:4, 2:5]
    by_cnnkit = float((model[4].weight.data[7] * window).sum() + model[4].bias.data[7])
    assert value == pytest.approx(by_cnnkit, abs=1e-5)
    # its receptive field, window by window back to the input: CONV(F=3, P=1) on 4x4,
    # POOL(F=2, S=2) on 8x8, CONV(F=3, P=1) on 8x8 (a window's inputs, clipped to the image)
    rows, cols = (1, 1), (2, 2)
    for kernel, stride, padding, size in ((3, 1, 1, 4), (2, 2, 0, 8), (3, 1, 1, 8)):
        rows, cols = (
            (max(0, lo * stride - padding), min(size - 1, hi * stride - padding + kernel - 1))
            for lo, hi in (rows, cols)
        )
    field = f"rows {rows[0]}..{rows[1]}, columns {cols[0]}..{cols[1]}"
    assert field in card.locator(".field").inner_text()


def test_a_max_pool_unit_names_its_winner(pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    card = click_unit(page, 4, 3, 1, 2)  # layer 3 POOL(max, F=2, S=2)
    value = float(card.get_attribute("data-value"))
    winner = card.locator("mark").inner_text()
    assert float(winner.split("(")[0]) == pytest.approx(value, rel=1e-4, abs=1e-6)
    assert "winner: row" in card.inner_text() and "green: the input that won" in card.inner_text()


def test_units_are_reachable_by_keyboard(pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    page.focus("#layer-2 .maps")  # layer 1 CONV
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("PageDown")
    page.keyboard.press("Enter")
    title = page.inner_text("#unit h3")
    assert title.startswith("1 CONV(D=32, F=3, S=1, P=1): unit (row 1, column 1) of map 1 = ")
    assert page.get_attribute("#layer-2 .maps", "aria-label").startswith("1 CONV(D=32, F=3")
    assert page.inner_text("#announce") == title


def test_the_playground_prints_what_cnnkit_explain_prints(pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    assert page.inner_text("#pg-sharing") == explain_sharing("alexnet-conv1").text()
    assert page.inner_text("#pg-shape") == explain_shape(227, 11, 4, 0).text()
    page.select_option("#pg-preset", index=1)  # 10 wide, F=3, S=2: impossible
    assert page.inner_text("#pg-shape") == explain_shape(10, 3, 2, 0).text()
    assert "impossible" in page.inner_text("#pg-shape")
    page.fill("#pg-p", "1")
    assert page.inner_text("#pg-shape") == explain_shape(10, 3, 2, 1).text()
    rng = random.Random(0)
    for _ in range(60):
        i, f, s, p = rng.randint(1, 40), rng.randint(1, 9), rng.randint(1, 6), rng.randint(0, 4)
        d, floor = rng.choice([1, 1, 2, 3]), rng.random() < 0.3
        got = page.evaluate(
            "(a) => window.cnnkit.explainShape(a[0], a[1], a[2], a[3],"
            " {dilation: a[4], floor: a[5]})",
            [i, f, s, p, d, floor],
        )
        assert got == explain_shape(i, f, s, p, floor=floor, dilation=d).text()
        spec = f"INPUT(3x{i}x{i}) - CONV(D=8, F={f}, S={s}, P={p}"
        spec += (f", dilation={d}" if d != 1 else "") + (", round=floor" if floor else "") + ")"
        try:
            want = explain_sharing(spec).text()
        except CnnkitError:
            want = None
        assert (
            page.evaluate("(a) => window.cnnkit.explainSharing(...a)", [i, 3, f, s, p, d, 8, floor])
            == want
        )


def test_filters_and_training_curves(runs, pages, open_page):
    opened = open_page(pages["lecture"])
    page = opened.page
    assert page.locator("#filter-grid canvas").count() == 32
    history = read_history(runs["lecture"])
    assert page.locator("#history tr").count() == len(history) + 1
    assert page.locator("#curve-charts svg").count() == 2


def test_a_layer_the_page_cannot_run_is_named(pages, open_page):
    assert pages["user"].unsupported == ["layer 3 MYSCALE: the page cannot run this layer"]
    opened = open_page(pages["user"])
    page = opened.page
    result = forward(opened, np.zeros((1, 8, 8)))
    assert result["probabilities"] is None
    assert result["unsupported"] == "layer 3 MYSCALE: the page cannot run this layer"
    assert [layer["name"] for layer in result["layers"]] == ["0", "1", "2"]
    assert "layer 3 MYSCALE: the page cannot run this layer" in page.inner_text("#notices")
    assert "the page cannot run this layer" in page.inner_text("#unsupported")
    assert page.inner_text("#verdict").startswith("No prediction: layer 3 MYSCALE")


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_the_page_fits_a_desktop_and_a_phone(width, height, pages, open_page, tmp_path):
    opened = open_page(pages["every"], width=width, height=height)
    page = opened.page
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.locator("#pad").bounding_box()["width"] <= width
    page.screenshot(path=str(tmp_path / f"explorer-{width}.png"))
    for selector in ("#pad", "#clear", "#samples button", "#layer-1 .maps", "#pg-i"):
        label = page.evaluate(
            "(s) => { const e = document.querySelector(s); return e.getAttribute('aria-label')"
            " || (e.labels && e.labels[0] && e.labels[0].textContent) || e.textContent; }",
            selector,
        )
        assert label.strip(), selector


def test_in_a_notebook_the_page_runs_inline_in_a_sandboxed_frame(runs, pages, browser, tmp_path):
    page = pages["lecture"]
    frame_html = page._repr_html_()
    assert frame_html.startswith('<iframe title="cnnkit explore" srcdoc="')
    assert 'sandbox="allow-scripts"' in frame_html
    holder = tmp_path / "notebook-cell.html"
    holder.write_text(f"<!doctype html><html><body>{frame_html}</body></html>", "utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        errors = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(holder.resolve().as_uri())
        tab.wait_for_function("document.querySelector('iframe') !== null")
        frame = next(f for f in tab.frames if f is not tab.main_frame)
        frame.wait_for_function("window.cnnkit && window.cnnkit.ready === true")
        sample = frame.evaluate("window.cnnkit.samples()")[0]
        inline = frame.evaluate("(image) => window.cnnkit.forward(image)", sample["image"])
        model, _ = cnnkit.load_run(runs["lecture"])
        expected = softmax(model.forward(np.array([sample["image"]], np.float32)))[0]
        assert np.abs(np.array(inline["probabilities"]) - expected).max() <= 1e-4
        assert not errors
    finally:
        context.close()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("flat", r"image has 8 entries along C, expected 1"),
        ("nan", r"image\[0\]\[2\]\[3\] is null, not a finite number"),  # JSON sends NaN as null
        ("text", r"image\[0\]\[0\]\[0\] is \"0.5\", not a finite number"),
        ("bool", r"image\[0\]\[1\]\[1\] is true, not a finite number"),
        ("deep", r"image\[0\]\[0\]\[0\] is \[0\.5\], not a finite number"),
        ("short", r"image\[0\] has 7 entries along H, expected 8"),
    ],
    ids=["flat", "nan", "text", "bool", "deep", "short"],
)
def test_forward_refuses_what_is_not_one_image_of_finite_numbers(pages, open_page, image, message):
    opened = open_page(pages["lecture"])
    good = [[[0.5] * 8 for _ in range(8)]]
    bad = {
        "flat": good[0],
        "nan": [[[0.5] * 8 for _ in range(2)] + [[0.5] * 3 + [None] + [0.5] * 4] + good[0][3:]],
        "text": [[["0.5", *good[0][0][1:]], *good[0][1:]]],
        "bool": [[good[0][0], [0.5, True, *good[0][1][2:]], *good[0][2:]]],
        "deep": [[[[0.5], *good[0][0][1:]], *good[0][1:]]],
        "short": [good[0][:7]],
    }[image]
    thrown = opened.page.evaluate(
        "(image) => { try { window.cnnkit.forward(image); return null; }"
        " catch (error) { return error.message; } }",
        bad,
    )
    assert thrown is not None and re.search(message, thrown), thrown
    inf = opened.page.evaluate(
        "() => { const image = [[...Array(8)].map(() => Array(8).fill(0.5))];"
        " image[0][4][4] = Infinity;"
        " try { window.cnnkit.forward(image); return null; }"
        " catch (error) { return error.message; } }"
    )
    assert inf is not None and "is Infinity, not a finite number" in inf


class OwnKernelScale(layers.Scale):
    """A user's layer that brings its own JavaScript for the page."""

    explorer_js = "(node, x) => perChannel(x, (v, c) => v * param(node, 'weight')[c])"
    explorer_pointwise = True


@pytest.fixture(scope="module")
def own_kernel_page(tmp_path_factory):
    from cnnkit.nn import registry

    root = tmp_path_factory.mktemp("own-kernel")
    registry.register_layer("OWNSCALE")(OwnKernelScale)
    try:
        arch = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - OWNSCALE(init=0.5) - RELU - FC(10)"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            argv = ["train", "--epochs", "1", "--quiet", "--arch", arch, "--validation", "0.9"]
            assert cli.main([*argv, "--out", str(root / "run")]) == 0
        page = write_explorer(root / "run", root / "own.html")
        model, _ = cnnkit.load_run(root / "run")
        yield page, model
    finally:
        registry.unregister("OWNSCALE")


def test_a_users_layer_with_its_own_kernel_runs_on_the_page(own_kernel_page, open_page):
    page, model = own_kernel_page
    assert page.unsupported == []
    opened = open_page(page)
    images = np.random.default_rng(3).random((3, 1, 8, 8))
    expected = softmax(model.forward(images.astype(np.float32)))
    for image, probabilities in zip(images, expected, strict=True):
        result = forward(opened, image)
        assert result["unsupported"] is None
        assert np.abs(np.array(result["probabilities"]) - probabilities).max() <= 1e-4
    card = click_unit(opened.page, 3, 2, 4, 5)  # record 3: layer 2 OWNSCALE
    text = card.inner_text()
    assert "the layer's own kernel (its class's explorer_js) computed" in text
    assert float(card.get_attribute("data-total")) == pytest.approx(
        float(card.get_attribute("data-value")), abs=1e-12
    )
    # pointwise, so the field is the CONV window under (4, 5): rows 3..5, columns 4..6
    assert "rows 3..5, columns 4..6" in card.locator(".field").inner_text()
