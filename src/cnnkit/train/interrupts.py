"""Ctrl-C (SIGINT) or a polite kill (SIGTERM, as job schedulers and ``kill`` send) during
training: finish the step in flight, save ``last.npz``, then stop with KeyboardInterrupt."""

from __future__ import annotations

import signal
import threading

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class Interrupts:
    """Turns SIGINT and SIGTERM into a flag checked between steps, so a checkpoint never holds
    half a step. A second signal stops at once (the last checkpoint on disk stays whole)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}
