"""The pictures of docs/explore.md, from a real run: docs/images/explorer.png,
explorer-unit.png and explorer-playground.png (1280x800) and explorer-phone.png (390x844).

Trains the lecture's network on the embedded digits with the default recipe (what ``make
demo`` trains), writes its explorer page with ``cnnkit explore``, opens it in Chromium
(Playwright driving /usr/bin/chromium: pip install playwright, apt-get install chromium), picks
a test image, clicks a unit of the second CONV layer and photographs the page.

    python benchmarks/explorer_screenshots.py [--run DIR] [--out docs/images]

``--run`` uses a run directory that exists instead of training one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def train_run(out: Path) -> Path:
    from cnnkit import cli

    if cli.main(["train", "--quiet", "--out", str(out)]) != 0:
        raise SystemExit("training failed")
    return out


def photograph(page_path: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        desktop = browser.new_page(viewport={"width": 1280, "height": 800})
        desktop.goto(page_path.resolve().as_uri())
        desktop.wait_for_function("window.cnnkit && window.cnnkit.ready === true")
        desktop.click("#samples button >> nth=3")
        click(desktop, 2, 5, 0.6, 0.4)  # layer 1 CONV(D=32), map 5
        written.append(out / "explorer.png")
        desktop.screenshot(path=str(written[-1]))
        click(desktop, 5, 7, 5 / 8, 3 / 8)  # layer 4 CONV(D=64), map 7: 288 products
        desktop.evaluate(
            "window.scrollBy(0, document.querySelector('#unit').getBoundingClientRect().top - 300)"
        )
        written.append(out / "explorer-unit.png")
        desktop.screenshot(path=str(written[-1]))
        desktop.evaluate("document.querySelector('#playground').scrollIntoView()")
        written.append(out / "explorer-playground.png")
        desktop.screenshot(path=str(written[-1]))
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(page_path.resolve().as_uri())
        phone.wait_for_function("window.cnnkit && window.cnnkit.ready === true")
        phone.click("#samples button >> nth=3")
        written.append(out / "explorer-phone.png")
        phone.screenshot(path=str(written[-1]))
        browser.close()
    return written


def click(page, record: int, map_index: int, x: float, y: float) -> None:
    """Click a unit of map ``map_index`` of the page's record ``record`` (0: the input), at
    (x, y) of the map's width and height."""
    canvas = page.locator(f"#layer-{record} canvas.map").nth(map_index)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * x, "y": box["height"] * y})
    page.evaluate("window.scrollTo(0, 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train one)")
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args()
    from cnnkit.explore import write_explorer

    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or train_run(Path(scratch) / "optdigits")
        page = write_explorer(run, Path(scratch) / "explore.html")
        print(f"{page.path}: {page.size:,} bytes, weights as {page.weights}")
        for path in photograph(page.path, args.out):
            print(path)


if __name__ == "__main__":
    main()
