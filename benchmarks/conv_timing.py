"""First timing of Conv2d forward+backward, cnnkit next to PyTorch on the same machine.

Each library runs in its own process (PyTorch's spinning OpenMP threads would otherwise steal
NumPy's cores), the processes alternate, and each reports the median of repeated timings.
Run: ``python benchmarks/conv_timing.py [--rounds 3] [--repeats 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# (name, N, C, H, W, D, F, S, P)
CASES = [
    ("LeNet conv1 1x28x28 -> 6@5x5 P=2", 64, 1, 28, 28, 6, 5, 1, 2),
    ("LeNet conv2 6x14x14 -> 16@5x5", 64, 6, 14, 14, 16, 5, 1, 0),
    ("3x32x32 -> 32@3x3 P=1", 64, 3, 32, 32, 32, 3, 1, 1),
    ("32x32x32 -> 64@3x3 P=1", 64, 32, 32, 32, 64, 3, 1, 1),
]


def time_call(step, repeats: int) -> float:
    """Median milliseconds of ``step()`` after two warm-up calls."""
    step()
    step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def cnnkit_step(case):
    import numpy as np

    import cnnkit

    _, n, c, h, w, d, f, s, p = case
    rng = np.random.default_rng(0)
    conv = cnnkit.Conv2d(c, d, f, stride=s, padding=p, rng=rng)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    dy = np.ones(conv.output_shape(x.shape), np.float32)

    def step():
        conv.forward(x)
        conv.backward(dy)

    return step


def torch_step(case):
    import torch

    torch.set_num_threads(2)
    _, n, c, h, w, d, f, s, p = case
    conv = torch.nn.Conv2d(c, d, f, stride=s, padding=p)
    x = torch.randn(n, c, h, w, requires_grad=True)
    dy = torch.ones_like(conv(x))

    def step():
        conv.zero_grad()
        x.grad = None
        conv(x).backward(dy)

    return step


def worker(library: str, repeats: int) -> None:
    build = cnnkit_step if library == "cnnkit" else torch_step
    print(json.dumps([time_call(build(case), repeats) for case in CASES]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating process pairs")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per process")
    parser.add_argument("--worker", choices=["cnnkit", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.repeats)
        return
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    results: dict[str, list[list[float]]] = {"cnnkit": [], "torch": []}
    for _ in range(args.rounds):
        for library in ("cnnkit", "torch"):
            command = [
                sys.executable,
                __file__,
                "--worker",
                library,
                "--repeats",
                str(args.repeats),
            ]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[library].append(json.loads(out.stdout))
    header = f"{'case (batch 64, forward+backward)':40s} {'cnnkit ms':>10s} {'PyTorch ms':>11s}"
    print(f"{header} {'ratio':>6s}")
    for index, case in enumerate(CASES):
        ours = statistics.median(run[index] for run in results["cnnkit"])
        theirs = statistics.median(run[index] for run in results["torch"])
        print(f"{case[0]:40s} {ours:10.2f} {theirs:11.2f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
