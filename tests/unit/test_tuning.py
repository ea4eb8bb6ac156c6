"""The timed choice between a loop's serial and parallel ways (fast/tuning.py)."""

from __future__ import annotations

import time

import pytest

from cnnkit.functional.fast import tuning
from cnnkit.functional.fast.layout import Workspace


@pytest.mark.parametrize("faster", [0, 1])
def test_each_call_site_keeps_the_way_it_timed_faster(faster):
    workspace, ways = Workspace(), []

    def run(parallel):
        ways.append(int(parallel))
        time.sleep(0.001 if int(parallel) == faster else 0.02)

    for _ in range(2 * (tuning.TRIALS + 1) + 5):
        tuning.timed(workspace, "site", run)
    tried = 2 * (tuning.TRIALS + 1)
    assert sorted(set(ways[:tried])) == [0, 1]  # both ways were timed
    assert ways[tried:] == [faster] * 5  # then only the faster one runs
    assert workspace.choices["site"].way == faster


def test_call_sites_choose_apart():
    workspace = Workspace()
    for key, faster in (("a", 0), ("b", 1)):
        for _ in range(2 * (tuning.TRIALS + 1)):
            tuning.timed(
                workspace, key, lambda p, f=faster: time.sleep(0.001 if int(p) == f else 0.02)
            )
    assert workspace.choices["a"].way == 0 and workspace.choices["b"].way == 1


def test_small_calls_run_serially_untimed():
    workspace, ways = Workspace(), []
    for _ in range(3):
        tuning.timed(workspace, "small", lambda p: ways.append(p), tuning.PARALLEL_MIN_WORK - 1)
    assert ways == [False] * 3 and "small" not in workspace.choices
