"""The training loss kept on the device, read every ``train.log_every`` iterations (one host sync)."""

from __future__ import annotations

from typing import Any

import torch


class LossMeter:
    """The epoch's loss summed on the device, and the first iteration whose loss was not finite.

    The sum is float64 (float32 on MPS), where adding float32 losses is exact: the epoch's mean does not
    depend on when it is read, so resumed and uninterrupted runs write the same train_loss.
    """

    def __init__(self, device: torch.device, epoch: int) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.epoch, self.shown = epoch, float("nan")
        self.sum = torch.zeros((), dtype=dtype, device=device)
        self.count = 0
        self.bad_it = torch.full((), -1, dtype=dtype, device=device)
        self.bad_value = torch.zeros((), dtype=dtype, device=device)

    def add(self, loss: torch.Tensor, it: int) -> None:
        value = loss.detach().to(self.sum.dtype)
        self.sum += value
        self.count += 1
        first = (self.bad_it < 0) & ~torch.isfinite(value)
        self.bad_it = torch.where(first, it, self.bad_it)
        self.bad_value = torch.where(first, value, self.bad_value)

    def read(self, progress: Any) -> tuple[int, float] | None:
        """Move the sum into ``progress.epoch_loss`` (one host sync); (iteration, loss) when one was not finite."""
        if self.count == 0:
            return None
        total, bad_it, bad_value = torch.stack([self.sum, self.bad_it, self.bad_value]).tolist()
        if bad_it >= 0:
            return int(bad_it), bad_value
        progress.epoch_loss += total
        self.shown = total / self.count
        self.sum.zero_()
        self.count = 0
        return None
