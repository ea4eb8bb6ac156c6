"""Runs for the explorer tests (trained for one epoch on the embedded digits), their pages,
and one Chromium for every page test (Playwright, with Debian's /usr/bin/chromium)."""

from __future__ import annotations

import contextlib
import io
import shutil

import layers
import pytest

from cnnkit import cli
from cnnkit.explore import write_explorer
from cnnkit.nn import registry

BROWSER_MISSING = (
    "needs Playwright and a Chromium: pip install playwright, and apt-get install chromium "
    "(Playwright here drives /usr/bin/chromium, it downloads no browser)"
)

# Every layer kind the page computes, with the options that change what it computes:
# asymmetric "same" padding, dilation, the padding modes, groups and depthwise, a projection
# shortcut of stride 2, nested blocks, a dilated max pool, ceil_mode, count_include_pad and an
# adaptive pool with overlapping windows.
EVERY_KIND = (
    "INPUT(1x8x8) - CONV(D=4, F=2, P=same) - BN - RELU"
    " - CONV(D=4, F=3, P=same, dilation=2, padding_mode=reflect)"
    " - RES[CONV(D=4, F=3, P=1, padding_mode=circular) - BN - LEAKYRELU(0.1)"
    " - CONV(D=4, F=3, P=1, padding_mode=replicate, bias=false) - BN] - TANH"
    " - RES[RES[CONV(D=4, F=1) - TANH] - RELU] - POOL(max, F=3, S=1, P=1, dilation=2)"
    " - POOL(avg, F=3, S=2, P=1, ceil=true, count_include_pad=false) - GAP(out=3)"
    " - RES[CONV(D=8, F=3, S=2, P=1) - BN - SIGMOID - CONV(D=8, F=3, P=1, groups=2)"
    " | CONV(D=8, F=1, S=2) - BN] - RELU - CONV(D=8, F=3, P=2, groups=8) - DROPOUT2D(p=0.1)"
    " - POOL(max, F=3, S=2, ceil=true) - POOL(avg, F=2, S=1, P=1) - FC(12) - BN1D"
    " - DROPOUT(p=0.2) - FC(10)"
)
RESIDUAL = (
    "INPUT(1x8x8) - CONV(D=8, F=3, P=1) - BN - RELU"
    " - RES[CONV(D=8, F=3, P=1) - BN - RELU - CONV(D=8, F=3, P=1) - BN] - RELU"
    " - RES[CONV(D=16, F=3, S=2, P=1) - BN - RELU - CONV(D=16, F=3, P=1) - BN"
    " | CONV(D=16, F=1, S=2) - BN] - RELU - GAP - FC(10)"
)


def train(out, *options) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["train", "--epochs", "1", "--quiet", "--out", str(out), *options]) == 0


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """{name: run directory}: the lecture's network (the default recipe, one epoch), a
    residual network and the network of every layer kind (one epoch on a tenth of the data)."""
    root = tmp_path_factory.mktemp("explore-runs")
    found = {"lecture": root / "lecture", "residual": root / "residual", "every": root / "every"}
    train(found["lecture"])
    train(found["residual"], "--arch", RESIDUAL, "--validation", "0.9")
    train(found["every"], "--arch", EVERY_KIND, "--validation", "0.9")
    return found


class Scale(layers.Scale):
    """A user's layer the page has no code for (registered only while its run is made)."""


@pytest.fixture(scope="session")
def pages(runs, tmp_path_factory):
    """{name: ExplorerPage} written by write_explorer, one per run, and "user": a run with a
    user's own registered layer (MYSCALE, layer 3) that the page cannot run."""
    root = tmp_path_factory.mktemp("explore-pages")
    found = {name: write_explorer(run, root / f"{name}.html") for name, run in runs.items()}
    registry.register_layer("MYSCALE")(Scale)
    try:
        run = root / "user-run"
        arch = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - RELU - MYSCALE(init=0.5) - FC(10)"
        train(run, "--arch", arch, "--validation", "0.9")
        found["user"] = write_explorer(run, root / "user.html")
    finally:
        registry.unregister("MYSCALE")
    return found


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every page test; skipped with how to get one."""
    sync_api = pytest.importorskip("playwright.sync_api", reason=BROWSER_MISSING)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(BROWSER_MISSING)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


class Opened:
    """A page opened from file://, with every console error, page error and request for
    anything but file: or data: collected in ``problems``."""

    def __init__(self, browser, page, *, width=1280, height=800):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("request", self._request)
        self.page.goto(page.path.resolve().as_uri())
        self.page.wait_for_function("window.cnnkit && window.cnnkit.ready === true")

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _request(self, request) -> None:
        if not request.url.startswith(("file:", "data:")):
            self.problems.append(f"request: {request.url}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    """open_page(page, width=..., height=...) -> Opened; afterwards nothing may have gone
    wrong in any page opened: no console error, no page error, no network request."""
    opened: list[Opened] = []

    def open_one(page, **size) -> Opened:
        opened.append(Opened(browser, page, **size))
        return opened[-1]

    yield open_one
    problems = [problem for one in opened for problem in one.problems]
    for one in opened:
        one.close()
    assert problems == []
