"""Training progress for people (a bar per epoch and a summary line) and for scripts (JSON lines).

The bar is drawn on stderr only when stderr is a terminal. Logs and pipes (CI, ``nohup``) get
the one-line epoch summaries and, within an epoch, a plain progress line at least every
:data:`PLAIN_INTERVAL` seconds, so a log shows the run is alive.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import TextIO

from cnnkit.train import EpochRecord, Reporter

BAR_WIDTH = 24
PLAIN_INTERVAL = 30.0  # seconds between progress lines when no terminal shows the bar


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}:{seconds:02d}"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#########---------------]`` for ``done`` of ``total``."""
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def epoch_line(record: EpochRecord, epochs: int) -> str:
    """``epoch  3/20  loss 0.1234  acc 96.51%  val loss 0.0812  val acc 97.91%  lr 0.0456 ...``"""
    width = len(str(epochs))
    text = (
        f"epoch {record.epoch:{width}d}/{epochs}  loss {record.train_loss:.4f}  "
        f"acc {record.train_accuracy:6.2%}"
    )
    if record.val_accuracy is not None:
        text += f"  val loss {record.val_loss:.4f}  val acc {record.val_accuracy:6.2%}"
    return text + (
        f"  lr {record.lr:.3g}  {record.seconds:.1f} s  ({record.examples_per_second:,.0f} ex/s)"
    )


class ProgressReporter(Reporter):
    """A live bar (loss, accuracy, examples/s, ETA) on a terminal, and a line per epoch."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = self.err.isatty()
        self.interval = interval
        self._last_draw = 0.0
        self._last_line = time.perf_counter()  # the last line a log got
        self._epoch = (0, 0)
        self._started = time.perf_counter()
        self._first_step: int | None = None

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epoch = (epoch + 1, epochs)
        self._started = time.perf_counter()
        self._first_step: int | None = None

    def step(self, done: int, steps: int, loss: float, accuracy: float, rate: float) -> None:
        now = time.perf_counter()
        if self._first_step is None:  # a resumed epoch starts part-way through
            self._first_step, self._started = done - 1, now - 1e-9
        if not self.live:
            if now - self._last_line >= self.interval and done < steps:
                self._last_line = now
                print(self._progress(done, steps, loss, accuracy, rate, now), file=self.out)
                self.out.flush()
            return
        if now - self._last_draw < 0.1 and done < steps:
            return
        self._last_draw = now
        line = self._progress(done, steps, loss, accuracy, rate, now, bar(done, steps) + " ")
        self.err.write(f"\r{line} ")
        self.err.flush()

    def _progress(self, done, steps, loss, accuracy, rate, now, drawn: str = "") -> str:
        """``epoch 3/20 [###---] 120/400  loss 0.1234  acc 96.51%  1,234 ex/s  ETA 0:42``"""
        per_step = (now - self._started) / max(done - self._first_step, 1)
        epoch, epochs = self._epoch
        return (
            f"epoch {epoch}/{epochs} {drawn}{done}/{steps}  loss {loss:.4f}  "
            f"acc {accuracy:6.2%}  {rate:,.0f} ex/s  ETA {_duration((steps - done) * per_step)}"
        )

    def epoch_end(self, record: EpochRecord, epochs: int) -> None:
        if self.live:
            self.err.write("\r\033[K")
            self.err.flush()
        print(epoch_line(record, epochs), file=self.out, flush=True)
        self._last_line = time.perf_counter()

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self._last_line = time.perf_counter()


class JsonLinesReporter(Reporter):
    """One JSON object per line on stdout: ``{"event": "epoch", ...}``, ``{"event": "note"}``,
    and within an epoch ``{"event": "progress", ...}`` at least every ``interval`` seconds."""

    def __init__(self, out: TextIO | None = None, interval: float = PLAIN_INTERVAL) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._epoch = (0, 0)
        self._last = time.perf_counter()

    def emit(self, event: str, **values) -> None:
        print(json.dumps({"event": event, **values}), file=self.out, flush=True)
        self._last = time.perf_counter()

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epoch = (epoch + 1, epochs)

    def step(self, done: int, steps: int, loss: float, accuracy: float, rate: float) -> None:
        if time.perf_counter() - self._last >= self.interval and done < steps:
            epoch, epochs = self._epoch
            self.emit(
                "progress",
                epoch=epoch,
                epochs=epochs,
                step=done,
                steps=steps,
                loss=loss,
                accuracy=accuracy,
                examples_per_second=rate,
            )

    def epoch_end(self, record: EpochRecord, epochs: int) -> None:
        self.emit("epoch", epochs=epochs, **asdict(record))

    def note(self, text: str) -> None:
        self.emit("note", text=text)
