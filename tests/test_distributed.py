"""`seg train` under torchrun: DDP with Gloo on CPU (the same code path uses NCCL on CUDA)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_torchrun_two_processes(tiny_overrides: list[str], tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "segcli",
        "train",
        "quickstart",
        *tiny_overrides,
        "train.device=cpu",
        "train.threads=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted((tmp_path / "runs" / "quickstart").iterdir())
    assert [r.name for r in runs] == ["1"], "only rank 0 creates a run directory"
    rows = list(csv.DictReader((runs[0] / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # 16 images, data.batch_size = 4 is the global batch (2 per process) → 4 steps per epoch, as on one process
    assert [int(r["iterations"]) for r in rows] == [4, 8]
    assert (runs[0] / "weights" / "best.safetensors").is_file()
    log = (runs[0] / "log.txt").read_text()
    assert "world_size=2 batch=4 per_device_batch=2" in log and "lr=" in log


def _torchrun(args: list[str], **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)


@pytest.mark.slow
def test_ranks_hold_identical_parameters_with_accumulation(tiny_overrides: list[str], tmp_path: Path) -> None:
    """Gradient accumulation with no_sync on the micro-batches that do not step: the ranks still agree."""
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    script = str(Path(__file__).with_name("ddp_ranks.py"))
    over = [*tiny_overrides, "train.device=cpu", "train.threads=1", "train.accumulate=2", "train.ema=0.9"]
    res = _torchrun([script, "quickstart", *over], SEG_RANK_DIR=str(ranks))
    assert res.returncode == 0, res.stderr[-3000:]
    for epoch in (1, 2):
        a, b = (torch.load(ranks / f"rank{r}_epoch{epoch}.pt", weights_only=True) for r in (0, 1))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (epoch, k)
    first, last = (torch.load(ranks / f"rank0_epoch{e}.pt", weights_only=True) for e in (1, 2))
    assert any(not torch.equal(first[k], last[k]) for k in first), "the model trained"


@pytest.mark.slow
def test_a_global_batch_that_does_not_divide_is_one_clear_error(tiny_overrides: list[str]) -> None:
    res = _torchrun(["-m", "segcli", "train", "quickstart", *tiny_overrides, "train.device=cpu", "data.batch_size=5"])
    assert res.returncode != 0
    assert "data.batch_size = 5 is the global batch and does not divide across 2 processes" in res.stderr + res.stdout


@pytest.mark.slow
def test_devices_option_launches_torchrun_itself(tiny_overrides: list[str], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "segcli", "train", "quickstart", "--devices", "2", *tiny_overrides, "train.device=cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["iterations"]) for r in rows] == [4, 8]  # the global batch, as on one process
    assert "world_size=2" in (run / "log.txt").read_text()
