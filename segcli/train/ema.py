"""Averages of the weights (parameters and buffers): the exponential moving average of ``train.ema``, validated
and saved on its own, and the average over the last part of a run of ``train.average`` (:class:`TailAverage`),
which replaces the trained weights at the end when it scores higher."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """``ema = d * ema + (1 - d) * model`` after each optimiser step, with the usual warm-up of d.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early averages
    are not dominated by the random initial weights; ``uniform``: ``n / (n + 1)``, the plain mean (SWA).
    Integer buffers (BatchNorm counters) are copied.
    One update is a few ``torch._foreach_*`` calls over all tensors (one fused kernel per group on CUDA),
    not a Python loop over the state dict.
    """

    def __init__(self, model: nn.Module, decay: float, uniform: bool = False) -> None:
        self.module = copy.deepcopy(model).eval()
        self.uniform = uniform  # the plain mean of the weights seen (SWA): the copy and every update weigh the same
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
        if self.uniform:
            d = self.updates / (self.updates + 1)  # the copy plus ``updates`` models, each 1 / (updates + 1)
        else:
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


TAIL_EMA_DECAY = 0.99  # train.average = "ema": the decay of the average over the run's last part


class TailAverage:
    """``train.average``: the weights averaged from ``start`` (a fraction of the run) to the end.

    ``kind`` ``"swa"`` is the plain mean of the weights after every optimiser step since ``start`` (stochastic
    weight averaging, Izmailov et al. 2018, here over the annealing tail of the schedule, BatchNorm statistics
    averaged with the weights rather than recomputed); ``"ema"`` an exponential moving average of decay
    :data:`TAIL_EMA_DECAY` started there. Nothing is kept (no copy, no cost per step) before ``start``.
    """

    def __init__(self, kind: str, start: float) -> None:
        if kind not in ("ema", "swa"):
            raise ValueError(f"train.average = {kind!r}: not ema or swa")
        self.kind, self.start = kind, start
        self.average: ModelEMA | None = None

    @property
    def module(self) -> nn.Module | None:
        """The averaged network, None before ``start``."""
        return self.average.module if self.average is not None else None

    @property
    def models(self) -> int:
        """How many optimiser steps' weights are in the average (0 before ``start``)."""
        return self.average.updates + 1 if self.average is not None else 0

    def update(self, model: nn.Module, fraction: float) -> None:
        """After an optimiser step at ``fraction`` of the run: start the average there, or add the weights to it."""
        if self.average is not None:
            self.average.update(model)
        elif fraction >= self.start:
            self.average = ModelEMA(model, TAIL_EMA_DECAY, uniform=self.kind == "swa")

    def describe(self) -> str:
        what = "the mean of the weights" if self.kind == "swa" else f"an EMA (decay {TAIL_EMA_DECAY:g}) of the weights"
        return f"{self.kind}: {what} over the last {1 - self.start:.0%} of the run ({self.models} steps)"

    def state_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, **({"ema": self.average.state_dict()} if self.average else {})}

    def load_state_dict(self, state: dict, model: nn.Module) -> None:
        """Restore an average saved with :meth:`state_dict`; ``model`` (with the restored weights) gives its shape."""
        self.average = None
        if "ema" in state:
            self.average = ModelEMA(model, TAIL_EMA_DECAY, uniform=self.kind == "swa")
            self.average.load_state_dict(state["ema"])
