"""A checkpoint whose BatchNorm running variance is negative (sqrt of it is NaN) is refused
in one line by every command that reads it, before any weight is used."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_lying_runs import one_line, rewrite

from cnnkit import cli

ARCH = "INPUT(1x8x8) - CONV(D=4, F=3, P=1) - BN - RELU - POOL(F=2) - FC(10)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bn") / "run"
    argv = ["train", "--arch", ARCH, "--epochs", "1", "--batch-size", "64", "--quiet"]
    assert cli.main([*argv, "--out", str(run_dir)]) == 0
    return run_dir


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--index", "0"]])
def test_a_negative_running_variance_is_one_line(trained, tmp_path, capsys, command):
    run_dir = Path(shutil.copytree(trained, tmp_path / "run"))
    for name in ("best.npz", "last.npz"):
        with np.load(run_dir / name) as archive:
            variance = archive["model/1.running_var"].copy()
        variance[2] = -1.0
        rewrite(run_dir / name, members={"model/1.running_var": variance})
    err = one_line([command[0], str(run_dir), *command[1:]], capsys)
    assert "model/1.running_var holds 1 negative variances" in err
