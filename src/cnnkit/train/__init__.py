"""Training: the loop (:mod:`.loop`), the recipe and its records (:mod:`.recipe`), evaluation
(:mod:`.evaluation`), checkpoints (:mod:`.checkpoint`) and runs on disk (:mod:`.runs`)."""

from cnnkit.train.evaluation import accuracy, confusion_matrix, evaluate, predict
from cnnkit.train.loop import fit
from cnnkit.train.recipe import EpochRecord, Recipe, Reporter
from cnnkit.train.runs import load_network, load_run, run_data

__all__ = [
    "EpochRecord",
    "Recipe",
    "Reporter",
    "accuracy",
    "confusion_matrix",
    "evaluate",
    "fit",
    "load_network",
    "load_run",
    "predict",
    "run_data",
]
