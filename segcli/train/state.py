"""Everything resume needs, behind one ``state_dict()`` / ``load_state_dict()`` pair.

The same protocol torch modules, optimizers and ``torch.distributed.checkpoint``'s ``Stateful``
follow, so what is saved and what is restored is one definition: a key added to
:meth:`TrainState.state_dict` is restored by :meth:`TrainState.load_state_dict` or the round-trip
test fails. ``state.pt`` is read with ``torch.load(weights_only=True)``, so every value is a
tensor, a number, a string, a bool or a dict/list of those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from segcli.train.ema import ModelEMA, TailAverage

FORMAT = "segcli-state/2"


@dataclass
class Progress:
    """The loop's counters and the early-stopping/best bookkeeping."""

    epoch: int = 0  # the next epoch to run (0-based)
    step: int = 0  # optimiser steps taken
    elapsed: float = 0.0  # seconds of training before this process (resume)
    val_seconds: float = 0.0  # duration of the last validation
    reserve: float = 0.0  # seconds a time budget keeps for the final validation (estimated, then the largest seen)
    best_value: float = -math.inf
    best_row: dict[str, Any] = field(default_factory=dict)
    stale: int = 0  # validations without improvement
    finished: bool = False
    # a mid-epoch save (train.save_every): where inside ``epoch`` it was taken and the partial epoch's totals
    iter: int = 0  # batches of ``epoch`` already trained (0 = at an epoch boundary)
    epoch_loss: float = 0.0  # sum of those batches' losses
    epoch_seconds: float = 0.0  # seconds spent in ``epoch`` so far
    epoch_row: dict[str, Any] = field(default_factory=dict)  # metrics of a validation inside ``epoch``

    def improve(self, value: float | None, row: dict[str, Any]) -> bool:
        """Record a validation's monitored ``value``; True when it is a new best."""
        if value is not None and not math.isnan(value) and value > self.best_value:
            self.best_value, self.best_row, self.stale = value, dict(row), 0
            return True
        self.stale += 1
        return False


@dataclass
class TrainState:
    """Model, optimiser, scaler, EMA, weight average, RNG and progress of a run: what ``state.pt`` holds."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: Progress = field(default_factory=Progress)
    teacher: dict[str, str] | None = None  # train.distill's teacher: {"path", "sha256"} (resume checks it)
    average: TailAverage | None = None  # train.average: the weights averaged over the run's last part

    def state_dict(self) -> dict[str, Any]:
        p = self.progress
        state: dict[str, Any] = {
            "format": FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "epoch": p.epoch,
            "step": p.step,
            "elapsed": p.elapsed,
            "val_seconds": p.val_seconds,
            "reserve": p.reserve,
            "best_value": p.best_value,
            "best_row": p.best_row,
            "stale": p.stale,
            "finished": p.finished,
            "iter": p.iter,
            "epoch_loss": p.epoch_loss,
            "epoch_seconds": p.epoch_seconds,
            "epoch_row": p.epoch_row,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.teacher is not None:
            state["teacher"] = dict(self.teacher)
        if self.average is not None:
            state["average"] = self.average.state_dict()
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        if self.average is not None and "average" in state:
            self.average.load_state_dict(state["average"], self.model)
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        # segcli-state/1 (no "format" key) stored the last finished epoch, /2 the next one to run
        epoch = int(state["epoch"]) + (0 if state.get("format") == FORMAT else 1)
        self.progress = Progress(
            epoch=epoch,
            step=int(state["step"]),
            elapsed=float(state["elapsed"]),
            val_seconds=float(state.get("val_seconds", 0.0)),
            reserve=float(state.get("reserve", state.get("val_seconds", 0.0))),
            best_value=float(state["best_value"]),
            best_row=dict(state.get("best_row", {})),
            stale=int(state.get("stale", 0)),
            finished=bool(state.get("finished", False)),
            iter=int(state.get("iter", 0)),
            epoch_loss=float(state.get("epoch_loss", 0.0)),
            epoch_seconds=float(state.get("epoch_seconds", 0.0)),
            epoch_row=dict(state.get("epoch_row", {})),
        )
