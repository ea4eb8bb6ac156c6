"""Run ``cnnkit`` and die (``os._exit(137)``, as SIGKILL would: no cleanup, no ``finally``) at
the K-th file operation on the run directory.

    python killer.py K TRACE_FILE -- cnnkit arguments...

The operations counted are the ones a write is made of: opening a file or the directory, each
half of an archive's bytes, fsync, rename, unlink. K = 0 kills nothing and writes the list of
operations (one label per line) to TRACE_FILE, so a test can choose where to kill.
"""

import io
import os
import sys

import numpy as np


def main() -> int:
    kill_at, trace_file = int(sys.argv[1]), sys.argv[2]
    arguments = sys.argv[sys.argv.index("--") + 1 :]
    run_dir = os.path.abspath(arguments[arguments.index("--out") + 1])
    labels: list[str] = []

    def operation(label: str) -> None:
        labels.append(label)
        if len(labels) == kill_at:
            os._exit(137)

    def ours(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(run_dir)

    def name(path) -> str:
        return os.path.basename(os.fspath(path)) or "."

    real_open, real_fsync, real_replace, real_unlink = os.open, os.fsync, os.replace, os.unlink
    real_savez = np.savez

    def patched_open(path, *args, **kwargs):
        if ours(path):
            operation(f"open {name(path)}")
        return real_open(path, *args, **kwargs)

    def patched_fsync(fd):
        operation("fsync")
        return real_fsync(fd)

    def patched_replace(source, target, *args, **kwargs):
        if ours(target):
            operation(f"rename -> {name(target)}")
        return real_replace(source, target, *args, **kwargs)

    def patched_unlink(path, *args, **kwargs):
        if ours(path):
            operation(f"unlink {name(path)}")
        return real_unlink(path, *args, **kwargs)

    def patched_savez(stream, *args, **kwargs):
        buffer = io.BytesIO()
        real_savez(buffer, *args, **kwargs)
        data = buffer.getvalue()
        stream.write(data[: len(data) // 2])
        stream.flush()
        operation("half of an archive written")
        stream.write(data[len(data) // 2 :])
        operation("archive written")

    os.open, os.fsync, os.replace, os.unlink = (
        patched_open,
        patched_fsync,
        patched_replace,
        patched_unlink,
    )
    np.savez = patched_savez
    from cnnkit import cli

    code = cli.main(arguments)
    with open(trace_file, "w") as stream:
        stream.write("\n".join(labels) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
