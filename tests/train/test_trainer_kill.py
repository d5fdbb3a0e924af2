"""SIGKILL at five moments of a run, then ``seg train --resume``: the run finishes as if never killed.

Each case runs ``seg train`` in a subprocess through a small driver script that patches one function
so that the process kills itself (SIGKILL: no cleanup, no ``finally``) at the chosen moment. The
resumed run must exit 0, list every epoch once in metrics.csv, and end with the same weights, bit for
bit, as an uninterrupted run (deterministic, no loader workers).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

EPOCHS = 2
KILL_EPOCH = 2  # every kill lands in the second (last) epoch: the first one is saved, the second not finished

# The driver: patch one seam of segcli (from here only: production code has no test hooks), then run `seg`.
DRIVER = """
import os, signal, sys
from pathlib import Path

import segcli.core.callbacks as callbacks
import segcli.train.commit as commit
import segcli.train.trainer as trainer
from segcli.cli.app import run

MOMENT, EPOCH = sys.argv[1], int(sys.argv[2])


def die():
    os.kill(os.getpid(), signal.SIGKILL)


saves = {"n": 0}  # one save per epoch: counted at its weights file

if MOMENT == "mid_epoch":
    on_iter_end = callbacks.CallbackList.on_iter_end

    def patched(self, epoch, it, *args):
        on_iter_end(self, epoch, it, *args)
        if (epoch, it) == (EPOCH - 1, 1):  # 0-based epoch, after the second iteration
            die()

    callbacks.CallbackList.on_iter_end = patched
elif MOMENT == "validation":
    confusion = trainer.confusion_with  # the model's validation
    calls = {"n": 0}

    def patched(model, loader, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == EPOCH:  # one validation per epoch (no EMA in these runs)
            batches = iter(loader)
            next(batches)  # part of the way through the validation split
            die()
        return confusion(model, loader, *args, **kwargs)

    trainer.confusion_with = patched
elif MOMENT in ("weights_write", "state_write"):
    stage = commit._stage

    def patched(path, writer):
        if path.name == "last.safetensors":
            saves["n"] += 1
        if MOMENT == "state_write" and path.name == "state.pt" and saves["n"] == EPOCH:

            def half_then_die(tmp):
                writer(tmp)
                with open(tmp, "r+b") as f:  # killed half-way through writing the temp file
                    f.truncate(tmp.stat().st_size // 2)
                die()

            return stage(path, half_then_die)
        tmp = stage(path, writer)
        if MOMENT == "weights_write" and path.name == "last.safetensors" and saves["n"] == EPOCH:
            assert tmp.is_file() and tmp.stat().st_size > 0
            die()  # the temp weights file is written, the manifest is not
        return tmp

    commit._stage = patched
elif MOMENT == "after_manifest":
    finish = commit._finish
    commits = {"n": 0}

    def patched(run_dir, manifest):
        commits["n"] += 1
        if commits["n"] == EPOCH:
            assert run_dir.manifest.is_file()
            die()  # checkpoint.json names the new save, no temp is renamed yet
        finish(run_dir, manifest)

    commit._finish = patched
else:
    raise SystemExit(f"unknown moment {MOMENT}")

sys.exit(run(["train", "quickstart", *sys.argv[3:]]))
"""

MOMENTS = ["mid_epoch", "validation", "weights_write", "state_write", "after_manifest"]


def overrides(shapes_root: Path, out_dir: Path) -> list[str]:
    over = [o for o in TINY if not o.startswith("train.epochs")]
    return [
        f"data.root={shapes_root}",
        f"train.out_dir={out_dir}",
        *over,
        f"train.epochs={EPOCHS}",
        "train.deterministic=true",
        "data.num_workers=0",
    ]


def env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def seg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "segcli", *args], env=env(), capture_output=True, text=True)


def epochs_in(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open(encoding="utf-8") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights" / "last.safetensors"))


@pytest.fixture(scope="module")
def reference(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The last weights of the same run, never interrupted (trained once for this module)."""
    out = tmp_path_factory.mktemp("reference") / "runs"
    res = seg("train", "quickstart", *overrides(shapes_root, out))
    assert res.returncode == 0, res.stderr
    run_dir = out / "quickstart" / "1"
    assert epochs_in(run_dir) == list(range(1, EPOCHS + 1))
    return weights(run_dir)


@pytest.mark.parametrize("moment", MOMENTS)
def test_sigkill_then_resume_matches_an_uninterrupted_run(
    moment: str, reference: dict[str, torch.Tensor], shapes_root: Path, tmp_path: Path
) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER), encoding="utf-8")
    out = tmp_path / "runs"
    killed = subprocess.run(
        [sys.executable, str(driver), moment, str(KILL_EPOCH), *overrides(shapes_root, out)],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, f"the driver was not killed: rc={killed.returncode}\n{killed.stderr}"
    run_dir = out / "quickstart" / "1"
    # what the kill left: epoch 1 saved; the killed save either not committed or committed but not renamed
    assert epochs_in(run_dir) == [1]
    if moment == "after_manifest":
        assert '"epoch": 2' in (run_dir / "checkpoint.json").read_text(encoding="utf-8")
    if moment in ("weights_write", "state_write", "after_manifest"):
        assert [f for f in run_dir.rglob(".*") if f.is_file()], "the kill should leave temp files behind"

    res = seg("train", "--resume", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert epochs_in(run_dir) == list(range(1, EPOCHS + 1))  # every epoch exactly once
    assert not [f for f in run_dir.rglob(".*") if f.is_file()], "resume should remove the stray temp files"
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert state["epoch"] == EPOCHS and state["finished"] is True
    last = weights(run_dir)
    assert last.keys() == reference.keys()
    for k in reference:
        assert torch.equal(last[k], reference[k]), f"{moment}: {k} differs from the uninterrupted run"
