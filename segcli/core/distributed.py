"""PyTorch DDP under torchrun: ``torchrun --nproc-per-node N -m segcli train PRESET`` just works.

Uses NCCL on CUDA and Gloo on CPU. Rank 0 writes every file; metrics are all-reduced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from segcli.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this node (they share its cores)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join the process group torchrun set up (env RANK/WORLD_SIZE/LOCAL_RANK); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return DistInfo(rank=rank, world_size=world, local_rank=local, local_world_size=local_world)


def launch(nproc: int, args: list[str], rendezvous: list[str] | None = None) -> int:
    """``seg train --devices N``: the same command under torch's elastic launcher (what ``torchrun`` runs),
    N processes on this machine (``--standalone``); returns the launcher's exit code.

    Several nodes: run ``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT
    --rdzv-id JOB -m segcli train ...`` on every node instead (the same flags torchrun documents).
    """
    import subprocess
    import sys

    flags = rendezvous or ["--standalone"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *flags, "--nproc-per-node", str(nproc), "-m", "segcli"]
    return subprocess.call([*cmd, *args])


def per_device_batch(batch_size: int, info: DistInfo) -> int:
    """``data.batch_size`` is the global batch (what papers report): each of the ``world_size`` processes
    loads ``batch_size / world_size`` images per step, so a recipe's batch and lr hold on any number of GPUs."""
    if batch_size % info.world_size:
        lower = batch_size // info.world_size * info.world_size
        options = (
            f"data.batch_size={lower} or {lower + info.world_size}" if lower else f"data.batch_size={info.world_size}"
        )
        raise UserError(
            f"data.batch_size = {batch_size} is the global batch and does not divide across {info.world_size} "
            f"processes; use {options}"
        )
    return batch_size // info.world_size


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, before validating: without SyncBatchNorm
    each rank's statistics drift apart in training, and the all-reduced confusion matrix must be that of the
    checkpoint rank 0 saves."""
    if info.enabled:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
