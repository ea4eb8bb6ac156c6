"""What a network costs, layer by layer, from its shapes alone: no weights, no data.

:func:`summarize` walks :func:`cnnkit.architecture.trace` (the same arithmetic every layer's forward
uses), so VGG16 on 224x224 takes milliseconds. One :class:`Row` per layer, in the lecture's
letters (D filters, F filter size, S stride, P padding), and :class:`Totals` underneath.

>>> from cnnkit.spec import parse
>>> s = summarize(parse("alexnet-conv1"))
>>> row = s.rows[0]
>>> row.output, row.formula, row.params, row.unshared_params
('55x55x96', '(227 - 11 + 2*0)/4 + 1 = 55', 34944, 105705600)
>>> row.connections, row.fc_connections, row.receptive_field, row.jump
(363, 154587, (11, 11), (4, 4))

Accounting (per example unless a name says otherwise; bytes use ``dtype_bytes``, 4 = float32)
-------------------------------------------------------------------------------------------
params
    With sharing. CONV: D*(F*F*C + 1) (no +1 with ``bias=false``); FC: OUT*(IN + 1);
    POOL, RELU, FLATTEN: 0.
unshared_params
    CONV: a locally connected layer with its own filter for every output unit,
    OH*OW*D*(F*F*C + 1) (AlexNet conv1: 55*55*96*(11*11*3 + 1) = 105,705,600); FC: its params
    (an FC layer shares nothing); others 0.
connections
    Inputs one output unit reads (the lecture's sparse interactions); the bias is a parameter,
    not a connection. CONV: F*F*C; POOL: F*F (one depth slice); RELU, FLATTEN: 1; FC: IN.
fc_connections
    What a fully connected layer in the same place would read per unit: the whole input
    volume C*H*W. Given for CONV and FC rows (where it equals ``connections``); None otherwise.
macs
    Multiply-adds. CONV: OH*OW*D*F*F*C; FC: IN*OUT. Bias additions, pooling comparisons and
    additions, and ReLU are not multiply-adds: 0. (FLOPs as PyTorch counts them = 2 * macs.)
activation_bytes
    New memory the layer's output takes: output elements * dtype_bytes. FLATTEN returns a view
    of its input (0) when the engine stores that volume NCHW, and copies it when the last CONV
    before it stores its output channels-last (32 filters or more, or few input channels
    with 16 filters or more and at least 96 taps, as LeNet's second; see
    ``cnnkit.functional.conv.output_layout``).
cache_bytes
    What the layer keeps from forward for backward, read off the layers' caches:
    Conv2d keeps its im2col columns (C*KH*KW*OH*OW values of the dtype, plus OH*OW ones when
    the bias rides in the products: fewer than 8 input channels read NCHW into 32 filters or
    more, see ``cnnkit.functional.conv.column_taps``) when they take at most 256 KiB per
    example, else its input (C*H*W values; backward rebuilds the columns from it), by
    ``cnnkit.functional.conv.keeps_columns``; the weight it also references is the parameter
    itself. MaxPool2d keeps which window row won, per output element, and which column won
    each row segment its windows read, per (read row, output column): a bool each for 2
    offsets (1 byte), uint8 up to 256 offsets, int16 or int32 beyond (see
    ``cnnkit.functional.pool.max_pool_kept_bytes``); nothing for a 1-wide axis. ReLU keeps a
    boolean mask per element (1 byte); Linear its input (IN values, usually a view of the
    previous output that this then keeps alive); AvgPool2d and Flatten only shapes: 0.
receptive_field, jump
    (height, width) of the input region one unit sees and the input distance between
    neighbouring units: r = r_prev + (F - 1)*j_prev, j = j_prev*S, starting from (1, 1) on the
    input. Padding does not change them. FLATTEN keeps the unit's field (it moves values);
    FC and everything after it see the whole input: None.
notes
    From the trace: which padded rows/columns ``floor`` rounding never reads.

Totals (``batch`` examples): ``params`` = ``trainable_params`` + ``non_trainable_params`` (0;
cnnkit has no frozen parameters yet), ``unshared_params``, ``macs_per_example``, ``macs`` (for
the batch), ``param_bytes``, ``gradient_bytes`` (one gradient per parameter, same dtype),
``activation_bytes`` (every layer's new output for the batch: what forward writes),
``cache_bytes`` (every layer's cache for the batch), ``backward_bytes`` = ``cache_bytes`` +
``gradient_bytes`` (what backward keeps), and ``training_bytes`` = ``param_bytes`` +
``backward_bytes``. Transient buffers (padded copies, the matrix product before its transpose,
inference-time im2col columns), the input batch and the loss's softmax are not counted.

JSON (``Summary.to_json()``, schema ``"cnnkit.summary/1"``; keys are only ever added under a
new schema name, never renamed)::

    {"schema": "cnnkit.summary/1",
     "architecture": canonical architecture string (str),
     "input_shape": [C, H, W], "batch": int, "dtype_bytes": int, "floor": bool,
     "rows": [{"index": int, "layer": str (e.g. "CONV(D=96, F=11, S=4, P=0)"),
               "kind": "CONV" | "POOL" | "RELU" | "FLATTEN" | "FC",
               "output": str (HxWxD, or F for a vector), "output_shape": [N, C, H, W] or [N, F],
               "formula": str or null (CONV and POOL only),
               "params": int, "unshared_params": int, "connections": int,
               "fc_connections": int or null, "macs": int, "activation_bytes": int,
               "cache_bytes": int, "receptive_field": [h, w] or null, "jump": [h, w] or null,
               "notes": [str]}, ...],
     "totals": {"params", "trainable_params", "non_trainable_params", "unshared_params",
                "macs_per_example", "macs", "param_bytes", "gradient_bytes",
                "activation_bytes", "cache_bytes", "backward_bytes", "training_bytes": int}}

Row fields are per example except ``output_shape`` (N = batch). The CSV (``Summary.csv()``) has
the row keys as its header, ``output_shape`` written ``1x96x55x55``, receptive field and jump
split into ``receptive_field_h``, ``receptive_field_w``, ``jump_h``, ``jump_w``, notes joined
with ``"; "``, and null written as an empty field.
"""

from __future__ import annotations

import csv as _csv
import io
import json
import math
import textwrap
from dataclasses import dataclass

from cnnkit import shapes
from cnnkit.architecture import (
    Architecture,
    ConvSpec,
    FCSpec,
    FlattenSpec,
    PoolSpec,
    ReluSpec,
    Step,
    trace,
    volume_text,
)
from cnnkit.errors import ConfigError, DTypeError
from cnnkit.functional.conv import column_taps, keeps_columns, output_layout
from cnnkit.functional.layout import NCHW, NHWC
from cnnkit.functional.pool import max_pool_kept_bytes
from cnnkit.spec import parse

SCHEMA = "cnnkit.summary/1"
MASK_BYTES = 1  # numpy bool, ReLU's mask
DTYPE_NAMES = {2: "float16", 4: "float32", 8: "float64"}


@dataclass(frozen=True)
class Row:
    """One layer; every count is per example except ``output_shape`` (see the module docs)."""

    index: int
    layer: str
    kind: str
    output: str
    output_shape: tuple[int, ...]
    formula: str | None
    params: int
    unshared_params: int
    connections: int
    fc_connections: int | None
    macs: int
    activation_bytes: int
    cache_bytes: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "layer": self.layer,
            "kind": self.kind,
            "output": self.output,
            "output_shape": list(self.output_shape),
            "formula": self.formula,
            "params": self.params,
            "unshared_params": self.unshared_params,
            "connections": self.connections,
            "fc_connections": self.fc_connections,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "cache_bytes": self.cache_bytes,
            "receptive_field": _listed(self.receptive_field),
            "jump": _listed(self.jump),
            "notes": list(self.notes),
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

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _listed(pair: tuple[int, int] | None) -> list[int] | None:
    return None if pair is None else list(pair)


# ---------------------------------------------------------------------------------------------
# Counting


def summarize(
    arch: Architecture | str, *, batch: int = 1, floor: bool = False, dtype_bytes: int = 4
) -> Summary:
    """The summary of ``arch`` (an :class:`Architecture`, or a string/name for ``parse``).

    ``batch`` scales the totals and ``output_shape``; ``floor`` rounds non-whole output sizes
    down as PyTorch does; ``dtype_bytes`` is the size of one value (4 = float32). Raises
    :class:`~cnnkit.errors.ShapeError` with one line per problem when the shapes do not work
    out, or when the architecture has no INPUT size.
    """
    if isinstance(arch, str):
        arch = parse(arch)
    if not isinstance(arch, Architecture):
        raise DTypeError(
            f"summarize: expected an Architecture or an architecture string, got "
            f"{type(arch).__name__}; use summarize(parse(text)) or model.summary((C, H, W))"
        )
    _check_positive("batch", batch)
    _check_positive("dtype_bytes", dtype_bytes)
    traced = trace(arch, floor=floor)
    traced.raise_problems()
    rows = _rows(traced.steps, batch, dtype_bytes, floor)
    return Summary(
        architecture=arch.text(),
        input_shape=arch.input.shape,
        batch=batch,
        dtype_bytes=dtype_bytes,
        floor=floor,
        rows=rows,
        totals=_totals(rows, batch, dtype_bytes),
    )


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"summarize: {name} must be a whole number >= 1, got {value!r}; e.g. {name}=4"
        )


def _rows(steps: tuple[Step, ...], batch: int, dtype_bytes: int, floor: bool) -> tuple[Row, ...]:
    rows = []
    field: tuple[int, int, int, int] | None = (1, 1, 1, 1)  # (rh, rw, jh, jw) on the input
    channels_last = False  # how the engine stores the volume reaching each layer
    for step in steps:
        field = _next_field(step.spec, field)
        copies = isinstance(step.spec, FlattenSpec) and channels_last
        rows.append(
            _row(step, batch, dtype_bytes, floor, field, channels_last, flatten_copies=copies)
        )
        if isinstance(step.spec, ConvSpec):
            layout = NHWC if channels_last else NCHW
            spec = step.spec
            out = output_layout(step.input_shape[0], spec.kernel, spec.depth, layout)
            channels_last = out == NHWC
    return tuple(rows)


def _next_field(spec, field):
    """Receptive field (rh, rw, jh, jw) after ``spec``; None once an FC has mixed everything."""
    if field is None or isinstance(spec, FCSpec):
        return None
    if isinstance(spec, ConvSpec | PoolSpec):
        rh, rw, jh, jw = field
        (kh, kw), (sh, sw) = spec.kernel, spec.stride
        return (rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh * sh, jw * sw)
    return field  # RELU and FLATTEN move values, they do not widen what a unit sees


def _row(
    step: Step,
    batch: int,
    dtype_bytes: int,
    floor: bool,
    field,
    channels_last: bool,
    *,
    flatten_copies: bool,
) -> Row:
    spec, out = step.spec, step.output_shape
    elements = math.prod(out)
    view = isinstance(spec, FlattenSpec) and not flatten_copies
    activation = 0 if view else elements * dtype_bytes
    params, unshared, connections, fc_connections, macs = _counts(step)
    return Row(
        index=step.index,
        layer=spec.text(),
        kind=_kind(spec),
        output=volume_text(out),
        output_shape=(batch, *out),
        formula=_formula(step, floor) if isinstance(spec, ConvSpec | PoolSpec) else None,
        params=params,
        unshared_params=unshared,
        connections=connections,
        fc_connections=fc_connections,
        macs=macs,
        activation_bytes=activation,
        cache_bytes=_cache_bytes(step, dtype_bytes, channels_last),
        receptive_field=None if field is None else field[:2],
        jump=None if field is None else field[2:],
        notes=step.notes,
    )


def _kind(spec) -> str:
    kinds = {ConvSpec: "CONV", PoolSpec: "POOL", ReluSpec: "RELU", FlattenSpec: "FLATTEN"}
    return kinds.get(type(spec), "FC")


def _counts(step: Step) -> tuple[int, int, int, int | None, int]:
    """(params, unshared params, connections per unit, FC alternative, MACs) per example."""
    spec, inp, out = step.spec, step.input_shape, step.output_shape
    if isinstance(spec, ConvSpec):
        c, (kh, kw) = inp[0], spec.kernel
        params = shapes.conv_parameter_count(c, spec.depth, spec.kernel, spec.bias)
        unshared = shapes.unshared_parameter_count(c, spec.depth, spec.kernel, out[1:], spec.bias)
        fan_in = c * kh * kw
        return params, unshared, fan_in, math.prod(inp), math.prod(out) * fan_in
    if isinstance(spec, FCSpec):
        fan_in = inp[0]
        params = spec.out_features * (fan_in + int(spec.bias))
        return params, params, fan_in, fan_in, fan_in * spec.out_features
    if isinstance(spec, PoolSpec):
        return 0, 0, spec.kernel[0] * spec.kernel[1], None, 0
    return 0, 0, 1, None, 0


def _cache_bytes(step: Step, dtype_bytes: int, channels_last: bool) -> int:
    """Bytes the layer's forward keeps for backward, per example (see the module docs)."""
    spec, inp, out = step.spec, step.input_shape, step.output_shape
    if isinstance(spec, ConvSpec):
        if keeps_columns(inp[0], spec.kernel, out[1:], dtype_bytes):
            layout = NHWC if channels_last else NCHW
            taps = column_taps(inp[0], spec.kernel, spec.depth, layout, spec.bias)
            return taps * out[1] * out[2] * dtype_bytes
        return math.prod(inp) * dtype_bytes
    if isinstance(spec, PoolSpec):
        if spec.kind == "max":
            return max_pool_kept_bytes(inp[0], out[1:], spec.kernel, spec.stride)
        return 0
    if isinstance(spec, ReluSpec):
        return math.prod(out) * MASK_BYTES
    if isinstance(spec, FCSpec):
        return inp[0] * dtype_bytes
    return 0


def _formula(step: Step, floor: bool) -> str:
    """The height formula evaluated; both axes labelled when the width's differs."""
    spec = step.spec
    rounding = "floor" if floor or spec.rounding == "floor" else "strict"
    axes = []
    for size, k, s, sides, result in zip(
        step.input_shape[1:],
        spec.kernel,
        spec.stride,
        spec.sides(),
        step.output_shape[1:],
        strict=True,
    ):
        text = shapes.formula(size, k, s, sides)
        exact = (size + sum(sides) - k) / s + 1
        value = str(result) if exact == result else f"{exact:.4g} -> {result} ({rounding})"
        axes.append(f"{text} = {value}")
    if axes[0] == axes[1]:
        return axes[0]
    return f"H: {axes[0]}, W: {axes[1]}"


def _totals(rows: tuple[Row, ...], batch: int, dtype_bytes: int) -> Totals:
    params = sum(row.params for row in rows)
    param_bytes = params * dtype_bytes
    cache = batch * sum(row.cache_bytes for row in rows)
    macs = sum(row.macs for row in rows)
    return Totals(
        params=params,
        trainable_params=params,
        non_trainable_params=0,
        unshared_params=sum(row.unshared_params for row in rows),
        macs_per_example=macs,
        macs=batch * macs,
        param_bytes=param_bytes,
        gradient_bytes=param_bytes,
        activation_bytes=batch * sum(row.activation_bytes for row in rows),
        cache_bytes=cache,
        backward_bytes=cache + param_bytes,
        training_bytes=2 * param_bytes + cache,
    )


# ---------------------------------------------------------------------------------------------
# The summary and its renderings


def human_bytes(count: int) -> str:
    """``512 B``, ``1.1 MiB``: binary units with one decimal."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _pair(pair: tuple[int, int] | None) -> str:
    if pair is None:
        return "all"
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Summary:
    """Rows and totals for one architecture, input volume and batch; render with
    :meth:`table`, :meth:`markdown`, :meth:`to_json` or :meth:`csv`."""

    architecture: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    batch: int
    dtype_bytes: int
    floor: bool
    rows: tuple[Row, ...]
    totals: Totals

    def __str__(self) -> str:
        return self.table()

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype_bytes, f"{self.dtype_bytes}-byte values")

    def to_dict(self) -> dict:
        """The JSON document as Python objects (schema in the module docstring)."""
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
        return _table(self, width)

    def markdown(self) -> str:
        """A GitHub table with every field, then the totals as a list."""
        return _markdown(self)

    def total_lines(self) -> list[tuple[str, str]]:
        """The totals as (label, text) pairs, shared by the table and the markdown."""
        t, n = self.totals, self.batch
        params = (
            f"{t.params:,} (trainable {t.trainable_params:,}, non-trainable "
            f"{t.non_trainable_params:,}), {human_bytes(t.param_bytes)}"
        )
        return [
            ("parameters", params),
            ("without sharing", f"{t.unshared_params:,} (one CONV filter per output unit)"),
            ("multiply-adds", f"{t.macs_per_example:,} per example, {t.macs:,} for the batch"),
            ("forward outputs", f"{human_bytes(t.activation_bytes)} (every new layer output)"),
            (
                "backward keeps",
                f"{human_bytes(t.backward_bytes)} = layer caches "
                f"{human_bytes(t.cache_bytes)} + parameter gradients "
                f"{human_bytes(t.gradient_bytes)}",
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
)


def _csv_cells(row: Row) -> list:
    field = row.receptive_field or (None, None)
    jump = row.jump or (None, None)
    cells = [
        row.index,
        row.layer,
        row.kind,
        row.output,
        _shape_text(row.output_shape),
        row.formula,
        row.params,
        row.unshared_params,
        row.connections,
        row.fc_connections,
        row.macs,
        row.activation_bytes,
        row.cache_bytes,
        *field,
        *jump,
        "; ".join(row.notes),
    ]
    return ["" if cell is None else cell for cell in cells]


# ---------------------------------------------------------------------------------------------
# Plain-text table

# (heading, right-aligned?) for the first line of each row
_COLUMNS = (
    ("#", True),
    ("layer", False),
    ("output", False),
    ("params", True),
    ("MACs", True),
    ("out/ex", True),
    ("keep/ex", True),
    ("RF/jump", True),
)
_GAP = "  "
_LEGEND = (
    "output: HxWxD. MACs: multiply-adds per example. out/ex: bytes of the layer's new output "
    "per example; keep/ex: what it keeps for backward per example. RF/jump: receptive field on "
    "the input and the input distance between neighbouring units ('all' after an FC)."
)


def _main_cells(row: Row) -> list[str]:
    rf = "all" if row.receptive_field is None else f"{_pair(row.receptive_field)}/"
    rf += "" if row.jump is None else _pair(row.jump)
    out = (
        "view"
        if row.kind == "FLATTEN" and not row.activation_bytes
        else human_bytes(row.activation_bytes)
    )
    return [
        str(row.index),
        row.layer,
        row.output,
        f"{row.params:,}",
        f"{row.macs:,}",
        out,
        human_bytes(row.cache_bytes) if row.cache_bytes else "0",
        rf,
    ]


def _detail_parts(row: Row) -> list[str]:
    """Second-line facts: the formula, NCHW, sharing and connections, notes."""
    parts = [row.formula] if row.formula else []
    if row.kind in ("CONV", "POOL", "FC", "FLATTEN"):
        label = "NCHW" if len(row.output_shape) == 4 else "NF"
        parts.append(f"{label} {_shape_text(row.output_shape)}")
    if row.kind == "CONV":
        parts.append(f"without sharing {row.unshared_params:,}")
        parts.append(f"inputs/unit {row.connections:,} (FC: {row.fc_connections:,})")
    elif row.kind in ("POOL", "FC"):
        parts.append(f"inputs/unit {row.connections:,}")
    return parts + list(row.notes)


def _pack(parts: list[str], indent: int, width: int) -> list[str]:
    """Join parts with '; ' into lines of at most ``width`` columns, each starting at ``indent``."""
    lines: list[str] = []
    current = ""
    room = max(width - indent, 20)
    for part in parts:
        candidate = f"{current}; {part}" if current else part
        if len(candidate) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
        pieces = textwrap.wrap(part, room, subsequent_indent="  ") or [""]
        lines.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        lines.append(current)
    return [" " * indent + line for line in lines]


def _wrap_layer(text: str, size: int) -> list[str]:
    """Fit a layer's text into ``size`` columns: drop the spaces after commas, then break
    after commas (continuation lines start with one space)."""
    if len(text) <= size:
        return [text]
    pieces = [piece + "," for piece in text.replace(", ", ",").split(",")]
    pieces[-1] = pieces[-1][:-1]
    lines = [""]
    for piece in pieces:
        if lines[-1].strip() and len(lines[-1]) + len(piece) > size:
            lines.append(" ")
        lines[-1] += piece
    return lines


def _widths(cells: list[list[str]], width: int) -> list[int]:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(_COLUMNS)]
    others = sum(widths) - widths[1] + len(_GAP) * (len(_COLUMNS) - 1)
    widths[1] = max(min(widths[1], width - others), len("layer"), 12)
    return widths


def _format_line(cells: list[str], widths: list[int]) -> str:
    shown = [
        cell.rjust(size) if right else cell.ljust(size)
        for cell, size, (_, right) in zip(cells, widths, _COLUMNS, strict=True)
    ]
    return _GAP.join(shown).rstrip()


def _row_lines(row: Row, cells: list[str], widths: list[int], width: int) -> list[str]:
    layer_lines = _wrap_layer(cells[1], widths[1])
    lines = [_format_line([cells[0], layer_lines[0], *cells[2:]], widths)]
    blank = [""] * len(_COLUMNS)
    for extra in layer_lines[1:]:
        lines.append(_format_line([*blank[:1], extra, *blank[2:]], widths))
    indent = widths[0] + len(_GAP)
    return lines + _pack(_detail_parts(row), indent + 2, width)


def _table(summary: Summary, width: int) -> str:
    cells = [_main_cells(row) for row in summary.rows]
    widths = _widths(cells, width)
    c, h, w = summary.input_shape
    head = (
        f"INPUT {h}x{w}x{c} (NCHW {summary.batch}x{c}x{h}x{w}), batch {summary.batch}, "
        f"{summary.dtype_name}"
    )
    lines = textwrap.wrap(head, width)
    header = _format_line([name for name, _ in _COLUMNS], widths)
    rule = "-" * min(width, max(len(header), 40))
    lines += [rule, header, rule]
    for row, row_cells in zip(summary.rows, cells, strict=True):
        lines += _row_lines(row, row_cells, widths, width)
    lines.append(rule)
    label_size = max(len(label) for label, _ in summary.total_lines())
    for label, text in summary.total_lines():
        lines += textwrap.wrap(
            f"{label.ljust(label_size)}  {text}", width, subsequent_indent=" " * (label_size + 2)
        )
    lines.append(rule)
    lines += textwrap.wrap(_LEGEND, width)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Markdown

_MD_HEAD = (
    "| # | layer | output (HxWxD) | NCHW | formula | params | without sharing | inputs/unit "
    "| FC inputs/unit | MACs | output bytes | kept for backward | RF | jump | notes |"
)


def _markdown_row(row: Row) -> str:
    fc = "" if row.fc_connections is None else f"{row.fc_connections:,}"
    cells = [
        str(row.index),
        f"`{row.layer}`",
        row.output,
        _shape_text(row.output_shape),
        f"`{row.formula}`" if row.formula else "",
        f"{row.params:,}",
        f"{row.unshared_params:,}",
        f"{row.connections:,}",
        fc,
        f"{row.macs:,}",
        "view"
        if row.kind == "FLATTEN" and not row.activation_bytes
        else human_bytes(row.activation_bytes),
        human_bytes(row.cache_bytes),
        _pair(row.receptive_field),
        "" if row.jump is None else _pair(row.jump),
        "; ".join(row.notes),
    ]
    return "| " + " | ".join(cells) + " |"


def _markdown(summary: Summary) -> str:
    c, h, w = summary.input_shape
    lines = [
        f"`{summary.architecture}`",
        "",
        f"Input {h}x{w}x{c}, batch {summary.batch}, {summary.dtype_name}; per example except "
        "NCHW and the totals.",
        "",
        _MD_HEAD,
        "|" + "---|" * _MD_HEAD.count(" | ") + "---|",
    ]
    lines += [_markdown_row(row) for row in summary.rows]
    lines.append("")
    lines += [f"- **{label}**: {text}" for label, text in summary.total_lines()]
    return "\n".join(lines) + "\n"
