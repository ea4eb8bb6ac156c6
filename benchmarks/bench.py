"""cnnkit next to PyTorch on the CPU: convolution, pooling, a LeNet-5 training step, an MNIST epoch.

Method (see the speed issue): the same float32 inputs, 2 threads for both libraries, each library
timed in its own process and the processes alternated (cnnkit, PyTorch, cnnkit, PyTorch, ...),
because PyTorch's OpenMP threads keep spinning after a parallel region and steal NumPy's cores
when both run in one process. Every figure is a median of at least 10 timed calls after warm-up
calls, and the median over the rounds. PyTorch's time is the better of its NCHW and
channels_last layouts, per case. cnnkit gets contiguous NCHW arrays, as a user would hand them in.

"forward" is a training-mode forward (PyTorch records the graph, cnnkit keeps its cache);
"fwd+bwd" adds the backward pass with gradients of the input, the weight and the bias. The LeNet-5
step is forward, loss, backward and an SGD update (momentum 0.9) at batch 64; the epoch is 60,000
synthetic 1x28x28 images (MNIST's size; the values do not change the time), shuffled, in batches
of 64 (the last one 32). Peak memory is the rise of the process's peak resident set size while a
fresh process builds the model and runs five training steps. The modern layers' cases
(BatchNorm2d, depthwise and dilated convolution, a residual block, a ResNet-20 training step,
each with a target of <= 1.5x PyTorch) are in bench_modern.py.

Every table is printed for each machine kind (``--kinds``): ``native`` runs this machine as it
is; ``avx2`` emulates an AVX2-only CPU (OpenBLAS's Haswell kernel, numba compiling for Haswell,
PyTorch's ATen and oneDNN kept to AVX2), each worker reporting the BLAS kernel, numba target and
PyTorch CPU capability it really ran with.

Run: ``python benchmarks/bench.py [--rounds 3] [--json PATH] [--cases SUBSTRING ...]
[--kinds native avx2]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import bench_inference
from bench_modern import MODERN_CASES

BATCH = 64
EPOCH_IMAGES = 60_000


@dataclass(frozen=True)
class Conv:
    name: str
    n: int
    c: int
    h: int
    w: int
    d: int
    k: int
    s: int = 1
    p: int = 0

    def out_hw(self) -> int:
        return (self.h + 2 * self.p - self.k) // self.s + 1

    def flops(self) -> float:
        """Forward multiply-adds times two; the backward does two more products of that size."""
        return 2.0 * self.n * self.d * self.out_hw() ** 2 * self.c * self.k * self.k


@dataclass(frozen=True)
class Pool:
    name: str
    n: int
    c: int
    h: int
    w: int
    kind: str
    k: int = 2
    s: int = 2

    def flops(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Step:
    name: str
    epoch: bool = False

    def flops(self) -> float:
        """LeNet-5 (MNIST sizes): forward products, then backward without the input's gradient."""
        conv1 = Conv("", BATCH, 1, 28, 28, 6, 5, 1, 2).flops()
        conv2 = Conv("", BATCH, 6, 14, 14, 16, 5).flops()
        fc = 2.0 * BATCH * (400 * 120 + 120 * 84 + 84 * 10)
        per_step = 2 * conv1 + 3 * conv2 + 3 * fc
        return per_step * (EPOCH_IMAGES / BATCH if self.epoch else 1)


CASES = [
    Conv("LeNet conv1 1x28x28 -> 6@5x5 P=2", BATCH, 1, 28, 28, 6, 5, 1, 2),
    Conv("LeNet conv2 6x14x14 -> 16@5x5", BATCH, 6, 14, 14, 16, 5),
    Conv("3x32x32 -> 32@3x3 P=1", BATCH, 3, 32, 32, 32, 3, 1, 1),
    Conv("32x32x32 -> 64@3x3 P=1", BATCH, 32, 32, 32, 64, 3, 1, 1),
    Conv("64x16x16 -> 128@3x3 P=1", BATCH, 64, 16, 16, 128, 3, 1, 1),
    Conv("AlexNet conv1 3x227x227 -> 96@11x11 S=4, N=8", 8, 3, 227, 227, 96, 11, 4, 0),
    Pool("max pool 2x2 S=2 on 32x32x32", BATCH, 32, 32, 32, "max"),
    Pool("avg pool 2x2 S=2 on 32x32x32", BATCH, 32, 32, 32, "avg"),
    Pool("max pool 2x2 S=2 on 64x32x32", BATCH, 64, 32, 32, "max"),
    Pool("avg pool 2x2 S=2 on 64x32x32", BATCH, 64, 32, 32, "avg"),
    Step("LeNet-5 training step, batch 64"),
    Step("MNIST epoch (60,000 images), LeNet-5", epoch=True),
    *MODERN_CASES,
]
# Held to their GEMM floor (FLOPs over the float32 GEMM rate measured in the same run): the
# large layers and the VGG-style step, whose time is nearly all products.
LARGE = {CASES[3].name, CASES[4].name, CASES[5].name, *(c.name for c in CASES if "VGG" in c.name)}
FLOOR_TARGET = 1.15
LAYOUTS = ["NCHW", "channels_last"]


# ---------------------------------------------------------------------------------------------
# Timing


def median_ms(call, repeats: int, warmup: int = 2, min_seconds: float = 0.25) -> float:
    """Median milliseconds of ``call()``: ``warmup`` untimed calls, then at least ``repeats``
    timed ones (more for fast calls, until ``min_seconds`` have been spent)."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < repeats or (spent < min_seconds and len(samples) < 20 * repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
        spent += samples[-1] / 1e3
    return statistics.median(samples)


def lenet_batches(xp_images, xp_labels, permutation):
    for start in range(0, EPOCH_IMAGES, BATCH):
        index = permutation[start : start + BATCH]
        yield xp_images[index], xp_labels[index]


# ---------------------------------------------------------------------------------------------
# cnnkit


def cnnkit_lenet(rng):
    import cnnkit

    return cnnkit.Sequential(
        cnnkit.Conv2d(1, 6, 5, padding=2, rng=rng),
        cnnkit.ReLU(),
        cnnkit.MaxPool2d(2),
        cnnkit.Conv2d(6, 16, 5, rng=rng),
        cnnkit.ReLU(),
        cnnkit.MaxPool2d(2),
        cnnkit.Flatten(),
        cnnkit.Linear(400, 120, rng=rng),
        cnnkit.ReLU(),
        cnnkit.Linear(120, 84, rng=rng),
        cnnkit.ReLU(),
        cnnkit.Linear(84, 10, rng=rng),
    )


def cnnkit_training(rng):
    """A LeNet-5, its loss and optimizer, and ``step(x, labels)``."""
    import cnnkit

    model = cnnkit_lenet(rng)
    loss_fn = cnnkit.CrossEntropyLoss()
    optimizer = cnnkit.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, labels):
        loss_fn.forward(model.forward(x), labels)
        optimizer.zero_grad()
        model.backward(loss_fn.backward(), input_grad=False)  # as PyTorch: x needs no grad
        optimizer.step()

    return step


def channels_last(array):
    """The same (N, C, H, W)-indexed values, stored channels-last (N, H, W, C) in memory."""
    import numpy as np

    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def cnnkit_calls(case, layout, rng):
    """``{mode: call}`` for one case, the input stored ``layout`` ("NCHW" or "channels_last")
    and the upstream gradient stored like the layer's output (as the next layer returns it)."""
    import numpy as np

    import cnnkit

    if hasattr(case, "cnnkit_calls"):  # bench_modern's cases build their own
        return case.cnnkit_calls(layout, rng)
    if isinstance(case, Conv):
        layer = cnnkit.Conv2d(case.c, case.d, case.k, stride=case.s, padding=case.p, rng=rng)
    elif isinstance(case, Pool):
        layer = (cnnkit.MaxPool2d if case.kind == "max" else cnnkit.AvgPool2d)(case.k, case.s)
    else:
        step = cnnkit_training(rng)
        images = rng.random((EPOCH_IMAGES, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, EPOCH_IMAGES)
        if not case.epoch:
            x, y = images[:BATCH], labels[:BATCH]
            return {"step": lambda: step(x, y)}

        def epoch():
            for x, y in lenet_batches(images, labels, rng.permutation(EPOCH_IMAGES)):
                step(x, y)

        return {"epoch": epoch}
    x = rng.standard_normal((case.n, case.c, case.h, case.w), dtype=np.float32)
    if layout == "channels_last":
        x = channels_last(x)
    dy = np.empty_like(layer.forward(x))  # keeps the output's memory order
    dy[...] = rng.standard_normal(dy.shape, dtype=np.float32)

    def forward_backward():
        layer.forward(x)
        layer.backward(dy)

    return {"forward": lambda: layer.forward(x), "fwd+bwd": forward_backward}


def products_ms(case: Conv, repeats: int) -> float:
    """Median milliseconds of the three matrix products behind one forward+backward of
    ``case``, alone, at the fastest of several chunkings of the batch: (M, K) @ (K, D) for the
    output, (K, M) @ (M, D) for the weight gradient, (M, D) @ (D, K) for the input's columns,
    with M = OH*OW per image times the images in a chunk and K = C*KH*KW. An im2col engine on
    this BLAS spends at least this (plus its copies), so the ratio of this to PyTorch's whole
    forward+backward is a floor under cnnkit's."""
    sizes = sorted({1, 4, 16, case.n} & set(range(1, case.n + 1)))
    return min(_chunked_products_ms(case, images, repeats) for images in sizes)


def _chunked_products_ms(case: Conv, images: int, repeats: int) -> float:
    import numpy as np

    rng = np.random.default_rng(1)
    m, k, d = case.out_hw() ** 2 * images, case.c * case.k * case.k, case.d
    columns = rng.standard_normal((m, k), dtype=np.float32)
    columns_t = np.ascontiguousarray(columns.T)
    weights = rng.standard_normal((k, d), dtype=np.float32)
    grads = rng.standard_normal((m, d), dtype=np.float32)
    out, dcolumns = np.empty((m, d), np.float32), np.empty((m, k), np.float32)
    chunks = -(-case.n // images)

    def products():
        for _ in range(chunks):
            np.matmul(columns, weights, out=out)
            np.matmul(columns_t, grads)
            np.matmul(grads, weights.T, out=dcolumns)

    return median_ms(products, repeats)


def gemm_peak_gflops(repeats: int) -> float:
    """float32 GEMM rate of NumPy's BLAS on a large square product (2 threads)."""
    import numpy as np

    size = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    ms = median_ms(lambda: np.matmul(a, b, out=out), repeats, warmup=2, min_seconds=0)
    return 2.0 * size**3 / (ms * 1e6)


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_lenet(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def torch_training(torch, layout):
    model = torch_lenet(torch).to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cross_entropy = torch.nn.functional.cross_entropy

    def step(x, labels):
        optimizer.zero_grad()
        cross_entropy(model(x), labels).backward()
        optimizer.step()

    return step


def torch_calls(case, layout, generator):
    import torch

    functional = torch.nn.functional
    if hasattr(case, "torch_calls"):  # bench_modern's cases build their own
        return case.torch_calls(layout, generator)
    if isinstance(case, Step):
        step = torch_training(torch, layout)
        images = torch.rand(EPOCH_IMAGES, 1, 28, 28, generator=generator)
        images = images.contiguous(memory_format=layout)
        labels = torch.randint(0, 10, (EPOCH_IMAGES,), generator=generator)
        if not case.epoch:
            x, y = images[:BATCH].contiguous(memory_format=layout), labels[:BATCH]
            return {"step": lambda: step(x, y)}

        def epoch():
            permutation = torch.randperm(EPOCH_IMAGES, generator=generator)
            for x, y in lenet_batches(images, labels, permutation):
                step(x.contiguous(memory_format=layout), y)

        return {"epoch": epoch}
    x = torch.randn(case.n, case.c, case.h, case.w, generator=generator)
    x = x.contiguous(memory_format=layout).requires_grad_()
    if isinstance(case, Conv):
        module = torch.nn.Conv2d(case.c, case.d, case.k, stride=case.s, padding=case.p)
        module = module.to(memory_format=layout)

        def forward():
            return module(x)

        def clear():
            x.grad = module.weight.grad = module.bias.grad = None
    else:
        pool = functional.max_pool2d if case.kind == "max" else functional.avg_pool2d

        def forward():
            return pool(x, case.k, case.s)

        def clear():
            x.grad = None

    dy = torch.randn(forward().shape, generator=generator).contiguous(memory_format=layout)

    def forward_backward():
        clear()
        forward().backward(dy)

    return {"forward": forward, "fwd+bwd": forward_backward}


# ---------------------------------------------------------------------------------------------
# Workers: one library per process


def selected(names: list[str]):
    return [
        case for case in CASES if not names or any(n.lower() in case.name.lower() for n in names)
    ]


def run_worker(library: str, names: list[str], repeats: int) -> dict:
    """``{case|mode: (median ms, input layout)}``, the better of NCHW and channels-last input
    for each case (the LeNet step and epoch take NCHW images, which are both for 1 channel)."""
    results: dict = {}
    if library == "reference":
        return reference_worker(names)
    if library == "cnnkit":
        import numpy as np

        rng = np.random.default_rng(0)

        def calls(case, layout):
            return cnnkit_calls(case, layout, rng)

    else:
        import torch

        torch.set_num_threads(2)
        generator = torch.Generator().manual_seed(0)
        formats = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}

        def calls(case, layout):
            return torch_calls(case, formats[layout], generator)

    for case in selected(names):
        layouts = LAYOUTS
        if library == "cnnkit":
            plain = ["NCHW"] if isinstance(case, Step) else LAYOUTS  # the LeNet step's images
            layouts = getattr(case, "cnnkit_layouts", plain)
        for layout in layouts:
            for mode, call in calls(case, layout).items():
                fewer = mode == "epoch"
                key = f"{case.name}|{mode}"
                ms = median_ms(call, 1 if fewer else repeats, warmup=0 if fewer else 3)
                if key not in results or ms < results[key][0]:
                    results[key] = (ms, layout)
    results["info"] = worker_info(library)
    if library == "cnnkit":
        results["gemm_peak_gflops"] = gemm_peak_gflops(repeats)
        for case in selected(names):
            if isinstance(case, Conv) or getattr(case, "im2col", False):
                results[f"{case.name}|products"] = (products_ms(case, repeats), "NCHW")
    return results


def reference_worker(names: list[str]) -> dict:
    """The reference engine's times, to show what the fast engine buys (not a target): NCHW
    input, 3 timed calls after one warm-up, no epoch (60,000 images would take minutes)."""
    import numpy as np

    import cnnkit

    rng = np.random.default_rng(0)
    results: dict = {}
    with cnnkit.use_engine("reference"):
        for case in selected(names):
            if isinstance(case, Step) and case.epoch:
                continue
            for mode, call in cnnkit_calls(case, "NCHW", rng).items():
                ms = median_ms(call, 3, warmup=1, min_seconds=0.0)
                results[f"{case.name}|{mode}"] = (ms, "NCHW")
    return results


def resident_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_memory_worker(library: str) -> dict:
    """Rise of the peak resident set while building LeNet-5 and running five training steps."""
    if library == "cnnkit":
        import numpy as np

        rng = np.random.default_rng(0)
        x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, BATCH)
    else:
        import torch

        torch.set_num_threads(2)
        x = torch.rand(BATCH, 1, 28, 28)
        labels = torch.randint(0, 10, (BATCH,))
    before = resident_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current resident set
    step = cnnkit_training(rng) if library == "cnnkit" else torch_training(torch, None)
    for _ in range(5):
        step(x, labels)
    return {"peak_rise_kib": resident_kib("VmHWM") - before}


def blas_line() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: threadpoolctl not installed (pip install -e '.[bench]')"
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)

    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            parts.append(
                f"{pool['internal_api']} {pool['version']} kernel {pool.get('architecture')} "
                f"threads {pool['num_threads']}"
            )
    return "BLAS: " + ("; ".join(parts) or "none found")


def machine_lines() -> list[str]:
    import numpy

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    torch_version = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    env_vars = [
        f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ
    ]
    return [
        f"date {datetime.date.today().isoformat()}; {cpu}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"PyTorch {torch_version or 'not installed'}",
        blas_line() + (f"; {', '.join(env_vars)}" if env_vars else "; OPENBLAS_CORETYPE unset"),
    ]


# ---------------------------------------------------------------------------------------------
# Driver


# The kinds of machine each table is for. "avx2" emulates an AVX2-only CPU on this one: OpenBLAS's
# Haswell kernel, numba compiling for Haswell, and PyTorch's ATen and oneDNN kept to AVX2, so both
# libraries run the instructions such a machine has. Set only in the benchmark's own workers.
KINDS = {
    "native": {},
    "avx2": {
        "OPENBLAS_CORETYPE": "Haswell",
        "NUMBA_CPU_NAME": "haswell",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
}


def kind_lines(info: dict, kind: str) -> list[str]:
    """What the workers of one kind ran on, as they reported it."""
    settings = ", ".join(f"{k}={v}" for k, v in KINDS[kind].items()) or "this machine as it is"
    return [
        f"machine kind: {kind} ({settings})",
        f"cnnkit worker: {info['cnnkit']['blas']}; numba target {info['cnnkit']['numba']}",
        f"PyTorch worker: CPU capability {info['torch']['torch_isa']}",
    ]


def worker_info(library: str) -> dict:
    """The BLAS kernel and compile target a worker actually runs with."""
    if library == "torch":
        import torch

        return {"torch_isa": torch.backends.cpu.get_cpu_capability()}
    try:
        import numba
        from llvmlite import binding

        target = numba.config.CPU_NAME or binding.get_host_cpu_name()
    except ImportError:
        target = "none (numba not installed)"
    return {"blas": blas_line().removeprefix("BLAS: "), "numba": target}


def spawn(arguments: list[str], kind: str = "native") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    env.update(KINDS[kind])
    command = [sys.executable, __file__, *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gflops(case, mode: str, ms: float) -> float | None:
    flops = case.flops_of(mode) if hasattr(case, "flops_of") else case.flops()
    if not flops:
        return None
    if isinstance(case, Conv) and mode == "fwd+bwd":
        flops *= 3
    return flops / (ms * 1e6)


def _median_and_layout(runs: list) -> tuple[float, str]:
    """Median time over the rounds, and the layout most rounds found faster."""
    layouts = [layout for _, layout in runs]
    return statistics.median(ms for ms, _ in runs), max(set(layouts), key=layouts.count)


def report(results: dict, names: list[str], memory: dict | None, reference=None) -> dict:
    peak = max(r["gemm_peak_gflops"] for r in results["cnnkit"])
    rows = []
    for case in selected(names):
        modes = list(getattr(case, "modes", ()))
        modes = modes or (["step"] if isinstance(case, Step) and not case.epoch else None)
        modes = modes or (["epoch"] if isinstance(case, Step) else ["forward", "fwd+bwd"])
        for mode in modes:
            key = f"{case.name}|{mode}"
            ours, our_layout = _median_and_layout([run[key] for run in results["cnnkit"]])
            theirs, layout = _median_and_layout([run[key] for run in results["torch"]])
            rate = gflops(case, mode, ours)
            slow = (reference or {}).get(key, (None,))[0]
            products = None
            if mode == "fwd+bwd" and f"{case.name}|products" in results["cnnkit"][0]:
                runs = [run[f"{case.name}|products"] for run in results["cnnkit"]]
                products = _median_and_layout(runs)[0]
            rows.append(
                {
                    "case": case.name,
                    "mode": mode,
                    "cnnkit_ms": ours,
                    "torch_ms": theirs,
                    "cnnkit_layout": our_layout,
                    "torch_layout": layout,
                    "ratio": ours / theirs,
                    "gflops": rate,
                    "peak_share": None if rate is None else rate / peak,
                    "large": case.name in LARGE,
                    "products_ms": products,
                    "reference_ms": slow,
                    "reference_ratio": None if slow is None else slow / theirs,
                    "target": getattr(case, "target", None),  # a ratio, per case
                }
            )
    return {"gemm_peak_gflops": peak, "rows": rows, "memory": memory}


def print_table(summary: dict, header: list[str]) -> None:
    for line in header:
        print(line)
    print(
        f"float32 GEMM peak (NumPy, 2048^3, 2 threads): {summary['gemm_peak_gflops']:.0f} GFLOP/s"
    )
    print()
    title = f"{'case':46s} {'mode':8s} {'cnnkit ms':>10s} {'PyTorch ms':>11s} {'layouts':>9s}"
    print(f"{title} {'ratio':>6s} {'GFLOP/s':>8s} {'peak':>5s} {'ref':>7s}")
    print("-" * 118)
    short = {"NCHW": "NCHW", "channels_last": "CL"}
    for row in summary["rows"]:
        rate = "-" if row["gflops"] is None else f"{row['gflops']:.1f}"
        share = "-" if row["peak_share"] is None else f"{100 * row['peak_share']:.0f}%"
        layouts = f"{short[row['cnnkit_layout']]}/{short[row['torch_layout']]}"
        slow = "-" if row["reference_ratio"] is None else f"{row['reference_ratio']:.1f}"
        print(
            f"{row['case']:46s} {row['mode']:8s} {row['cnnkit_ms']:10.2f} {row['torch_ms']:11.2f} "
            f"{layouts:>9s} {row['ratio']:6.2f} {rate:>8s} {share:>5s} {slow:>7s}"
        )
    print("-" * 118)
    print(
        "layouts: the faster input layout for cnnkit/PyTorch (CL = channels-last); GFLOP/s and "
        "peak: cnnkit's;\nref: cnnkit's reference engine against PyTorch (not a target: what the "
        "fast engine buys)"
    )
    print_products(summary)
    targets(summary)


def print_products(summary: dict) -> None:
    """The matrix products alone, against PyTorch's whole forward+backward."""
    rows = [row for row in summary["rows"] if row.get("products_ms") is not None]
    if not rows:
        return
    print()
    print("The three matrix products of each convolution's fwd+bwd alone (NumPy's BLAS, the")
    print("fastest of several chunkings; see products_ms): a floor for an im2col engine here.")
    print(f"{'case':46s} {'products ms':>12s} {'PyTorch ms':>11s} {'floor ratio':>12s}")
    for row in rows:
        floor = row["products_ms"] / row["torch_ms"]
        row["products_ratio"] = floor
        print(f"{row['case']:46s} {row['products_ms']:12.2f} {row['torch_ms']:11.2f} {floor:12.2f}")
    print()


def targets(summary: dict) -> None:
    rows = summary["rows"]
    trained = [r for r in rows if r["mode"] in ("fwd+bwd", "step", "epoch")]
    # The geometric mean is over every forward+backward, step and epoch case, the modern
    # layers' too; a case with a target of its own (bench_modern's) is also held to that.
    speed_cases = [r for r in trained if r.get("target") is None]
    if trained:
        geomean = math.exp(statistics.fmean(math.log(r["ratio"]) for r in trained))
        summary["geomean_fwd_bwd"] = geomean
        print(
            f"target: geometric mean of fwd+bwd/step/epoch ratios <= 1.0: {geomean:.2f} "
            f"({'met' if geomean <= 1.0 else 'NOT met'})"
        )
    if trained:
        worst = max(trained, key=lambda r: r["ratio"])
        print(
            f"target: no case above 1.5: worst {worst['ratio']:.2f} ({worst['case']}, "
            f"{worst['mode']}) ({'met' if worst['ratio'] <= 1.5 else 'NOT met'})"
        )
    for row in trained:
        if row.get("target") is not None:
            verdict = "met" if row["ratio"] <= row["target"] else "NOT met"
            print(
                f"target: {row['case']} {row['mode']} <= {row['target']}x PyTorch: "
                f"{row['ratio']:.2f} ({verdict})"
            )
    for row in speed_cases:
        if row["mode"] in ("step", "epoch"):
            verdict = "met" if row["ratio"] <= 1.0 else "NOT met"
            print(f"target: {row['case']} <= 1.0x PyTorch: {row['ratio']:.2f} ({verdict})")
    for row in rows:
        if row["large"] and row["mode"] in ("fwd+bwd", "step") and row["peak_share"]:
            floor = row["cnnkit_ms"] * row["peak_share"]  # its FLOPs at the GEMM rate
            ratio = row["cnnkit_ms"] / floor
            row["floor_ms"], row["floor_ratio"] = floor, ratio
            verdict = "met" if ratio <= FLOOR_TARGET else "NOT met"
            print(
                f"target: {row['case']} {row['mode']} within {FLOOR_TARGET}x of its GEMM floor "
                f"({floor:.1f} ms): {ratio:.2f} ({verdict})"
            )
    memory = summary["memory"]
    if memory:
        ratio = memory["cnnkit_kib"] / memory["torch_kib"]
        memory["ratio"] = ratio
        ours, theirs = memory["cnnkit_kib"] / 1024, memory["torch_kib"] / 1024
        print(
            f"target: training-step peak memory <= 1.5x PyTorch: cnnkit {ours:.1f} MiB, "
            f"PyTorch {theirs:.1f} MiB, ratio {ratio:.2f} ({'met' if ratio <= 1.5 else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating process pairs")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per case, at least")
    parser.add_argument("--cases", nargs="*", default=[], help="run cases whose name contains")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip timing the reference engine"
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=sorted(KINDS),
        default=["native", "avx2"],
        help="machine kinds, one table each (avx2: emulated on this machine; see KINDS)",
    )
    parser.add_argument(
        "--worker", choices=["cnnkit", "torch", "reference"], help=argparse.SUPPRESS
    )
    parser.add_argument("--memory-worker", choices=["cnnkit", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--inference-worker", choices=["cnnkit", "ort"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.cases, args.repeats)))
        return
    if args.memory_worker:
        print(json.dumps(run_memory_worker(args.memory_worker)))
        return
    if args.inference_worker:
        worker = bench_inference.run_worker
        print(json.dumps(worker(args.inference_worker, args.cases, args.repeats, median_ms)))
        return
    header = machine_lines()
    for line in header:
        print(line, flush=True)
    summaries = {kind: run_kind(kind, args) for kind in args.kinds}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": header, "kinds": summaries}, handle, indent=1)


def run_kind(kind: str, args) -> dict:
    """Every round of one machine kind, then its table and targets."""
    results: dict[str, list[dict]] = {"cnnkit": [], "torch": []}
    inference: dict[str, list[dict]] = {"cnnkit": [], "ort": []}
    for round_index in range(args.rounds):
        for library in ("cnnkit", "torch"):
            arguments = ["--worker", library, "--repeats", str(args.repeats)]
            results[library].append(spawn([*arguments, "--cases", *args.cases], kind))
        for library in inference if bench_inference.selected(args.cases) else ():
            arguments = ["--inference-worker", library, "--repeats", str(args.repeats)]
            inference[library].append(spawn([*arguments, "--cases", *args.cases], kind))
        print(f"{kind}: round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    reference = None
    if not args.no_reference:
        arguments = ["--worker", "reference", "--repeats", "3", "--cases", *args.cases]
        reference = spawn(arguments, kind)
    memory = None
    if not args.no_memory:
        rises = {"cnnkit": [], "torch": []}
        for _ in range(3):
            for library in rises:
                rises[library].append(spawn(["--memory-worker", library], kind)["peak_rise_kib"])
        memory = {f"{lib}_kib": statistics.median(values) for lib, values in rises.items()}
    print()
    summary = report(results, args.cases, memory, reference)
    info = {library: runs[0]["info"] for library, runs in results.items()}
    print_table(summary, kind_lines(info, kind))
    if inference["ort"]:
        summary["inference"] = bench_inference.report(inference, args.cases)
        bench_inference.print_rows(summary["inference"], inference["ort"][0]["info"]["ort"])
    summary["info"], summary["raw"] = info, results
    return summary


if __name__ == "__main__":
    main()
