"""Inference for bench.py: cnnkit's evaluation forward next to ONNX Runtime running the same
network, exported by ``cnnkit.export_onnx``, at batch 64.

Same method as bench.py: float32, 2 threads each (ONNX Runtime: ``intra_op_num_threads=2``,
sequential execution), one library per process and the processes alternated, medians of at
least 10 timed calls after warm-up, the median over the rounds. cnnkit runs ``model.eval()``
then ``model.forward(x)`` on NCHW images, as a user would; ONNX Runtime runs
``session.run`` on the same images with all its graph optimizations on. The target is
<= 2x ONNX Runtime. ONNX Runtime picks its kernels from the CPU it finds (MLAS has no switch
to pretend to be an AVX2 machine), so in the emulated-AVX2 table only cnnkit runs AVX2 code:
that table's ratios are cnnkit-AVX2 against ONNX Runtime-native, a harder comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_modern import VGG_SPEC

BATCH = 64
TARGET = 2.0


@dataclass(frozen=True)
class Inference:
    name: str
    spec: str
    shape: tuple[int, int, int]

    def model(self):
        import numpy as np

        import cnnkit

        model = cnnkit.from_spec(self.spec, rng=np.random.default_rng(0))
        model.eval()
        return model

    def images(self):
        import numpy as np

        return np.random.default_rng(1).random((BATCH, *self.shape), dtype=np.float32)


INFERENCE_CASES = [
    Inference("LeNet-5 (MNIST), eval forward", "lenet5-mnist", (1, 28, 28)),
    Inference("ResNet-20 (CIFAR), eval forward", "resnet20", (3, 32, 32)),
    Inference("VGG-style (64-128-256), eval forward", VGG_SPEC, (3, 32, 32)),
]


def selected(names: list[str]) -> list[Inference]:
    return [
        case
        for case in INFERENCE_CASES
        if not names or any(n.lower() in case.name.lower() for n in names)
    ]


def ort_session(case: Inference, directory: str):
    """The case's network exported by cnnkit, in an ONNX Runtime session on 2 threads."""
    import os

    import onnxruntime

    import cnnkit

    path = cnnkit.export_onnx(case.model(), os.path.join(directory, "model.onnx"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_worker(library: str, names: list[str], repeats: int, median_ms) -> dict:
    """``{case|inference: (median ms, "NCHW")}`` for one library ("cnnkit" or "ort")."""
    import tempfile

    results: dict = {}
    for case in selected(names):
        x = case.images()
        if library == "cnnkit":
            model = case.model()

            def call(model=model, x=x):
                return model.forward(x)

        else:
            with tempfile.TemporaryDirectory() as directory:
                session = ort_session(case, directory)
            name = session.get_inputs()[0].name

            def call(session=session, name=name, x=x):
                return session.run(None, {name: x})

        results[f"{case.name}|inference"] = (median_ms(call, repeats, warmup=3), "NCHW")
    if library == "ort":
        import onnxruntime

        results["info"] = {"ort": onnxruntime.__version__}
    return results


def report(results: dict, names: list[str]) -> list[dict]:
    """One row per case: the medians over the rounds and their ratio."""
    import statistics

    rows = []
    for case in selected(names):
        key = f"{case.name}|inference"
        ours = statistics.median(run[key][0] for run in results["cnnkit"])
        theirs = statistics.median(run[key][0] for run in results["ort"])
        rows.append(
            {"case": case.name, "cnnkit_ms": ours, "ort_ms": theirs, "ratio": ours / theirs}
        )
    return rows


def print_rows(rows: list[dict], version: str) -> None:
    if not rows:
        return
    print()
    print(f"Inference, batch {BATCH}: cnnkit's eval forward against ONNX Runtime {version}")
    print(f"{'case':46s} {'cnnkit ms':>10s} {'ORT ms':>9s} {'ratio':>6s}")
    for row in rows:
        print(
            f"{row['case']:46s} {row['cnnkit_ms']:10.2f} {row['ort_ms']:9.2f} {row['ratio']:6.2f}"
        )
    for row in rows:
        verdict = "met" if row["ratio"] <= TARGET else "NOT met"
        print(f"target: {row['case']} <= {TARGET}x ONNX Runtime: {row['ratio']:.2f} ({verdict})")
