"""Distillation terms: the student's logits against a frozen teacher's (``train.distill.teacher``).

They register with ``teacher=True`` and take the teacher's logits, already in the student's class order and
size, as a third argument: ``term(logits, target, teacher)``. The target only says which pixels count: pixels
at ``ignore_index`` (void labels, and the padding of a crop) never do, as in every other loss.

- ``kd``, pixel-wise distillation (Hinton et al. 2015 applied per pixel, as in Liu et al., "Structured
  Knowledge Distillation for Semantic Segmentation", CVPR 2019): ``T^2 * mean over pixels of
  KL(softmax(t / T) || softmax(s / T))`` over the classes.
- ``cwd``, channel-wise distillation (Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction",
  ICCV 2021): each class channel is turned into a distribution over the image's locations by a softmax with
  temperature ``T``; ``T^2 * sum over channels and locations of KL(teacher || student) / (N * C)``, the
  normalisation of the authors' code (mmsegmentation-distiller, and mmrazor's ChannelWiseDivergence). Their
  segmentation recipes use T = 1 with weight 3 on logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.losses.registry import LOSSES
from segcli.options import opt


@dataclass(frozen=True)
class KDOptions:
    """Pixel-wise knowledge distillation (kd): KL divergence between the teacher's and the student's class
    distributions at each pixel, softened by a temperature; needs train.distill.teacher. Its weight is its
    entry in loss.term_weights."""

    temperature: float = opt(1.0, "softmax temperature T of both sides; the loss is scaled by T^2", minimum=1e-3)


@dataclass(frozen=True)
class CWDOptions:
    """Channel-wise distillation (cwd): KL divergence between the teacher's and the student's spatial
    distribution of each class channel (softmax over locations with a temperature); needs
    train.distill.teacher. Its weight is its entry in loss.term_weights (the authors use 3 on logits)."""

    temperature: float = opt(1.0, "softmax temperature T of both sides; the loss is scaled by T^2", minimum=1e-3)


def _valid(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return (target != ignore_index).unsqueeze(1)  # (N, 1, H, W)


@LOSSES.register("kd", options=KDOptions, teacher=True)
class PixelKD(nn.Module):
    """``T^2 * sum_c p_t log(p_t / p_s)`` averaged over the non-ignored pixels (0 when there are none)."""

    def __init__(self, ignore_index: int = 255, temperature: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.temperature = ignore_index, temperature

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        log_s = F.log_softmax(logits.float() / t, dim=1)
        log_t = F.log_softmax(teacher.float() / t, dim=1)
        kl = (log_t.exp() * (log_t - log_s)).sum(1, keepdim=True)
        valid = _valid(target, self.ignore_index)
        kl = torch.where(valid, kl, torch.zeros_like(kl))
        return kl.sum() / valid.sum().clamp_min(1) * t * t


@LOSSES.register("cwd", options=CWDOptions, teacher=True)
class ChannelWiseKD(nn.Module):
    """Per (image, channel): KL between the softmax over the non-ignored locations of the teacher's and the
    student's map; summed, divided by N * C, times T^2."""

    def __init__(self, ignore_index: int = 255, temperature: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.temperature = ignore_index, temperature

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        n, c = logits.shape[:2]
        valid = _valid(target, self.ignore_index).expand(-1, c, -1, -1).flatten(2)  # (N, C, HW)
        low = torch.finfo(torch.float32).min  # ignored locations drop out of the softmax
        s = (logits.float() / t).flatten(2).masked_fill(~valid, low)
        u = (teacher.float() / t).flatten(2).masked_fill(~valid, low)
        log_s, log_t = F.log_softmax(s, dim=2), F.log_softmax(u, dim=2)
        kl = torch.where(valid, log_t.exp() * (log_t - log_s), torch.zeros_like(log_s))
        return kl.sum() / (n * c) * t * t
