"""Process groups and the torchrun launcher (segcli/core/distributed.py): the global batch split across
processes, the collectives, and `seg train` / `seg eval` under torchrun: DDP with Gloo on CPU (the same code path
uses NCCL on CUDA)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from segcli.core.checkpoint import build_from_weights
from segcli.core.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    broadcast_object,
    cleanup,
    init_distributed,
    launch,
)
from segcli.data.datasets import EvalDataset, eval_collate
from segcli.extras import package_available
from segcli.infer.evaluator import confusion_over_loader


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
    tensorboard = package_available("tensorboard")
    if tensorboard:
        cmd.append('train.loggers=["csv","tensorboard"]')
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
    if tensorboard:
        assert len(list((runs[0] / "tensorboard").glob("events.out.tfevents.*"))) == 1, "only rank 0 logs"


def _torchrun(args: list[str], **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    root = str(Path(__file__).resolve().parents[2])  # a script run by torchrun imports this checkout's segcli
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **env}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)


@pytest.mark.slow
def test_ranks_hold_identical_parameters_with_accumulation(
    tiny_overrides: list[str], tmp_path: Path, shapes_root: Path
) -> None:
    """Gradient accumulation with no_sync on the micro-batches that do not step: the ranks still agree, and
    their validation is exactly one process's on the checkpoint."""
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    script = str(Path(__file__).resolve().parents[1] / "ddp_ranks.py")
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

    # distributed validation = one process evaluating the saved checkpoint (model, then EMA, per epoch)
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    for n, name in ((2, "last"), (3, "ema")):
        model, meta = build_from_weights(run / "weights" / f"{name}.safetensors", torch.device("cpu"))
        loader = DataLoader(EvalDataset(shapes_root, "val"), batch_size=4, collate_fn=eval_collate)
        single = confusion_over_loader(model, loader, meta.num_classes, 255, torch.device("cpu"))
        assert torch.equal(torch.load(ranks / f"confusion{n}.pt", weights_only=True), single.mat), name


@pytest.mark.slow
def test_a_global_batch_that_does_not_divide_is_one_clear_error(tiny_overrides: list[str]) -> None:
    res = _torchrun(["-m", "segcli", "train", "quickstart", *tiny_overrides, "train.device=cpu", "data.batch_size=5"])
    assert res.returncode != 0
    assert "data.batch_size = 5 is the global batch and does not divide across 2 processes" in res.stderr + res.stdout


@pytest.mark.slow
def test_train_devices_launches_torchrun_itself(tiny_overrides: list[str], tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "segcli",
        "train",
        "quickstart",
        *tiny_overrides,
        "train.device=cpu",
        "train.devices=2",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["iterations"]) for r in rows] == [4, 8]  # the global batch, as on one process
    assert "world_size=2" in (run / "log.txt").read_text()


@pytest.mark.slow
def test_a_killed_distributed_run_resumes_to_the_same_weights(tiny_overrides: list[str], tmp_path: Path) -> None:
    script = str(Path(__file__).resolve().parents[1] / "ddp_ranks.py")
    over = [*tiny_overrides, "train.device=cpu", "train.threads=1", "train.deterministic=true", "train.epochs=2"]
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    full = _torchrun([script, "quickstart", *over], SEG_RANK_DIR=str(ranks))
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _torchrun([script, "quickstart", *over], SEG_RANK_DIR=str(ranks), SEG_KILL_AFTER_EPOCH="1")
    assert killed.returncode != 0
    run_full, run_killed = sorted((tmp_path / "runs" / "quickstart").iterdir())
    assert len(list(csv.DictReader((run_killed / "metrics.csv").open()))) == 1
    resumed = _torchrun(["-m", "segcli", "train", "--resume", str(run_killed)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_file(str(r / "weights" / "last.safetensors")) for r in (run_full, run_killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [list(csv.DictReader((r / "metrics.csv").open())) for r in (run_full, run_killed)]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]


@pytest.mark.slow
def test_time_budget_ranks_agree_to_stop_every_log_every_iterations(tiny_overrides: list[str], tmp_path: Path) -> None:
    """Under a budget the ranks stop together and keep equal weights: the lr follows rank 0's clock on all."""
    over = [o for o in tiny_overrides if not o.startswith("train.epochs")]
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    script = str(Path(__file__).resolve().parents[1] / "ddp_ranks.py")
    args = [script, "quickstart", *over, "train.device=cpu", "train.threads=1", "train.time_budget=4s"]
    res = _torchrun([*args, "train.log_every=3"], SEG_RANK_DIR=str(ranks))
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert rows and rows[-1]["mIoU"] != ""
    saved = sorted(ranks.glob("rank0_epoch*.pt"))
    assert saved
    for path in saved:
        a = torch.load(path, weights_only=True)
        b = torch.load(ranks / path.name.replace("rank0", "rank1"), weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{path.name}: the ranks' weights drifted apart"


@pytest.mark.slow
def test_eval_under_torchrun_equals_one_process(tiny_overrides: list[str], tmp_path: Path, shapes_root: Path) -> None:
    """Each rank evaluates a shard, the confusion matrices are summed: the metrics are exactly one process's."""
    import json

    from segcli.train.trainer import train

    run = Path(train("quickstart", [*tiny_overrides, "train.device=cpu", "train.threads=1"]).run_dir)
    args = ["-m", "segcli", "eval", str(run), "--data", str(shapes_root), "--device", "cpu", "--worst", "3", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, *args, "--out", str(tmp_path / "one.json")], capture_output=True, text=True, env=env
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun([*args, "--out", str(tmp_path / "ddp" / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints
    assert "processes" not in a and b["processes"] == 2 and a["images"] == b["images"] == 8
    assert a["confusion_matrix"] == b["confusion_matrix"] and sum(map(sum, a["confusion_matrix"]["matrix"])) > 0
    for key in ("mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU", "mean_dice", "pixels", "per_class"):
        assert a[key] == b[key], key
    assert [(w["image"], w["mIoU"]) for w in a["worst"]] == [(w["image"], w["mIoU"]) for w in b["worst"]]
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["two.json", "two_confusion.png", "two_reliability.png", "worst"]  # rank 0 alone, once
    assert json.loads((tmp_path / "ddp" / "two.json").read_text())["mIoU"] == a["mIoU"]


def test_per_device_batch_divides_the_global_batch() -> None:
    import pytest

    from segcli.core.distributed import DistInfo, per_device_batch
    from segcli.errors import UserError

    assert per_device_batch(16, DistInfo()) == 16
    assert per_device_batch(16, DistInfo(world_size=8)) == 2
    with pytest.raises(UserError, match=r"use data.batch_size=4 or 6"):
        per_device_batch(5, DistInfo(world_size=2))
    with pytest.raises(UserError, match=r"use data.batch_size=8"):
        per_device_batch(4, DistInfo(world_size=8))


def test_one_process_is_not_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and not info.enabled and info.is_main
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed() == DistInfo()
    assert DistInfo(rank=1, world_size=2).enabled and not DistInfo(rank=1, world_size=2).is_main


def test_collectives_are_no_ops_on_one_process() -> None:
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t, DistInfo()) is t and t.tolist() == [1.0, 2.0]
    box = {"stop": True}
    assert broadcast_object(box, DistInfo()) is box
    broadcast_buffers(torch.nn.BatchNorm1d(2), DistInfo())
    barrier(DistInfo())
    cleanup(DistInfo())
    assert not torch.distributed.is_initialized()


def test_collectives_run_through_a_process_group() -> None:
    """A Gloo group of one process stands in for torchrun's: every collective of an enabled DistInfo goes
    through torch.distributed, and cleanup destroys the group."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    info = DistInfo(rank=0, world_size=2)  # enabled: the functions take the distributed path
    try:
        assert all_reduce_sum(torch.tensor([3.0]), info).tolist() == [3.0]  # the sum over the one member
        assert broadcast_object({"epoch": 2}, info) == {"epoch": 2}
        bn = torch.nn.BatchNorm1d(2)
        bn.running_mean.fill_(0.5)
        broadcast_buffers(bn, info)
        assert bn.running_mean.tolist() == [0.5, 0.5]
        barrier(info)
    finally:
        cleanup(info)
    assert not torch.distributed.is_initialized()


def test_launch_runs_torchs_launcher_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: seen.append(cmd) or 3)
    assert launch(2, ["train", "quickstart", "train.epochs=1"]) == 3  # the launcher's exit code
    assert seen[-1] == [
        sys.executable,
        *("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "segcli"),
        *("train", "quickstart", "train.epochs=1"),
    ]
    launch(4, ["train", "p"], rendezvous=["--nnodes", "2", "--rdzv-backend", "c10d"])
    assert seen[-1][3:9] == ["--nnodes", "2", "--rdzv-backend", "c10d", "--nproc-per-node", "4"]
