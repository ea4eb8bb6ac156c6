"""cnnkit against another checkout of cnnkit, in one process, call by call.

On a shared machine timings drift by tens of percent within minutes, so two versions timed in
separate runs cannot be compared to a few percent. This script copies the other checkout's
``src/cnnkit`` into a temporary package ``cnnkit_other`` (its imports renamed), builds the same
case in both versions with the same weights and inputs, and times them in pairs, A B B A, for a
few seconds per case: the median of the paired ratios (this/other; below 1: this one is faster)
moves far less than either time. The cases are those of ``bench.py`` (the convolutions, the
poolings, the LeNet-5 training step) and the lecture's network on one image, where there is
little arithmetic and the difference is the per-layer Python overhead::

    git worktree add /tmp/before HEAD~5
    python benchmarks/compare.py --other /tmp/before
    python benchmarks/compare.py --other /tmp/before --cases "LeNet-5" --seconds 10
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 64
CONVS = {
    "LeNet conv1 1x28x28 -> 6@5x5 P=2": (64, 1, 28, 28, 6, 5, 1, 2),
    "LeNet conv2 6x14x14 -> 16@5x5": (64, 6, 14, 14, 16, 5, 1, 0),
    "3x32x32 -> 32@3x3 P=1": (64, 3, 32, 32, 32, 3, 1, 1),
    "32x32x32 -> 64@3x3 P=1": (64, 32, 32, 32, 64, 3, 1, 1),
    "64x16x16 -> 128@3x3 P=1": (64, 64, 16, 16, 128, 3, 1, 1),
    "AlexNet conv1 3x227x227 -> 96@11x11 S=4, N=8": (8, 3, 227, 227, 96, 11, 4, 0),
}
POOLS = {
    f"{kind} pool 2x2 S=2 on {channels}x32x32": (kind, channels)
    for channels in (32, 64)
    for kind in ("max", "avg")
}
STEP = "LeNet-5 training step, batch 64"
LECTURE = "lecture net (8 layers), batch 1"  # little arithmetic: the per-layer Python overhead


def load_other(checkout: Path):
    """The other checkout's cnnkit as the package ``cnnkit_other``."""
    folder = Path(tempfile.mkdtemp(prefix="cnnkit-other-"))
    target = folder / "cnnkit_other"
    shutil.copytree(checkout / "src" / "cnnkit", target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bcnnkit\.", "cnnkit_other.", text)
        text = re.sub(r"\bfrom cnnkit import\b", "from cnnkit_other import", text)
        text = re.sub(r"^(\s*)import cnnkit$", r"\1import cnnkit_other as cnnkit", text, flags=re.M)
        path.write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("cnnkit_other")


def channels_last(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def lenet(lib, rng):
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2, rng=rng),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5, rng=rng),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120, rng=rng),
        lib.ReLU(),
        lib.Linear(120, 84, rng=rng),
        lib.ReLU(),
        lib.Linear(84, 10, rng=rng),
    )


def calls(lib, name: str) -> dict:
    """``{mode: call}`` for one case in one version, with seed-0 weights and inputs."""
    rng = np.random.default_rng(0)
    if name == STEP:
        model, loss_fn = lenet(lib, rng), lib.CrossEntropyLoss()
        optimizer = lib.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, BATCH)

        def step():
            loss_fn.forward(model.forward(x), labels)
            optimizer.zero_grad()
            model.backward(loss_fn.backward(), input_grad=False)
            optimizer.step()

        return {"step": step}
    if name == LECTURE:
        return _lecture_calls(lib, rng)
    if name in CONVS:
        n, c, h, w, d, k, s, p = CONVS[name]
        layer = lib.Conv2d(c, d, k, stride=s, padding=p, rng=rng)
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        x = channels_last(x) if c >= 8 else x
    else:
        kind, c = POOLS[name]
        layer = (lib.MaxPool2d if kind == "max" else lib.AvgPool2d)(2)
        x = channels_last(rng.standard_normal((BATCH, c, 32, 32), dtype=np.float32))
    dy = np.empty_like(layer.forward(x))
    dy[...] = rng.standard_normal(dy.shape, dtype=np.float32)

    def forward_backward():
        layer.forward(x)
        layer.backward(dy)

    return {"forward": lambda: layer.forward(x), "fwd+bwd": forward_backward}


def _lecture_calls(lib, rng) -> dict:
    """The lecture's network on one 8x8 digit: an evaluation forward and a training step."""
    model = lib.lecture_network((1, 8, 8), 10, rng=rng)
    loss_fn = lib.CrossEntropyLoss()
    optimizer = lib.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = rng.random((1, 1, 8, 8), dtype=np.float32)
    labels = np.array([3])

    def forward():
        model.eval()
        model.forward(x)

    def step():
        model.train()
        loss_fn.forward(model.forward(x), labels)
        optimizer.zero_grad()
        model.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()

    return {"forward": forward, "step": step}


def paired(other, this, seconds: float) -> tuple[float, float, float, int]:
    """(median ms of other, of this, median of the paired ratios this/other, pairs)."""
    for _ in range(5):
        other()
        this()
    times = {"other": [], "this": []}
    ratios = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(ratios) < 20:
        pair = {}
        for name, call in (("other", other), ("this", this), ("this", this), ("other", other)):
            start = time.perf_counter()
            call()
            pair.setdefault(name, []).append(time.perf_counter() - start)
        for name in times:
            times[name] += pair[name]
        ratios.append(sum(pair["this"]) / sum(pair["other"]))
    other_ms, this_ms = (1e3 * statistics.median(times[name]) for name in ("other", "this"))
    return other_ms, this_ms, statistics.median(ratios), len(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, help="the other checkout (its src/cnnkit)")
    parser.add_argument("--cases", nargs="*", default=[], help="cases whose name contains")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per case and mode")
    args = parser.parse_args()
    import cnnkit

    other = load_other(Path(args.other).resolve())
    names = [*CONVS, *POOLS, STEP, LECTURE]
    names = [n for n in names if not args.cases or any(c.lower() in n.lower() for c in args.cases)]
    print(f"{'case':<46} {'mode':<8} {'other ms':>9} {'this ms':>9} {'this/other':>10}")
    ratios = []
    for name in names:
        theirs, ours = calls(other, name), calls(cnnkit, name)
        for mode in ours:
            other_ms, this_ms, ratio, _ = paired(theirs[mode], ours[mode], args.seconds)
            ratios.append(ratio)
            print(
                f"{name:<46} {mode:<8} {other_ms:>9.3f} {this_ms:>9.3f} {ratio:>10.3f}", flush=True
            )
    mean = statistics.geometric_mean(ratios)
    print(f"geometric mean this/other {mean:.3f}; worst {max(ratios):.3f}")


if __name__ == "__main__":
    main()
