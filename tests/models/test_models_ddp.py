"""Every registered model trains under DDP (torchrun, two Gloo processes): one step, as the trainer wraps it, and
the ranks hold the same parameters afterwards (gradients averaged, no parameter left without a gradient)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segcli.models import MODELS


@pytest.mark.slow
def test_every_model_takes_a_ddp_step(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    script = str(Path(__file__).resolve().parents[1] / "ddp_model_step.py")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEG_DDP_OUT": str(out)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", script]
    res = subprocess.run([*cmd, *MODELS.names()], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    differences = json.loads(out.read_text())
    assert sorted(differences) == sorted(MODELS.names())
    assert {name: d for name, d in differences.items() if d > 1e-6} == {}
