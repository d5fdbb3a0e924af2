"""Exponential moving average of the weights (parameters and buffers), validated and saved on its own."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """``ema = d * ema + (1 - d) * model`` after each optimiser step, with the usual warm-up of d.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early averages
    are not dominated by the random initial weights. Integer buffers (BatchNorm counters) are copied.
    One update is a few ``torch._foreach_*`` calls over all tensors (one fused kernel per group on CUDA),
    not a Python loop over the state dict.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._pairs: tuple[int, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None
        self._pairs = None

    def _tensors(self, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
        """(ema floats, model floats, ema others, model others), matched by state-dict key; built once per model."""
        if self._pairs is None or self._pairs[0] != id(model):
            own = self.module.state_dict()
            ef, mf, eo, mo = [], [], [], []
            for k, v in model.state_dict().items():
                if v.dtype.is_floating_point:
                    ef.append(own[k])
                    mf.append(v.detach())
                else:
                    eo.append(own[k])
                    mo.append(v.detach())
            self._pairs = (id(model), ef, mf, eo, mo)
        return self._pairs[1:]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_f, model_f, ema_o, model_o = self._tensors(model)
        if ema_f:
            torch._foreach_mul_(ema_f, d)
            torch._foreach_add_(ema_f, model_f, alpha=1 - d)
        for e, m in zip(ema_o, model_o):  # a handful of BatchNorm counters
            e.copy_(m)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])  # in place: the cached tensor lists stay valid
        self.updates = int(state["updates"])
