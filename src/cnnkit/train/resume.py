"""What a resume may change, and putting a run directory back as an uninterrupted run leaves it.

A resumed run continues bit for bit only with the recipe it was started with. Every setting that
changes what the rest of the run sees (the batch size, which examples each step takes; the
learning rate, optimizer, schedule, augmentation, seed, ...) is refused, naming the setting.
Two may change: ``checkpoint_every`` (only how often ``last.npz`` is written) and ``epochs``,
which trains further or stops sooner: the schedule is then planned over the new number of
epochs, and the note says which learning rates change.

An epoch's end writes ``best.npz`` (when the epoch is the best so far), then ``history.json``
and ``history.csv``, and ``last.npz`` last: ``last.npz`` marks the epoch complete. A kill
before it leaves the previous epoch's ``last.npz``; resuming replays the epoch and rewrites
the same files. :func:`repair` rewrites the history files from ``last.npz`` (the record of
every completed epoch) and restores a ``best.npz`` that an older version left behind.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, fields
from pathlib import Path

from cnnkit.atomic import write_atomically
from cnnkit.errors import TrainingError
from cnnkit.optim import make_schedule
from cnnkit.train.recipe import EpochRecord, Recipe

MAY_CHANGE = ("epochs", "checkpoint_every")


def same_run(header: dict, meta: dict, data, where: Path) -> None:
    """Refuse a resume with another architecture or on other data."""
    saved_spec, spec = header.get("spec"), meta.get("spec")
    if saved_spec is not None and spec is not None and saved_spec != spec:
        raise TrainingError(
            f"{where} was saved for {saved_spec}, not {spec}; "
            "resume with the same --arch or choose another output directory"
        )
    if header.get("fingerprint") != data.fingerprint:
        raise TrainingError(
            f"{where} was trained on other data (fingerprint {header.get('fingerprint')} != "
            f"{data.fingerprint}); resume with the same --data"
        )


def check_progress(state, steps_per_epoch: int, batch_size: int, examples: int, where) -> None:
    """Refuse a checkpoint whose place in its epoch could not have been reached: a step
    beyond the epoch's batches, or examples seen that those steps do not add up to."""
    seen = min(state.step_in_epoch * batch_size, examples)
    if state.step_in_epoch >= steps_per_epoch or state.seen != seen:
        raise TrainingError(
            f"{where}: the checkpoint is at step {state.step_in_epoch} of an epoch of "
            f"{steps_per_epoch} batches with {state.seen:,} examples seen ({seen:,} expected); "
            "the file was edited or damaged: restore it, or start the run again with --force"
        )
    if state.step < state.epoch * steps_per_epoch + state.step_in_epoch:
        raise TrainingError(
            f"{where}: the checkpoint's step {state.step} is fewer than its {state.epoch} "
            f"epochs of {steps_per_epoch} batches and {state.step_in_epoch} more; the file was "
            "edited or damaged: restore it, or start the run again with --force"
        )


def intact(committed: tuple[int, int], run_dir: Path) -> str:
    """What a failed write leaves safe: ``the run is intact as of epoch 3 (last.npz) ...``."""
    epoch, step = committed
    if epoch == 0 and step == 0:
        return "nothing of the run was saved yet"
    kept = f"epoch {epoch}" + (f" and step {step} of epoch {epoch + 1}" if step else "")
    return (
        f"the run is intact as of {kept} (last.npz): make room and continue it with "
        f"cnnkit train --out {run_dir} --resume"
    )


def changed_settings(saved: dict, recipe: Recipe, where: Path) -> None:
    """Refuse a resume whose recipe differs from the run's in what the rest of the run sees."""
    current = asdict(recipe)
    changed = [
        name
        for name in (f.name for f in fields(Recipe))
        if name not in MAY_CHANGE and name in saved and saved[name] != current[name]
    ]
    if not changed:
        return
    said = ", ".join(
        f"--{name.replace('_', '-')} {current[name]} (the run's: {saved[name]})" for name in changed
    )
    raise TrainingError(
        f"{where}: resuming with {said} would change what the rest of the run sees; resume "
        "without changing it, or start a new run in another --out"
    )


def epochs_note(saved: dict, recipe: Recipe, step: int, done: int, steps_per_epoch: int):
    """What ``--epochs N`` changes on resume at optimizer step ``step`` after ``done``
    completed epochs (None when N is the run's own number)."""
    planned = saved.get("epochs", recipe.epochs)
    if recipe.epochs == planned:
        return None
    if recipe.epochs < done:
        raise TrainingError(
            f"the run has completed {done} epochs; --epochs {recipe.epochs} would undo "
            f"some: give --epochs {done + 1} or more, or leave it out"
        )
    old, new = (_schedule(recipe, epochs, steps_per_epoch) for epochs in (planned, recipe.epochs))
    text = f"--epochs {recipe.epochs}: the run was planned for {planned} epochs"
    if done >= planned:
        return (
            f"{text} and has done them; the {recipe.schedule} schedule is planned again over "
            f"{recipe.epochs}, so training goes on from step {step + 1} at learning rate "
            f"{new(step):.4g} (the run's last step had {old(step - 1):.4g})"
        )
    last = min(planned, recipe.epochs) * steps_per_epoch
    differs = next((s for s in range(step, last) if old(s) != new(s)), None)
    if differs is None:
        return f"{text}; the {recipe.schedule} schedule's learning rates stay as they were"
    return (
        f"{text}; the {recipe.schedule} schedule is planned again over {recipe.epochs}, so "
        f"from step {differs + 1} on the learning rate changes (step {differs + 1}: "
        f"{old(differs):.4g} -> {new(differs):.4g})"
    )


def where_note(run_dir: Path, state, epochs: int, steps_per_epoch: int) -> str:
    """``resuming RUN_DIR at epoch 3, step 12 of 108``, or that the run is finished."""
    if state.epoch >= epochs:
        return (
            f"the run in {run_dir} is finished ({state.epoch} of {epochs} epochs); "
            f"nothing to train: pass --epochs N (more than {state.epoch}) to train further"
        )
    return (
        f"resuming {run_dir} at epoch {state.epoch + 1}, "
        f"step {state.step_in_epoch} of {steps_per_epoch}"
    )


def _schedule(recipe: Recipe, epochs: int, steps_per_epoch: int):
    return make_schedule(
        recipe.schedule,
        recipe.lr,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=recipe.warmup_epochs * steps_per_epoch,
        step_size=max(1, epochs // 3) * steps_per_epoch,
    )


def best_epoch(history: list[EpochRecord]) -> int | None:
    """The epoch ``best.npz`` holds after ``history``: the highest validation accuracy (the
    training accuracy without a validation split), the later epoch on a tie."""
    best, chosen = -1.0, None
    for record in history:
        score = record.val_accuracy if record.val_accuracy is not None else record.train_accuracy
        if score >= best:
            best, chosen = score, record.epoch
    return chosen


def repair(run_dir: Path, state, best_header_epoch, write_history) -> list[str]:
    """Put the history files and ``best.npz`` back as ``last.npz`` (``state``) says they were;
    returns notes of what was repaired. ``best_header_epoch`` is the epoch ``best.npz`` holds
    (None when it is missing)."""
    notes = []
    write_history()
    expected = best_epoch(state.history)
    if expected is not None and best_header_epoch != expected:
        if expected == state.epoch and state.step_in_epoch == 0:
            with (run_dir / "last.npz").open("rb") as source:
                write_atomically(run_dir / "best.npz", lambda out: shutil.copyfileobj(source, out))
            notes.append(f"best.npz restored to epoch {expected} from last.npz")
        else:
            held = (
                "is missing or damaged"
                if best_header_epoch is None
                else (f"holds epoch {best_header_epoch}")
            )
            notes.append(
                f"best.npz {held}, but epoch {expected} was the best and its weights are not "
                "kept anywhere (only last.npz's epoch is); best.npz will hold the best epoch "
                "from here on"
            )
    return notes
