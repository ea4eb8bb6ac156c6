"""Fine-tune a trained cnnkit run with PyTorch's DistributedDataParallel, then write the result
back as a cnnkit run directory that ``cnnkit evaluate``, ``cnnkit viz`` and ``cnnkit report``
read.

    torchrun --standalone --nproc_per_node=2 examples/ddp_finetune.py RUN --data optdigits \\
        --epochs 2 --out NEW

Each process loads the run (its network, and from the checkpoint header its data source, split,
normalisation and recipe), converts the network with ``cnnkit.to_torch`` and trains its share
of the run's training split (a ``DistributedSampler`` over cnnkit's own loaders, normalised with
the run's mean and std) under ``DistributedDataParallel``: backend ``nccl`` on GPUs, ``gloo``
on CPUs. Rank 0 prints the world size, the accuracy before, one line per epoch (the loss and
accuracy over all processes, the validation split's loss and accuracy) and the accuracy after,
and writes NEW: the weights come back through ``cnnkit.from_torch`` and are saved with cnnkit's
own checkpoint and run-file writers (``best.npz``, ``last.npz``, ``history.json``/``.csv``,
``settings.json``, ``spec.txt``). NEW's history is the run's, followed by the new epochs.

The same command runs on several machines with torchrun's ``--nnodes N --node-rank I
--rdzv-endpoint HOST:PORT`` instead of ``--standalone`` (see docs/scaling.md). Options:
``--lr`` (default: a tenth of the run's), ``--batch-size`` (per process; default the run's
divided by the world size), ``--seed``, ``--limit N`` (only the first N training examples),
``--checkpoint best|last`` (the run's checkpoint to start from), ``--force`` (replace a run
in NEW). No augmentation: the images are used as they are.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import cnnkit
from cnnkit.atomic import write_json, write_text
from cnnkit.data import normalize
from cnnkit.errors import CnnkitError, TrainingError
from cnnkit.train import checkpoint, evaluate, generators, load_network, predict, run_data, rundir
from cnnkit.train.header import RESUME_FIELDS
from cnnkit.train.recipe import EpochRecord, Recipe


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN", help="the cnnkit run directory to start from")
    parser.add_argument("--data", help="data source (default: the run's own)")
    parser.add_argument("--epochs", type=positive(int), default=2)
    parser.add_argument("--out", required=True, metavar="NEW", help="the new run directory")
    parser.add_argument("--lr", type=positive(float), help="default: a tenth of the run's")
    parser.add_argument(
        "--batch-size", type=positive(int), help="per process (default: run's / world)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit", type=positive(int), help="use only the first N training examples"
    )
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--force", action="store_true", help="replace a run in NEW")
    return parser.parse_args(argv)


def check_out(new: Path, force: bool) -> None:
    """Refuse, on every process, a NEW that holds a run (as rank 0 sees it), before training."""
    problem = None
    if dist.get_rank() == 0:
        try:
            rundir.prepare(new)  # a NEW that cannot be created is said now, not after training
        except CnnkitError as error:
            problem = str(error)
        if problem is None and not force:
            present = rundir.run_files(new, trained=True)
            problem = f"{new} already holds a run ({', '.join(present)}); pass --force"
            problem = problem if present else None
    share_problem(problem)


def share_problem(problem: str | None) -> None:
    """Rank 0's one-line problem (or None) raised on every process, so all stop alike."""
    found = [problem]
    dist.broadcast_object_list(found, src=0)
    if found[0] is not None:
        raise TrainingError(found[0])


def log(*parts) -> None:
    """Print from rank 0 only."""
    if dist.get_rank() == 0:
        print(*parts, flush=True)


def load(args):
    """(network, header, data with normalised splits, recipe of the fine-tune)."""
    network, header = load_network(args.run, args.checkpoint)
    data, source = run_data(header, args.data)
    mean, std = header["mean"], header["std"]
    splits = {
        name: (
            normalize(getattr(data, f"{name}_images"), mean, std),
            getattr(data, f"{name}_labels"),
        )
        for name in ("train", "val", "test")
    }
    if args.limit is not None:
        images, labels = splits["train"]
        splits["train"] = images[: args.limit], labels[: args.limit]
    old = Recipe.from_dict(header.get("recipe") or {})
    world = dist.get_world_size()
    recipe = replace(
        old,
        epochs=header["epoch"] + args.epochs,
        lr=args.lr if args.lr is not None else old.lr / 10,
        batch_size=(args.batch_size or max(1, old.batch_size // world)) * world,
        schedule="constant",
        warmup_epochs=0,
        augment_shift=0,
        seed=args.seed,
        checkpoint_every=0,
    )
    return network, {**header, "data": source}, splits, recipe


def train_epoch(ddp, loader, optimizer, device) -> tuple[float, float, int]:
    """One epoch on this process's share; (loss sum, correct, seen) over all processes."""
    ddp.train()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = ddp(images)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals += torch.tensor(
            [loss.item() * len(labels), (logits.argmax(1) == labels).sum().item(), len(labels)],
            dtype=torch.float64,
            device=device,
        )
    dist.all_reduce(totals)
    loss_sum, correct, seen = totals.tolist()
    return loss_sum, correct, int(seen)


def scored(network, split) -> tuple[float | None, float | None]:
    """(loss, accuracy) of a cnnkit network on a normalised split, as cnnkit scores it."""
    images, labels = split
    if len(images) == 0:
        return None, None
    return evaluate(network, images, labels)


def finetune(args, network, splits, recipe, device):
    """Train under DDP; returns (history records, state of the best epoch, final module)."""
    module = cnnkit.to_torch(network).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )
    optimizer = torch.optim.SGD(
        ddp.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    images, labels = splits["train"]
    dataset = torch.utils.data.TensorDataset(torch.tensor(images), torch.tensor(labels))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, seed=args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=recipe.batch_size // dist.get_world_size(), sampler=sampler
    )
    records, best = [], (-1.0, None)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        loss_sum, correct, seen = train_epoch(ddp, loader, optimizer, device)
        seconds = time.perf_counter() - started
        if dist.get_rank() == 0:
            current = cnnkit.from_torch(module, network.input_shape)
            val_loss, val_accuracy = scored(current, splits["val"])
            record = EpochRecord(
                epoch=0,  # numbered after the run's own epochs when written
                train_loss=loss_sum / seen,
                train_accuracy=correct / seen,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=recipe.lr,
                seconds=seconds,
                examples_per_second=seen / seconds if seconds > 0 else 0.0,
            )
            records.append(record)
            log(epoch_line(epoch + 1, args.epochs, record))
            score = record.train_accuracy if val_accuracy is None else val_accuracy
            if score >= best[0]:
                best = (score, current.state_dict())
        dist.barrier()
    return records, best, module


def epoch_line(epoch: int, epochs: int, record: EpochRecord) -> str:
    text = f"epoch {epoch}/{epochs}  loss {record.train_loss:.4f}  acc {record.train_accuracy:.2%}"
    if record.val_accuracy is not None:
        text += f"  val loss {record.val_loss:.4f}  val acc {record.val_accuracy:.2%}"
    width = dist.get_world_size()
    return text + f"  {record.seconds:.1f} s  ({record.examples_per_second:,.0f} ex/s on {width})"


def accuracy_line(when: str, network, splits) -> str:
    _, val = scored(network, splits["val"])
    images, labels = splits["test"]
    test = float((predict(network, images).argmax(axis=1) == labels).mean())
    shown = f"val acc {val:.2%}, " if val is not None else ""
    return f"{when}: {shown}test acc {test:.2%} on {len(labels)} images"


PROGRESS = (*RESUME_FIELDS, "format", "optimizer", "generators")  # not the run's description


def write_run(new: Path, network, header, recipe, records, best, force: bool) -> None:
    """NEW as cnnkit writes a run: settings, spec, history, best.npz and last.npz."""
    first = header["epoch"]
    old = [EpochRecord(**row) for row in header.get("history") or []][:first]
    history = old + [replace(r, epoch=first + i + 1) for i, r in enumerate(records)]
    meta = {key: value for key, value in header.items() if key not in PROGRESS}
    meta["recipe"] = asdict(recipe)
    best_accuracy, best_state = best
    best_epoch = max(history[first:], key=lambda r: (_score(r), r.epoch)).epoch
    rundir.prepare(new)
    with rundir.RunLock(new):
        present = rundir.run_files(new, trained=True)
        if present and not force:  # a run written there while this one trained
            raise TrainingError(f"{new} already holds a run ({', '.join(present)}); pass --force")
        rundir.remove_run(new)
        rundir.remove_temporaries(new)
        write_json(new / "settings.json", meta)
        write_text(new / "spec.txt", meta["spec"] + "\n")
        last_state = network.state_dict()
        for name, state, epochs in (
            ("best.npz", best_state, best_epoch),
            ("last.npz", last_state, len(history)),
        ):
            network.load_state_dict(state)
            progress = _progress(history[:epochs], best_accuracy, recipe.seed)
            checkpoint.save(
                new / name, generators.with_states({**meta, **progress}, network), state
            )
        write_history(new, history)


def _score(record: EpochRecord) -> float:
    return record.train_accuracy if record.val_accuracy is None else record.val_accuracy


def _progress(history, best_accuracy: float, seed: int) -> dict:
    """The checkpoint header's training fields, at the end of the last epoch of ``history``."""
    return {
        "epoch": len(history),
        "step": 0,
        "step_in_epoch": 0,
        "loss_sum": 0.0,
        "correct": 0,
        "seen": 0,
        "seconds": 0.0,
        "best_accuracy": best_accuracy,
        "history": [asdict(record) for record in history],
        "rng": np.random.default_rng([seed, 1]).bit_generator.state,
    }


def write_history(new: Path, history) -> None:
    rows = [asdict(record) for record in history]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(EpochRecord)])
    writer.writeheader()
    writer.writerows(rows)
    write_json(new / "history.json", rows)
    write_text(new / "history.csv", text.getvalue())


def main(argv=None) -> int:
    args = parse(argv)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)
    try:
        check_out(Path(args.out), args.force)
        network, header, splits, recipe = load(args)
        log(
            f"world size {dist.get_world_size()} (backend {dist.get_backend()}, "
            f"{device.type}); {len(splits['train'][0])} training images, batch "
            f"{recipe.batch_size // dist.get_world_size()} per process, lr {recipe.lr:g}"
        )
        log(accuracy_line(f"before ({args.run}, {args.checkpoint}.npz)", network, splits))
        records, best, module = finetune(args, network, splits, recipe, device)
        problem = None
        if dist.get_rank() == 0:
            try:
                final = cnnkit.from_torch(module, network.input_shape)
                write_run(Path(args.out), final, header, recipe, records, best, args.force)
            except CnnkitError as error:
                problem = str(error)
            else:
                log(accuracy_line(f"after ({args.out}, last.npz)", final, splits))
                done = f"cnnkit evaluate {args.out}; cnnkit report {args.out}"
                log(f"run saved in {args.out} ({done})")
        share_problem(problem)
    except CnnkitError as error:
        print(f"ddp_finetune: error (rank {dist.get_rank()}): {error}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
