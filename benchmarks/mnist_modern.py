"""The default network for 28x28 one-channel images (mnist-bn) on full MNIST, with its recipe.

What ``cnnkit train --data mnist:DIR`` does by default, timed: the built-in ``mnist-bn``
(CONV-BN-RELU blocks, a hidden FC with DROPOUT) trained with the recipe that ``cnnkit train`` gives
it (cnnkit.cli.train.NETWORK_RECIPES) on MNIST's 60,000 training images less the 10 % held out
for validation, as the command does, then scored on the 10,000 test images. The target: >= 99.5 %
test accuracy after at most 5 minutes of training on 2 cores with cnnkit's fast engine.

PyTorch trains the same network (the same layers, sizes and parameter count; its own initial
weights and dropout draws) with the same recipe, data, batch order generator and random-shift
augmentation (cnnkit's ``random_shift`` in both, so the augmentation costs the same), each
library in its own process with 2 threads, one after the other. Prints the machine, the network,
the recipe, then per library the seconds per epoch (median), the training time (the epochs'
sum, as ``cnnkit train`` reports it), the wall time with the validation passes, and the test
accuracy; ``--json PATH`` keeps every number. The LeNet-5 comparison is benchmarks/mnist_lenet.py.

    python benchmarks/mnist_modern.py [--data ../shared/data/mnist] [--seed 0] [--no-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import machine_lines

NAME = "mnist-bn"
TARGET_ACCURACY = 0.995
TARGET_SECONDS = 300.0
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def recipe_values(seed: int) -> dict:
    from dataclasses import asdict

    from cnnkit.cli.train import NETWORK_RECIPES
    from cnnkit.train import Recipe

    return {**asdict(Recipe()), **NETWORK_RECIPES[NAME], "seed": seed}


def run_cnnkit(data_dir: str, seed: int) -> dict:
    import numpy as np

    from cnnkit import from_spec
    from cnnkit.data import load_dataset
    from cnnkit.train import Recipe, evaluate, fit

    recipe = Recipe(**recipe_values(seed))
    data = load_dataset(f"mnist:{data_dir}", validation=0.1, seed=seed)
    model = from_spec(NAME, rng=np.random.default_rng([seed, 0]))  # as cnnkit train builds it
    started = time.perf_counter()
    history = fit(model, data, recipe=recipe)
    wall = time.perf_counter() - started
    _, test_accuracy = evaluate(model, data.test_images, data.test_labels)
    return {
        "parameters": sum(p.data.size for p in model.parameters()),
        "epoch_seconds": [record.seconds for record in history],
        "val_accuracy": [record.val_accuracy for record in history],
        "wall_seconds": wall,
        "test_accuracy": test_accuracy,
    }


def torch_mnist_bn(torch):
    """mnist-bn in PyTorch: the catalog's string, layer by layer."""
    nn = torch.nn

    def block(cin, cout, kernel, stride=1):
        conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32, 5, stride=2),
        *block(32, 32, 3),
        nn.MaxPool2d(2),
        *block(32, 64, 3),
        *block(64, 64, 3),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, 10),
    )


def run_torch(data_dir: str, seed: int) -> dict:
    import numpy as np
    import torch

    from cnnkit.data import batches, load_dataset, random_shift
    from cnnkit.optim import make_schedule

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    recipe = recipe_values(seed)
    data = load_dataset(f"mnist:{data_dir}", validation=0.1, seed=seed)
    model = torch_mnist_bn(torch)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
        weight_decay=recipe["weight_decay"],
    )  # fmt: skip
    steps = -(-len(data.train_images) // recipe["batch_size"])
    schedule = make_schedule(
        recipe["schedule"], recipe["lr"], total_steps=recipe["epochs"] * steps,
        warmup_steps=recipe["warmup_epochs"] * steps,
    )  # fmt: skip
    background = (-data.mean / data.std).astype(np.float32)
    rng = np.random.default_rng([seed, 1])
    step, epoch_seconds, val_accuracy = 0, [], []

    def accuracy(images, labels):
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(torch.tensor(images[i : i + 512])) for i in
                                range(0, len(images), 512)])  # fmt: skip
        model.train()
        return float((scores.argmax(1).numpy() == labels).mean())

    started = time.perf_counter()
    for _ in range(recipe["epochs"]):
        start = time.perf_counter()
        for batch in batches(len(data.train_images), recipe["batch_size"], rng):
            images = random_shift(data.train_images[batch], recipe["augment_shift"], rng,
                                  fill=background)  # fmt: skip
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            loss = torch.nn.functional.cross_entropy(
                model(torch.from_numpy(images)), torch.from_numpy(data.train_labels[batch])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        epoch_seconds.append(time.perf_counter() - start)
        val_accuracy.append(accuracy(data.val_images, data.val_labels))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "epoch_seconds": epoch_seconds,
        "val_accuracy": val_accuracy,
        "wall_seconds": time.perf_counter() - started,
        "test_accuracy": accuracy(data.test_images, data.test_labels),
    }


def worker(library: str, data_dir: str, seed: int) -> dict:
    """Run one library in a fresh process with 2 threads; its result and the load around it."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    command = [sys.executable, __file__, "--worker", library, "--data", data_dir,
               "--seed", str(seed)]  # fmt: skip
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {library} run failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "load_before": load_before, "load_after": os.getloadavg()[0]}


def report(results: dict, seed: int) -> list[str]:
    """The lines that the run prints: the network, the recipe, a row per library, the verdict."""
    from cnnkit.arch import ARCHITECTURES

    recipe = recipe_values(seed)
    shown = ", ".join(f"{key}={value}" for key, value in recipe.items())
    cnnkit = results["cnnkit"]
    lines = [
        f"network: {NAME} ({cnnkit['parameters']:,} parameters): {ARCHITECTURES[NAME]}",
        f"recipe: {shown}",
        "data: MNIST, 54,000 training and 6,000 validation images, 10,000 test images",
        f"{'library':8s} {'s/epoch':>8s} {'train s':>8s} {'wall s':>8s} {'test acc':>9s}"
        f" {'load 1-min before/after':>24s}",
    ]
    for library, result in results.items():
        lines.append(
            f"{library:8s} {statistics.median(result['epoch_seconds']):8.1f} "
            f"{sum(result['epoch_seconds']):8.1f} {result['wall_seconds']:8.1f} "
            f"{result['test_accuracy']:9.2%} "
            f"{result['load_before']:>15.1f} / {result['load_after']:.1f}"
        )
    seconds, accuracy = sum(cnnkit["epoch_seconds"]), cnnkit["test_accuracy"]
    met = accuracy >= TARGET_ACCURACY and seconds <= TARGET_SECONDS
    lines.append(
        f"cnnkit: {accuracy:.2%} test accuracy after {seconds:.0f} s of training "
        f"(target >= {TARGET_ACCURACY:.1%} within {TARGET_SECONDS:.0f} s): "
        + ("met" if met else "NOT met")
    )
    if "torch" in results:
        if results["torch"]["parameters"] != cnnkit["parameters"]:
            lines.append("WARNING: PyTorch's network is not mnist-bn: update torch_mnist_bn")
        ratio = statistics.median(cnnkit["epoch_seconds"]) / statistics.median(
            results["torch"]["epoch_seconds"]
        )
        lines.append(f"cnnkit / PyTorch time per epoch: {ratio:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with MNIST's files")
    parser.add_argument("--seed", type=int, default=0, help="the recipe's seed (0)")
    parser.add_argument("--no-torch", action="store_true", help="train only with cnnkit")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--worker", choices=["cnnkit", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = run_cnnkit if args.worker == "cnnkit" else run_torch
        print(json.dumps(run(args.data, args.seed)))
        return
    if not Path(args.data).is_dir():
        sys.exit(f"no MNIST folder at {args.data}; pass --data DIR")
    machine = machine_lines()
    print("\n".join(machine), flush=True)
    results = {}
    for library in ("cnnkit",) if args.no_torch else ("cnnkit", "torch"):
        results[library] = worker(library, args.data, args.seed)
    lines = report(results, args.seed)
    print("\n".join(lines))
    if args.json:
        summary = {"machine": machine, "network": NAME, "recipe": recipe_values(args.seed)}
        Path(args.json).write_text(json.dumps({**summary, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
