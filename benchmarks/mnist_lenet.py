"""A LeNet-5-class network on full MNIST: cnnkit and PyTorch, same network, recipe and data.

Each library trains in its own process (one after the other, both with 2 threads) on the same
normalised data set, the same mini-batch size, learning-rate schedule, momentum, weight decay
and random-shift augmentation (drawn with cnnkit's ``random_shift`` in both, so the
augmentation costs the same). Prints epochs, seconds per epoch (median), total time and test
accuracy side by side; ``--json PATH`` keeps the numbers.

    python benchmarks/mnist_lenet.py --data ../shared/data/mnist
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

from bench import torch_lenet  # the same LeNet-5 the speed benchmark times

SPEC = "lenet5-mnist"  # cnnkit's built-in name; bench.torch_lenet is the same network
RECIPE = {
    "epochs": 15,
    "batch_size": 64,
    "lr": 0.05,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "augment_shift": 2,
    "seed": 0,
}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def run_cnnkit(data_dir: str, epochs: int) -> dict:
    import numpy as np

    from cnnkit import from_spec
    from cnnkit.data import load_dataset
    from cnnkit.train import Recipe, evaluate, fit

    data = load_dataset(f"mnist:{data_dir}", validation=0.1, seed=0)
    model = from_spec(SPEC, rng=np.random.default_rng([0, 0]))
    history = fit(model, data, recipe=Recipe(**{**RECIPE, "epochs": epochs}))
    _, test_accuracy = evaluate(model, data.test_images, data.test_labels)
    return {
        "epoch_seconds": [record.seconds for record in history],
        "val_accuracy": [record.val_accuracy for record in history],
        "test_accuracy": test_accuracy,
    }


def run_torch(data_dir: str, epochs: int) -> dict:
    import numpy as np
    import torch

    from cnnkit.data import batches, load_dataset, random_shift
    from cnnkit.optim import make_schedule

    torch.set_num_threads(2)
    torch.manual_seed(0)
    data = load_dataset(f"mnist:{data_dir}", validation=0.1, seed=0)
    model = torch_lenet(torch)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
        weight_decay=RECIPE["weight_decay"],
    )  # fmt: skip
    steps = -(-len(data.train_images) // RECIPE["batch_size"])
    schedule = make_schedule("cosine", RECIPE["lr"], total_steps=epochs * steps)
    background = (-data.mean / data.std).astype(np.float32)
    rng = np.random.default_rng([0, 1])
    step = 0
    epoch_seconds, val_accuracy = [], []

    def accuracy(images, labels):
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(torch.from_numpy(images[i : i + 512])) for i in
                                range(0, len(images), 512)])  # fmt: skip
        model.train()
        return float((scores.argmax(1).numpy() == labels).mean())

    for _ in range(epochs):
        start = time.perf_counter()
        for batch in batches(len(data.train_images), RECIPE["batch_size"], rng):
            images = random_shift(data.train_images[batch], RECIPE["augment_shift"], rng,
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
        "epoch_seconds": epoch_seconds,
        "val_accuracy": val_accuracy,
        "test_accuracy": accuracy(data.test_images, data.test_labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with MNIST's files")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--worker", choices=["cnnkit", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = run_cnnkit if args.worker == "cnnkit" else run_torch
        print(json.dumps(run(args.data, args.epochs)))
        return
    if not Path(args.data).is_dir():
        sys.exit(f"no MNIST folder at {args.data}; pass --data DIR")
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    results = {}
    for library in ("cnnkit", "torch"):
        command = [sys.executable, __file__, "--worker", library, "--data", args.data,
                   "--epochs", str(args.epochs)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[library] = {
            **json.loads(done.stdout),
            "wall_seconds": time.perf_counter() - started,
        }
    print(f"LeNet-5-class network on MNIST, {args.epochs} epochs, batch {RECIPE['batch_size']}, "
          f"SGD momentum {RECIPE['momentum']}, cosine from lr {RECIPE['lr']}, shifts of up to "
          f"{RECIPE['augment_shift']} px")  # fmt: skip
    print(f"{'library':10s} {'s/epoch':>8s} {'total s':>8s} {'test acc':>9s}")
    for library, result in results.items():
        per_epoch = statistics.median(result["epoch_seconds"])
        print(f"{library:10s} {per_epoch:8.1f} {result['wall_seconds']:8.1f} "
              f"{result['test_accuracy']:9.2%}")  # fmt: skip
    ratio = statistics.median(results["cnnkit"]["epoch_seconds"]) / statistics.median(
        results["torch"]["epoch_seconds"]
    )
    print(f"cnnkit / PyTorch time per epoch: {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"recipe": RECIPE, "spec": SPEC, **results}, indent=2)
        )


if __name__ == "__main__":
    main()
