"""What a summary holds: one :class:`Row` per layer, :class:`Totals`, and the :class:`Summary`
with its JSON and CSV forms (the text table and Markdown are in :mod:`.render`)."""

from __future__ import annotations

import csv as _csv
import io
import json
from dataclasses import dataclass

from cnnkit.summary import render
from cnnkit.summary.html import summary_html
from cnnkit.summary.render import human_bytes

SCHEMA = "cnnkit.summary/3"
DTYPE_NAMES = {2: "float16", 4: "float32", 8: "float64"}


@dataclass(frozen=True)
class Row:
    """One layer; every count is per example except ``output_shape`` (see the package docs)."""

    index: int
    layer: str
    kind: str
    output: str
    output_shape: tuple[int, ...]
    formula: str | None
    params: int
    shared_params: int
    buffers: int
    unshared_params: int
    connections: int
    fc_connections: int | None
    macs: int
    activation_bytes: int
    cache_bytes: int | None
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    notes: tuple[str, ...] = ()
    depth: int = 0  # 1 for a layer inside a branch of a top-level layer (RES's body), ...
    path: str = ""  # the layer's place in state_dict keys: "2", "2.body.0"
    branches: tuple[str, ...] = ()  # a layer with branches: their names ("body", "shortcut")

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "layer": self.layer,
            "kind": self.kind,
            "output": self.output,
            "output_shape": list(self.output_shape),
            "formula": self.formula,
            "params": self.params,
            "shared_params": self.shared_params,
            "buffers": self.buffers,
            "unshared_params": self.unshared_params,
            "connections": self.connections,
            "fc_connections": self.fc_connections,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "cache_bytes": self.cache_bytes,
            "receptive_field": _listed(self.receptive_field),
            "jump": _listed(self.jump),
            "notes": list(self.notes),
            "depth": self.depth,
            "path": self.path,
            "branches": list(self.branches),
        }


@dataclass(frozen=True)
class Totals:
    """Sums over the rows; ``macs`` and every ``*_bytes`` are for the whole batch."""

    params: int
    trainable_params: int
    non_trainable_params: int
    unshared_params: int
    macs_per_example: int
    macs: int
    param_bytes: int
    gradient_bytes: int
    activation_bytes: int
    cache_bytes: int
    backward_bytes: int
    training_bytes: int
    unreported_cache: tuple[int, ...] = ()  # rows whose layer does not say what it keeps

    def to_dict(self) -> dict:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["unreported_cache"] = list(self.unreported_cache)
        return values


def _listed(pair: tuple[int, int] | None) -> list[int] | None:
    return None if pair is None else list(pair)


@dataclass(frozen=True, repr=False)
class Summary:
    """Rows and totals for one network, input volume and batch; render with :meth:`table`,
    :meth:`markdown`, :meth:`to_json` or :meth:`csv`."""

    architecture: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    batch: int
    dtype_bytes: int
    floor: bool
    rows: tuple[Row, ...]
    totals: Totals

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return f"<Summary of {self.architecture} on {c}x{h}x{w}, batch {self.batch}>"

    def _repr_html_(self) -> str:
        """What a notebook shows: the table as HTML (``cnnkit.summary.html``)."""
        return summary_html(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.table())

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype_bytes, f"{self.dtype_bytes}-byte values")

    def to_dict(self) -> dict:
        """The JSON document as Python objects (schema in the package docstring)."""
        return {
            "schema": SCHEMA,
            "architecture": self.architecture,
            "input_shape": list(self.input_shape),
            "batch": self.batch,
            "dtype_bytes": self.dtype_bytes,
            "floor": self.floor,
            "rows": [row.to_dict() for row in self.rows],
            "totals": self.totals.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Stable JSON: same summary, same string (keys in documented order)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def csv(self) -> str:
        """One header line, then one line per layer; plain integers, empty for null."""
        buffer = io.StringIO()
        writer = _csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for row in self.rows:
            writer.writerow(_csv_cells(row))
        return buffer.getvalue()

    def table(self, width: int = 100) -> str:
        """Plain text, every line at most ``width`` columns where the layer names allow it."""
        return render.table(self, width)

    def markdown(self) -> str:
        """A GitHub table with every field, then the totals as a list."""
        return render.markdown(self)

    def total_lines(self) -> list[tuple[str, str]]:
        """The totals as (label, text) pairs, shared by the table and the markdown."""
        t, n = self.totals, self.batch
        params = (
            f"{t.params:,} (trainable {t.trainable_params:,}, non-trainable "
            f"{t.non_trainable_params:,}), {human_bytes(t.param_bytes)}"
        )
        unknown = ""
        if t.unreported_cache:
            which = ", ".join(str(i) for i in t.unreported_cache)
            unknown = f" (layer {which} does not say what it keeps: not counted)"
        return [
            ("parameters", params),
            ("without sharing", f"{t.unshared_params:,} (one CONV filter per output unit)"),
            ("multiply-adds", f"{t.macs_per_example:,} per example, {t.macs:,} for the batch"),
            ("forward outputs", f"{human_bytes(t.activation_bytes)} (every new layer output)"),
            (
                "backward keeps",
                f"{human_bytes(t.backward_bytes)} = layer caches "
                f"{human_bytes(t.cache_bytes)} + parameter gradients "
                f"{human_bytes(t.gradient_bytes)}{unknown}",
            ),
            (
                "training step",
                f"{human_bytes(t.training_bytes)} = parameters + what backward keeps "
                f"(not counting transient buffers or the input batch of {n})",
            ),
        ]


CSV_FIELDS = (
    "index",
    "layer",
    "kind",
    "output",
    "output_shape",
    "formula",
    "params",
    "shared_params",
    "buffers",
    "unshared_params",
    "connections",
    "fc_connections",
    "macs",
    "activation_bytes",
    "cache_bytes",
    "receptive_field_h",
    "receptive_field_w",
    "jump_h",
    "jump_w",
    "notes",
    "depth",
    "path",
    "branches",
)


def _csv_cells(row: Row) -> list:
    field = row.receptive_field or (None, None)
    jump = row.jump or (None, None)
    cells = [
        row.index,
        row.layer,
        row.kind,
        row.output,
        "x".join(map(str, row.output_shape)),
        row.formula,
        row.params,
        row.shared_params,
        row.buffers,
        row.unshared_params,
        row.connections,
        row.fc_connections,
        row.macs,
        row.activation_bytes,
        row.cache_bytes,
        *field,
        *jump,
        "; ".join(row.notes),
        row.depth,
        row.path,
        " ".join(row.branches),
    ]
    return ["" if cell is None else cell for cell in cells]
