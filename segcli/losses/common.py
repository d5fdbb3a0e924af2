"""Helpers shared by the losses: which pixels count, one-hot targets, class-weighted means, and the base of a
loss over labelled pixels."""

from __future__ import annotations

import torch
from torch import nn


class LabelLoss(nn.Module):
    """A loss over labelled pixels: pixels equal to ``ignore_index`` do not count, and ``weight`` (C,), when
    given, weighs the classes. The weight is a buffer (it follows the module to its device) that is not saved."""

    weight: torch.Tensor | None

    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)


def valid_mask(target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(valid, safe_target)``: which pixels count, and the target with ignored pixels set to class 0.

    ``safe_target`` can be used for indexing (gather, one-hot); results at ignored pixels must be masked out.
    """
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


def one_hot_valid(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(N, C, H, W) bool: pixel belongs to class c and is not ignored (all False at ignored pixels)."""
    classes = torch.arange(num_classes, device=target.device).view(1, num_classes, *([1] * (target.dim() - 1)))
    return (target.unsqueeze(1) == classes) & (target != ignore_index).unsqueeze(1)


def weighted_class_mean(per_class: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean over classes, or ``sum(w * x) / sum(w)`` with class weights (0 when all weights are 0)."""
    if weight is None:
        return per_class.mean()
    return (per_class * weight).sum() / weight.sum().clamp_min(torch.finfo(per_class.dtype).tiny)
