"""Exponential moving average of the weights (parameters and buffers), validated and saved on its own."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """``ema = d * ema + (1 - d) * model`` after each optimiser step, with the usual warm-up of d.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early averages
    are not dominated by the random initial weights. Integer buffers (BatchNorm counters) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        own = self.module.state_dict()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                own[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                own[k].copy_(v)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
