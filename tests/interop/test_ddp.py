"""examples/ddp_finetune.py under torchrun with two processes (gloo, CPU): rank 0 alone
prints, and the run it writes is one ``cnnkit evaluate`` reads, scoring what the script said."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnnkit
from cnnkit import cli

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "ddp_finetune.py"
ARCH = "CONV(D=4, F=3, P=1) - BN - RELU - POOL(F=2) - DROPOUT(0.1) - FC(10)"


def test_two_processes_finetune_and_write_a_cnnkit_run(tmp_path, capsys):
    run, new = str(tmp_path / "run"), str(tmp_path / "new")
    assert cli.main(["train", "--arch", ARCH, "--epochs", "1", "--quiet", "--out", run]) == 0
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(Path(cnnkit.__file__).parents[1]),  # the children import this cnnkit
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    script = [str(SCRIPT), run, "--data", "optdigits", "--epochs", "1", "--limit", "256"]
    done = subprocess.run(
        [*command, *script, "--out", new, "--lr", "0.01", "--batch-size", "16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("world size 2 (backend gloo, cpu); 256 training images, batch 16")
    assert sum(line.startswith("epoch ") for line in lines) == 1  # rank 0 alone prints
    after = next(line for line in lines if line.startswith("after ("))
    reported = after.split("test acc ")[1].split(" ")[0]
    capsys.readouterr()
    assert cli.main(["evaluate", new, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["examples"] == 1797
    assert f"{evaluated['accuracy']:.2%}" == reported
    history = json.loads((tmp_path / "new" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]  # the run's epoch, then the new one


def test_a_new_run_directory_that_cannot_be_made_stops_every_process_before_training(tmp_path):
    run = str(tmp_path / "run")
    assert cli.main(["train", "--arch", ARCH, "--epochs", "1", "--quiet", "--out", run]) == 0
    (tmp_path / "file").write_text("not a directory")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(cnnkit.__file__).parents[1]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    bad = str(tmp_path / "file" / "new")
    done = subprocess.run(
        [*command, str(SCRIPT), run, "--epochs", "1", "--limit", "64", "--out", bad],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    assert "epoch 1/1" not in done.stdout  # refused before any training
    for rank in (0, 1):
        line = f"ddp_finetune: error (rank {rank}): --out {bad}: the run directory cannot be"
        assert line in done.stderr, done.stderr[-2000:]
