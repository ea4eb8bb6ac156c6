"""A run directory's safety: one training process at a time, no run replaced by accident, and
nothing left behind by a kill.

- :class:`RunLock`: an exclusive ``flock`` on ``RUN_DIR/.lock``, which holds the owner's pid.
  The system releases it when the process ends, however it ends, so a killed run never leaves
  a stale lock; a second ``cnnkit train`` on the same directory is refused naming the pid.
- :func:`run_files`: the files of a run present in a directory; a fresh run refuses to start
  over checkpoints or a history unless told to replace them (``--force``, :func:`remove_run`).
- :func:`remove_temporaries`: the temporary files of writes a kill interrupted (see
  :mod:`cnnkit.atomic`), removed when the directory is next opened, under the lock.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cnnkit.atomic import is_temporary, reason
from cnnkit.errors import TrainingError, WriteError

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK = ".lock"
RUN_FILES = ("last.npz", "best.npz", "history.json", "history.csv", "settings.json", "spec.txt")


def prepare(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents), or say in one line why it cannot be."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir}: is a file, not a directory; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(
            f"--out {run_dir}: the run directory cannot be created ({reason(error)}); "
            "choose another --out",
            error.errno,
        ) from None


class RunLock:
    """``with RunLock(run_dir):`` holds the directory for this process, or raises
    TrainingError naming the process that holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._handle: int | None = None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        path = self.run_dir / LOCK
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise WriteError(f"{path}: cannot be opened ({reason(error)})", error.errno) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(handle)
            os.close(handle)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WriteError(f"{path}: cannot be locked ({reason(error)})") from None
            raise TrainingError(
                f"{self.run_dir}: another cnnkit train ({holder}) is using this run directory; "
                "wait for it to end, stop it, or choose another --out"
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing releases the lock; the file stays, harmless
            self._handle = None


def _holder(handle: int) -> str:
    """``pid 1234`` as the lock file says, or ``pid unknown``."""
    try:
        text = os.pread(handle, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


def run_files(run_dir: Path, trained: bool = False) -> list[str]:
    """The names of the run files present in ``run_dir`` (``last.npz``, ``settings.json``...);
    ``trained``: only those that hold training (checkpoints, history), which a fresh run never
    replaces unasked (``settings.json`` and ``spec.txt`` alone are a run that never saved)."""
    names = RUN_FILES[:4] if trained else RUN_FILES
    return [name for name in names if (run_dir / name).exists()]


def remove_run(run_dir: Path) -> None:
    """Remove a run's files (``--force``), under the lock; other files are left alone."""
    for name in run_files(run_dir):
        try:
            (run_dir / name).unlink()
        except OSError as error:
            raise WriteError(f"{run_dir / name}: cannot be removed ({reason(error)})") from None


def remove_temporaries(run_dir: Path) -> int:
    """Remove the temporary files that interrupted writes left in ``run_dir``; how many."""
    removed = 0
    for entry in os.scandir(run_dir):
        if is_temporary(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed
