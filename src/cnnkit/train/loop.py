"""Training: mini-batch SGD/Adam over a :class:`~cnnkit.data.Dataset`, with checkpoints and resume.

:func:`fit` trains a model and returns its history, one :class:`EpochRecord` per epoch. With a
``run_dir`` it also keeps the run on disk::

    RUN_DIR/spec.txt        the architecture string
    RUN_DIR/settings.json   the recipe, the data source and split, the model's input shape
    RUN_DIR/history.csv     one row per epoch (and history.json, the same as a list)
    RUN_DIR/last.npz        the latest state: at every epoch's end, every ``checkpoint_every``
                            steps, and on Ctrl-C (see :mod:`cnnkit.train.checkpoint`)
    RUN_DIR/best.npz        the weights with the best validation accuracy so far

Everything random comes from generators seeded by ``recipe.seed`` (weights; data order and
augmentation). A checkpoint stores the data generator's state, the epoch's order and the running
totals, so ``resume=True`` continues mid-epoch exactly: a run killed and resumed ends with
bit-identical weights to one never interrupted.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from cnnkit.arch.convert import to_spec
from cnnkit.atomic import write_json, write_text
from cnnkit.data.batching import epoch_steps, random_shift, step_batch
from cnnkit.errors import CnnkitError, ConfigError, TrainingError, WriteError
from cnnkit.nn import registry
from cnnkit.nn.loss import CrossEntropyLoss
from cnnkit.optim import make_optimizer, make_schedule
from cnnkit.train import budget, checkpoint, generators, rundir
from cnnkit.train import resume as resume_rules
from cnnkit.train.evaluation import evaluate
from cnnkit.train.interrupts import Interrupts
from cnnkit.train.recipe import EpochRecord, Recipe, Reporter, _StepClock
from cnnkit.train.runs import data_source

# ---------------------------------------------------------------------------------------------
# The run state that a checkpoint captures


@dataclass
class _State:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps, all epochs
    step_in_epoch: int = 0
    order: np.ndarray | None = None  # this epoch's shuffled example order
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # time spent in this epoch before an interruption
    best_accuracy: float = -1.0
    history: list[EpochRecord] = field(default_factory=list)


def _header(state: _State, rng: np.random.Generator, meta: dict) -> dict:
    return {
        **meta,
        "epoch": state.epoch,
        "step": state.step,
        "step_in_epoch": state.step_in_epoch,
        "loss_sum": state.loss_sum,
        "correct": state.correct,
        "seen": state.seen,
        "seconds": state.seconds,
        "best_accuracy": state.best_accuracy,
        "history": [asdict(record) for record in state.history],
        "rng": rng.bit_generator.state,
    }


def _restore(ckpt: checkpoint.Checkpoint, rng: np.random.Generator) -> _State:
    """The run state, checked first (DataError naming the file; ``rng`` then unchanged)."""
    header, order = checkpoint.resume_state(ckpt)
    rng.bit_generator.state = header["rng"]
    return _State(
        epoch=header["epoch"],
        step=header["step"],
        step_in_epoch=header["step_in_epoch"],
        order=order,
        loss_sum=float(header["loss_sum"]),
        correct=header["correct"],
        seen=header["seen"],
        seconds=float(header["seconds"]),
        best_accuracy=float(header["best_accuracy"]),
        history=[EpochRecord(**record) for record in header["history"]],
    )


def fit(
    model,
    data,
    *,
    recipe: Recipe | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
    meta: dict | None = None,
    **settings,
) -> list[EpochRecord]:
    """Train ``model`` on ``data`` (a :class:`~cnnkit.data.Dataset`); returns the history.

    ``recipe`` (or keyword ``settings`` overriding :class:`Recipe` fields, e.g. ``epochs=5``)
    says how. With ``run_dir`` the run is kept on disk (see the module docstring) and
    ``resume=True`` continues it from ``last.npz`` (with the run's recipe: see
    :mod:`cnnkit.train.resume`); a directory that holds a run is never replaced unless
    ``force=True``, and only one process trains in it at a time (:mod:`cnnkit.train.rundir`).
    ``meta`` is stored in every checkpoint header (the CLI stores the spec and data source).
    Raises :class:`TrainingError` when the loss becomes NaN or infinite, naming the step, or
    when a file cannot be written; the last good checkpoint stays as it was.

    >>> import numpy as np
    >>> from cnnkit import lecture_network
    >>> from cnnkit.data import load_dataset
    >>> data = load_dataset("optdigits")
    >>> model = lecture_network(data.input_shape, len(data.classes), rng=np.random.default_rng(0))
    >>> history = fit(model, data, epochs=1)
    >>> history[0].val_accuracy > 0.8
    True
    """
    recipe = replace(recipe or Recipe(), **settings)
    budget.check_backward(model)
    budget.check_shapes(model, data.input_shape, len(data.classes))
    budget.check_shift(recipe.augment_shift, data.input_shape)
    budget.check_batch(model, data.input_shape, recipe.batch_size, len(data.train_images))
    run = _Run(model, data, recipe, Path(run_dir) if run_dir else None, reporter or Reporter())
    run.meta = {
        "spec": _spec_of(model, data),
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
        **data_source(data),
        **(meta or {}),
        "recipe": asdict(recipe),
        "fingerprint": data.fingerprint,
    }
    if run.run_dir is None:
        if resume:
            raise ConfigError("fit: resume=True needs run_dir")
        return run.train()
    if resume and not any((run.run_dir / name).exists() for name in ("last.npz", "settings.json")):
        raise TrainingError(f"{run.run_dir}: no run to resume here (no last.npz)")
    rundir.prepare(run.run_dir)
    with rundir.RunLock(run.run_dir):
        run.open_directory(resume, force)
        return run.train()


def _spec_of(model, data) -> str | None:
    """The architecture string a checkpoint records, so ``load_run`` can rebuild the model
    (None when a layer has no string form: the run then resumes and loads into a model built
    in Python). A setting the string could not give back exactly is refused before training."""
    if any(registry.keyword_of(layer) is None for layer in model.sequence()):
        return None
    return to_spec(model, tuple(data.input_shape))


class _Run:
    def __init__(self, model, data, recipe: Recipe, run_dir: Path | None, reporter) -> None:
        self.model, self.data, self.recipe = model, data, recipe
        self.run_dir, self.reporter = run_dir, reporter
        self.meta: dict = {}
        self.loss_fn = CrossEntropyLoss()
        self.optimizer = make_optimizer(
            recipe.optimizer,
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
        count = len(data.train_images)
        if count == 0:
            raise ConfigError("fit: the training set is empty")
        self.steps_per_epoch = epoch_steps(count, recipe.batch_size)
        self.schedule = make_schedule(
            recipe.schedule,
            recipe.lr,
            total_steps=recipe.epochs * self.steps_per_epoch,
            warmup_steps=recipe.warmup_epochs * self.steps_per_epoch,
            step_size=max(1, recipe.epochs // 3) * self.steps_per_epoch,
        )
        self.rng = np.random.default_rng([recipe.seed, 1])
        self.state = _State()
        self.committed = (0, 0)  # (epoch, step in epoch) of the newest last.npz on disk
        # Shifted-in pixels take the value of a black (0) pixel after normalisation.
        self.background = (-np.asarray(data.mean) / np.asarray(data.std)).astype(np.float32)

    # -- the directory ------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        assert self.run_dir is not None
        return self.run_dir / name

    def open_directory(self, resume: bool, force: bool) -> None:
        """Under the lock: clear what killed writes left, then resume or start the run."""
        removed = rundir.remove_temporaries(self.run_dir)
        if removed:
            self.reporter.note(f"removed {removed} temporary files left by interrupted writes")
        if resume and self.path("last.npz").exists():
            self.resume()
            return
        present = rundir.run_files(self.run_dir, trained=True)
        if resume:
            self.reporter.note(
                f"{self.run_dir} has no checkpoint yet (the run stopped before its first one): "
                "starting it again from the beginning"
            )
        elif present and not force:
            raise TrainingError(
                f"{self.run_dir} already holds a run ({', '.join(present)}); pass --resume "
                "(resume=True) to continue it, --force (force=True) to replace it, or choose "
                "another output directory"
            )
        rundir.remove_run(self.run_dir)
        self.write_settings()

    def write_settings(self) -> None:
        settings = {**self.meta, "recipe": asdict(self.recipe)}
        self._write(lambda: write_json(self.path("settings.json"), settings))
        if self.meta.get("spec") is not None:
            self._write(lambda: write_text(self.path("spec.txt"), self.meta["spec"] + "\n"))

    def resume(self) -> None:
        path = self.path("last.npz")
        header = checkpoint.read_header(path)  # which run, before its arrays are checked
        resume_rules.same_run(header, self.meta, self.data, path)
        saved = header.get("recipe") or {}
        resume_rules.changed_settings(saved, self.recipe, path)
        ckpt = checkpoint.load(path, model=self.model, examples=len(self.data.train_images))
        state = _restore(ckpt, np.random.default_rng())  # checked before anything changes
        resume_rules.check_progress(
            state, self.steps_per_epoch, self.recipe.batch_size, len(self.data.train_images), path
        )
        self.state = _restore(ckpt, self.rng)
        checkpoint.restore(self.model, ckpt)  # weights, buffers and the layers' generators
        self.optimizer.load_state_dict(checkpoint.optimizer_state(ckpt))
        self.committed = (self.state.epoch, self.state.step_in_epoch)
        state, epochs = self.state, self.recipe.epochs
        notes = [
            resume_rules.epochs_note(
                saved, self.recipe, state.step, state.epoch, self.steps_per_epoch
            )
        ]
        notes += resume_rules.repair(
            self.run_dir, state, self._best_on_disk(), lambda: self._write(self.write_history)
        )
        self.write_settings()
        notes.append(resume_rules.where_note(self.run_dir, state, epochs, self.steps_per_epoch))
        for text in filter(None, notes):
            self.reporter.note(text)

    def _best_on_disk(self) -> int | None:
        """The epoch ``best.npz`` holds, or None when it is missing or unreadable."""
        try:
            return checkpoint.read_header(self.path("best.npz"), ("epoch",))["epoch"]
        except (CnnkitError, TypeError, ValueError):
            return None

    def save(self, name: str) -> None:
        if self.run_dir is None:
            return
        extra = {"order": self.state.order} if self.state.order is not None else {}
        header = generators.with_states(_header(self.state, self.rng, self.meta), self.model)
        state_dict, optimizer_state = self.model.state_dict(), self.optimizer.state_dict()
        self._write(
            lambda: checkpoint.save(self.path(name), header, state_dict, optimizer_state, extra)
        )
        if name == "last.npz":
            self.committed = (self.state.epoch, self.state.step_in_epoch)

    def write_history(self) -> None:
        if self.run_dir is None:
            return
        rows = [asdict(record) for record in self.state.history]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(EpochRecord)])
        writer.writeheader()
        writer.writerows(rows)
        self._write(lambda: write_json(self.path("history.json"), rows))
        self._write(lambda: write_text(self.path("history.csv"), text.getvalue()))

    def _write(self, write) -> None:
        """``write()``, or a TrainingError saying what could not be written and what is safe."""
        try:
            write()
        except WriteError as error:
            raise TrainingError(
                f"{error}; {resume_rules.intact(self.committed, self.run_dir)}"
            ) from None

    # -- the loop -----------------------------------------------------------------------------
    def train(self) -> list[EpochRecord]:
        with Interrupts() as interrupts:
            while self.state.epoch < self.recipe.epochs:
                self.train_epoch(interrupts)
                self.finish_epoch()
        return list(self.state.history)

    def train_epoch(self, interrupts: Interrupts) -> None:
        state, recipe = self.state, self.recipe
        if state.order is None:
            state.order = self.rng.permutation(len(self.data.train_images))
        self.model.train()
        self.reporter.epoch_start(state.epoch, recipe.epochs, self.steps_per_epoch)
        clock = _StepClock()
        started = time.perf_counter() - state.seconds
        while state.step_in_epoch < self.steps_per_epoch:
            if interrupts.requested:
                state.seconds = time.perf_counter() - started
                self.save("last.npz")
                raise KeyboardInterrupt
            batch = step_batch(
                state.order, state.step_in_epoch, self.steps_per_epoch, recipe.batch_size
            )
            self.train_step(batch)
            clock.examples += len(batch)
            if recipe.checkpoint_every and state.step % recipe.checkpoint_every == 0:
                state.seconds = time.perf_counter() - started
                self.save("last.npz")
            self.reporter.step(
                state.step_in_epoch,
                self.steps_per_epoch,
                state.loss_sum / state.seen,
                state.correct / state.seen,
                clock.rate(),
            )
        state.seconds = time.perf_counter() - started

    def train_step(self, batch: np.ndarray) -> None:
        state = self.state
        images = self.data.train_images[batch]
        labels = self.data.train_labels[batch]
        if self.recipe.augment_shift:
            images = random_shift(images, self.recipe.augment_shift, self.rng, fill=self.background)
        self.optimizer.lr = self.schedule(state.step)
        with np.errstate(all="ignore"):  # a diverging loss is reported below, in one line
            logits = self.model.forward(images)
            loss = self.loss_fn.forward(logits, labels)
            if not math.isfinite(loss):
                self._diverged(loss)
            self.optimizer.zero_grad()
            dlogits = self.loss_fn.backward()
            self.model.backward(dlogits, input_grad=False)  # nothing needs d(images)
            self.optimizer.step()
        state.loss_sum += loss * len(batch)
        state.correct += int((logits.argmax(axis=1) == labels).sum())
        state.seen += len(batch)
        state.step += 1
        state.step_in_epoch += 1

    def _diverged(self, loss: float) -> None:
        state = self.state
        kept = (
            f"the last good checkpoint {self.path('last.npz')} is kept"
            if self.run_dir is not None and self.path("last.npz").exists()
            else "no checkpoint was written"
        )
        raise TrainingError(
            f"step {state.step + 1} (epoch {state.epoch + 1}, batch {state.step_in_epoch + 1}): "
            f"the loss became {loss}; the learning rate {self.optimizer.lr:g} is probably too "
            f"high, try --lr {self.recipe.lr / 10:g}; {kept}"
        )

    def finish_epoch(self) -> None:
        state = self.state
        val_loss, val_accuracy = evaluate(self.model, self.data.val_images, self.data.val_labels)
        has_val = len(self.data.val_images) > 0
        record = EpochRecord(
            epoch=state.epoch + 1,
            train_loss=state.loss_sum / state.seen,
            train_accuracy=state.correct / state.seen,
            val_loss=val_loss if has_val else None,
            val_accuracy=val_accuracy if has_val else None,
            lr=float(self.optimizer.lr),
            seconds=state.seconds,
            examples_per_second=state.seen / state.seconds if state.seconds > 0 else 0.0,
        )
        state.history.append(record)
        state.epoch += 1
        state.order, state.step_in_epoch = None, 0
        state.loss_sum, state.correct, state.seen, state.seconds = 0.0, 0, 0, 0.0
        score = record.val_accuracy if has_val else record.train_accuracy
        improved = score >= state.best_accuracy  # on a tie the later, better-trained epoch
        if improved:
            state.best_accuracy = score
        if improved:  # best, then the history, then last.npz, which marks the epoch complete
            self.save("best.npz")
        self.write_history()
        self.save("last.npz")
        self.reporter.epoch_end(record, self.recipe.epochs)
