"""How the fast engine computes one convolution: the plan, chosen from shapes and layouts.

:func:`plan_conv` decides, from the shapes and the input's memory layout alone, how the im2col
columns are laid out (so the strided copy reads long contiguous runs), whether the output is
stored channels-last or NCHW (so the product writes it directly, with no transpose), how many
images go in one chunk (so the columns stay in cache between the copy and the product), whether
backward gets the columns from the forward or rebuilds them from the input (memory against
time), and in which order backward builds the input gradient's columns. Every plan computes
the same values up to rounding (the products sum in different orders); the choice only changes
the speed. ``cnnkit.summary`` reads the same rules for its memory figures.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from cnnkit.functional.fast.layout import CNHW, NCHW, NHWC
from cnnkit.functional.fast.windows import COLUMNS, ONE, ROWS, Sides, output_hw

IMAGES = ("n", "c", "i", "j", "oh", "ow")  # (N, C*KH*KW, OH*OW): one column block per image

# Tuning constants, measured on the 2-core benchmark machine (see benchmarks/bench.py).
NHWC_MIN_FILTERS = 32  # from this many filters the output is stored channels-last
NHWC_MIN_CHANNELS = 8  # from this many input channels the columns are read channels-last
# Fewer input channels, but this many filters and taps (C*KH*KW; LeNet's conv2: 16 and 150):
# channels-last rows forward, per-image columns for dx (16 % off LeNet conv2's fwd+bwd).
MIXED_MIN_FILTERS = 16
MIXED_MIN_TAPS = 96
CHUNK_BYTES = 4 << 20  # im2col bytes per chunk of images (a few MiB stay in cache)
KEEP_COLUMNS_BYTES = 256 << 10  # per image: backward reuses columns up to this size, else
# it keeps the input and rebuilds them


@dataclass(frozen=True)
class ConvPlan:
    """How one convolution is computed (see the module docstring)."""

    order: tuple[str, ...]  # ROWS, COLUMNS or IMAGES: axis order of the im2col buffer
    source_layout: str  # layout of the padded input the columns are read from
    out_layout: str  # NHWC or NCHW
    chunk: int  # images per chunk
    keep_columns: bool  # the cache holds the columns (else the input)
    # How backward computes the input gradient, when not like the forward: the order of its
    # column gradient and the layout dx is stored in (for narrow inputs, the forward's
    # channels-last rows give the fastest products, and per-image columns the fastest col2im).
    dx_order: tuple[str, ...] | None = None
    dx_layout: str | None = None

    def input_gradient_plan(self) -> ConvPlan:
        """This plan as the input gradient's col2im sees it."""
        if self.dx_order is None and self.dx_layout is None:
            return self
        order = self.dx_order or self.order
        return replace(self, order=order, source_layout=self.dx_layout or self.source_layout)


def keeps_columns(channels: int, kernel: tuple[int, int], out_hw: tuple[int, int], itemsize):
    """Whether a convolution keeps its im2col columns for backward (else its input).

    Per image, the columns take C*KH*KW*OH*OW values; up to ``KEEP_COLUMNS_BYTES`` backward
    reuses them, beyond that it rebuilds them from the input, which is KH*KW/(SH*SW) times
    smaller. ``cnnkit.summary`` uses this same rule for its memory estimate.
    """
    size = channels * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize
    return size <= KEEP_COLUMNS_BYTES


def _layouts(channels: int, kernel, depth: int, input_layout) -> ConvPlan:
    """The plan's orders and layouts (its chunk and keep fields are placeholders)."""
    out_layout = NHWC if depth >= NHWC_MIN_FILTERS else NCHW
    if channels >= NHWC_MIN_CHANNELS or (channels > 1 and input_layout == NHWC):
        return ConvPlan(ROWS, NHWC, out_layout, 1, True)
    source = input_layout if input_layout in (NCHW, CNHW) else NCHW
    taps = channels * kernel[0] * kernel[1]
    if (
        channels > 1
        and out_layout == NCHW
        and depth >= MIXED_MIN_FILTERS
        and taps >= MIXED_MIN_TAPS
    ):
        # Channels-last rows make the forward and weight products single wide products, and
        # per-image columns the fastest col2im for dx, which stays in the input's layout.
        return ConvPlan(ROWS, NHWC, NHWC, 1, True, IMAGES, source)
    return ConvPlan(COLUMNS if out_layout == NHWC else IMAGES, source, out_layout, 1, True)


def output_layout(channels: int, kernel, depth: int, input_layout) -> str:
    """The layout a convolution's output is stored in (``cnnkit.summary`` follows it)."""
    return _layouts(channels, kernel, depth, input_layout).out_layout


def bias_in_product(plan: ConvPlan, has_bias: bool) -> bool:
    """Whether the bias rides in the matrix products: for COLUMNS into a channels-last output,
    the columns get a last row of ones and the filters a last column holding the bias, so the
    forward product adds the bias and the weight-gradient product sums db, with no pass of
    their own (the products have K = C*KH*KW + 1; the 3->32 layer's forward went from 2.0 to
    1.5 ms)."""
    return has_bias and plan.order == COLUMNS and plan.out_layout == NHWC


def kept_bytes(
    channels, kernel, depth, input_hw, stride, padding: Sides, layout, bias, itemsize, dilation=ONE
):
    """Bytes per example a convolution's forward keeps for backward: its im2col columns
    (C*KH*KW values per unit, one more when the bias rides in the products) when
    :func:`keeps_columns` says so, else its input as the columns read it: padded, and stored
    in the plan's source layout (the input itself, when that needs no copy)."""
    (top, bottom), (left, right) = padding
    padded_hw = (input_hw[0] + top + bottom, input_hw[1] + left + right)
    oh, ow = output_hw(padded_hw, kernel, stride, dilation)
    if keeps_columns(channels, kernel, (oh, ow), itemsize):
        plan = _layouts(channels, kernel, depth, layout)
        taps = channels * kernel[0] * kernel[1] + int(bias_in_product(plan, bias))
        return taps * oh * ow * itemsize
    return channels * padded_hw[0] * padded_hw[1] * itemsize


@functools.lru_cache(maxsize=256)
def plan_conv(
    input_shape, input_layout, w_shape, stride, padding: Sides, itemsize, dilation=ONE
) -> ConvPlan:
    """Choose layouts, chunking and what to keep, from shapes and the input's layout only."""
    n, c, h, w = input_shape
    d, _, kh, kw = w_shape
    (top, bottom), (left, right) = padding
    oh, ow = output_hw((h + top + bottom, w + left + right), (kh, kw), stride, dilation)
    layouts = _layouts(c, (kh, kw), d, input_layout)
    per_image = c * kh * kw * oh * ow * itemsize
    keep = keeps_columns(c, (kh, kw), (oh, ow), itemsize)
    # kept COLUMNS are one matrix (see _chunk); rebuilt ones go in chunks that stay in cache
    chunk = max(1, min(n, CHUNK_BYTES // max(per_image, 1)))
    return replace(layouts, chunk=chunk, keep_columns=keep)
