"""`seg train` under torchrun: DDP with Gloo on CPU (the same code path uses NCCL on CUDA)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest


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
    # 16 images, batch 4 per process, 2 processes → 2 steps per epoch
    assert [int(r["iterations"]) for r in rows] == [2, 4]
    assert (runs[0] / "weights" / "best.safetensors").is_file()
