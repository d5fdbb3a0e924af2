"""The training loss kept on the device, read at log points (one host sync per read, none per step)."""

from __future__ import annotations

import math
from typing import Any

import torch


class LossMeter:
    """Every iteration's loss written into a buffer on the device, read back at log points.

    ``add`` costs no host sync (the loss is copied into the next slot of a device buffer); ``read`` fetches the
    window since the last read at once, names the first non-finite loss, and adds the window to
    ``progress.epoch_loss`` one value at a time. The epoch's sum is the same float64 sum whenever it is read
    (the buffer is float64, float32 on MPS, where a float32 loss is exact), so resumed and uninterrupted runs
    write the same train_loss, and every iteration's exact loss is known (``values``) for the curves.
    """

    def __init__(self, device: torch.device, epoch: int) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.epoch, self.shown = epoch, float("nan")
        self.buffer = torch.zeros(16, dtype=dtype, device=device)
        self.its: list[int] = []  # the iteration of each filled slot
        self.values: list[float] = []  # losses read and not yet taken (:meth:`take`), one per iteration

    @property
    def count(self) -> int:
        """Iterations added since the last read."""
        return len(self.its)

    def add(self, loss: torch.Tensor, it: int) -> None:
        if self.count == len(self.buffer):  # grows on the device too: no sync
            self.buffer = torch.cat([self.buffer, torch.zeros_like(self.buffer)])
        self.buffer[self.count] = loss.detach()
        self.its.append(it)

    def read(self, progress: Any) -> tuple[int, float] | None:
        """Fetch the window (one host sync) into ``values`` and ``progress.epoch_loss``; (iteration, loss) of
        the first loss that was not finite, when one was (nothing of that window is kept)."""
        if self.count == 0:
            return None
        values = self.buffer[: self.count].tolist()
        for it, value in zip(self.its, values):
            if not math.isfinite(value):
                return it, value
        for value in values:
            progress.epoch_loss += value
        self.values += values
        self.its = []
        return None

    def take(self) -> tuple[float, ...]:
        """The losses read since the last take, in iteration order (contiguous, ending with the last read
        iteration); ``shown`` becomes their mean."""
        values, self.values = tuple(self.values), []
        if values:
            self.shown = sum(values) / len(values)
        return values


class ValLoss:
    """Validation's loss: the training criterion on each validation image's main output, summed on the device
    (a ``watch`` of :func:`segcli.infer.evaluator.confusion_with`); :meth:`mean` is the mean over images."""

    def __init__(self, criterion: torch.nn.Module, device: torch.device) -> None:
        self.criterion = criterion
        self.total = torch.zeros(2, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)

    def __call__(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        loss = self.criterion(logits[None].float(), mask[None].long())
        self.total += torch.stack([loss.detach().to(self.total.dtype), self.total.new_ones(())])

    def mean(self) -> float:
        """The mean loss over the images seen (one host sync; NaN when none); all-reduce ``total`` first under
        DDP."""
        total, count = self.total.tolist()
        return total / count if count else float("nan")
