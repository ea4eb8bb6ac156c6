"""``cnnkit shape --output O``: every small (F, S, P) that maps I to O, under the strict rule.

A way is what ``rounding="strict"`` accepts (:func:`cnnkit.shapes.lost_rows`): (I - F + 2P)/S
+ 1 is O, or rounds down to O leaving only padding unread (ResNet's F=3, S=2, P=1 for 32 -> 16)
or only rows in the gap a stride larger than F skips anyway. For given F and S the paddings
form one range (:func:`paddings`); for given S the filter sizes with a padding form at most two
ranges in which at least every other F has one, so listing costs time in proportion to the
answers, never to the sizes of I, F, S or P. More than :data:`SOLUTIONS_LIMIT` answers raise
:class:`~cnnkit.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.errors import ConfigError

SOLUTIONS_LIMIT = 100_000  # solutions() lists at most this many (F, S, P)
NONE = range(0)


@dataclass(frozen=True)
class Solution:
    kernel: int
    stride: int
    padding: int


def paddings(size: int, output: int, kernel: int, stride: int) -> range:
    """The P >= 0 with which (F, S, P) maps ``size`` to ``output`` and strict accepts it.

    With I + 2P - F = (O - 1)S + r (0 <= r < S rows left over after the last window), strict
    accepts r <= P + max(0, S - F): with t = F + (O - 1)S - I that is t/2 <= P < (t + S)/2
    and P <= t + max(0, S - F).

    >>> paddings(32, 16, 3, 2), paddings(10, 5, 4, 2), paddings(10, 4, 3, 2)
    (range(1, 2), range(1, 2), range(0, 0))
    """
    t = kernel + (output - 1) * stride - size
    gap = max(0, stride - kernel)
    return range(max(0, -(-t // 2)), min(t + gap, (t + stride - 1) // 2) + 1)


def _at_most(a: int, b: int) -> int | None:
    """The largest S with a*S <= b (a >= 0); None: any S."""
    if a == 0:
        return None if b >= 0 else -1
    return b // a


def _at_least(a: int, b: int) -> int:
    """The smallest S >= 1 with a*S >= b (a >= 0); a huge value when none."""
    if a == 0:
        return 1 if b <= 0 else 2**62 + 1
    return max(1, -(-b // a))


def _kernels(size, output, stride, padding, lo: int, hi: int) -> list[range]:
    """The F in [lo, hi] that can have a padding with this S (densely: every F of the ranges,
    or every other one when P is free)."""
    c = (output - 1) * stride - size  # t = F + c
    if padding is None:
        if c > 0:  # the window would need more padding than F // 2
            return []
        parts = [range(max(lo, -c), hi + 1)]  # t >= 0
        if stride + c >= 0:  # t < 0: a window narrower than the stride, P from 0
            parts.append(range(max(lo, 1 - c - stride), min(hi, -c - 1, stride - 1) + 1))
        return parts
    p = padding  # 2P - S < t <= 2P, and P <= t (F >= S) or P <= S + c (F < S)
    bottom, top = max(lo, 2 * p - c - stride + 1), min(hi, 2 * p - c)
    parts = [range(max(bottom, stride, p - c), top + 1)]
    if stride + c >= p:
        parts.append(range(bottom, min(top, stride - 1) + 1))
    return parts


def _strides(size, output, kernel, padding, top: int) -> range:
    """The S in [1, top] (S <= F) that can have a padding with this F."""
    m = output - 1
    if padding is None:  # t >= 0 and P <= F // 2: I - F <= mS <= I
        lo, hi = _at_least(m, size - kernel), _at_most(m, size)
    else:  # t <= 2P, 2P < t + S and P <= t
        p = padding
        lo = max(_at_least(m + 1, size + 2 * p - kernel + 1), _at_least(m, size + p - kernel))
        hi = _at_most(m, size + 2 * p - kernel)
    return range(lo, top + 1 if hi is None else min(top, hi) + 1)


class _Ways:
    """The answers, counted as they are found."""

    def __init__(self, where: str, advice: str) -> None:
        self.found: list[Solution] = []
        self.where, self.advice = where, advice

    def add(self, size, output, kernel, stride, padding) -> None:
        ps = paddings(size, output, kernel, stride)
        if padding is not None:
            ps = range(padding, padding + 1) if padding in ps else NONE
        else:
            ps = range(ps.start, min(ps.stop, kernel // 2 + 1))
        for p in ps:
            self.found.append(Solution(kernel, stride, p))
        if len(self.found) > SOLUTIONS_LIMIT:
            raise ConfigError(
                f"solutions({self.where}): more than {SOLUTIONS_LIMIT:,} ways (F, S, P); "
                f"{self.advice}"
            )

    def sorted(self) -> list[Solution]:
        return sorted(self.found, key=lambda s: (s.kernel, s.stride, s.padding))


def solutions(
    size: int,
    output: int,
    *,
    max_kernel: int = 11,
    max_stride: int = 4,
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
) -> list[Solution]:
    """Every (F, S, P) with small values that maps ``size`` to ``output`` as strict accepts it.

    Small means F <= ``max_kernel``, S <= min(F, ``max_stride``) (a larger stride skips input
    pixels) and P <= F // 2 (as "same" padding; more mostly adds windows of zeros).
    ``kernel``, ``stride`` or ``padding`` fix that letter (``cnnkit shape --output O --filter
    F``): only the ways with that value are listed, and the letter's own bound is lifted (a
    given S may exceed F: the gap it skips is then allowed to go unread).

    >>> [(s.kernel, s.stride, s.padding) for s in solutions(10, 5)][:4]
    [(2, 2, 0), (3, 2, 1), (4, 2, 1), (5, 2, 2)]
    >>> [(s.kernel, s.stride, s.padding) for s in solutions(32, 16, kernel=3)]
    [(3, 2, 1)]
    >>> [(s.kernel, s.stride, s.padding) for s in solutions(10, 5, kernel=10**12)]
    [(1000000000000, 1, 499999999997), (1000000000000, 2, 499999999999)]
    """
    if (kernel, stride, padding) == (None, None, None):
        where = f"I={size}, O={output}, max_kernel={max_kernel}, max_stride={max_stride}"
        advice = "give a smaller max_kernel (cnnkit shape: a smaller --filter)"
    else:
        where = f"I={size}, O={output}, F={kernel}, S={stride}, P={padding}"
        advice = "fix another letter too (cnnkit shape: give --stride S or --padding P as well)"
    ways = _Ways(where, advice)
    if kernel is not None:
        top = min(kernel, max_stride)
        strides = [stride] if stride is not None else _strides(size, output, kernel, padding, top)
        for s in strides:
            ways.add(size, output, kernel, s, padding)
        return ways.sorted()
    if stride is not None:
        for part in _kernels(size, output, stride, padding, 1, max_kernel):
            for k in part:
                ways.add(size, output, k, stride, padding)
        return ways.sorted()
    for s in _free_strides(size, output, padding, max_kernel, max_stride):
        for part in _kernels(size, output, s, padding, s, max_kernel):  # S <= F
            for k in part:
                ways.add(size, output, k, s, padding)
    return ways.sorted()


def _free_strides(size, output, padding, max_kernel, max_stride) -> range:
    """The S (S <= F <= max_kernel) for which some F can have a padding: where the F ranges of
    :func:`_kernels` are not empty."""
    m = output - 1
    if padding is None:  # -c <= F <= max_kernel, c <= 0
        lo, hi = _at_least(m, size - max_kernel), _at_most(m, size)
    else:  # p - c <= F <= 2p - c with S <= F
        p = padding
        lo, hi = _at_least(m, size + p - max_kernel), _at_most(m + 1, size + 2 * p)
    top = min(max_kernel, max_stride)
    return range(lo, top + 1 if hi is None else min(top, hi) + 1)
