"""Probe: a compiled direct convolution for few channels (stride 1, 3x3 for the planes
variant), against the fast engine's im2col path, and its error against the reference engine.

Two ways, each forward, input gradient and weight gradient, serial and parallel (prange):

"rows": channels-last. The input copied once, zero-bordered, (N, Hp, Wp, C); each output row
(n, oh) is an (OW, D) tile accumulated over the taps (i, j) and channels, eight channels per
pass, the innermost loop over the D contiguous filters. dx: the same loop on dy zero-bordered
by K - 1 - P with the filters flipped and C, D swapped; dw: per-thread partial sums.

"planes": NCHW, the depthwise loops' trick (fast/depthwise_kernels.py): each output plane is
computed Wp columns wide, so each (filter, channel) pair is ONE pass of nine multiply-adds over
(OH - 1)*Wp + OW contiguous values; dw is nine dot products per pair in one pass.

    PYTHONPATH=src python benchmarks/direct_probe.py [--parallel] [--reps 30] [--check]
    PYTHONPATH=src python benchmarks/direct_probe.py --only {im2col,rows,planes} [--parallel]

Times are medians of ``--reps`` rounds, the candidates called in turn within a round. In one
process the OpenBLAS threads of the im2col products and the loops' OpenMP threads spin after
their work and slow each other, so for figures to compare run ``--only`` for each kind in its
own process, alternating the processes over several rounds. ``--check`` compares every kind
with the reference engine (float32 and float64, several paddings and channel counts).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numba
import numpy as np
from numba import prange
from threadpoolctl import threadpool_limits

from cnnkit.functional import reference_conv as ref
from cnnkit.functional.fast import conv as fast
from cnnkit.functional.fast import depthwise_kernels
from cnnkit.functional.fast.layout import NCHW, NHWC, Workspace, in_layout, memory

FASTMATH = {"reassoc", "contract"}  # as the project's other loops: NaN and inf stay IEEE


def _add_channels(src, taps, out, j, c0, count):
    # out (OW, D) += sum over c in [c0, c0 + count) of src[ow + j, c] * taps[c, :]; count is
    # 8, 4 or 1 (one pass over the tile for that many multiply-adds per value)
    out_w, depth = out.shape
    if count == 8:
        w0, w1, w2, w3 = taps[c0], taps[c0 + 1], taps[c0 + 2], taps[c0 + 3]
        w4, w5, w6, w7 = taps[c0 + 4], taps[c0 + 5], taps[c0 + 6], taps[c0 + 7]
        for ow in range(out_w):
            px, acc = src[ow + j], out[ow]
            v0, v1, v2, v3 = px[c0], px[c0 + 1], px[c0 + 2], px[c0 + 3]
            v4, v5, v6, v7 = px[c0 + 4], px[c0 + 5], px[c0 + 6], px[c0 + 7]
            for d in range(depth):
                first = v0 * w0[d] + v1 * w1[d] + v2 * w2[d] + v3 * w3[d]
                acc[d] += first + (v4 * w4[d] + v5 * w5[d] + v6 * w6[d] + v7 * w7[d])
    elif count == 4:
        w0, w1, w2, w3 = taps[c0], taps[c0 + 1], taps[c0 + 2], taps[c0 + 3]
        for ow in range(out_w):
            px, acc = src[ow + j], out[ow]
            v0, v1, v2, v3 = px[c0], px[c0 + 1], px[c0 + 2], px[c0 + 3]
            for d in range(depth):
                acc[d] += v0 * w0[d] + v1 * w1[d] + v2 * w2[d] + v3 * w3[d]
    else:
        w0 = taps[c0]
        for ow in range(out_w):
            v0, acc = src[ow + j, c0], out[ow]
            for d in range(depth):
                acc[d] += v0 * w0[d]


def _row(padded, weights, bias, out, oh):
    # out (OW, D) = bias + the sum over taps (i, j) and channels of P rows oh + i
    channels = weights.shape[2]
    for ow in range(out.shape[0]):
        for d in range(out.shape[1]):
            out[ow, d] = bias[d]
    for i in range(weights.shape[0]):
        src = padded[oh + i]  # (Wp, C)
        for j in range(weights.shape[1]):
            c = 0
            while c < channels:
                count = 8 if channels - c >= 8 else (4 if channels - c >= 4 else 1)
                _add_channels(src, weights[i, j], out, j, c, count)
                c += count


def _forward(padded, weights, bias, y):
    out_h = y.shape[1]
    for r in prange(y.shape[0] * out_h):
        _row(padded[r // out_h], weights, bias, y[r // out_h, r % out_h], r % out_h)


def _weight_rows(padded, grads, part, first, last):
    # part (KH, KW, C, D) += the rows first..last-1 (r = n*OH + oh) of sum P[.., c] * dy[.., :]
    out_h, out_w, depth = grads.shape[1], grads.shape[2], grads.shape[3]
    full = out_w - out_w % 8
    for r in range(first, last):
        n, oh = r // out_h, r % out_h
        g = grads[n, oh]  # (OW, D)
        for i in range(part.shape[0]):
            src = padded[n, oh + i]
            for j in range(part.shape[1]):
                for c in range(part.shape[2]):
                    acc = part[i, j, c]
                    for ow in range(0, full, 8):
                        v0, v1, v2, v3 = (
                            src[ow + j, c],
                            src[ow + j + 1, c],
                            src[ow + j + 2, c],
                            src[ow + j + 3, c],
                        )
                        v4, v5, v6, v7 = (
                            src[ow + j + 4, c],
                            src[ow + j + 5, c],
                            src[ow + j + 6, c],
                            src[ow + j + 7, c],
                        )
                        g0, g1, g2, g3 = g[ow], g[ow + 1], g[ow + 2], g[ow + 3]
                        g4, g5, g6, g7 = g[ow + 4], g[ow + 5], g[ow + 6], g[ow + 7]
                        for d in range(depth):
                            first_half = v0 * g0[d] + v1 * g1[d] + v2 * g2[d] + v3 * g3[d]
                            acc[d] += first_half + (
                                v4 * g4[d] + v5 * g5[d] + v6 * g6[d] + v7 * g7[d]
                            )
                    for ow in range(full, out_w):
                        v0, g0 = src[ow + j, c], g[ow]
                        for d in range(depth):
                            acc[d] += v0 * g0[d]


def _weights(padded, grads, parts):
    rows, count = grads.shape[0] * grads.shape[1], parts.shape[0]
    for t in prange(count):
        parts[t] = 0
        _weight_rows(padded, grads, parts[t], t * rows // count, (t + 1) * rows // count)


# --- "planes": NCHW, each output plane computed Wp wide (as depthwise_kernels does) ---------


def _nine(p, taps, wide, width):
    # wide[m] += the sum over the 3x3 taps of taps[i, j] * p[m + i*Wp + j]: one pass per channel
    p0, p1, p2 = p, p[1:], p[2:]
    p3, p4, p5 = p[width:], p[width + 1 :], p[width + 2 :]
    p6, p7, p8 = p[2 * width :], p[2 * width + 1 :], p[2 * width + 2 :]
    t0, t1, t2 = taps[0, 0], taps[0, 1], taps[0, 2]
    t3, t4, t5 = taps[1, 0], taps[1, 1], taps[1, 2]
    t6, t7, t8 = taps[2, 0], taps[2, 1], taps[2, 2]
    for m in range(wide.size):
        first = t0 * p0[m] + t1 * p1[m] + t2 * p2[m]
        second = t3 * p3[m] + t4 * p4[m] + t5 * p5[m]
        wide[m] += first + second + (t6 * p6[m] + t7 * p7[m] + t8 * p8[m])


def _plane_image(planes, w, bias, out, width, wide):
    # one image: planes (C, Hp*Wp), w (D, C, 3, 3), out (D, OH, OW)
    for d in range(out.shape[0]):
        wide[:] = bias[d]
        for c in range(planes.shape[0]):
            _nine(planes[c], w[d, c], wide, width)
        for oh in range(out.shape[1]):
            row, source = out[d, oh], wide[oh * width : oh * width + out.shape[2]]
            for ow in range(out.shape[2]):
                row[ow] = source[ow]


def _planes_forward(planes, w, bias, y, width):
    for n in prange(y.shape[0]):
        wide = np.empty((y.shape[2] - 1) * width + y.shape[3], y.dtype)
        _plane_image(planes[n], w, bias, y[n], width, wide)


def _plane_dots(planes, grads, part, width, wide):
    # part (D, C, 3, 3) += one image's sums of dy (laid Wp wide, zero extra columns) times P
    for d in range(grads.shape[0]):
        for oh in range(grads.shape[1]):
            row, target = grads[d, oh], wide[oh * width : oh * width + grads.shape[2]]
            for ow in range(grads.shape[2]):
                target[ow] = row[ow]
        for c in range(planes.shape[0]):
            p = planes[c]
            _nine_dots(wide, p, width, 1, part[d, c], wide.dtype.type(0))


def _planes_weights(planes, grads, parts, width):
    n_images, count = grads.shape[0], parts.shape[0]
    for t in prange(count):
        wide = np.zeros((grads.shape[2] - 1) * width + grads.shape[3], grads.dtype)
        parts[t] = 0
        for n in range(t * n_images // count, (t + 1) * n_images // count):
            _plane_dots(planes[n], grads[n], parts[t], width, wide)


_nine_dots = depthwise_kernels._nine_dots  # replaced by its compiled loop in loop()
_HELPERS = ("_add_channels", "_row", "_weight_rows", "_nine", "_plane_image", "_plane_dots")
_LOOPS: dict = {}


def loop(name: str, parallel: bool):
    """The named loop, compiled with its ``prange`` parallel or, as numba runs it when
    ``parallel`` is off, serial (helpers first, so the loops call compiled helpers)."""
    if (name, parallel) not in _LOOPS:
        if "_nine_dots" not in _LOOPS:  # the depthwise loops' nine dot products, compiled
            source = getattr(depthwise_kernels._nine_dots, "py_func", depthwise_kernels._nine_dots)
            _LOOPS["_nine_dots"] = globals()["_nine_dots"] = numba.njit(fastmath=FASTMATH)(source)
        for helper in _HELPERS:
            if helper not in _LOOPS:
                _LOOPS[helper] = globals()[helper] = numba.njit(fastmath=FASTMATH)(
                    globals()[helper]
                )
        _LOOPS[name, parallel] = numba.njit(fastmath=FASTMATH, parallel=parallel)(globals()[name])
    return _LOOPS[name, parallel]


class Rows:
    """Forward and backward through the channels-last row loops."""

    name = "rows"

    def __init__(self, parallel: bool):
        self.parallel = parallel

    def _forward_loop(self, padded, weights, bias, y):
        loop("_forward", self.parallel)(padded, weights, bias, y)

    def forward(self, x, w, b, pad):
        (top, bottom), (left, right) = pad
        n, c, h, width = x.shape
        d, _, kh, kw = w.shape
        padded = np.zeros((n, h + top + bottom, width + left + right, c), x.dtype)
        padded[:, top : top + h, left : left + width] = memory(x, NHWC)
        y = np.empty((n, padded.shape[1] - kh + 1, padded.shape[2] - kw + 1, d), x.dtype)
        weights = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (KH, KW, C, D)
        bias = np.zeros(d, x.dtype) if b is None else b
        self._forward_loop(padded, weights, bias, y)
        return y.transpose(0, 3, 1, 2), (padded, w, x.shape, pad)

    def backward(self, dy, cache, input_grad=True):
        padded, w, shape, pad = cache
        (top, bottom), (left, right) = pad
        d, c, kh, kw = w.shape
        grads = np.ascontiguousarray(memory(dy, NHWC))  # (N, OH, OW, D)
        parts = np.empty((2 if self.parallel else 1, kh, kw, c, d), dy.dtype)
        loop("_weights", self.parallel)(padded, grads, parts)
        dw = parts.sum(axis=0).transpose(3, 2, 0, 1)
        db = grads.reshape(-1, d).sum(axis=0)
        dx = None
        if input_grad:
            n, oh, ow, _ = grads.shape
            t, l_ = kh - 1 - top, kw - 1 - left
            gp = np.zeros((n, oh + t + kh - 1 - bottom, ow + l_ + kw - 1 - right, d), dy.dtype)
            gp[:, t : t + oh, l_ : l_ + ow] = grads
            out = np.empty((shape[0], shape[2], shape[3], c), dy.dtype)
            flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
            self._forward_loop(gp, flipped, np.zeros(c, dy.dtype), out)  # (KH, KW, D, C)
            dx = out.transpose(0, 3, 1, 2)
        return dx, dw, db


class Planes:
    """Forward and backward through the NCHW wide-plane loops (3x3 filters only)."""

    name = "planes"

    def __init__(self, parallel: bool):
        self.parallel = parallel

    def _forward_loop(self, planes, w, bias, y, width):
        loop("_planes_forward", self.parallel)(planes, w, bias, y, width)

    def forward(self, x, w, b, pad):
        (top, bottom), (left, right) = pad
        n, c, h, width = x.shape
        d = w.shape[0]
        hp, wp = h + top + bottom, width + left + right
        padded = np.zeros((n, c, hp, wp), x.dtype)
        padded[:, :, top : top + h, left : left + width] = x
        y = np.empty((n, d, hp - 2, wp - 2), x.dtype)
        bias = np.zeros(d, x.dtype) if b is None else b
        self._forward_loop(padded.reshape(n, c, -1), w, bias, y, wp)
        return y, (padded, w, x.shape, pad)

    def backward(self, dy, cache, input_grad=True):
        padded, w, shape, pad = cache
        (top, bottom), (left, right) = pad
        d, c = w.shape[:2]
        n, _, _, wp = padded.shape
        grads = np.ascontiguousarray(dy)  # (N, D, OH, OW)
        parts = np.empty((2 if self.parallel else 1, d, c, 3, 3), dy.dtype)
        loop("_planes_weights", self.parallel)(padded.reshape(n, c, -1), grads, parts, wp)
        dw = parts.sum(axis=0)
        db = grads.sum(axis=(0, 2, 3))
        dx = None
        if input_grad:
            oh, ow = grads.shape[2:]
            t, l_ = 2 - top, 2 - left
            gh, gw = oh + t + 2 - bottom, ow + l_ + 2 - right
            gp = np.zeros((n, d, gh, gw), dy.dtype)
            gp[:, :, t : t + oh, l_ : l_ + ow] = grads
            flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
            dx = np.empty(shape, dy.dtype)
            self._forward_loop(gp.reshape(n, d, -1), flipped, np.zeros(c, dy.dtype), dx, gw)
        return dx, dw, db


def check(rng):
    for dtype in (np.float64, np.float32):
        for c, d in ((5, 16), (16, 16), (3, 12), (9, 7)):
            x = rng.standard_normal((3, c, 9, 11)).astype(dtype)
            w = rng.standard_normal((d, c, 3, 3)).astype(dtype)
            b = rng.standard_normal(d).astype(dtype)
            worst = 0.0
            for p in (((1, 1), (1, 1)), ((0, 2), (2, 0)), ((0, 0), (0, 0))):
                yr, cr = ref.conv2d_forward(x, w, b, stride=(1, 1), padding=p)
                dy = rng.standard_normal(yr.shape).astype(dtype)
                expected = (yr, *ref.conv2d_backward(dy, cr))
                for kernel in (Rows(False), Rows(True), Planes(False), Planes(True)):
                    y, cache = kernel.forward(x, w, b, p)
                    got = (y, *kernel.backward(dy, cache))
                    for a, r in zip(got, expected, strict=True):
                        worst = max(worst, float(np.abs(a - r).max() / np.abs(r).max()))
            print(f"{np.dtype(dtype).name} {c}->{d}: worst relative error {worst:.1e}")


def round_robin(calls: dict, reps: int) -> dict:
    """Median ms of each call, the calls timed in turn (one of each per round), so a load that
    drifts during the run weighs on every candidate alike."""
    times = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up (and compilation)
    for _ in range(reps):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def case_calls(n, c, d, parallel, rng):
    """For one case: the fast engine's and each direct kind's forward and backward calls."""
    pad = ((1, 1), (1, 1))
    x = in_layout(rng.standard_normal((n, c, 32, 32), dtype=np.float32), NHWC)
    w = rng.standard_normal((d, c, 3, 3), dtype=np.float32) * 0.1
    ws = Workspace()
    y0, cache = fast.conv2d_forward(x, w, None, stride=(1, 1), padding=pad, workspace=ws)
    dy = np.empty_like(y0)  # stored like the fast engine's output
    dy[...] = rng.standard_normal(dy.shape, dtype=np.float32)
    dx_too = c != 3  # a first layer computes no input gradient
    calls = {
        "im2col fwd": lambda: fast.conv2d_forward(
            x, w, None, stride=(1, 1), padding=pad, workspace=ws
        ),
        "im2col bwd": lambda: fast.conv2d_backward(dy, cache, workspace=ws, input_grad=dx_too),
    }
    a = np.ones((256, 256), np.float32)
    for kernel in (Rows(parallel), Planes(parallel)):
        # each gets its input and dy stored in its own layout (what its output would be)
        layout = NHWC if kernel.name == "rows" else NCHW
        src, grads = in_layout(x, layout), in_layout(dy, layout)
        saved = kernel.forward(src, w, None, pad)[1]
        calls[f"{kernel.name} fwd"] = functools.partial(kernel.forward, src, w, None, pad)
        calls[f"{kernel.name} bwd"] = functools.partial(
            kernel.backward, grads, saved, input_grad=dx_too
        )

        def after_matmul(forward=calls[f"{kernel.name} fwd"]):
            a @ a  # leaves OpenBLAS's threads spinning
            forward()

        def after_matmul_limited(forward=calls[f"{kernel.name} fwd"]):
            a @ a
            with threadpool_limits(1, "blas"):
                forward()

        calls[f"{kernel.name} fwd after a 256^3 matmul"] = after_matmul
        calls[f"{kernel.name} fwd after it, BLAS at 1 thread"] = after_matmul_limited
    calls["the 256^3 matmul alone"] = lambda: a @ a
    return calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="the parallel loops (their threads spin after a loop, slowing OpenBLAS: own process)",
    )
    parser.add_argument("--check", action="store_true", help="errors against the reference only")
    parser.add_argument(
        "--only",
        choices=("im2col", "rows", "planes"),
        help="time one kind alone in this process (alternate the processes: no candidate's"
        " spinning threads then slow another's)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.check:
        check(rng)
        return
    mode = "parallel" if args.parallel else "serial"
    for n, c, d in ((64, 16, 16), (64, 3, 16), (64, 32, 32)):
        calls = case_calls(n, c, d, args.parallel, rng)
        if args.only:
            # the plain calls first, then those after a matmul: its spinning threads would
            # otherwise slow the next round's plain calls too
            plain = {k: v for k, v in calls.items() if k.startswith(args.only) and "after" not in k}
            after = {k: v for k, v in calls.items() if k.startswith(args.only) and "after" in k}
            res = {**round_robin(plain, args.reps), **round_robin(after, args.reps)}
            print(
                f"{args.only} {mode} {c}->{d}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items())
            )
            continue
        plain = {k: v for k, v in calls.items() if "after" not in k}
        after = {k: v for k, v in calls.items() if "after" in k}
        res = {**round_robin(plain, args.reps), **round_robin(after, args.reps)}
        flops = 2 * n * d * c * 9 * 32 * 32
        print(f"\n{c}->{d} on {n}x{c}x32x32, 3x3 P=1, {mode} loops (fwd {flops / 1e9:.3f} GFLOP)")
        for key, v in res.items():
            print(f"  {key:36s} {v:8.2f} ms")
        base = res["im2col fwd"] + res["im2col bwd"]
        for kind in ("rows", "planes"):
            total = res[f"{kind} fwd"] + res[f"{kind} bwd"]
            fwd = res["im2col fwd"] / res[f"{kind} fwd"]
            bwd = res["im2col bwd"] / res[f"{kind} bwd"]
            print(
                f"  {kind}: fwd+bwd {total:.2f} ms vs im2col {base:.2f}: {base / total:.2f}x"
                f" (fwd {fwd:.2f}x, bwd {bwd:.2f}x)"
            )


if __name__ == "__main__":
    main()
