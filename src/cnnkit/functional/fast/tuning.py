"""Choosing between interchangeable ways of one call by timing them where they run.

Some loops can run serially or on every core with the same numbers, bit for bit; which is
faster depends on what ran just before, not only on the shapes. Right after a matrix product
OpenBLAS's idle threads keep spinning for a while, and a parallel loop then fights them for the
cores: on the benchmark machine a 16->16 direct forward took 4.3 ms in parallel, 8.8 serially,
and 12 ms in parallel right after a 512x512 product. So each call site of a layer (its
workspace's ``choices``, keyed by the call and its shapes) times both ways on its first calls,
in place, and keeps the faster: in a training loop every step repeats the same sequence, so
the first steps tell. The numbers never depend on the choice, only the time does.
"""

from __future__ import annotations

import statistics
import time

TRIALS = 5  # timed calls of each way, after one untimed (compilation, first touch of memory)
# Multiply-adds of a call below which it runs serially, untimed: a parallel region's start costs
# tens of microseconds, and compiling the parallel loop seconds, which a small network (the demo's
# 8x8 digits) would spend for nothing.
PARALLEL_MIN_WORK = 1 << 22


class Choice:
    """The faster of two ways (0: serial, 1: parallel) of one call site, once timed."""

    def __init__(self) -> None:
        self.times: tuple[list[float], list[float]] = ([], [])
        self.way: int | None = None

    def next_way(self) -> int:
        """The way to run now: the chosen one, or the one with fewer timings so far."""
        if self.way is not None:
            return self.way
        serial, parallel = self.times
        return 0 if len(serial) <= len(parallel) else 1

    def record(self, way: int, seconds: float) -> None:
        if self.way is not None:
            return
        self.times[way].append(seconds)
        serial, parallel = (t[1:] for t in self.times)  # each way's first call not counted
        if len(serial) >= TRIALS and len(parallel) >= TRIALS:
            self.way = 0 if statistics.median(serial) <= statistics.median(parallel) else 1


_SHARED: dict = {}  # call sites without a workspace (a functional call) share these


def timed(workspace, key, run, work: int | None = None) -> None:
    """``run(parallel)`` the way the call site ``key`` of ``workspace`` prefers, timing it
    while that is not settled; serially, untimed, for less than ``PARALLEL_MIN_WORK``
    multiply-adds of ``work``."""
    if work is not None and work < PARALLEL_MIN_WORK:
        run(False)
        return
    choices = _SHARED if workspace is None else workspace.choices
    choice = choices.get(key)
    if choice is None:
        choice = choices[key] = Choice()
    way = choice.next_way()
    if choice.way is not None:
        run(bool(way))
        return
    start = time.perf_counter()
    run(bool(way))
    choice.record(way, time.perf_counter() - start)
