"""cnnkit against an earlier cnnkit: the bench's cnnkit cases, two source trees, alternated.

Each round runs ``bench.py --worker cnnkit`` once with the other tree's ``src`` first on
``PYTHONPATH`` and once with this one's, in separate processes; the table gives the median over
the rounds of each case and the ratio this/other (below 1: this tree is faster). Use it before
and after a change that must not slow the engine::

    git worktree add /tmp/before HEAD~1
    python benchmarks/compare.py --other /tmp/before --rounds 5 --cases LeNet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(tree: Path, cases: list[str], repeats: int) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(tree / "src"),
        OMP_NUM_THREADS="2",
        OPENBLAS_NUM_THREADS="2",
        MKL_NUM_THREADS="2",
    )
    command = [
        sys.executable,
        str(HERE / "bench.py"),
        "--worker",
        "cnnkit",
        "--repeats",
        str(repeats),
        "--cases",
        *cases,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, help="the other checkout (its src/ is used)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cases", nargs="*", default=[])
    parser.add_argument("--json", help="write the medians to this file")
    args = parser.parse_args()
    trees = {"other": Path(args.other).resolve(), "this": HERE.parent}
    runs: dict[str, list[dict]] = {"other": [], "this": []}
    for round_index in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(worker(tree, args.cases, args.repeats))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    keys = [key for key in runs["this"][0] if "|" in key and not key.endswith("|products")]
    medians = {
        name: {key: statistics.median(run[key][0] for run in results) for key in keys}
        for name, results in runs.items()
    }
    print(f"{'case':<48} {'mode':<8} {'other ms':>10} {'this ms':>10} {'this/other':>10}")
    for key in keys:
        case, mode = key.split("|")
        other, this = medians["other"][key], medians["this"][key]
        print(f"{case:<48} {mode:<8} {other:>10.2f} {this:>10.2f} {this / other:>10.3f}")
    ratios = [medians["this"][k] / medians["other"][k] for k in keys]
    geometric = statistics.geometric_mean(ratios)
    print(f"geometric mean this/other: {geometric:.3f}; worst {max(ratios):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": medians, "raw": runs}, indent=1))


if __name__ == "__main__":
    main()
