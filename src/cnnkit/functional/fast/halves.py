"""Two halves of a batch on two threads, with NumPy's BLAS on one thread meanwhile.

A convolution's im2col path is copies (im2col, col2im: compiled loops that release the GIL,
or NumPy copies) and matrix products. One call with BLAS on two threads parallelises only the
products; two threads of cnnkit's own, each running half of the batch with BLAS on one
thread, parallelise the copies too. It also keeps OpenBLAS's own worker threads asleep: after
a two-thread product they keep spinning for a while (150 ms later they no longer slowed a
parallel loop), and a parallel loop that runs in that time (the direct and depthwise loops)
fights them for the cores. So while a convolution's products run here, BLAS is held at one
thread (restored when the last such call returns), whether the batch is split or not; only the
plan with one product over the whole batch keeps BLAS's own threads.

Needs threadpoolctl (the default install has it) to set BLAS's threads; without it, or with
BLAS already held to one thread by the user, everything runs in the calling thread as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Column elements (units x taps) of a call below which one thread does it all: the hand-off to
# the second thread costs tens of microseconds. LeNet's conv2 at batch 64 (960,000) gains:
# forward 0.82 -> 0.65 ms, forward and backward 2.82 -> 2.36 ms split in halves.
MIN_WORK = 1 << 19

_lock = threading.Lock()
_state: dict = {"controllers": None, "held": 0, "threads": [], "pool": None}


def _after_fork() -> None:
    """A forked child has none of the parent's threads: a fresh lock, no second thread yet,
    and BLAS's threads as they were before any call held them."""
    global _lock
    _lock = threading.Lock()
    if _state["held"]:
        for controller, threads in zip(
            _state["controllers"] or [], _state["threads"], strict=False
        ):
            controller.set_num_threads(threads)
    _state.update(held=0, pool=None)


os.register_at_fork(after_in_child=_after_fork)


def _controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded, found once ([] without it)."""
    if _state["controllers"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["controllers"] = []
        else:
            found = ThreadpoolController().lib_controllers
            _state["controllers"] = [c for c in found if c.user_api == "blas"]
    return _state["controllers"]


class one_blas_thread:
    """``with one_blas_thread():`` BLAS runs on one thread inside (re-entrant, across threads:
    the first caller in sets it, the last one out restores what was there)."""

    def __enter__(self) -> one_blas_thread:
        controllers = _controllers()
        with _lock:
            if _state["held"] == 0:
                _state["threads"] = [c.get_num_threads() for c in controllers]
                for controller in controllers:
                    controller.set_num_threads(1)
            _state["held"] += 1
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _state["held"] -= 1
            if _state["held"] == 0:
                for controller, threads in zip(_controllers(), _state["threads"], strict=True):
                    controller.set_num_threads(threads)


def hold(wanted: bool = True):
    """:class:`one_blas_thread` when ``wanted``, else a context that changes nothing."""
    return one_blas_thread() if wanted else contextlib.nullcontext()


def _worker() -> ThreadPoolExecutor | None:
    """The second thread, or None where the batch stays whole (no threadpoolctl, BLAS held
    to one thread already by the user, or this is the second thread itself)."""
    if not _controllers() or max(_state["threads"] or [1]) < 2:
        return None
    if threading.current_thread().name.startswith("cnnkit-half"):
        return None
    with _lock:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(1, thread_name_prefix="cnnkit-half")
    return _state["pool"]


def split(images: int, work: int) -> list[tuple[int, int]]:
    """The ranges of images to run (call inside :class:`one_blas_thread`): two halves when
    the work pays for the second thread, else the whole batch."""
    if images < 2 or work < MIN_WORK or _worker() is None:
        return [(0, images)]
    return [(0, images // 2), (images // 2, images)]


def run(parts: list[tuple[int, int]], function) -> list:
    """``function(first, last, slot)`` for each part, their results in order: the first here
    (slot 0, the scratch names a whole batch uses too), the second on the second thread (slot
    1, names of its own), or here after the first where there is no second thread."""
    worker = _worker() if len(parts) > 1 else None
    if worker is None:
        return [function(*part, slot) for slot, part in enumerate(parts)]
    future = worker.submit(function, *parts[1], 1)
    try:
        first = function(*parts[0], 0)
    finally:
        second = future.result()  # waits for the worker whatever happened here
    return [first, second]


def slot_name(name: str, slot: int) -> str:
    """A scratch array's name for one part (the parts run at once: each needs its own)."""
    return name if slot == 0 else f"{name}#{slot}"
