"""What a checkpoint header (and a run's ``settings.json``/``history.json``) claims, validated in
one place: types, ranges, finiteness, lengths and the format version.

:func:`validate_header` checks every field a training checkpoint writes that is present (a
header may hold others: ``fit(meta=...)`` stores whatever the caller passes), and requires the
fields a consumer names. :func:`validate_settings` and :func:`validate_history` do the same for
the run directory's JSON files. Every refusal is one :class:`~cnnkit.errors.DataError` line:
the file, the field, what it holds, what was expected, and a fix.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

from cnnkit.errors import ConfigError, DataError
from cnnkit.train.recipe import EpochRecord, Recipe

FORMAT = "cnnkit.checkpoint/1"
CHECKPOINT_FIX = "the file was edited or damaged; use the run's other checkpoint or train again"
RUN_FIELDS = ("classes", "input_shape", "epoch")
NORMALISATION_FIELDS = ("mean", "std")
MIN_STD, MAX_MEAN = 1e-4, 1e6  # the normalisation a run can have
RESUME_FIELDS = (
    *("epoch", "step", "step_in_epoch", "loss_sum", "correct", "seen", "seconds"),
    *("best_accuracy", "history", "rng"),
)
RECORD_FIELDS = tuple(f.name for f in fields(EpochRecord))
MAX_CLASSES = 100_000
MAX_SIZE = 2**20  # any one of C, H, W
MAX_GENERATORS, MAX_NAME = 4096, 200  # the model's own generators, and a layer path's length
PCG64_STATE = "the state of a PCG64 generator (bit_generator.state)"
_CHOICES = {
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("constant", "step", "cosine"),
    "init": ("default", "he", "xavier"),
}


class _Fields:
    """Checks on one JSON object, each refusal naming the file and the field."""

    def __init__(self, values: dict, where: str, fix: str, prefix: str = "") -> None:
        self.values, self.where, self.fix, self.prefix = values, where, fix, prefix

    def fail(self, name: str, expected: str, value=None) -> DataError:
        found = _shown(self.values.get(name) if value is None else value)
        return DataError(
            f"{self.where} {self.prefix}{name} is {found}, expected {expected}; {self.fix}"
        )

    def integer(self, name: str, low: int = 0, high: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        if not ok or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(name, f"an integer {bound}")
        return value

    def number(self, name: str, low: float, high: float = math.inf, *, above=False) -> None:
        value = self.values.get(name)
        if value is not None and not _in_range(value, low, high, above):
            raise self.fail(name, _range_text(low, high, above))

    def text(self, name: str, choices: tuple[str, ...] = ()) -> None:
        value = self.values.get(name)
        if value is not None and (not isinstance(value, str) or (choices and value not in choices)):
            raise self.fail(name, f"one of {', '.join(choices)}" if choices else "a string")

    def numbers(
        self, name: str, count: int | None, low: float, high: float = math.inf, *, above=False
    ) -> None:
        value = self.values.get(name)
        if value is None:
            return
        wanted = (
            f"a list of {count if count is not None else 'the'} numbers (one per input channel)"
        )
        if not isinstance(value, list) or (count is not None and len(value) != count):
            raise self.fail(name, wanted)
        for item in value:
            if not _in_range(item, low, high, above):
                raise self.fail(name, f"{wanted}, each {_range_text(low, high, above)}", item)


def validate_header(header, path, required: tuple[str, ...] = ()) -> dict:
    """``header`` (a checkpoint's decoded JSON) checked, or DataError naming ``path``; returns it.

    Fields present are checked whatever ``required`` says; those in ``required`` must be there.
    """
    if not isinstance(header, dict):
        raise DataError(
            f"{path}: the checkpoint header is {type(header).__name__}, not a JSON object; "
            f"{CHECKPOINT_FIX}"
        )
    found = header.get("format")
    if found != FORMAT:
        raise DataError(
            f"{path}: checkpoint format {_shown(found)} is not {FORMAT!r}; it was written by "
            "another version of cnnkit (or is not a checkpoint): open it with that version"
        )
    check = _Fields(header, f"{path}: header field", CHECKPOINT_FIX)
    _require(check, required)
    validate_meta(check)
    _validate_progress(check)
    if header.get("history") is not None:
        validate_history(header["history"], f"{path}: header field history", CHECKPOINT_FIX)
        if header.get("epoch") is not None and len(header["history"]) != header["epoch"]:
            raise check.fail("epoch", f"{len(header['history'])}, the epochs in its history")
    if header.get("rng") is not None:
        _validate_rng(check)
    if header.get("generators") is not None:
        _validate_generators(check)
    optimizer = header.get("optimizer")
    if optimizer is not None and not (
        isinstance(optimizer, dict)
        and all(isinstance(v, str | int | float | bool) or v is None for v in optimizer.values())
    ):
        raise check.fail("optimizer", "an object of the optimizer's scalar settings")
    return header


def validate_resume(header, order, path) -> tuple[dict, np.ndarray | None]:
    """What resuming needs from a checkpoint, checked: the header with every training-state
    field present (:data:`RESUME_FIELDS`), and the epoch's example ``order`` (``extra/order``)
    a permutation of 0..n-1, as int64; or DataError naming ``path``."""
    header = validate_header(header, path, RESUME_FIELDS)
    if order is None:
        return header, None
    order = np.asarray(order)
    if not (
        order.ndim == 1
        and order.dtype.kind in "iu"
        and np.array_equal(np.sort(order), np.arange(len(order)))
    ):
        raise DataError(
            f"{path}: extra/order is not a permutation of the training examples; {CHECKPOINT_FIX}"
        )
    return header, order.astype(np.int64)


def validate_settings(settings, where: str, fix: str, required: tuple[str, ...] = ()) -> dict:
    """A run's settings (``settings.json``: the recipe, data, classes, input shape and
    normalisation) checked like the same fields of a checkpoint header; returns them."""
    if not isinstance(settings, dict):
        raise DataError(f"{where} holds {type(settings).__name__}, not a JSON object; {fix}")
    check = _Fields(settings, f"{where} field", fix)
    _require(check, required)
    validate_meta(check)
    return settings


def validate_meta(check: _Fields) -> None:
    """The run's description: spec, data, classes, input shape, normalisation, recipe."""
    values = check.values
    for name in ("spec", "data", "fingerprint"):
        check.text(name)
    check.number("validation", 0.0, 1.0)
    check.integer("split_seed", 0)
    if values.get("validation") == 1.0:
        raise check.fail("validation", "a share in [0, 1)")
    classes = values.get("classes")
    if classes is not None and not (
        isinstance(classes, list)
        and 1 <= len(classes) <= MAX_CLASSES
        and all(isinstance(name, str) for name in classes)
    ):
        raise check.fail("classes", f"a list of 1 to {MAX_CLASSES:,} class names (strings)")
    shape = values.get("input_shape")
    if shape is not None and not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(_uint(n, 64) and 1 <= n <= MAX_SIZE for n in shape)
    ):
        raise check.fail("input_shape", f"[C, H, W]: three integers 1..{MAX_SIZE}")
    channels = shape[0] if shape is not None else None
    # float32 normalisation: a std below cnnkit's floor (1e-3) or a mean beyond any pixel scale
    # would turn finite images into inf or 0
    check.numbers("mean", channels, -MAX_MEAN, MAX_MEAN)
    check.numbers("std", channels, MIN_STD, MAX_MEAN)
    if values.get("recipe") is not None:
        validate_recipe(values["recipe"], check)


def validate_recipe(recipe, outer: _Fields) -> Recipe:
    """The recipe's fields typed and in range (unknown fields are ignored, as
    :meth:`Recipe.from_dict` does); returns the Recipe."""
    if not isinstance(recipe, dict):
        raise outer.fail("recipe", "an object of the recipe's settings")
    check = _Fields(recipe, outer.where, outer.fix, "recipe.")
    for name in ("epochs", "batch_size"):
        check.integer(name, 1)
    for name in ("warmup_epochs", "augment_shift", "checkpoint_every", "seed"):
        check.integer(name, 0)
    check.number("lr", 0.0, above=True)
    check.number("momentum", 0.0)
    check.number("weight_decay", 0.0)
    for name, choices in _CHOICES.items():
        check.text(name, choices)
    try:
        return Recipe.from_dict(recipe)
    except ConfigError as error:
        raise DataError(f"{outer.where} recipe: {error}; {outer.fix}") from None


def _validate_progress(check: _Fields) -> None:
    """Where training stands: epoch, steps, the running totals."""
    recipe = check.values.get("recipe")
    epochs = recipe.get("epochs") if isinstance(recipe, dict) else None
    check.integer("epoch", 0, epochs)
    check.integer("step_in_epoch", 0, check.integer("step", 0))
    seen = check.integer("seen", 0)
    check.integer("correct", 0, seen)
    check.number("loss_sum", 0.0)
    check.number("seconds", 0.0)
    check.number("best_accuracy", -1.0, 1.0)


def validate_history(rows, where: str, fix: str) -> list[dict]:
    """A run's history: a list of epoch records (the fields of :class:`EpochRecord`, finite,
    accuracies in [0, 1], epochs numbered 1, 2, ...); returns it."""
    if not isinstance(rows, list):
        raise DataError(f"{where} holds {type(rows).__name__}, expected a list of epochs; {fix}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(RECORD_FIELDS):
            got = sorted(map(str, row))[:9] if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f"{where} entry {index + 1} has {got}, expected the fields "
                f"{list(RECORD_FIELDS)}; {fix}"
            )
        check = _Fields(row, f"{where} entry {index + 1}:", fix)
        check.integer("epoch", index + 1, index + 1)
        for name in ("train_loss", "lr", "seconds", "examples_per_second"):
            if row[name] is None:
                raise check.fail(name, "a finite number >= 0")
            check.number(name, 0.0)
        check.number("val_loss", 0.0)
        for name in ("train_accuracy", "val_accuracy"):
            check.number(name, 0.0, 1.0)
        if row["train_accuracy"] is None:
            raise check.fail("train_accuracy", "a fraction in [0, 1]")
    return rows


def _validate_rng(check: _Fields) -> None:
    """The data generator's state: what ``PCG64().state`` accepts, and nothing bigger."""
    if not _pcg64_state(check.values["rng"]):
        raise check.fail("rng", PCG64_STATE)


def _validate_generators(check: _Fields) -> None:
    """The model's own generators (``{"3.rng": state, ...}``), each state checked as ``rng``;
    the names are compared with the model's where a model is given
    (:func:`cnnkit.train.generators.check`)."""
    generators = check.values["generators"]
    if not (
        isinstance(generators, dict)
        and len(generators) <= MAX_GENERATORS
        and all(0 < len(name) <= MAX_NAME for name in generators)
    ):
        raise check.fail(
            "generators",
            f"an object of at most {MAX_GENERATORS} generator states by layer name ('3.rng')",
        )
    inner = _Fields(generators, check.where, check.fix, "generators.")
    for name, state in generators.items():
        if not _pcg64_state(state):
            raise inner.fail(name, PCG64_STATE)


def _pcg64_state(state) -> bool:
    """Whether ``state`` is a PCG64 ``bit_generator.state``, each number in its range."""
    inner = state.get("state") if isinstance(state, dict) else None
    plain = (
        isinstance(state, dict)
        and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and state["bit_generator"] == "PCG64"
        and isinstance(inner, dict)
        and set(inner) == {"state", "inc"}
        and all(_uint(inner[key], 128) for key in ("state", "inc"))
        and _uint(state["has_uint32"], 1)
        and _uint(state["uinteger"], 32)
    )
    if plain:
        try:
            np.random.PCG64().state = state
        except (TypeError, ValueError, KeyError, OverflowError):
            plain = False
    return plain


def _require(check: _Fields, required: tuple[str, ...]) -> None:
    for name in required:
        if check.values.get(name) is None:
            raise DataError(f"{check.where} {name} is missing; {check.fix}")


def _uint(value, bits: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**bits


def _in_range(value, low: float, high: float, above: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        value = float(value)  # a JSON integer of 400 digits is no float at all
    except OverflowError:
        return False
    if not math.isfinite(value):
        return False
    return (value > low if above else value >= low) and value <= high


def _range_text(low: float, high: float, above: bool) -> str:
    start = f"> {low:g}" if above else f">= {low:g}"
    if math.isinf(low):
        start = ""
    if math.isinf(high):
        return f"a finite number {start}".rstrip()
    return f"a finite number in [{low:g}, {high:g}]"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
