"""The fault suite: what hostile files, kills, concurrent runs and exhaustion do to cnnkit.

``make test`` runs a fast sample of every class of fault; ``make faults`` runs the slow sweeps
as well (tests marked ``sweep``: a kill at every file operation of an epoch's end, many
generated headers), by setting ``CNNKIT_FAULT_SWEEP=1``.
"""

import os

import pytest

SWEEP = os.environ.get("CNNKIT_FAULT_SWEEP") == "1"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="a slow sweep: make faults runs it")
    for item in items:
        if "sweep" in item.keywords and not SWEEP:
            item.add_marker(skip)
