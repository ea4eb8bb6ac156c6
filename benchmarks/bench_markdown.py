"""The README's speed tables from a ``bench.py --json PATH`` file: every case on every machine
kind side by side, the targets' status per kind, and the inference table.

    python benchmarks/bench_markdown.py PATH
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

FLOOR_TARGET = 1.15  # as bench.py


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.2f}"


def case_table(kinds: dict) -> list[str]:
    names = list(kinds)
    head = "| case | mode | " + " | ".join(
        f"{k} cnnkit ms | {k} PyTorch ms | {k} ratio" for k in names
    )
    lines = [head + " | reference ratio |", "|---|---|" + "---:|" * (3 * len(names) + 1)]
    first = kinds[names[0]]["rows"]
    for index, row in enumerate(first):
        cells = [row["case"], row["mode"]]
        for kind in names:
            other = kinds[kind]["rows"][index]
            cells += [_ms(other["cnnkit_ms"]), _ms(other["torch_ms"]), f"{other['ratio']:.2f}"]
        reference = row.get("reference_ratio")
        cells.append("-" if reference is None else f"{reference:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _geomean(rows: list[dict]) -> float:
    return math.exp(statistics.fmean(math.log(r["ratio"]) for r in rows))


def target_lines(kind: str, summary: dict) -> list[str]:
    rows = summary["rows"]
    trained = [r for r in rows if r["mode"] in ("fwd+bwd", "step", "epoch")]
    worst = max(trained, key=lambda r: r["ratio"])
    above = [r for r in trained if r["ratio"] > 1.5]
    lines = [
        f"- **{kind}**: geometric mean of the {len(trained)} fwd+bwd, step and epoch ratios "
        f"**{_geomean(trained):.2f}** (target 1.0); worst {worst['ratio']:.2f} ({worst['case']}); "
        f"{len(above)} of {len(trained)} above 1.5"
        + (f" ({', '.join(r['case'] for r in above)})" if above else "")
    ]
    floors = [r for r in rows if r.get("floor_ratio") is not None]
    if floors:
        parts = ", ".join(f"{r['case']} {r['floor_ratio']:.2f}" for r in floors)
        lines.append(f"  - within {FLOOR_TARGET}x of the GEMM floor: {parts}")
    memory = summary.get("memory")
    if memory and memory.get("ratio"):
        lines.append(
            f"  - training-step peak memory: cnnkit {memory['cnnkit_kib'] / 1024:.1f} MiB, "
            f"PyTorch {memory['torch_kib'] / 1024:.1f} MiB, ratio {memory['ratio']:.2f} "
            "(target 1.5)"
        )
    inference = summary.get("inference") or []
    if inference:
        parts = ", ".join(f"{r['case'].split(',')[0]} {r['ratio']:.2f}" for r in inference)
        lines.append(f"  - inference against ONNX Runtime (target 2.0): {parts}")
    return lines


def inference_table(kinds: dict) -> list[str]:
    names = [k for k in kinds if kinds[k].get("inference")]
    if not names:
        return []
    head = "| network, eval forward, batch 64 | " + " | ".join(
        f"{k} cnnkit ms | {k} ORT ms | {k} ratio" for k in names
    )
    lines = [head + " |", "|---|" + "---:|" * (3 * len(names))]
    for index, row in enumerate(kinds[names[0]]["inference"]):
        cells = [row["case"].split(",")[0]]
        for kind in names:
            other = kinds[kind]["inference"][index]
            cells += [_ms(other["cnnkit_ms"]), _ms(other["ort_ms"]), f"{other['ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a bench.py --json file")
    data = json.load(open(parser.parse_args().path))
    kinds = data["kinds"]
    print("`" + "; ".join(data["machine"]) + "`")
    for kind, summary in kinds.items():
        info = summary["info"]
        print(
            f"- {kind}: float32 GEMM peak {summary['gemm_peak_gflops']:.0f} GFLOP/s; "
            f"cnnkit worker BLAS {info['cnnkit']['blas']}, numba target "
            f"{info['cnnkit']['numba']}; PyTorch CPU capability {info['torch']['torch_isa']}"
        )
    print()
    print("\n".join(case_table(kinds)))
    print()
    for kind, summary in kinds.items():
        print("\n".join(target_lines(kind, summary)))
    print()
    print("\n".join(inference_table(kinds)))


if __name__ == "__main__":
    main()
