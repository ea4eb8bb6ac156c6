"""The explorer page of a run: one HTML file with the weights, a few test images and all code.

:func:`build_explorer` loads the run (``cnnkit.load_run``: the network behind its Normalize
layer), describes its layers (:mod:`cnnkit.explore.network`), picks one test image per class,
packs the arrays (:mod:`cnnkit.explore.pack`) and fills the template ``assets/page.html``
with the style sheet, the JavaScript files of :data:`SCRIPTS` (inlined in that order, inside
one function) and the data. When the page would exceed ``max_bytes`` it keeps half of the
test images, then stores the large weight arrays as float16 (with every image, then fewer),
and says so on the page and in :attr:`ExplorerPage.notes`; what float16 changes is measured
on the page's test images here, with cnnkit's own forward.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from cnnkit.atomic import write_text
from cnnkit.errors import ConfigError
from cnnkit.explore.network import describe_network, user_kernels
from cnnkit.explore.pack import base64_text, pack, rounded

SCRIPTS = (
    "tensor.js",
    "layers.js",
    "network.js",
    "field.js",
    "explain.js",
    "render.js",
    "draw.js",
    "shapes.js",
    "playground.js",
    "charts.js",
    "main.js",
)
MAX_BYTES = 3_000_000
SAMPLES = 10  # test images on the page: the first of each class, in class order


@dataclass
class ExplorerPage:
    """A built page and what went into it."""

    html: str
    weights: str  # "float32" or "float16"
    samples: int
    notes: list[str] = field(default_factory=list)  # what was reduced, said on the page too
    unsupported: list[str] = field(default_factory=list)  # layers the page cannot run
    path: Path | None = None

    @property
    def size(self) -> int:
        return len(self.html.encode("utf-8"))

    def __repr__(self) -> str:
        where = "" if self.path is None else f" at {self.path}"
        return f"<ExplorerPage{where}: {self.size:,} bytes, {self.weights} weights>"

    def _repr_html_(self) -> str:
        """In a notebook the page runs inline, in a sandboxed frame that may run its own
        scripts and nothing else."""
        return (
            f'<iframe title="cnnkit explore" srcdoc="{html.escape(self.html, quote=True)}" '
            'sandbox="allow-scripts" style="width: 100%; height: 820px; border: 1px solid #ccc">'
            "</iframe>"
        )


def asset(name: str) -> str:
    return resources.files("cnnkit.explore").joinpath("assets", name).read_text("utf-8")


def write_explorer(
    run_dir, path=None, *, which: str = "best", max_bytes: int = MAX_BYTES, samples: int = SAMPLES
) -> ExplorerPage:
    """Write the explorer page of the run in ``run_dir`` to ``path`` (default
    ``RUN_DIR/explore.html``), whole or not at all; returns the :class:`ExplorerPage`."""
    page = build_explorer(run_dir, which=which, max_bytes=max_bytes, samples=samples)
    target = Path(path) if path is not None else Path(run_dir) / "explore.html"
    page.path = write_text(target, page.html)
    return page


def build_explorer(
    run_dir, *, which: str = "best", max_bytes: int = MAX_BYTES, samples: int = SAMPLES
) -> ExplorerPage:
    """The page of the run in ``run_dir`` (see the module docstring)."""
    return explorer_page(load_run_content(run_dir, which), max_bytes=max_bytes, samples=samples)


@dataclass
class RunContent:
    """What the page is made of: a loaded run (:func:`load_run_content`), or any model with
    a Normalize layer first, a header (``input_shape``, ``classes``, ``spec``, ``epoch``),
    its history and test images in loader units."""

    run_dir: Path
    which: str
    model: object
    header: dict
    history: list
    source: str
    images: np.ndarray  # (N, C, H, W) float32
    labels: np.ndarray  # (N,)


def explorer_page(
    content: RunContent, *, max_bytes: int = MAX_BYTES, samples: int = SAMPLES
) -> ExplorerPage:
    """The page of ``content`` within ``max_bytes`` (see :func:`_attempts` for what is given
    up first); a ConfigError when even float16 weights and one test image do not fit."""
    picks = _sample_indices(content.labels, samples)
    nodes, arrays, unsupported = describe_network(content.model, content.header["input_shape"])
    probabilities = _probabilities(content.model, content.images[picks])
    change = None
    for half, count in _attempts(len(picks)):
        if half and change is None:
            change = _half_change(content, picks, probabilities)
        notes = _notes(change if half else None, count, len(picks))
        page = _page(
            content, (nodes, arrays, unsupported, notes), picks[:count], probabilities, half
        )
        if page.size <= max_bytes:
            return page
    raise ConfigError(
        f"{content.run_dir}: the explorer page would be {page.size / 1e6:.2f} MB even with "
        f"float16 weights and {count} test image{'s' if count != 1 else ''}, over "
        f"the budget of {max_bytes / 1e6:g} MB; raise it (cnnkit explore --max-mb) or explore "
        "a smaller network"
    )


def _attempts(available: int) -> list[tuple[bool, int]]:
    """(float16?, test images) in the order tried: every image, then half of them, with
    float32 weights; then float16 weights with every image, half, a quarter, ... one."""
    counts = [available]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return [(False, n) for n in counts[:2]] + [(True, n) for n in counts]


def load_run_content(run_dir, which: str = "best") -> RunContent:
    """The run's model, header, history and test images, each checked as cnnkit's readers do."""
    from cnnkit.train import load_run, run_data
    from cnnkit.train.runfiles import read_history
    from cnnkit.train.runs import checked_run_dir

    run_dir = checked_run_dir(run_dir, which)
    model, header = load_run(run_dir, which)
    history = read_history(run_dir, header.get("history") or []) or []
    data, source = run_data(header, None)
    images = np.asarray(data.test_images, dtype=np.float32)
    return RunContent(run_dir, which, model, header, history, source, images, data.test_labels)


def _sample_indices(labels, count: int) -> list[int]:
    """The first test image of each class, in class order (then the next ones), ``count``."""
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)]
    taken = set(firsts)
    rest = (i for i in range(len(labels)) if i not in taken)
    picks = firsts[:count]
    while len(picks) < count:
        following = next(rest, None)
        if following is None:
            break
        picks.append(following)
    return picks


def _probabilities(model, images: np.ndarray) -> np.ndarray:
    """Softmax of the model's scores, as ``cnnkit predict`` computes it."""
    from cnnkit.train import predict

    if len(images) == 0:
        return np.zeros((0, 0))
    scores = predict(model, images)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _page(content: RunContent, parts, picks, probabilities, half: bool) -> ExplorerPage:
    nodes, arrays, unsupported, notes = parts
    images = [content.images[i] for i in picks]
    blob, entries = pack([*arrays, *images], half=half)
    samples = [
        {
            "index": int(i),
            "label": int(content.labels[i]),
            "tensor": len(arrays) + k,
            "cnnkit": [float(p) for p in probabilities[k]],
        }
        for k, i in enumerate(picks)
    ]
    data = {
        "run": _run_facts(content),
        "network": nodes,
        "tensors": entries,
        "samples": samples,
        "history": content.history,
        "drawing": _drawing_mode(content.header),
        "notes": notes,
        "unsupported": unsupported,
    }
    page = ExplorerPage("", "float16" if half else "float32", len(picks), notes, unsupported)
    page.html = _fill(data, blob, user_kernels(content.model))
    return page


def _notes(change: float | None, kept: int, available: int) -> list[str]:
    """What the page leaves out or reduces, in sentences shown on it and printed."""
    notes = []
    if change is not None:
        notes.append(
            "weights stored as float16 to keep the page small; on the page's test images this "
            f"changes the probabilities cnnkit computes by at most {change:.1e}"
        )
    if kept < available:
        notes.append(f"{kept} of {available} test images kept to keep the page small")
    return notes


def _half_change(content: RunContent, picks, probabilities) -> float:
    """Max |p(float16-rounded weights) - p(weights)| over the page's test images, by cnnkit."""
    if not picks:
        return 0.0
    model = copy.deepcopy(content.model)
    state = {key: rounded(value, half=True) for key, value in model.state_dict().items()}
    model.load_state_dict(state)
    changed = _probabilities(model, content.images[picks])
    return float(np.abs(changed - probabilities).max())


def _run_facts(content: RunContent) -> dict:
    header, history = content.header, content.history
    epoch = header.get("epoch")
    record = next((r for r in history if r.get("epoch") == epoch), None)
    return {
        "name": content.run_dir.name or str(content.run_dir),
        "checkpoint": content.which,
        "epoch": epoch,
        "epochs": (header.get("recipe") or {}).get("epochs"),
        "spec": header.get("spec", ""),
        "data": content.source,
        "classes": [str(name) for name in header["classes"]],
        "input_shape": [int(n) for n in header["input_shape"]],
        "val_accuracy": None if record is None else record.get("val_accuracy"),
        "test_images": len(content.labels),
    }


def _drawing_mode(header) -> str:
    """How the page turns a drawing into an input: as optdigits (8x8) or MNIST (28x28) digits
    were made, or a generic centring for other inputs (see assets/draw.js)."""
    shape = tuple(header["input_shape"])
    return {(1, 8, 8): "optdigits", (1, 28, 28): "mnist"}.get(shape, "generic")


def _finite(value):
    """``value`` with NaN and infinities as None (JSON has neither; a diverged epoch's loss)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _json(value) -> str:
    """JSON safe inside a <script> element: no '</' and no HTML comment openers."""
    text = json.dumps(_finite(value), allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _fill(data: dict, blob: bytes, kernels: dict[str, str]) -> str:
    """The page: the template with the style, the data and the scripts, the layers' own
    kernels (``explorer_js``) registered right after layers.js."""
    for kind, source in kernels.items():
        if "</script" in source.lower():
            raise ConfigError(f"{kind}.explorer_js contains '</script'; the page cannot hold it")
    own = "".join(
        f"KERNELS[{json.dumps(kind)}] = ({source});\n" for kind, source in kernels.items()
    )
    parts = [f"// ---- {name}\n{asset(name)}" for name in SCRIPTS]
    parts.insert(SCRIPTS.index("layers.js") + 1, f"// ---- the layers' own kernels\n{own}")
    script = "\n".join(parts)
    if "</script" in script.lower():
        raise AssertionError("an explorer script contains '</script'")
    title = html.escape(f"cnnkit explore: {data['run']['name']}")
    replacements = {
        "TITLE": title,
        "STYLE": asset("style.css"),
        "DATA": _json(data),
        "BLOB": base64_text(blob),
        "SCRIPT": '(function () {\n"use strict";\n' + script + "\n})();",
    }
    return re.sub(r"__([A-Z]+)__", lambda m: replacements[m.group(1)], asset("page.html"))
